//! Any valid report survives the wire: written with `ReportEncoder` (what
//! the server sends) or with the generated prost code, decoded by prost and
//! validated again, it comes back equal.

use std::collections::HashMap;

use orca_lb_core::{LoadReport, RawLoadReport};
use orca_lb_proto::encode::ReportEncoder;
use orca_lb_proto::pb::OrcaLoadReport;
use proptest::prelude::*;
use prost::Message;

fn fraction() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0]
}

fn non_negative() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        0.0f64..1e12
    ]
}

fn map(values: impl Strategy<Value = f64>) -> impl Strategy<Value = HashMap<String, f64>> {
    // Any UTF-8 name, the empty one included.
    prop::collection::hash_map(".{0,12}", values, 0..5)
}

prop_compose! {
    fn valid_report()(
        cpu in non_negative(),
        mem in fraction(),
        request_cost in map(non_negative()),
        utilization in map(fraction()),
        rps_fractional in non_negative(),
        eps in non_negative(),
        named_metrics in map(non_negative()),
        app in non_negative(),
    ) -> LoadReport {
        LoadReport::try_from(RawLoadReport {
            cpu_utilization: cpu,
            mem_utilization: mem,
            rps: 0,
            request_cost,
            utilization,
            rps_fractional,
            eps,
            named_metrics,
            application_utilization: app,
        })
        .expect("generated in range")
    }
}

fn decoded(bytes: &[u8]) -> Result<LoadReport, String> {
    let pb = OrcaLoadReport::decode(bytes).map_err(|e| e.to_string())?;
    LoadReport::try_from(pb).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn a_valid_report_survives_the_encoder(report in valid_report()) {
        let mut buf = Vec::new();
        ReportEncoder::new(&mut buf).report(&report);
        prop_assert_eq!(decoded(&buf), Ok(report));
    }

    #[test]
    fn a_valid_report_survives_the_generated_code(report in valid_report()) {
        let bytes = OrcaLoadReport::from(report.clone()).encode_to_vec();
        prop_assert_eq!(decoded(&bytes), Ok(report));
    }

    /// Bytes that are not a report never panic the decoder: they are an
    /// error or a report that validation then accepts or refuses.
    #[test]
    fn garbage_bytes_are_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decoded(&bytes);
    }
}
