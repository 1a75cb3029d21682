//! Durations as people type them on a command line: `250ms`, `2s`,
//! `1m30s`, ..., always with a unit. The `orca-lb` CLI, the examples and the
//! soak run all read theirs with [`parse_duration`].

use std::time::Duration;

/// Parses a duration as `humantime` reads it (`250ms`, `1.5s`, `1m30s`,
/// `1h 5m`); a number without a unit is refused, with the two readings it
/// could have had.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` has no unit: write {text}ms or {text}s"));
    }
    humantime::parse_duration(text).map_err(|e| match e {
        humantime::DurationError::UnknownUnit { unit, value, .. } if unit.is_empty() => {
            format!("`{text}`: {value} has no unit: write {value}ms or {value}s")
        }
        e => format!("`{text}` is not a duration ({e}): write e.g. 250ms, 2s or 1m30s"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_number_is_refused_with_both_readings() {
        assert_eq!(
            parse_duration("7"),
            Err("`7` has no unit: write 7ms or 7s".to_string())
        );
        assert_eq!(
            parse_duration("0"),
            Err("`0` has no unit: write 0ms or 0s".to_string())
        );
        assert_eq!(
            parse_duration("1m 30"),
            Err("`1m 30`: 30 has no unit: write 30ms or 30s".to_string())
        );
    }

    #[test]
    fn units_and_compounds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 5m"), Ok(Duration::from_secs(3900)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn garbage_is_refused_with_an_example() {
        for bad in ["", "fast", "-1s", "1,5s", "10x", "ms"] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(error.starts_with(&format!("`{bad}`")), "{error}");
            assert!(error.ends_with("write e.g. 250ms, 2s or 1m30s"), "{error}");
        }
    }
}
