//! What a run records as it goes, and the summary it makes at the end.

use crate::clock::{Nanos, SECOND, to_millis, to_secs};
use crate::results::{
    BackendStats, Balance, ClientGroupStats, FiredEvent, LatencyStats, PolicyResult, Quantiles,
    StreamStats,
};
use crate::scenario::Scenario;

/// Share bins are this long; reaction and recovery are found on this grid.
const BIN: Nanos = SECOND / 10;

/// Bins in one second.
const BINS_PER_SECOND: usize = (SECOND / BIN) as usize;

/// The spread of open streams (most over mean) counted as even.
pub(crate) const BALANCED_MAX_OVER_MEAN: f64 = 1.2;

/// Latencies of one set of calls.
#[derive(Debug, Default)]
struct Latencies {
    ok: Vec<Nanos>,
    errors: u64,
}

/// Collects per-call and per-backend numbers during a run.
#[derive(Debug)]
pub(crate) struct Measurements {
    measure: (Nanos, Nanos),
    window: Option<(Nanos, Nanos)>,
    deadline: Nanos,
    measured: Latencies,
    in_window: Latencies,
    sent: Vec<u64>,
    busy: Vec<Nanos>,
    watched: Vec<bool>,
    bin_total: Vec<u32>,
    bin_watched: Vec<u32>,
    streams: Option<StreamSamples>,
    balance: Option<BalanceSamples>,
    pub(crate) fired: Vec<FiredEvent>,
    /// Runs merged into this one.
    runs: u32,
    /// A mixed fleet's two groups of clients: clients below `split_at` are
    /// the first group. Empty otherwise.
    groups: Vec<(String, Latencies)>,
    split_at: u32,
    /// With zones: measured unary calls sent to another zone than their
    /// client's, and all measured unary calls sent to a backend.
    cross_zone: Option<(u64, u64)>,
    /// With keyed calls: measured unary calls whose key their backend had
    /// cached, and all measured keyed calls served.
    cache: Option<(u64, u64)>,
    /// Measured unary calls a server handed back, counted once per hand-back.
    hand_backs: u64,
}

#[derive(Debug, Default)]
struct StreamSamples {
    opened: u64,
    failed: u64,
    sums: Vec<f64>,
    samples: u64,
    instant_cv_sum: f64,
}

/// The spread of open streams after a scale-out, sampled from the first
/// join.
#[derive(Debug, Default)]
struct BalanceSamples {
    /// When the first backend joined.
    join: Nanos,
    /// Per second since the join: the sum over samples (and runs) of most
    /// open streams on a backend over the mean, and the samples.
    curve: Vec<(f64, u32)>,
    /// Per run: seconds from the join until most over mean first reached
    /// [`BALANCED_MAX_OVER_MEAN`] (None: never).
    balanced_after: Vec<Option<f64>>,
}

/// Where the watched share should be: during the event and after recovery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Targets {
    /// The first event that changes a watched backend, and the watched
    /// share if calls followed service rates then.
    pub(crate) event: Option<(Nanos, f64)>,
    /// The recovery of the watched backends, and their share then.
    pub(crate) recovery: Option<(Nanos, f64)>,
    /// The watched share before any event.
    pub(crate) before: f64,
}

impl Measurements {
    /// Empty measurements of a run of `scenario` (as run: already scaled
    /// in time if it was).
    pub(crate) fn for_scenario(scenario: &Scenario) -> Self {
        let end = scenario.end();
        let measure = (scenario.measure_start(), end);
        let window = scenario.event_window();
        let deadline = scenario.deadline();
        let backends = scenario.backend_count();
        let watched = scenario.watched();
        let streams = scenario.streams.is_some();
        let join = scenario.first_join().filter(|_| streams);
        let bins = (end / BIN) as usize + 1;
        let mut w = vec![false; backends];
        for &b in &watched {
            w[b] = true;
        }
        Self {
            measure,
            window,
            deadline,
            measured: Latencies::default(),
            in_window: Latencies::default(),
            sent: vec![0; backends],
            busy: vec![0; backends],
            watched: w,
            bin_total: vec![0; bins],
            bin_watched: vec![0; bins],
            streams: streams.then(|| StreamSamples {
                sums: vec![0.0; backends],
                ..StreamSamples::default()
            }),
            balance: join.map(|join| BalanceSamples {
                join,
                curve: vec![(0.0, 0); (end.saturating_sub(join) / SECOND) as usize + 1],
                balanced_after: vec![None],
            }),
            fired: Vec::new(),
            runs: 1,
            groups: Vec::new(),
            split_at: 0,
            cross_zone: scenario.zones.as_ref().map(|_| (0, 0)),
            cache: scenario.keys.as_ref().map(|_| (0, 0)),
            hand_backs: 0,
        }
    }

    /// Measures the clients below `split_at` and the others apart too,
    /// under these names.
    pub(crate) fn split_clients(&mut self, names: [String; 2], split_at: u32) {
        self.groups = names
            .into_iter()
            .map(|n| (n, Latencies::default()))
            .collect();
        self.split_at = split_at;
    }

    /// Adds another run of the same scenario (another seed): its calls,
    /// counts and samples are pooled with these.
    pub(crate) fn merge(&mut self, other: Measurements) {
        self.runs += other.runs;
        self.measured.ok.extend(other.measured.ok);
        self.measured.errors += other.measured.errors;
        self.in_window.ok.extend(other.in_window.ok);
        self.in_window.errors += other.in_window.errors;
        for (a, b) in self.groups.iter_mut().zip(other.groups) {
            a.1.ok.extend(b.1.ok);
            a.1.errors += b.1.errors;
        }
        let add = |a: &mut Vec<u64>, b: Vec<u64>| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        if let (Some(a), Some(b)) = (&mut self.cross_zone, other.cross_zone) {
            a.0 += b.0;
            a.1 += b.1;
        }
        if let (Some(a), Some(b)) = (&mut self.cache, other.cache) {
            a.0 += b.0;
            a.1 += b.1;
        }
        self.hand_backs += other.hand_backs;
        add(&mut self.sent, other.sent);
        add(&mut self.busy, other.busy);
        let add32 = |a: &mut Vec<u32>, b: Vec<u32>| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add32(&mut self.bin_total, other.bin_total);
        add32(&mut self.bin_watched, other.bin_watched);
        if let (Some(a), Some(b)) = (&mut self.streams, other.streams) {
            a.opened += b.opened;
            a.failed += b.failed;
            a.sums.iter_mut().zip(b.sums).for_each(|(x, y)| *x += y);
            a.samples += b.samples;
            a.instant_cv_sum += b.instant_cv_sum;
        }
        if let (Some(a), Some(b)) = (&mut self.balance, other.balance) {
            for (x, y) in a.curve.iter_mut().zip(b.curve) {
                x.0 += y.0;
                x.1 += y.1;
            }
            a.balanced_after.extend(b.balanced_after);
        }
    }

    fn in_measure(&self, t: Nanos) -> bool {
        (self.measure.0..self.measure.1).contains(&t)
    }

    /// A server handed back a unary call meant for `t0`.
    pub(crate) fn handed_back(&mut self, t0: Nanos) {
        if self.in_measure(t0) {
            self.hand_backs += 1;
        }
    }

    /// A unary call meant for `t0` went to `backend`.
    pub(crate) fn sent(&mut self, t0: Nanos, backend: usize) {
        if let Some(bin) = self.bin_total.get_mut((t0 / BIN) as usize) {
            *bin += 1;
            if self.watched[backend] {
                self.bin_watched[(t0 / BIN) as usize] += 1;
            }
        }
        if self.in_measure(t0) {
            self.sent[backend] += 1;
        }
    }

    /// A unary call meant for `t0` went to a backend in another zone than
    /// its client's (`cross`) or in the same.
    pub(crate) fn zone_of_call(&mut self, t0: Nanos, cross: bool) {
        if self.in_measure(t0)
            && let Some(c) = &mut self.cross_zone
        {
            c.0 += u64::from(cross);
            c.1 += 1;
        }
    }

    /// A keyed unary call meant for `t0` started service: its key was in
    /// its backend's cache (`hit`) or not.
    pub(crate) fn cache_access(&mut self, t0: Nanos, hit: bool) {
        if self.in_measure(t0)
            && let Some(c) = &mut self.cache
        {
            c.0 += u64::from(hit);
            c.1 += 1;
        }
    }

    /// A unary call meant for `t0` ended: `Some(latency)` on success.
    pub(crate) fn concluded(&mut self, t0: Nanos, latency: Option<Nanos>) {
        let add = |l: &mut Latencies| match latency {
            Some(x) => l.ok.push(x),
            None => l.errors += 1,
        };
        if self.in_measure(t0) {
            add(&mut self.measured);
        }
        if self.window.is_some_and(|(a, b)| (a..b).contains(&t0)) {
            add(&mut self.in_window);
        }
    }

    /// A unary call of `client` meant for `t0` ended: as
    /// [`concluded`](Self::concluded), and counted in the client's group
    /// if the clients are split.
    pub(crate) fn concluded_by(&mut self, client: u32, t0: Nanos, latency: Option<Nanos>) {
        self.concluded(t0, latency);
        if self.groups.is_empty() || !self.in_measure(t0) {
            return;
        }
        let g = &mut self.groups[usize::from(client >= self.split_at)].1;
        match latency {
            Some(x) => g.ok.push(x),
            None => g.errors += 1,
        }
    }

    /// A worker of `backend` is busy over `[start, end)`.
    pub(crate) fn busy(&mut self, backend: usize, start: Nanos, end: Nanos) {
        let (a, b) = self.measure;
        let overlap = end.min(b).saturating_sub(start.max(a));
        self.busy[backend] += overlap;
    }

    /// A stream meant for `t0` opened (`failed`: was refused).
    pub(crate) fn stream_ended(&mut self, t0: Nanos, failed: bool) {
        let in_measure = self.in_measure(t0);
        if let Some(s) = &mut self.streams
            && in_measure
        {
            s.opened += 1;
            s.failed += u64::from(failed);
        }
    }

    /// Samples the open streams per backend at `now`.
    pub(crate) fn sample_streams(&mut self, now: Nanos, open: impl Iterator<Item = u32>) {
        let in_measure = self.in_measure(now);
        let Some(s) = &mut self.streams else { return };
        if !in_measure {
            return;
        }
        let counts: Vec<f64> = open.map(f64::from).collect();
        for (sum, c) in s.sums.iter_mut().zip(&counts) {
            *sum += c;
        }
        s.samples += 1;
        s.instant_cv_sum += cv(&counts);
    }

    /// Samples the spread of open streams per backend at `now`, after the
    /// first join (every backend is in the fleet then).
    pub(crate) fn sample_balance(&mut self, now: Nanos, open: impl Iterator<Item = u32>) {
        let Some(b) = &mut self.balance else { return };
        let Some(since) = now.checked_sub(b.join) else {
            return;
        };
        let (mut max, mut sum, mut n) = (0u32, 0u64, 0u32);
        for c in open {
            max = max.max(c);
            sum += u64::from(c);
            n += 1;
        }
        if sum == 0 {
            return;
        }
        let ratio = f64::from(max) * f64::from(n) / sum as f64;
        if let Some(bin) = b.curve.get_mut((since / SECOND) as usize) {
            bin.0 += ratio;
            bin.1 += 1;
        }
        // One run until merged: its own time.
        if ratio <= BALANCED_MAX_OVER_MEAN && b.balanced_after[0].is_none() {
            b.balanced_after[0] = Some(to_secs(since));
        }
    }

    /// The summary, given each backend's capacity.
    pub(crate) fn finish(self, policy: &str, capacities: &[u32], targets: Targets) -> PolicyResult {
        let span = (self.measure.1 - self.measure.0) * u64::from(self.runs);
        let total_sent: u64 = self.sent.iter().sum();
        let stream_means: Vec<f64> = match &self.streams {
            Some(s) if s.samples > 0 => s.sums.iter().map(|x| x / s.samples as f64).collect(),
            _ => vec![0.0; capacities.len()],
        };
        let backends: Vec<BackendStats> = (0..capacities.len())
            .map(|i| BackendStats {
                share: self.sent[i] as f64 / (total_sent.max(1)) as f64,
                utilization: self.busy[i] as f64 / (span as f64 * f64::from(capacities[i])),
                streams: stream_means[i],
            })
            .collect();
        let shares: Vec<f64> = backends.iter().map(|b| b.share).collect();
        let utils: Vec<f64> = backends.iter().map(|b| b.utilization).collect();
        let mean_util = mean(&utils);
        let max_util = utils.iter().copied().fold(0.0, f64::max);
        let streams = self.streams.as_ref().map(|s| StreamStats {
            opened: s.opened,
            failed: s.failed,
            cv: cv(&stream_means),
            max_over_mean: stream_means.iter().copied().fold(0.0, f64::max)
                / mean(&stream_means).max(f64::MIN_POSITIVE),
            instant_cv: s.instant_cv_sum / (s.samples.max(1)) as f64,
            balance: self.balance.as_ref().map(|b| Balance {
                max_over_mean: b
                    .curve
                    .iter()
                    .map(|&(sum, n)| (n > 0).then(|| sum / f64::from(n)))
                    .collect(),
                balanced_after_s: b.balanced_after.clone(),
            }),
        });
        let share_at = |bin: usize| -> Option<f64> {
            // Share over the second starting at `bin`.
            let end = (bin + BINS_PER_SECOND).min(self.bin_total.len());
            let total: u32 = self.bin_total[bin..end].iter().sum();
            let watched: u32 = self.bin_watched[bin..end].iter().sum();
            (total > 0 && end - bin == BINS_PER_SECOND)
                .then(|| f64::from(watched) / f64::from(total))
        };
        let first_bin = |from: Nanos, ok: &dyn Fn(f64) -> bool| {
            let start = (from / BIN) as usize;
            (start..self.bin_total.len())
                .find(|&b| share_at(b).is_some_and(ok))
                .map(|b| to_secs(b as Nanos * BIN - from))
        };
        let reaction_s = targets.event.and_then(|(at, optimal)| {
            // Twice the optimal share, and at least a tenth of the share
            // before the event (the optimum of a failing backend is 0).
            let limit = (2.0 * optimal).max(targets.before / 10.0);
            first_bin(at, &|s| s <= limit)
        });
        let recovery_s = targets
            .recovery
            .and_then(|(at, optimal)| first_bin(at, &|s| s >= optimal / 2.0));
        let watched_share = (0..self.bin_total.len())
            .step_by(BINS_PER_SECOND)
            .map(share_at)
            .collect();
        let deadline = self.deadline;
        let cdf = cdf(&self.measured, deadline);
        let client_groups = self
            .groups
            .into_iter()
            .map(|(name, l)| ClientGroupStats {
                name,
                stats: stats(l, deadline),
            })
            .collect();
        let calls = self.measured.ok.len() as u64 + self.measured.errors;
        PolicyResult {
            policy: policy.to_owned(),
            measure: stats(self.measured, deadline),
            event_window: self.window.map(|_| stats(self.in_window, deadline)),
            backends,
            share_cv: cv(&shares),
            utilization_cv: cv(&utils),
            utilization_max_over_mean: max_util / mean_util.max(f64::MIN_POSITIVE),
            streams,
            watched_share,
            reaction_s,
            recovery_s,
            events: self.fired,
            cdf,
            client_groups,
            cross_zone: self
                .cross_zone
                .filter(|&(_, all)| all > 0)
                .map(|(cross, all)| cross as f64 / all as f64),
            hit_ratio: self
                .cache
                .filter(|&(_, all)| all > 0)
                .map(|(hits, all)| hits as f64 / all as f64),
            hand_backs: (self.hand_backs > 0).then(|| self.hand_backs as f64 / calls.max(1) as f64),
        }
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Coefficient of variation (population standard deviation over mean).
fn cv(v: &[f64]) -> f64 {
    let m = mean(v);
    if m <= 0.0 {
        return 0.0;
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    var.sqrt() / m
}

/// The `q` quantile (nearest rank) of sorted `ok` followed by `errors`
/// values at `deadline`.
fn quantile(ok: &[Nanos], errors: u64, deadline: Nanos, q: f64) -> f64 {
    let n = ok.len() as u64 + errors;
    if n == 0 {
        return 0.0;
    }
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n) - 1;
    let x = ok.get(rank as usize).copied().unwrap_or(deadline);
    to_millis(x)
}

fn quantiles(ok: &[Nanos], errors: u64, deadline: Nanos) -> Quantiles {
    let n = ok.len() as u64 + errors;
    if n == 0 {
        return Quantiles::default();
    }
    let sum: f64 = ok.iter().map(|&x| x as f64).sum::<f64>() + errors as f64 * deadline as f64;
    let max = if errors > 0 {
        deadline
    } else {
        ok.last().copied().unwrap_or(0)
    };
    Quantiles {
        mean_ms: sum / n as f64 / 1e6,
        p50_ms: quantile(ok, errors, deadline, 0.5),
        p99_ms: quantile(ok, errors, deadline, 0.99),
        p999_ms: quantile(ok, errors, deadline, 0.999),
        max_ms: to_millis(max),
    }
}

fn stats(mut l: Latencies, deadline: Nanos) -> LatencyStats {
    l.ok.sort_unstable();
    let calls = l.ok.len() as u64 + l.errors;
    LatencyStats {
        calls,
        errors: l.errors,
        error_rate: l.errors as f64 / calls.max(1) as f64,
        success: quantiles(&l.ok, 0, deadline),
        all: quantiles(&l.ok, l.errors, deadline),
    }
}

/// Points of the distribution of all calls, dense in the tail.
fn cdf(l: &Latencies, deadline: Nanos) -> Vec<[f64; 2]> {
    let mut ok = l.ok.clone();
    ok.sort_unstable();
    let n = ok.len() as u64 + l.errors;
    if n == 0 {
        return Vec::new();
    }
    let mut qs: Vec<f64> = (1..100).map(|i| f64::from(i) / 100.0).collect();
    qs.extend((1..10).map(|i| 0.99 + f64::from(i) / 1e3));
    qs.extend((1..10).map(|i| 0.999 + f64::from(i) / 1e4));
    qs.extend((1..10).map(|i| 0.9999 + f64::from(i) / 1e5));
    qs.push(1.0);
    qs.into_iter()
        .map(|q| [quantile(&ok, l.errors, deadline, q), q])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_sit_at_the_deadline_in_all_calls() {
        let l = Latencies {
            ok: (1..=98).map(|ms| ms * 1_000_000).collect(),
            errors: 2,
        };
        let s = stats(l, 1_000_000_000);
        assert_eq!(s.calls, 100);
        assert_eq!(s.success.p50_ms, 49.0);
        assert_eq!(s.all.p50_ms, 50.0);
        assert_eq!(s.all.p99_ms, 1000.0);
        assert_eq!(s.success.max_ms, 98.0);
        assert!((s.error_rate - 0.02).abs() < 1e-12);
    }
}
