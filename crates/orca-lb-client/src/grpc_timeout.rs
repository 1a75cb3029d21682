//! The `grpc-timeout` request header of an attempt sent again: what is left
//! of the caller's timeout, not the whole of it.
//!
//! gRPC's format (`PROTOCOL-HTTP2.md`): a positive integer of at most 8
//! ASCII digits and a unit, `H` (hours), `M` (minutes), `S` (seconds), `m`
//! (milliseconds), `u` (microseconds) or `n` (nanoseconds).

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

/// The header's name.
pub(crate) const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The largest value the format allows: 8 digits.
const MAX_VALUE: u64 = 99_999_999;

/// The timeout a `grpc-timeout` value says, or `None` if it is malformed: 1
/// to 8 ASCII digits then one of the six units, nothing else.
pub(crate) fn parse(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0_u64, |n, &d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `timeout` in the finest unit whose value fits in 8 digits, rounded down
/// to it (so never longer than `timeout`); the longest the format holds,
/// `99999999H`, beyond that.
pub(crate) fn encode(timeout: Duration) -> HeaderValue {
    let secs = u128::from(timeout.as_secs());
    let (value, unit) = [
        (timeout.as_nanos(), 'n'),
        (timeout.as_micros(), 'u'),
        (timeout.as_millis(), 'm'),
        (secs, 'S'),
        (secs / 60, 'M'),
        (secs / 3600, 'H'),
    ]
    .into_iter()
    .find(|&(value, _)| value <= u128::from(MAX_VALUE))
    .unwrap_or((u128::from(MAX_VALUE), 'H'));
    HeaderValue::try_from(format!("{value}{unit}")).expect("digits and a letter")
}

/// The caller's timeout ran out before the call could be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired {
    /// The timeout the call was sent with.
    pub(crate) timeout: Duration,
}

/// What is left of the `grpc-timeout` in `headers` `elapsed` after the call
/// started: `None` for a missing header or one that does not parse, or
/// [`Expired`] if nothing is left.
pub(crate) fn left(headers: &HeaderMap, elapsed: Duration) -> Result<Option<Duration>, Expired> {
    let Some(timeout) = headers.get(GRPC_TIMEOUT).and_then(|v| parse(v.as_bytes())) else {
        return Ok(None);
    };
    match timeout.checked_sub(elapsed) {
        Some(left) if !left.is_zero() => Ok(Some(left)),
        _ => Err(Expired { timeout }),
    }
}

/// Sets the `grpc-timeout` in `headers` to `left`, as [`left`] gave it:
/// `None` leaves the header as it is.
pub(crate) fn set_left(headers: &mut HeaderMap, left: Option<Duration>) {
    if let Some(left) = left {
        headers.insert(GRPC_TIMEOUT, encode(left));
    }
}

/// Sets the `grpc-timeout` in `headers` to what is left of it `elapsed`
/// after the call started, or says it has run out. A missing header, or one
/// that does not parse, is left as it is.
pub(crate) fn shorten(headers: &mut HeaderMap, elapsed: Duration) -> Result<(), Expired> {
    let left = left(headers, elapsed)?;
    set_left(headers, left);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> Option<Duration> {
        parse(s.as_bytes())
    }

    #[test]
    fn every_unit_parses() {
        assert_eq!(parsed("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parsed("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parsed("4S"), Some(Duration::from_secs(4)));
        assert_eq!(parsed("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parsed("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parsed("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(parsed("00000001S"), Some(Duration::from_secs(1)));
        assert_eq!(parsed("0n"), Some(Duration::ZERO));
        assert_eq!(
            parsed("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[test]
    fn malformed_values_do_not_parse() {
        for bad in [
            "",
            "S",
            "5",
            "5s",
            "5x",
            "123456789n",
            "+5S",
            "-5S",
            " 5S",
            "5S ",
            "5.0S",
            "5 S",
            "1e3m",
            "5SS",
            "٣S",
        ] {
            assert_eq!(parsed(bad), None, "{bad:?}");
        }
        assert_eq!(parse(b"5\xffS"), None);
    }

    fn encoded(d: Duration) -> String {
        encode(d).to_str().unwrap().to_string()
    }

    #[test]
    fn encoding_takes_the_finest_unit_that_fits_in_8_digits() {
        assert_eq!(encoded(Duration::from_nanos(1)), "1n");
        assert_eq!(encoded(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(encoded(Duration::from_nanos(100_000_000)), "100000u");
        assert_eq!(encoded(Duration::from_millis(1_500)), "1500000u");
        assert_eq!(encoded(Duration::from_secs(100)), "100000m");
        // Rounded down, never up.
        assert_eq!(encoded(Duration::from_nanos(123_456_789_999)), "123456m");
        assert_eq!(encoded(Duration::from_secs(100_000)), "100000S");
        assert_eq!(encoded(Duration::from_secs(100_000_000)), "1666666M");
        assert_eq!(
            encoded(Duration::from_secs(6_000_000_000)),
            "1666666H",
            "past 8 digits of minutes"
        );
        assert_eq!(encoded(Duration::MAX), "99999999H");
    }

    #[test]
    fn what_is_encoded_parses_back_to_at_most_the_duration_and_within_one_unit() {
        let mut d = Duration::from_nanos(1);
        // Up to the longest the format holds.
        while d < Duration::from_secs(MAX_VALUE * 3600) {
            let back = parse(encode(d).as_bytes()).expect("parses");
            assert!(back <= d, "{d:?} came back as {back:?}");
            // The unit is the finest that fits: a finer one did not, so the
            // value is at least 100,000 of it, and rounding loses less than
            // one part in 100,000.
            assert!(
                (d - back).as_secs_f64() <= d.as_secs_f64() * 1e-5,
                "{d:?} came back as {back:?}"
            );
            d = d * 3 + Duration::from_nanos(7);
        }
    }

    fn headers(timeout: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_str(timeout).unwrap());
        headers
    }

    #[test]
    fn shortening_leaves_what_is_left() {
        let mut h = headers("2S");
        assert_eq!(shorten(&mut h, Duration::from_millis(500)), Ok(()));
        assert_eq!(h[GRPC_TIMEOUT], "1500000u");
        let mut h = headers("5M");
        assert_eq!(shorten(&mut h, Duration::from_secs(60)), Ok(()));
        assert_eq!(h[GRPC_TIMEOUT], "240000m");
        let mut h = headers("100m");
        assert_eq!(shorten(&mut h, Duration::ZERO), Ok(()));
        assert_eq!(
            h[GRPC_TIMEOUT], "100000u",
            "the same time, in the finest unit"
        );
    }

    #[test]
    fn a_timeout_run_out_is_expired() {
        let mut h = headers("100m");
        let expired = Err(Expired {
            timeout: Duration::from_millis(100),
        });
        assert_eq!(shorten(&mut h, Duration::from_millis(100)), expired);
        assert_eq!(shorten(&mut h, Duration::from_secs(1)), expired);
        assert_eq!(h[GRPC_TIMEOUT], "100m", "left as it was");
        let mut h = headers("0n");
        assert_eq!(
            shorten(&mut h, Duration::ZERO),
            Err(Expired {
                timeout: Duration::ZERO
            })
        );
    }

    #[test]
    fn a_missing_or_malformed_header_is_left_as_it_is() {
        let mut h = HeaderMap::new();
        assert_eq!(shorten(&mut h, Duration::from_secs(1)), Ok(()));
        assert!(h.is_empty());
        let mut h = headers("soon");
        assert_eq!(shorten(&mut h, Duration::from_secs(1)), Ok(()));
        assert_eq!(h[GRPC_TIMEOUT], "soon");
        let mut h = headers("123456789m");
        assert_eq!(shorten(&mut h, Duration::from_secs(1)), Ok(()));
        assert_eq!(h[GRPC_TIMEOUT], "123456789m");
    }
}
