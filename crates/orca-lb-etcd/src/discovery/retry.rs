//! When discovery retries after a failed read or watch, and when it says so.

use std::time::Duration;

use tokio::time::Instant;

use orca_lb_core::Backoff;

/// How long a watch must stay up, delivering nothing, before its failure
/// counts as a new streak (the backoff starts over).
pub(crate) const WATCH_HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Failures within a streak logged at WARN at most this often; the rest at
/// DEBUG, and counted in the next WARN.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(60);

/// The retry state across reads and watches.
///
/// The backoff starts over only once a watch has proven healthy: it
/// delivered a change or a progress notification, or it stayed up for
/// [`WATCH_HEALTHY_AFTER`]. A watch that etcd accepts and then fails at once
/// (an overloaded or misconfigured etcd, a proxy cutting streams) keeps
/// backing off instead of retrying every `min`.
#[derive(Debug)]
pub(crate) struct Retry {
    backoff: Backoff,
    /// When the current watch was created, while it is up.
    watch_created: Option<Instant>,
    /// Failures since the last healthy watch or successful read.
    streak: u64,
    /// Failures since the last WARN line.
    unreported: u64,
    last_warn: Option<Instant>,
}

/// What to do about one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    /// How long to wait before trying again.
    pub(crate) delay: Duration,
    /// Log at WARN (else DEBUG).
    pub(crate) warn: bool,
    /// Failures in this streak so far, this one included.
    pub(crate) streak: u64,
    /// Failures logged at DEBUG since the last WARN.
    pub(crate) suppressed: u64,
}

impl Retry {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            backoff: Backoff::new(min, max),
            watch_created: None,
            streak: 0,
            unreported: 0,
            last_warn: None,
        }
    }

    /// etcd accepted a watch.
    pub(crate) fn watch_created(&mut self, now: Instant) {
        self.watch_created = Some(now);
    }

    /// A read succeeded or a watch delivered something: etcd works.
    pub(crate) fn healthy(&mut self) {
        self.backoff.reset();
        self.streak = 0;
    }

    /// A watch ended; if it had been up long enough, it was healthy.
    pub(crate) fn watch_ended(&mut self, now: Instant) {
        if let Some(created) = self.watch_created.take()
            && now.saturating_duration_since(created) >= WATCH_HEALTHY_AFTER
        {
            self.healthy();
        }
    }

    /// A read or watch failed.
    pub(crate) fn failed(&mut self, now: Instant) -> Failure {
        self.watch_ended(now);
        self.streak += 1;
        let warn = self.streak == 1
            || self
                .last_warn
                .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY);
        let suppressed = self.unreported;
        if warn {
            self.last_warn = Some(now);
            self.unreported = 0;
        } else {
            self.unreported += 1;
        }
        Failure {
            delay: self.backoff.next_delay(&mut rand::rng()),
            warn,
            streak: self.streak,
            suppressed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_fails_right_after_creation_keeps_backing_off() {
        let mut retry = Retry::new(MIN, MAX);
        let mut delays = Vec::new();
        for _ in 0..10 {
            retry.watch_created(Instant::now());
            let f = retry.failed(Instant::now());
            delays.push(f.delay);
            tokio::time::sleep(f.delay).await;
        }
        // ±20 % jitter around 50, 80, 128 ... growing 1.6 times up to 2 s.
        let mut base = MIN;
        for d in &delays {
            assert!(
                *d >= base.mul_f64(0.8) && *d <= base.mul_f64(1.2),
                "{d:?} is not within 20 % of {base:?}: {delays:?}"
            );
            base = base.mul_f64(1.6).min(MAX);
        }
        assert_eq!(base, MAX, "the schedule reached its ceiling: {delays:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_delivered_or_lasted_starts_over() {
        let mut retry = Retry::new(MIN, MAX);
        for _ in 0..6 {
            retry.failed(Instant::now());
        }
        retry.watch_created(Instant::now());
        retry.healthy();
        assert!(retry.failed(Instant::now()).delay <= MIN.mul_f64(1.2));

        for _ in 0..6 {
            retry.failed(Instant::now());
        }
        retry.watch_created(Instant::now());
        tokio::time::sleep(WATCH_HEALTHY_AFTER).await;
        assert!(retry.failed(Instant::now()).delay <= MIN.mul_f64(1.2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_streak_warns_once_a_minute_with_the_count() {
        let mut retry = Retry::new(MIN, MAX);
        let mut warns = Vec::new();
        // Ten minutes of failures, every two seconds.
        for _ in 0..300 {
            let f = retry.failed(Instant::now());
            if f.warn {
                warns.push(f);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        assert!((10..=11).contains(&warns.len()), "{}", warns.len());
        assert_eq!(warns[0].streak, 1);
        assert_eq!(warns[1].suppressed, 29);
    }
}
