//! Reading an ORCA report off a response.

use std::fmt;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderMap;
use orca_lb_core::{InvalidReport, LoadReport};
use orca_lb_proto::pb::OrcaLoadReport;
use prost::Message;

/// Standard base64 with or without padding: gRPC implementations differ.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A report that could not be used.
#[derive(Debug)]
pub enum ReportError {
    /// The value is not base64.
    Base64(base64::DecodeError),
    /// The bytes are not an `OrcaLoadReport`.
    Protobuf(prost::DecodeError),
    /// The report decoded, but a value is out of range.
    Invalid(InvalidReport),
    /// The value is empty.
    Empty,
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Base64(e) => write!(f, "load report is not base64: {e}"),
            ReportError::Protobuf(e) => write!(f, "load report is not an OrcaLoadReport: {e}"),
            ReportError::Invalid(e) => write!(f, "{e}"),
            ReportError::Empty => f.write_str("load report is empty"),
        }
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReportError::Base64(e) => Some(e),
            ReportError::Protobuf(e) => Some(e),
            ReportError::Invalid(e) => Some(e),
            ReportError::Empty => None,
        }
    }
}

/// Decodes a report from the binary value of `endpoint-load-metrics-bin`
/// (base64 text, as it travels in HTTP/2 headers).
pub fn decode_report(value: &[u8]) -> Result<LoadReport, ReportError> {
    if value.is_empty() {
        return Err(ReportError::Empty);
    }
    let bytes = LENIENT.decode(value).map_err(ReportError::Base64)?;
    let pb = OrcaLoadReport::decode(bytes.as_slice()).map_err(ReportError::Protobuf)?;
    LoadReport::try_from(pb).map_err(ReportError::Invalid)
}

/// The report in a trailer map, if the key is present.
pub(crate) fn report_in(headers: &HeaderMap) -> Option<Result<LoadReport, ReportError>> {
    headers
        .get(orca_lb_proto::TRAILER_KEY)
        .map(|v| decode_report(v.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    fn encoded(report: &OrcaLoadReport, engine: &impl Engine) -> Vec<u8> {
        engine.encode(report.encode_to_vec()).into_bytes()
    }

    #[test]
    fn padded_and_unpadded_both_decode() {
        let pb = OrcaLoadReport {
            cpu_utilization: 0.5,
            rps_fractional: 10.0,
            ..Default::default()
        };
        for v in [encoded(&pb, &STANDARD), encoded(&pb, &STANDARD_NO_PAD)] {
            assert_eq!(decode_report(&v).unwrap().cpu_utilization(), 0.5);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(decode_report(b""), Err(ReportError::Empty)));
        assert!(matches!(decode_report(b"!!!"), Err(ReportError::Base64(_))));
        let not_proto = STANDARD.encode([0xff, 0xff, 0xff]).into_bytes();
        assert!(matches!(
            decode_report(&not_proto),
            Err(ReportError::Protobuf(_))
        ));
        let nan = OrcaLoadReport {
            mem_utilization: f64::NAN,
            ..Default::default()
        };
        let err = decode_report(&encoded(&nan, &STANDARD)).unwrap_err();
        assert!(matches!(err, ReportError::Invalid(_)));
        assert!(err.to_string().contains("mem_utilization"), "{err}");
    }
}
