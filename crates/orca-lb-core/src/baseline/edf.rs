//! The earliest-deadline-first schedule of gRPC's `weighted_round_robin`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::Rng;

use super::WrrConfig;

/// With clamping on, no weight counts for more than this many times the
/// mean (gRPC C-core's `kMaxRatio`). One endpoint that reports a tiny
/// utilization would otherwise draw nearly all the traffic.
const MAX_RATIO: f64 = 10.0;

/// With clamping on, no weight counts for less than this fraction of the
/// mean (gRPC C-core's `kMinRatio`), so every endpoint keeps some traffic
/// and keeps sending fresh reports.
const MIN_RATIO: f64 = 0.01;

/// Picks endpoints in proportion to their weights, earliest deadline first,
/// as gRFC A58 describes for `weighted_round_robin`.
///
/// Each endpoint is a periodic job whose period is `1 / weight`. A pick
/// takes the endpoint with the earliest deadline and moves its deadline one
/// period later. Each endpoint's share of the picks is its weight over the
/// sum of the weights, up to an error of a few picks that does not grow with
/// the number of picks. Equal deadlines go to the lowest index, so equal
/// weights cycle through the endpoints in order, as round robin does. (gRPC
/// C-core, Go and Java ship a static-stride scheduler instead, which gives
/// the same shares.)
///
/// The weights come from [`WrrWeight::weight`](super::WrrWeight::weight),
/// one `Option<f64>` per endpoint, indexed as the endpoints are:
///
/// * An endpoint without a weight (`None`, or a value that is not a finite
///   number above 0) gets the mean of the known weights, as A58 says.
/// * If no endpoint has a weight, all get the same. With only one known
///   weight the mean is that weight, so again all are equal: A58's rule
///   that fewer than two endpoints with load information behave as round
///   robin falls out of the first one.
/// * With [`WrrConfig::clamp_weights`], each known weight is first clamped
///   to `[1 %, 10x]` of the mean of the known weights, as gRPC C-core does.
///
/// The scheduler is immutable between rebuilds except for its heap of
/// deadlines. The shell owns the timer: every
/// [`weight_update_period`](WrrConfig::weight_update_period) it reads the
/// current weights and builds a new scheduler in place of the old one. All
/// allocation happens in the constructor; [`pick`](Self::pick) allocates
/// nothing and costs `O(log n)`.
///
/// ```
/// use orca_lb_core::baseline::EdfScheduler;
///
/// // The middle endpoint weighs twice as much; the last has no weight yet
/// // and gets the mean, 1.5.
/// let mut schedule = EdfScheduler::new(&[Some(1.0), Some(2.0), None]).unwrap();
/// assert_eq!(schedule.weights(), [1.0, 2.0, 1.5]);
///
/// let mut counts = [0; 3];
/// for _ in 0..900 {
///     counts[schedule.pick()] += 1;
/// }
/// assert_eq!(counts, [200, 400, 300]);
/// ```
#[derive(Debug, Clone)]
pub struct EdfScheduler {
    heap: BinaryHeap<Entry>,
    weights: Box<[f64]>,
}

/// One endpoint in the heap.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the endpoint is due next, in units of `1 / weight`.
    deadline: f64,
    /// `1 / weight`.
    period: f64,
    index: usize,
}

// === impl EdfScheduler ===

impl EdfScheduler {
    /// A schedule over `weights`, without clamping, whose first deadlines are
    /// one period after the start: the same weights always give the same
    /// sequence of picks. `None` if `weights` is empty.
    pub fn new(weights: &[Option<f64>]) -> Option<Self> {
        Self::build(weights, false, || 1.0)
    }

    /// The schedule a `weighted_round_robin` client builds: first deadlines
    /// drawn uniformly from one period, as A58 says, so that clients which
    /// rebuild at the same moment do not pick in step, and clamping as
    /// `config` says. `None` if `weights` is empty.
    pub fn with_config<R: Rng + ?Sized>(
        weights: &[Option<f64>],
        config: &WrrConfig,
        rng: &mut R,
    ) -> Option<Self> {
        Self::build(weights, config.clamp_weights, || rng.random::<f64>())
    }

    /// Picks the next endpoint: an index into the weights the scheduler was
    /// built from.
    pub fn pick(&mut self) -> usize {
        // Never empty: the constructors refuse an empty slice. Moving the
        // top entry in place sifts it down without allocating.
        let mut top = self.heap.peek_mut().expect("the schedule is never empty");
        top.deadline += top.period;
        top.index
    }

    /// The weights the schedule follows, by endpoint index, after unknown
    /// weights were filled in and clamping was applied.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// `phase()` gives each endpoint's first deadline as a fraction of its
    /// period, in `[0, 1]`.
    fn build(weights: &[Option<f64>], clamp: bool, mut phase: impl FnMut() -> f64) -> Option<Self> {
        let weights = effective_weights(weights, clamp)?;
        let entries: Vec<Entry> = weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| {
                let period = 1.0 / weight;
                Entry {
                    deadline: phase() * period,
                    period,
                    index,
                }
            })
            .collect();
        Some(Self {
            heap: BinaryHeap::from(entries),
            weights,
        })
    }
}

/// Fills unknown weights with the mean of the known ones (1 if none is
/// known), clamping known weights first if asked. `None` if empty.
fn effective_weights(weights: &[Option<f64>], clamp: bool) -> Option<Box<[f64]>> {
    if weights.is_empty() {
        return None;
    }
    let known = || {
        weights
            .iter()
            .filter_map(|&w| w.filter(|w| w.is_finite() && *w > 0.0))
    };
    let mean = match known().count() {
        0 => 1.0,
        n => {
            let n = n as f64;
            let sum: f64 = known().sum();
            if sum.is_finite() {
                sum / n
            } else {
                // The sum of huge weights overflowed: divide first.
                known().map(|w| w / n).sum()
            }
        }
    };
    let (low, high) = if clamp {
        (mean * MIN_RATIO, mean * MAX_RATIO)
    } else {
        (0.0, f64::INFINITY)
    };
    let fill = |w: Option<f64>| match w {
        Some(w) if w.is_finite() && w > 0.0 => w.clamp(low, high),
        _ => mean,
    };
    Some(weights.iter().map(|&w| fill(w)).collect())
}

// === impl Entry ===

// `BinaryHeap` is a max-heap: the earliest deadline must compare greatest,
// and of equal deadlines the lowest index.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .deadline
            .total_cmp(&self.deadline)
            .then_with(|| other.index.cmp(&self.index))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const EPSILON: f64 = 1e-9;

    fn counts(schedule: &mut EdfScheduler, picks: usize) -> Vec<usize> {
        let mut counts = vec![0; schedule.weights().len()];
        for _ in 0..picks {
            counts[schedule.pick()] += 1;
        }
        counts
    }

    fn sequence(schedule: &mut EdfScheduler, picks: usize) -> Vec<usize> {
        (0..picks).map(|_| schedule.pick()).collect()
    }

    #[track_caller]
    fn assert_weights(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < EPSILON, "{actual:?} vs {expected:?}");
        }
    }

    #[test]
    fn empty_is_refused_and_one_endpoint_always_wins() {
        assert!(EdfScheduler::new(&[]).is_none());
        let mut rng = SmallRng::seed_from_u64(1);
        assert!(EdfScheduler::with_config(&[], &WrrConfig::default(), &mut rng).is_none());

        for weight in [Some(3.0), None] {
            let mut schedule = EdfScheduler::new(&[weight]).unwrap();
            assert_eq!(sequence(&mut schedule, 5), [0; 5]);
        }
    }

    #[test]
    fn shares_follow_the_weights_exactly() {
        let mut schedule = EdfScheduler::new(&[Some(1.0), Some(2.0), Some(1.0)]).unwrap();
        assert_eq!(sequence(&mut schedule, 8), [1, 0, 1, 2, 1, 0, 1, 2]);

        let mut schedule = EdfScheduler::new(&[Some(1.0), Some(2.0), Some(1.0)]).unwrap();
        assert_eq!(counts(&mut schedule, 400), [100, 200, 100]);

        let weights = [Some(5.0), Some(1.0), Some(1.0), Some(1.0)];
        let mut schedule = EdfScheduler::new(&weights).unwrap();
        assert_eq!(counts(&mut schedule, 800), [500, 100, 100, 100]);
    }

    #[test]
    fn random_phases_keep_the_shares_within_one_pick() {
        let config = WrrConfig::default();
        for seed in 0..50 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let weights = [Some(1.0), Some(2.0), Some(1.0)];
            let mut schedule = EdfScheduler::with_config(&weights, &config, &mut rng).unwrap();
            let got = counts(&mut schedule, 400);
            for (count, expected) in got.iter().zip([100, 200, 100]) {
                assert!(count.abs_diff(expected) <= 1, "seed {seed}: {got:?}");
            }
        }
    }

    #[test]
    fn random_phases_differ_between_schedules() {
        let weights = [Some(1.0); 8];
        let mut rng = SmallRng::seed_from_u64(2);
        let config = WrrConfig::default();
        let firsts: Vec<usize> = (0..20)
            .map(|_| {
                EdfScheduler::with_config(&weights, &config, &mut rng)
                    .unwrap()
                    .pick()
            })
            .collect();
        assert!(firsts.iter().any(|&i| i != firsts[0]), "{firsts:?}");
    }

    #[test]
    fn equal_weights_cycle_through_every_endpoint() {
        for weights in [[Some(3.0); 4], [None; 4]] {
            let mut schedule = EdfScheduler::new(&weights).unwrap();
            assert_eq!(sequence(&mut schedule, 8), [0, 1, 2, 3, 0, 1, 2, 3]);
        }

        // With random phases the order is random, but each round still
        // visits every endpoint once.
        let mut rng = SmallRng::seed_from_u64(3);
        let config = WrrConfig::default();
        let mut schedule = EdfScheduler::with_config(&[Some(2.0); 5], &config, &mut rng).unwrap();
        for _ in 0..20 {
            let mut round = sequence(&mut schedule, 5);
            round.sort_unstable();
            assert_eq!(round, [0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn unknown_weights_get_the_mean_of_the_known() {
        let mut schedule = EdfScheduler::new(&[Some(1.0), None, Some(3.0)]).unwrap();
        assert_eq!(schedule.weights(), [1.0, 2.0, 3.0]);
        assert_eq!(counts(&mut schedule, 600), [100, 200, 300]);

        // Zero, negative and non-finite weights count as unknown.
        let weights = [
            Some(4.0),
            Some(0.0),
            Some(-1.0),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(2.0),
        ];
        let schedule = EdfScheduler::new(&weights).unwrap();
        assert_eq!(schedule.weights(), [4.0, 3.0, 3.0, 3.0, 3.0, 2.0]);
    }

    #[test]
    fn fewer_than_two_known_weights_behave_as_round_robin() {
        for weights in [[None, None, None], [None, Some(7.0), None]] {
            let mut schedule = EdfScheduler::new(&weights).unwrap();
            let w = schedule.weights()[0];
            assert!(schedule.weights().iter().all(|&x| x == w), "{weights:?}");
            assert_eq!(sequence(&mut schedule, 6), [0, 1, 2, 0, 1, 2]);
        }
    }

    #[test]
    fn clamping_bounds_weights_to_a_range_around_the_mean() {
        // 20 known weights with mean 118.01 / 20 = 5.9005, and one unknown.
        let mut weights = vec![Some(100.0), Some(0.01)];
        weights.extend([Some(1.0); 18]);
        weights.push(None);
        let mean = 118.01 / 20.0;
        let mut rng = SmallRng::seed_from_u64(4);

        // Off by default, as in gRFC A58 and gRPC Go.
        let config = WrrConfig::default();
        let schedule = EdfScheduler::with_config(&weights, &config, &mut rng).unwrap();
        let mut expected = vec![100.0, 0.01];
        expected.extend([1.0; 18]);
        expected.push(mean);
        assert_weights(schedule.weights(), &expected);
        assert_weights(EdfScheduler::new(&weights).unwrap().weights(), &expected);

        // On, as in gRPC C-core: [1 %, 10x] of the mean; unknown get the mean.
        let config = WrrConfig {
            clamp_weights: true,
            ..WrrConfig::default()
        };
        let schedule = EdfScheduler::with_config(&weights, &config, &mut rng).unwrap();
        expected[0] = mean * 10.0;
        expected[1] = mean * 0.01;
        assert_weights(schedule.weights(), &expected);
    }

    #[test]
    fn huge_weights_do_not_overflow_the_mean() {
        let schedule = EdfScheduler::new(&[Some(f64::MAX), Some(f64::MAX), None]).unwrap();
        assert_eq!(schedule.weights(), [f64::MAX; 3]);
    }

    #[test]
    fn picks_only_move_deadlines() {
        let mut schedule = EdfScheduler::new(&[Some(1.0), Some(3.0)]).unwrap();
        let weights = schedule.weights().to_vec();
        let capacity = schedule.heap.capacity();
        for _ in 0..1_000 {
            schedule.pick();
        }
        assert_eq!(schedule.weights(), weights);
        assert_eq!(schedule.heap.len(), 2);
        assert_eq!(schedule.heap.capacity(), capacity);
    }
}
