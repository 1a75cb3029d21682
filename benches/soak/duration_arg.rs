//! Durations on the command line: a whole number with a unit.

use std::time::Duration;

/// Parses `500ms`, `5s`, `10m` or `1h`: a whole number and one of those
/// units, nothing else.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a duration: expected a whole number and a unit (ms, s, m, h), e.g. 10m"
        ));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{number:?} is too large a number"))?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => {
            return Err(format!(
                "{text:?} has no unit: use ms, s, m or h, e.g. {n}s"
            ));
        }
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    n.checked_mul(per_unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            "",
            "s",
            "10",
            "10 s",
            "1.5s",
            "-3s",
            "10x",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
    }
}
