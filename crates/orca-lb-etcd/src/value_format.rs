//! The value formats discovery reads and registration writes: orca-lb's own
//! JSON record, and the two forms Go fleets use.
//!
//! | format | key | value |
//! |---|---|---|
//! | [`OrcaLb`](ValueFormat::OrcaLb) | `<prefix>/<service>/<host:port>` | `{"v":1,"addr":"http://10.0.0.7:50051","zone":"a","weight":100}` |
//! | [`BareAddress`](ValueFormat::BareAddress) | `/<scheme>/<service>/<host:port>`, under a lease | `10.0.0.7:50051` |
//! | [`GoNaming`](ValueFormat::GoNaming) | `<service>/<anything>` | `{"Op":0,"Addr":"10.0.0.7:50051","Metadata":null}` |
//!
//! The bare address is the classic lease registration of Go's etcd examples;
//! the naming form is what `go.etcd.io/etcd/client/v3/naming/endpoints`
//! writes (`Op` 0 is `Add`; `Metadata` is any JSON).

use std::fmt;
use std::str::FromStr;

use http::Uri;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ConfigError, ValueError};
use crate::record::{EndpointRecord, parse_addr};

/// How discovery reads the values under its prefix
/// ([`EtcdDiscovery::value_format`](crate::EtcdDiscovery::value_format)).
///
/// Whatever the format, a value it cannot read is skipped as malformed:
/// counted, logged, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ValueFormat {
    /// Each value in the format it shows, where that is unambiguous: a JSON
    /// object with `"v"` or `"addr"` is orca-lb's record, one with `"Addr"`
    /// is Go's naming form, anything else is read as a bare address. An
    /// object with both kinds of field, or neither, is malformed. The
    /// default.
    #[default]
    Auto,
    /// orca-lb's own record only: `{"v":1,"addr":"http://host:port",...}`
    /// ([`EndpointRecord::parse`]).
    OrcaLb,
    /// The address alone, `host:port`, or `http://host:port` /
    /// `https://host:port`. Without a scheme the endpoint's address is
    /// `http://host:port`: TLS comes from the balancer's endpoint template,
    /// whose scheme and settings apply to every address discovered. No
    /// metadata.
    BareAddress,
    /// etcd's gRPC naming form: `{"Op":0,"Addr":"host:port","Metadata":...}`.
    /// `Addr` is read as [`BareAddress`](Self::BareAddress) is; `Metadata`,
    /// unless absent or `null`, is kept as compact JSON text in
    /// [`EndpointRecord::metadata`]. An `Op` other than 0 (`Add`) is
    /// malformed; a missing `Op` is 0, as in Go.
    GoNaming,
}

/// The format a [`Registration`](crate::Registration) writes: those of
/// [`ValueFormat`] but `Auto`, which only reads.
///
/// Every format writes the key `<prefix>/<service>/<host:port>`; an empty
/// prefix gives `<service>/<host:port>`, the layout of Go's naming package
/// with the service as its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RegistrationFormat {
    /// orca-lb's record, with the address's scheme, `zone` and `weight`.
    /// The default.
    #[default]
    OrcaLb,
    /// `host:port` alone, as Go's classic lease registration writes it. The
    /// scheme is not written, nor any metadata.
    BareAddress,
    /// `{"Op":0,"Addr":"host:port","Metadata":...}`, as Go's naming package
    /// writes it; `Metadata` is [`EndpointRecord::metadata`], or `null`.
    GoNaming,
}

/// Go's naming value, fields in the order Go writes them.
#[derive(Serialize)]
struct GoNamingValue<'a> {
    #[serde(rename = "Op")]
    op: u8,
    #[serde(rename = "Addr")]
    addr: &'a str,
    #[serde(rename = "Metadata")]
    metadata: Value,
}

/// The key of Go's naming `Metadata` object that discovery reads an
/// endpoint's zone from, unless set otherwise
/// ([`EtcdDiscovery::zone_key`](crate::EtcdDiscovery::zone_key)).
pub const DEFAULT_ZONE_KEY: &str = "zone";

// === impl ValueFormat ===

impl ValueFormat {
    /// The names [`FromStr`] takes, as [`Display`](fmt::Display) writes them.
    pub const NAMES: [&'static str; 4] = ["auto", "orca-lb", "bare", "go-naming"];

    /// Reads a stored value in this format.
    ///
    /// ```
    /// use orca_lb_etcd::ValueFormat;
    ///
    /// let record = ValueFormat::Auto.decode(b"10.0.0.7:50051").unwrap();
    /// assert_eq!(record.addr, "http://10.0.0.7:50051");
    /// let record = ValueFormat::Auto
    ///     .decode(br#"{"Op":0,"Addr":"10.0.0.7:50051","Metadata":{"zone":"a"}}"#)
    ///     .unwrap();
    /// assert_eq!(record.metadata.as_deref(), Some(r#"{"zone":"a"}"#));
    /// assert!(ValueFormat::OrcaLb.decode(b"10.0.0.7:50051").is_err());
    /// ```
    pub fn decode(self, value: &[u8]) -> Result<EndpointRecord, ValueError> {
        match self {
            ValueFormat::OrcaLb => EndpointRecord::parse(value),
            ValueFormat::BareAddress => parse_bare_value(value),
            ValueFormat::GoNaming => parse_go_naming(value),
            ValueFormat::Auto => match detect(value)? {
                ValueFormat::OrcaLb => EndpointRecord::parse(value),
                ValueFormat::GoNaming => parse_go_naming(value),
                _ => parse_bare_value(value),
            },
        }
    }
}

impl ValueFormat {
    /// Reads a stored value as [`decode`](Self::decode) does, with its zone:
    /// orca-lb's record carries it in its `zone` field; in Go's naming form
    /// it is the string under `zone_key` in `Metadata`, when that is an
    /// object that has the key. A zone that is not a string or not a valid
    /// zone name ([`Zone`](orca_lb_client::Zone)) makes the value malformed.
    ///
    /// ```
    /// use orca_lb_etcd::ValueFormat;
    ///
    /// let value = br#"{"Op":0,"Addr":"10.0.0.7:50051","Metadata":{"az":"us-east-1a"}}"#;
    /// let record = ValueFormat::GoNaming.decode_zoned(value, "az").unwrap();
    /// assert_eq!(record.zone.as_deref(), Some("us-east-1a"));
    /// let bad = br#"{"Op":0,"Addr":"10.0.0.7:50051","Metadata":{"az":""}}"#;
    /// assert!(ValueFormat::GoNaming.decode_zoned(bad, "az").is_err());
    /// ```
    pub fn decode_zoned(self, value: &[u8], zone_key: &str) -> Result<EndpointRecord, ValueError> {
        let mut record = self.decode(value)?;
        if record.zone.is_none()
            && let Some(metadata) = &record.metadata
            && let Ok(Value::Object(object)) = serde_json::from_str::<Value>(metadata)
            && let Some(zone) = object.get(zone_key)
        {
            match zone {
                Value::String(zone) => record.zone = Some(zone.clone()),
                other => {
                    return Err(ValueError::InvalidZone {
                        zone: other.to_string(),
                        why: "not a string".to_string(),
                    });
                }
            }
        }
        if let Some(zone) = &record.zone
            && let Err(e) = orca_lb_client::Zone::new(zone)
        {
            return Err(ValueError::InvalidZone {
                zone: zone.clone(),
                why: e.to_string(),
            });
        }
        Ok(record)
    }
}

/// The format `value` shows: [`ValueFormat::OrcaLb`], [`GoNaming`] or
/// [`BareAddress`], or why it shows none unambiguously.
///
/// [`GoNaming`]: ValueFormat::GoNaming
/// [`BareAddress`]: ValueFormat::BareAddress
fn detect(value: &[u8]) -> Result<ValueFormat, ValueError> {
    if !value.trim_ascii_start().starts_with(b"{") {
        return Ok(ValueFormat::BareAddress);
    }
    let object = json_object(value)?;
    let orca_lb = object.contains_key("v") || object.contains_key("addr");
    let go_naming = object.contains_key("Addr");
    match (orca_lb, go_naming) {
        (true, false) => Ok(ValueFormat::OrcaLb),
        (false, true) => Ok(ValueFormat::GoNaming),
        (true, true) => Err(ValueError::UnknownFormat(
            "a JSON object with both orca-lb's \"v\"/\"addr\" and Go's \"Addr\"".to_string(),
        )),
        (false, false) => Err(ValueError::UnknownFormat(
            "a JSON object with neither orca-lb's \"v\"/\"addr\" nor Go's \"Addr\"".to_string(),
        )),
    }
}

fn json_object(value: &[u8]) -> Result<Map<String, Value>, ValueError> {
    match serde_json::from_slice::<Value>(value) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ValueError::NotJson("not a JSON object".to_string())),
        Err(e) => Err(ValueError::NotJson(e.to_string())),
    }
}

fn parse_bare_value(value: &[u8]) -> Result<EndpointRecord, ValueError> {
    let text = std::str::from_utf8(value).map_err(|_| ValueError::InvalidAddr {
        addr: String::from_utf8_lossy(value).into_owned(),
        why: "not UTF-8".to_string(),
    })?;
    parse_bare_addr(text.trim_ascii()).map(EndpointRecord::new)
}

/// `host:port` (taken as `http://host:port`), `http://host:port` or
/// `https://host:port`; nothing else (no path, user or query).
fn parse_bare_addr(text: &str) -> Result<Uri, ValueError> {
    let invalid = |why: &str| ValueError::InvalidAddr {
        addr: text.to_string(),
        why: why.to_string(),
    };
    let expected = "expected host:port or http(s)://host:port";
    let (scheme, authority) = match text.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => {
            (scheme, rest.strip_suffix('/').unwrap_or(rest))
        }
        Some(_) => return Err(invalid("scheme is not http or https")),
        None => ("http", text),
    };
    if authority.is_empty()
        || authority
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(expected));
    }
    let uri = parse_addr(&format!("{scheme}://{authority}")).map_err(|e| match e {
        ValueError::InvalidAddr { why, .. } => invalid(&why),
        other => other,
    })?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(uri)
}

fn parse_go_naming(value: &[u8]) -> Result<EndpointRecord, ValueError> {
    let object = json_object(value)?;
    match object.get("Op") {
        // Go's zero value: a writer that left `Op` out meant `Add`.
        None => {}
        Some(op) if op.as_u64() == Some(0) => {}
        Some(op) => return Err(ValueError::UnsupportedOp(op.to_string())),
    }
    let addr = match object.get("Addr") {
        Some(Value::String(addr)) => addr,
        Some(other) => {
            return Err(ValueError::InvalidAddr {
                addr: other.to_string(),
                why: "\"Addr\" is not a string".to_string(),
            });
        }
        None => return Err(ValueError::MissingField("Addr")),
    };
    let mut record = EndpointRecord::new(parse_bare_addr(addr)?);
    record.metadata = match object.get("Metadata") {
        None | Some(Value::Null) => None,
        Some(metadata) => Some(metadata.to_string()),
    };
    Ok(record)
}

impl fmt::Display for ValueFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueFormat::Auto => "auto",
            ValueFormat::OrcaLb => "orca-lb",
            ValueFormat::BareAddress => "bare",
            ValueFormat::GoNaming => "go-naming",
        })
    }
}

impl FromStr for ValueFormat {
    type Err = ConfigError;

    /// `auto`, `orca-lb`, `bare` or `go-naming`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ValueFormat::Auto),
            "orca-lb" => Ok(ValueFormat::OrcaLb),
            "bare" => Ok(ValueFormat::BareAddress),
            "go-naming" => Ok(ValueFormat::GoNaming),
            _ => Err(ConfigError {
                field: "format",
                why: format!(
                    "unknown value format {s:?}: expected one of {}",
                    Self::NAMES.join(", ")
                ),
            }),
        }
    }
}

impl From<RegistrationFormat> for ValueFormat {
    fn from(format: RegistrationFormat) -> Self {
        match format {
            RegistrationFormat::OrcaLb => ValueFormat::OrcaLb,
            RegistrationFormat::BareAddress => ValueFormat::BareAddress,
            RegistrationFormat::GoNaming => ValueFormat::GoNaming,
        }
    }
}

// === impl RegistrationFormat ===

impl RegistrationFormat {
    /// Checks that `record` can be written in this format: each format
    /// writes only what it carries, so nothing given is silently dropped.
    /// orca-lb's record carries `zone` and `weight`; Go's naming form
    /// carries `metadata` (JSON); a bare address carries nothing else.
    pub fn check(self, record: &EndpointRecord) -> Result<(), ConfigError> {
        let refuse = |field, why: &str| {
            Err(ConfigError {
                field,
                why: why.to_string(),
            })
        };
        match self {
            RegistrationFormat::OrcaLb => {
                if record.metadata.is_some() {
                    return refuse(
                        "record.metadata",
                        "the orca-lb format carries zone and weight, not free metadata; use the go-naming format for it",
                    );
                }
            }
            RegistrationFormat::BareAddress => {
                for (field, set) in [
                    ("record.zone", record.zone.is_some()),
                    ("record.weight", record.weight.is_some()),
                    ("record.metadata", record.metadata.is_some()),
                ] {
                    if set {
                        return refuse(field, "the bare-address format carries no metadata");
                    }
                }
            }
            RegistrationFormat::GoNaming => {
                for (field, set) in [
                    ("record.zone", record.zone.is_some()),
                    ("record.weight", record.weight.is_some()),
                ] {
                    if set {
                        return refuse(
                            field,
                            "the go-naming format has no such field; put it in record.metadata (JSON)",
                        );
                    }
                }
                if let Some(metadata) = &record.metadata
                    && let Err(e) = serde_json::from_str::<Value>(metadata)
                {
                    return refuse("record.metadata", &format!("not JSON: {e}"));
                }
            }
        }
        Ok(())
    }

    /// The value to store for `record` in this format, once
    /// [`check`](Self::check) accepts it.
    ///
    /// ```
    /// use orca_lb_etcd::{EndpointRecord, RegistrationFormat};
    ///
    /// let mut record = EndpointRecord::new("http://10.0.0.7:50051".parse().unwrap());
    /// assert_eq!(RegistrationFormat::BareAddress.encode(&record).unwrap(), "10.0.0.7:50051");
    /// record.metadata = Some(r#"{"zone": "a"}"#.into());
    /// assert_eq!(
    ///     RegistrationFormat::GoNaming.encode(&record).unwrap(),
    ///     r#"{"Op":0,"Addr":"10.0.0.7:50051","Metadata":{"zone":"a"}}"#
    /// );
    /// ```
    pub fn encode(self, record: &EndpointRecord) -> Result<String, ConfigError> {
        self.check(record)?;
        let authority = record.addr.authority().map_or("", |a| a.as_str());
        Ok(match self {
            RegistrationFormat::OrcaLb => record.to_json(),
            RegistrationFormat::BareAddress => authority.to_string(),
            RegistrationFormat::GoNaming => {
                let metadata = match &record.metadata {
                    // `check` parsed it already.
                    Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
                    None => Value::Null,
                };
                serde_json::to_string(&GoNamingValue {
                    op: 0,
                    addr: authority,
                    metadata,
                })
                .expect("a naming value always serializes")
            }
        })
    }
}

impl fmt::Display for RegistrationFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&ValueFormat::from(*self), f)
    }
}

impl FromStr for RegistrationFormat {
    type Err = ConfigError;

    /// `orca-lb`, `bare` or `go-naming`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<ValueFormat>() {
            Ok(ValueFormat::OrcaLb) => Ok(RegistrationFormat::OrcaLb),
            Ok(ValueFormat::BareAddress) => Ok(RegistrationFormat::BareAddress),
            Ok(ValueFormat::GoNaming) => Ok(RegistrationFormat::GoNaming),
            Ok(ValueFormat::Auto) | Err(_) => Err(ConfigError {
                field: "format",
                why: format!(
                    "unknown registration format {s:?}: expected one of orca-lb, bare, go-naming (auto only reads)"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(record: Result<EndpointRecord, ValueError>) -> String {
        record.unwrap().addr.to_string()
    }

    #[test]
    fn bare_addresses_get_http_unless_a_scheme_is_given() {
        let f = ValueFormat::BareAddress;
        assert_eq!(addr(f.decode(b"10.0.0.7:50051")), "http://10.0.0.7:50051/");
        assert_eq!(addr(f.decode(b"[::1]:50051\n")), "http://[::1]:50051/");
        assert_eq!(
            addr(f.decode(b"https://h.example:443")),
            "https://h.example:443/"
        );
        assert_eq!(addr(f.decode(b"http://h:1/")), "http://h:1/");
        let record = f.decode(b"h:1").unwrap();
        assert_eq!(
            (record.zone, record.weight, record.metadata),
            (None, None, None)
        );
    }

    #[test]
    fn bad_bare_addresses_are_refused_with_a_reason() {
        for value in [
            &b""[..],
            b"10.0.0.7",
            b"10.0.0.7:",
            b":50051",
            b"10.0.0.7:99999",
            b"10.0.0.7:port",
            b"grpc://h:1",
            b"http://h:1/path",
            b"user@h:1",
            b"h 1:2",
            b"h:1?x",
            b"\xff\xfe:1",
            br#"{"Op":0,"Addr":"h:1"}"#,
        ] {
            let e = ValueFormat::BareAddress.decode(value).unwrap_err();
            assert!(
                matches!(e, ValueError::InvalidAddr { .. }),
                "{:?}: {e:?}",
                String::from_utf8_lossy(value)
            );
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn go_naming_values_keep_their_metadata() {
        let f = ValueFormat::GoNaming;
        let r = f
            .decode(br#"{"Op":0,"Addr":"10.0.0.7:50051","Metadata":{"w": [1, 2]}}"#)
            .unwrap();
        assert_eq!(r.addr, "http://10.0.0.7:50051");
        assert_eq!(r.metadata.as_deref(), Some(r#"{"w":[1,2]}"#));
        for value in [
            &br#"{"Op":0,"Addr":"h:1","Metadata":null}"#[..],
            br#"{"Op":0,"Addr":"h:1"}"#,
            br#"{"Addr":"h:1"}"#,
        ] {
            let r = f.decode(value).unwrap();
            assert_eq!(
                (addr(Ok(r.clone())), r.metadata),
                ("http://h:1/".into(), None)
            );
        }
        let r = f
            .decode(br#"{"Op":0,"Addr":"h:1","Metadata":"text"}"#)
            .unwrap();
        assert_eq!(r.metadata.as_deref(), Some(r#""text""#));
    }

    #[test]
    fn malformed_go_naming_values_are_refused_with_a_reason() {
        type Expect = fn(&ValueError) -> bool;
        let cases: [(&[u8], Expect); 7] = [
            (br#"{"Op":1,"Addr":"h:1"}"#, |e| {
                *e == ValueError::UnsupportedOp("1".into())
            }),
            (br#"{"Op":"add","Addr":"h:1"}"#, |e| {
                matches!(e, ValueError::UnsupportedOp(_))
            }),
            (br#"{"Op":0}"#, |e| *e == ValueError::MissingField("Addr")),
            (br#"{"Op":0,"Addr":7}"#, |e| {
                matches!(e, ValueError::InvalidAddr { .. })
            }),
            (br#"{"Op":0,"Addr":"h"}"#, |e| {
                matches!(e, ValueError::InvalidAddr { .. })
            }),
            (b"h:1", |e| matches!(e, ValueError::NotJson(_))),
            (b"[1]", |e| matches!(e, ValueError::NotJson(_))),
        ];
        for (value, expected) in cases {
            let e = ValueFormat::GoNaming.decode(value).unwrap_err();
            assert!(expected(&e), "{:?}: {e:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn auto_reads_each_format_where_it_is_unambiguous() {
        let auto = ValueFormat::Auto;
        let own = auto
            .decode(br#"{"v":1,"addr":"https://h:1","zone":"z"}"#)
            .unwrap();
        assert_eq!(
            (addr(Ok(own.clone())), own.zone.as_deref()),
            ("https://h:1/".into(), Some("z"))
        );
        let go = auto
            .decode(br#" {"Op":0,"Addr":"h:2","Metadata":{"k":1}}"#)
            .unwrap();
        assert_eq!(go.metadata.as_deref(), Some(r#"{"k":1}"#));
        assert_eq!(addr(auto.decode(b"h:3")), "http://h:3/");
        // Malformed in the format they show.
        assert_eq!(
            auto.decode(br#"{"addr":"http://h:1"}"#).unwrap_err(),
            ValueError::MissingVersion
        );
        assert!(matches!(
            auto.decode(br#"{"Op":2,"Addr":"h:1"}"#).unwrap_err(),
            ValueError::UnsupportedOp(_)
        ));
        assert!(matches!(
            auto.decode(b"not an address").unwrap_err(),
            ValueError::InvalidAddr { .. }
        ));
        // Neither, or both.
        for value in [
            &br#"{"Op":0}"#[..],
            br#"{"v":1,"addr":"http://h:1","Addr":"h:1"}"#,
            b"{}",
        ] {
            assert!(matches!(
                auto.decode(value).unwrap_err(),
                ValueError::UnknownFormat(_)
            ));
        }
        assert!(matches!(
            auto.decode(b"{oops").unwrap_err(),
            ValueError::NotJson(_)
        ));
    }

    #[test]
    fn each_registration_format_writes_what_go_or_orca_lb_reads() {
        let mut record = EndpointRecord::new("https://10.0.0.7:50051".parse().unwrap());
        assert_eq!(
            RegistrationFormat::BareAddress.encode(&record).unwrap(),
            "10.0.0.7:50051"
        );
        assert_eq!(
            RegistrationFormat::GoNaming.encode(&record).unwrap(),
            r#"{"Op":0,"Addr":"10.0.0.7:50051","Metadata":null}"#
        );
        record.zone = Some("a".into());
        assert_eq!(
            RegistrationFormat::OrcaLb.encode(&record).unwrap(),
            r#"{"v":1,"addr":"https://10.0.0.7:50051","zone":"a"}"#
        );
        // Read back as written.
        for format in [
            RegistrationFormat::BareAddress,
            RegistrationFormat::GoNaming,
        ] {
            let mut plain = record.clone();
            plain.zone = None;
            let value = format.encode(&plain).unwrap();
            let read = ValueFormat::from(format).decode(value.as_bytes()).unwrap();
            assert_eq!(read.addr, "http://10.0.0.7:50051");
            assert_eq!(ValueFormat::Auto.decode(value.as_bytes()).unwrap(), read);
        }
    }

    #[test]
    fn a_format_refuses_what_it_cannot_write() {
        let mut record = EndpointRecord::new("http://h:1".parse().unwrap());
        record.zone = Some("a".into());
        let e = RegistrationFormat::BareAddress.encode(&record).unwrap_err();
        assert_eq!(e.field, "record.zone");
        let e = RegistrationFormat::GoNaming.check(&record).unwrap_err();
        assert_eq!(e.field, "record.zone");
        record.zone = None;
        record.metadata = Some("{not json".into());
        let e = RegistrationFormat::GoNaming.check(&record).unwrap_err();
        assert_eq!(e.field, "record.metadata");
        assert!(e.to_string().contains("not JSON"), "{e}");
        let e = RegistrationFormat::OrcaLb.check(&record).unwrap_err();
        assert_eq!(e.field, "record.metadata");
    }

    #[test]
    fn format_names_parse_and_print() {
        for name in ValueFormat::NAMES {
            assert_eq!(name.parse::<ValueFormat>().unwrap().to_string(), name);
        }
        for name in ["orca-lb", "bare", "go-naming"] {
            assert_eq!(
                name.parse::<RegistrationFormat>().unwrap().to_string(),
                name
            );
        }
        let e = "auto".parse::<RegistrationFormat>().unwrap_err();
        assert!(e.to_string().contains("auto only reads"), "{e}");
        let e = "json".parse::<ValueFormat>().unwrap_err();
        assert!(e.to_string().contains("\"json\""), "{e}");
    }
}
