//! An error and its sources as one line: the one rule every crate and
//! example prints causes by.

use std::error::Error;

/// `error`'s text followed by each of its sources, each after `": "`,
/// leaving out any whose text the line already shows (wrappers often repeat
/// their cause in their own message).
///
/// ```
/// use orca_lb_core::error_chain;
///
/// let io = std::io::Error::other("connection refused");
/// let wrapped = std::io::Error::other(io);
/// assert_eq!(error_chain(&wrapped), "connection refused");
/// ```
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    append_sources(&mut text, error.source());
    text
}

/// Appends `source` and its own sources to `text`, each after `": "`,
/// leaving out any whose text `text` already shows.
pub fn append_sources(text: &mut String, mut source: Option<&(dyn Error + 'static)>) {
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("etcd range failed")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn sources_follow_and_repeats_are_left_out() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&e), "etcd range failed: connection refused");
        let mut text = "call failed: connection refused".to_string();
        append_sources(&mut text, Some(&e));
        assert_eq!(text, "call failed: connection refused: etcd range failed");
    }
}
