//! The key layout and orca-lb's own value format: what a registration writes
//! and discovery reads by default.
//!
//! Key: `<prefix>/<service>/<host:port>`, e.g. `/orca-lb/greeter/10.0.0.7:50051`.
//! Value: a JSON object with a version field,
//! `{"v":1,"addr":"http://10.0.0.7:50051","zone":"a","weight":100}`.
//! The formats of Go fleets are in `value_format.rs`.

use http::Uri;
use serde::{Deserialize, Serialize};

use crate::error::ValueError;

/// The version of orca-lb's own value format that this crate writes and
/// reads.
pub const RECORD_VERSION: u64 = 1;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "/orca-lb";

/// An endpoint as registered: its address and optional metadata.
///
/// Which fields a value fills depends on its format
/// ([`ValueFormat`](crate::ValueFormat)): orca-lb's record has `zone` and
/// `weight`, Go's naming form has `metadata`, a bare address none.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointRecord {
    /// Where to connect: `http://host:port`.
    pub addr: Uri,
    /// The zone (or rack, or region) the endpoint runs in, if known.
    pub zone: Option<String>,
    /// A relative capacity hint (e.g. 100 for a standard machine), if given.
    pub weight: Option<u32>,
    /// Free-form metadata as compact JSON text: the `Metadata` of Go's
    /// naming form, unless absent or `null`.
    pub metadata: Option<String>,
}

// === setters of EndpointRecord ===

impl EndpointRecord {
    /// Sets [`addr`](Self::addr).
    #[must_use]
    pub fn with_addr(mut self, addr: Uri) -> Self {
        self.addr = addr;
        self
    }

    /// Sets [`zone`](Self::zone).
    #[must_use]
    pub fn with_zone(mut self, zone: impl Into<Option<String>>) -> Self {
        self.zone = zone.into();
        self
    }

    /// Sets [`weight`](Self::weight).
    #[must_use]
    pub fn with_weight(mut self, weight: impl Into<Option<u32>>) -> Self {
        self.weight = weight.into();
        self
    }

    /// Sets [`metadata`](Self::metadata).
    #[must_use]
    pub fn with_metadata(mut self, metadata: impl Into<Option<String>>) -> Self {
        self.metadata = metadata.into();
        self
    }
}

/// The wire form of version 1. Fields this version does not know are
/// ignored, so writers may add optional fields without a version bump.
#[derive(Serialize, Deserialize)]
struct V1 {
    v: u64,
    addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
}

/// Reads only the version, whatever else the object holds.
#[derive(Deserialize)]
struct Versioned {
    v: Option<u64>,
}

// === impl EndpointRecord ===

impl EndpointRecord {
    /// A record for `addr` (`http://host:port`) with no metadata.
    pub fn new(addr: Uri) -> Self {
        Self {
            addr,
            zone: None,
            weight: None,
            metadata: None,
        }
    }

    /// orca-lb's JSON value for this record, version [`RECORD_VERSION`]:
    /// the address, `zone` and `weight` (not `metadata`, which this format
    /// does not carry).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&V1 {
            v: RECORD_VERSION,
            addr: self.addr.to_string().trim_end_matches('/').to_string(),
            zone: self.zone.clone(),
            weight: self.weight,
        })
        .expect("a record always serializes")
    }

    /// Reads a stored value in orca-lb's format
    /// ([`ValueFormat::OrcaLb`](crate::ValueFormat::OrcaLb)).
    pub fn parse(value: &[u8]) -> Result<EndpointRecord, ValueError> {
        let versioned: Versioned =
            serde_json::from_slice(value).map_err(|e| ValueError::NotJson(e.to_string()))?;
        match versioned.v {
            None => return Err(ValueError::MissingVersion),
            Some(RECORD_VERSION) => {}
            Some(v) => return Err(ValueError::UnsupportedVersion(v)),
        }
        let v1: V1 =
            serde_json::from_slice(value).map_err(|e| ValueError::NotJson(e.to_string()))?;
        let addr = parse_addr(&v1.addr)?;
        Ok(EndpointRecord {
            addr,
            zone: v1.zone,
            weight: v1.weight,
            metadata: None,
        })
    }
}

/// Parses `scheme://host:port`, refusing anything without both.
pub(crate) fn parse_addr(addr: &str) -> Result<Uri, ValueError> {
    let invalid = |why: &str| ValueError::InvalidAddr {
        addr: addr.to_string(),
        why: why.to_string(),
    };
    let uri: Uri = addr
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(invalid("expected scheme://host:port"));
    }
    if uri.port_u16().is_none() {
        return Err(invalid("no port"));
    }
    Ok(uri)
}

/// The prefix every endpoint of `service` is registered under:
/// `<prefix>/<service>/`. A trailing `/` on `prefix` is ignored; an empty
/// `prefix` gives `<service>/`, the layout of Go's naming package (keys
/// `<target>/<address>`, with no leading `/`).
pub fn service_prefix(prefix: &str, service: &str) -> String {
    if prefix.is_empty() {
        return format!("{service}/");
    }
    format!("{}/{service}/", prefix.trim_end_matches('/'))
}

/// The key of one endpoint: `<prefix>/<service>/<host:port>`.
pub fn endpoint_key(prefix: &str, service: &str, addr: &Uri) -> String {
    let authority = addr.authority().map_or("", |a| a.as_str());
    format!("{}{authority}", service_prefix(prefix, service))
}

/// The end of the etcd range holding every key that starts with `prefix`:
/// the prefix with its last byte below 0xff incremented (etcd's convention).
pub(crate) fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix was empty): the whole key space.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_metadata() {
        let r = EndpointRecord {
            addr: "http://127.0.0.1:1234".parse().unwrap(),
            zone: Some("a".into()),
            weight: Some(100),
            metadata: None,
        };
        let json = r.to_json();
        assert_eq!(
            json,
            r#"{"v":1,"addr":"http://127.0.0.1:1234","zone":"a","weight":100}"#
        );
        assert_eq!(EndpointRecord::parse(json.as_bytes()).unwrap(), r);
    }

    #[test]
    fn metadata_is_optional_and_unknown_fields_are_ignored() {
        let r = EndpointRecord::parse(br#"{"v":1,"addr":"http://h:1","later":[1,2]}"#).unwrap();
        assert_eq!(r, EndpointRecord::new("http://h:1".parse().unwrap()));
        assert_eq!(r.to_json(), r#"{"v":1,"addr":"http://h:1"}"#);
    }

    #[test]
    fn malformed_values_are_refused_with_a_reason() {
        type Expect = fn(&ValueError) -> bool;
        let cases: [(&[u8], Expect); 7] = [
            (b"not json", |e| matches!(e, ValueError::NotJson(_))),
            (b"[1,2]", |e| matches!(e, ValueError::NotJson(_))),
            (br#"{"addr":"http://h:1"}"#, |e| {
                *e == ValueError::MissingVersion
            }),
            (br#"{"v":2,"addr":"http://h:1"}"#, |e| {
                *e == ValueError::UnsupportedVersion(2)
            }),
            (br#"{"v":1}"#, |e| matches!(e, ValueError::NotJson(_))),
            (br#"{"v":1,"addr":"h:1"}"#, |e| {
                matches!(e, ValueError::InvalidAddr { .. })
            }),
            (br#"{"v":1,"addr":"http://h"}"#, |e| {
                matches!(e, ValueError::InvalidAddr { .. })
            }),
        ];
        for (value, expected) in cases {
            let e = EndpointRecord::parse(value).unwrap_err();
            assert!(expected(&e), "{:?}: {e:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn key_layout() {
        let addr: Uri = "http://10.0.0.7:50051".parse().unwrap();
        assert_eq!(service_prefix("/orca-lb/", "greeter"), "/orca-lb/greeter/");
        assert_eq!(service_prefix("/", "greeter"), "/greeter/");
        assert_eq!(service_prefix("", "greeter"), "greeter/");
        assert_eq!(endpoint_key("", "greeter", &addr), "greeter/10.0.0.7:50051");
        assert_eq!(
            endpoint_key("/orca-lb", "greeter", &addr),
            "/orca-lb/greeter/10.0.0.7:50051"
        );
    }

    #[test]
    fn range_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_range_end(b"/a/"), b"/a0");
        assert_eq!(prefix_range_end(b"a\xff"), b"b");
        assert_eq!(prefix_range_end(b"\xff"), b"\0");
        assert_eq!(prefix_range_end(b""), b"\0");
    }
}
