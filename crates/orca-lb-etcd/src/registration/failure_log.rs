//! Logging of a registration's failures: the first of a streak at WARN,
//! then a WARN summary with the count at most once per [`WARN_EVERY`].
//!
//! A registration whose etcd is down, or refuses its TLS or credentials,
//! fails every few seconds for as long as that lasts; one line per attempt
//! would bury everything else.

use std::time::Duration;

use tokio::time::Instant;

/// Failures within a streak logged at WARN at most this often; the rest at
/// DEBUG, and counted in the next WARN.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(60);

/// One registration's failure log state.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    /// Failures since the last success.
    streak: u64,
    /// Failures logged at DEBUG since the last WARN.
    unreported: u64,
    last_warn: Option<Instant>,
}

/// How to log one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Log at WARN (else DEBUG).
    pub(crate) warn: bool,
    /// Failures in this streak, this one included.
    pub(crate) streak: u64,
    /// Failures logged at DEBUG since the last WARN.
    pub(crate) not_logged: u64,
}

impl FailureLog {
    /// One more failure at `now`.
    pub(crate) fn failed(&mut self, now: Instant) -> Verdict {
        self.streak += 1;
        let warn = self.streak == 1
            || self
                .last_warn
                .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY);
        let not_logged = self.unreported;
        if warn {
            self.last_warn = Some(now);
            self.unreported = 0;
        } else {
            self.unreported += 1;
        }
        Verdict {
            warn,
            streak: self.streak,
            not_logged,
        }
    }

    /// etcd answered again: returns how many failures the streak had.
    pub(crate) fn recovered(&mut self) -> u64 {
        self.unreported = 0;
        self.last_warn = None;
        std::mem::take(&mut self.streak)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_streak_warns_first_then_once_a_minute_with_the_count() {
        let mut log = FailureLog::default();
        let mut warns = Vec::new();
        // Five minutes of failures, one a second.
        for _ in 0..300 {
            let v = log.failed(Instant::now());
            if v.warn {
                warns.push(v);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(warns.len(), 5, "{warns:?}");
        assert_eq!((warns[0].streak, warns[0].not_logged), (1, 0));
        assert_eq!((warns[1].streak, warns[1].not_logged), (61, 59));
        assert_eq!(log.recovered(), 300);
        assert!(
            log.failed(Instant::now()).warn,
            "a new streak warns at once"
        );
    }
}
