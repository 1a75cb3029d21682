//! What one pick costs, at 2, 8, 100 and 1,000 endpoints, against tower's
//! P2C balancer.
//!
//! `cargo bench -p orca-lb-benches --bench pick`
//!
//! The criterion group "pick cost" times one pick per iteration:
//! - `orca-lb`: `Balancer::choose(false)`, the production pick without the
//!   send: a clock read, the warm-up draw, and the best of 8 random
//!   endpoints (their first two cache lines prefetched together, see
//!   `P2c::pick_best_of_prefetching`), each scored from its standing cost
//!   (read without a lock; worked out again from its published pick view
//!   when its span is over or its news changed), with tie tolerance.
//!   The balancer runs on real backends like the common rig's
//!   (`orca_lb_testkit::Backend`: the reporting layer, 4 worker slots, service
//!   time Exp(20 ms)), and is fed first: 20 calls per endpoint through the
//!   balancer, then 10 more per endpoint at a time (at most 20 times) while
//!   random picks have left an endpoint without a call, so every endpoint
//!   has reports and observed latencies and a pick computes the full
//!   score. Its endpoints keep the default 3 s slow start, and the benchmark
//!   waits it out. Before each timed run a few more calls per endpoint
//!   refresh the news, so the reports a pick reads are seconds old, as on a
//!   busy client, not minutes. The balancer's runtime is
//!   a current-thread one that is not driven while picks are timed, so its
//!   background tasks (discovery, the 50 ms maintenance pass) stay idle and
//!   the allocation count is exact.
//! - `orca-lb core only`: the pure pick, `P2c::pick_best_of_prefetching`
//!   with the default `ScoreConfig::choices` (8) over a slice of
//!   `PickView`s (the views prepared for picks, as the balancer publishes
//!   them), the drawn ones' standing costs and calls read first (as the
//!   balancer prefetches), then each scored from its `StandingCost`
//!   (`StandingCost::unary_score`),
//!   worked out from its view when none covers the pick's time, as the
//!   balancer does, with `now` passed in (no clock read, no atomics, no
//!   `Arc`). The views come from `EndpointPolicy`s fed the same kind of
//!   reports and responses; `now` stands still, so after the first picks
//!   every standing cost is reused: the steady state between spans.
//! - `orca-lb core, pair`: the same over the same views with the pair
//!   picker (`P2c::pick`, `choices` = 2), for the cost of best of 8
//!   against best of 2; the interleaved check prints that ratio, measured
//!   in the same rounds.
//! - `orca-lb, busy`: `Balancer::choose(false)` as `orca-lb`, on a third
//!   balancer over the same backends, fed the same way, that holds 2 calls
//!   per endpoint in flight while picks are timed (started through it just
//!   before; the runtime is not driven, so they stay in flight): a busy
//!   client's pick, which adds each candidate's calls in flight and their
//!   age.
//! - `pick_locality`: `Balancer::choose(false)` as `orca-lb`, on a second
//!   balancer over the same backends with locality on: half of them in the
//!   client's zone, half in another, fed through that balancer (so calls
//!   stay in its zone). The pick draws its zone side and takes the best of
//!   8 over the local zone's list, precomputed when the list was published.
//! - `tower p2c` (the peer): `tower::balance::p2c::Balance` over ready
//!   `service_fn` services, each wrapped in `PendingRequests`: `poll_ready`
//!   (where tower picks), `call`, and the response future polled to its
//!   (immediate) end.
//!
//! The group "pick cost parts" times what orca-lb's pick at 8 endpoints is
//! made of, one part at a time: the clock read, the pick's time
//! (`PickTime::new` with the time since the views' origin: only a pick that
//! works out a standing cost again needs it), one standing cost worked out
//! (`StandingCost::new`, news a second old), one score from a standing cost
//! (`StandingCost::unary_score`), the 8 fed endpoints' scores from their
//! standing costs, `P2c::pick` over scores known in advance, the draw and
//! the choice alone of a pick at 1,000 endpoints (`P2c::pick_best_of`, 8 of
//! 1,000, over scores known in advance), one score from a standing cost
//! with 2 of this client's calls in flight there, 5 ms old (as a busy
//! client's picks score), and for comparison one score computed afresh
//! from the pick view
//! (`PickView::score_at`, as a stream's pick and earlier unary picks score).
//!
//! Before the groups, an allocation check counts allocations per pick for
//! each variant, and for orca-lb's stream pick (`Balancer::choose(true)`,
//! the least of all endpoints), with a counting global allocator over
//! 10,000 picks after warm-up, prints them, and asserts that the orca-lb
//! picks make none.
//! After the groups, an interleaved check times batches of every pick and
//! part in rotating order, so that load on a shared machine lands on all of
//! them alike, and prints each pick as a ratio to tower's at the same size.
//! On a busy machine, read its medians rather than criterion's estimates:
//! a batch is shorter than a scheduler time slice, so most batches run
//! without being preempted, while criterion's longer samples take in every
//! preemption.

use std::alloc::System;
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use orca_lb_benches::{hello_request, median};
use orca_lb_client::{Balancer, BalancerConfig, LocalityConfig, Zone};
use orca_lb_core::{
    CircuitBreakerConfig, EndpointPolicy, FleetView, LoadReport, LocalLoad, Outcome, P2c,
    PickContext, PickSettings, PickTime, PickView, RawLoadReport, Score, ScoreConfig, StandingCost,
    named_metrics,
};
use orca_lb_server::FixedSampler;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig, ServiceTime};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::util::ServiceFn;
use tower::{Service, service_fn};

/// `System`, counting every allocation in atomics. `stats_alloc` holds the
/// `unsafe impl GlobalAlloc`, which the workspace's `unsafe_code = "forbid"`
/// rules out here.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Endpoint counts, as the benchmark plan asks.
const SIZES: [usize; 4] = [2, 8, 100, 1_000];

/// Calls made through each balancer before timing, per endpoint: enough that
/// nearly every endpoint has had a report and a response (picks are random:
/// the setup feeds again while one has not).
const FEED_CALLS_PER_ENDPOINT: usize = 20;

/// Calls per endpoint of each further round of feeding, while an endpoint
/// has no report or no response yet.
const EXTRA_FEED_CALLS_PER_ENDPOINT: usize = 10;

/// Most further rounds of feeding before the setup gives up.
const EXTRA_FEED_ROUNDS: usize = 20;

/// Calls per endpoint that refresh the news before each timed run.
const REFRESH_CALLS_PER_ENDPOINT: usize = 2;

/// Most concurrent callers while feeding; never more than the backends'
/// worker slots, so no call waits for one.
const FEEDERS: usize = 256;

/// Worker slots of each backend, as in the common rig.
const SLOTS: usize = 4;

/// Calls per endpoint the busy balancer holds in flight while its picks are
/// timed.
const HELD_PER_ENDPOINT: usize = 2;

/// Picks counted by the allocation check, after as many again of warm-up.
const COUNTED_PICKS: u64 = 10_000;

// === orca-lb: the balancer ===

/// A balancer over `n` real backends, fed with calls, and one with
/// locality on over the same backends.
struct OrcaFleet {
    balancer: Balancer,
    /// Locality on: the first half of the backends in its zone, `a`.
    zoned: Balancer,
    /// As `balancer`, with calls of its own held in flight while picks are
    /// timed (see [`OrcaFleet::hold`]): a busy client's picks.
    busy: Balancer,
    /// The calls `busy` holds in flight.
    held: JoinSet<()>,
    /// Kept so the connections stay up; idle while picks are timed.
    backends: Vec<Backend>,
}

impl OrcaFleet {
    /// Starts `n` backends, a balancer over them with the default config, and
    /// feeds it. Returns it with the instant by which its endpoints existed.
    async fn start(n: usize) -> (OrcaFleet, Instant) {
        let mut backends = Vec::with_capacity(n);
        for i in 0..n {
            let config = BackendConfig {
                capacity: Some(SLOTS),
                service_time: ServiceTime::Exponential(Duration::from_millis(20)),
                sampler: FixedSampler::new(0.2, 0.3),
                ..BackendConfig::named(&format!("b{i}"))
            };
            backends.push(Backend::spawn(config).await.expect("spawn backend"));
        }
        let balancer =
            Balancer::from_uris(BalancerConfig::default(), backends.iter().map(Backend::url))
                .expect("balancer");
        balancer.wait_for_endpoints(n).await;
        let locality = LocalityConfig::new(Zone::new("a").expect("a valid zone"));
        let zoned = Balancer::from_zoned_uris(
            BalancerConfig::default().with_locality(locality),
            backends
                .iter()
                .enumerate()
                .map(|(i, b)| (b.url(), if i < n.div_ceil(2) { "a" } else { "b" })),
        )
        .expect("balancer");
        zoned.wait_for_endpoints(n).await;
        let busy =
            Balancer::from_uris(BalancerConfig::default(), backends.iter().map(Backend::url))
                .expect("balancer");
        busy.wait_for_endpoints(n).await;
        let created = Instant::now();
        let fleet = OrcaFleet {
            balancer,
            zoned,
            busy,
            held: JoinSet::new(),
            backends,
        };
        fleet.feed(FEED_CALLS_PER_ENDPOINT).await;
        // Picks are random, so a round may leave an endpoint without a call:
        // feed again until every one has been heard from.
        let mut unfed_before = Vec::new();
        loop {
            let unfed = fleet.unfed();
            if unfed == 0 {
                break;
            }
            let rounds = unfed_before.len();
            assert!(
                rounds < EXTRA_FEED_ROUNDS,
                "{n} endpoints: {unfed} still without a report and a response after \
                 {FEED_CALLS_PER_ENDPOINT} calls per endpoint and {rounds} more rounds of \
                 {EXTRA_FEED_CALLS_PER_ENDPOINT} (unfed before each: {unfed_before:?})"
            );
            unfed_before.push(unfed);
            fleet.feed(EXTRA_FEED_CALLS_PER_ENDPOINT).await;
        }
        if !unfed_before.is_empty() {
            println!(
                "pick cost: {n} endpoints fed in {} more round(s), unfed before each: \
                 {unfed_before:?}",
                unfed_before.len()
            );
        }
        (fleet, created)
    }

    /// Endpoints of the plain and the busy balancer without a report or a
    /// response yet.
    fn unfed(&self) -> usize {
        [&self.balancer, &self.busy]
            .into_iter()
            .map(|balancer| {
                let snapshot = balancer.snapshot();
                assert_eq!(snapshot.endpoints.len(), self.backends.len());
                snapshot
                    .endpoints
                    .iter()
                    .filter(|e| e.reports == 0 || e.responses == 0)
                    .count()
            })
            .sum()
    }

    /// Makes about `per_endpoint` calls per endpoint through each balancer.
    async fn feed(&self, per_endpoint: usize) {
        let n = self.backends.len();
        let feeders = FEEDERS.min(SLOTS * n);
        let calls_each = (n * per_endpoint).div_ceil(feeders);
        let mut tasks = JoinSet::new();
        for k in 0..feeders {
            let balancer = match k % 3 {
                0 => &self.balancer,
                1 => &self.zoned,
                _ => &self.busy,
            };
            let mut client = GreeterClient::new(balancer.clone());
            tasks.spawn(async move {
                for _ in 0..calls_each {
                    client
                        .say_hello(hello_request())
                        .await
                        .expect("feeding call");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("feeder panicked");
        }
    }

    fn pick(&mut self) -> Option<usize> {
        self.balancer.choose(false)
    }

    /// The pick of the balancer with locality on.
    fn pick_locality(&mut self) -> Option<usize> {
        self.zoned.choose(false)
    }

    /// The pick of the busy balancer.
    fn pick_busy(&mut self) -> Option<usize> {
        self.busy.choose(false)
    }

    /// Starts [`HELD_PER_ENDPOINT`] calls per endpoint through the busy
    /// balancer (ending those it held before) and runs `rt` just long
    /// enough for each to be picked and counted in flight: the backends
    /// answer after their service time, Exp(20 ms), and `rt` is not run
    /// again until the next feeding. Returns the calls counted in flight.
    fn hold(&mut self, rt: &Runtime) -> u32 {
        self.held.abort_all();
        for _ in 0..HELD_PER_ENDPOINT * self.backends.len() {
            let mut client = GreeterClient::new(self.busy.clone());
            self.held.spawn_on(
                async move {
                    // Cut short by the next `hold`, or ends with its answer.
                    let _ = client.say_hello(hello_request()).await;
                },
                rt.handle(),
            );
        }
        let wanted = HELD_PER_ENDPOINT * self.backends.len();
        let in_flight = || -> u32 {
            self.busy
                .snapshot()
                .endpoints
                .iter()
                .map(|e| e.in_flight)
                .sum()
        };
        // Each round of yields runs the tasks that are ready, and a call is
        // counted once its task has picked. A few calls are answered while
        // the rest are still being picked: stop at nine in ten, or once
        // answers outpace picks (the count falls from its highest).
        rt.block_on(async {
            let mut highest = 0;
            for _ in 0..5_000 {
                let now = in_flight();
                if 10 * now as usize >= 9 * wanted || now < highest {
                    break;
                }
                highest = highest.max(now);
                tokio::task::yield_now().await;
            }
        });
        in_flight()
    }

    /// A stream's pick: the least of all endpoints (`P2c::pick_least`).
    fn pick_stream(&mut self) -> Option<usize> {
        self.balancer.choose(true)
    }
}

// === orca-lb core only: the pure pick ===

/// `n` endpoints' views, as the balancer publishes them, and everything else
/// a pick reads, held in plain vectors.
struct CoreFleet {
    picker: P2c,
    rng: SmallRng,
    views: Vec<PickView>,
    /// Per view, the standing cost picks last worked out.
    standing: Vec<Cell<Option<StandingCost>>>,
    local: Vec<LocalLoad>,
    fleet: FleetView,
    config: ScoreConfig,
    settings: PickSettings,
    now: Instant,
}

/// A report like the reporting layer sends from a busy backend with 4 slots.
fn report(rng: &mut SmallRng) -> LoadReport {
    let in_flight = f64::from(rng.random_range(0..8_u8));
    let named = [
        (named_metrics::IN_FLIGHT, in_flight),
        (named_metrics::QUEUE_DEPTH, (in_flight - 4.0).max(0.0)),
        (named_metrics::CAPACITY, 4.0),
        (named_metrics::SERVICE_TIME_MS, rng.random_range(10.0..30.0)),
    ];
    let raw = RawLoadReport {
        cpu_utilization: 0.2,
        mem_utilization: 0.3,
        application_utilization: rng.random_range(0.3..0.9),
        rps_fractional: 180.0,
        named_metrics: named
            .into_iter()
            .filter(|&(_, v)| v > 0.0)
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..RawLoadReport::default()
    };
    LoadReport::try_from(raw).expect("valid report")
}

impl CoreFleet {
    fn new(n: usize) -> CoreFleet {
        let config = ScoreConfig::default();
        let now = Instant::now();
        // Past the slow start, with news from the last second.
        let created = now - Duration::from_secs(10);
        let mut rng = SmallRng::seed_from_u64(n as u64);
        let views: Vec<PickView> = (0..n)
            .map(|_| {
                let mut policy =
                    EndpointPolicy::new(&config, CircuitBreakerConfig::default(), created);
                for k in 0..FEED_CALLS_PER_ENDPOINT as u64 {
                    let t = created + Duration::from_millis(9_000 + 40 * k);
                    let r = report(&mut rng);
                    let latency = Duration::from_micros(rng.random_range(10_000..40_000));
                    policy.on_report(&r, LocalLoad::default(), true, t);
                    policy.on_outcome(Outcome::Success, Some(latency), false, true, t);
                }
                policy.pick_view(&config)
            })
            .collect();
        let local = (0..n)
            .map(|_| LocalLoad {
                in_flight: rng.random_range(0..3),
                ..LocalLoad::default()
            })
            .collect();
        CoreFleet {
            picker: P2c::with_tie_tolerance(config.tie_tolerance),
            rng,
            standing: vec![Cell::new(None); views.len()],
            views,
            local,
            fleet: FleetView {
                service_time: 0.02,
                backlog: 2.0,
                streams: 0.0,
            },
            settings: PickSettings::new(&config),
            config,
            now,
        }
    }

    /// The default pick: the best of `config.choices` (8).
    fn pick(&mut self) -> Option<usize> {
        let choices = self.config.choices;
        self.pick_of(choices)
    }

    /// The best of `choices` random endpoints (2: the pair picker).
    fn pick_of(&mut self, choices: usize) -> Option<usize> {
        let CoreFleet {
            picker,
            rng,
            views,
            standing,
            local,
            fleet,
            config,
            settings,
            now,
        } = self;
        let pick = PickContext {
            stream: false,
            warm_up: rng.random(),
            panic: false,
            fleet: *fleet,
            score: config,
            now: *now,
        };
        // The views share one origin (the fleet's creation): the pick's time
        // since it is worked out once, and split for the views' weights
        // only if a standing cost must be worked out again, as the balancer
        // does.
        let seconds = PickView::seconds_since(views[0].origin(), pick.now);
        let mut time = None;
        // Each drawn candidate's standing cost and calls are read first, as
        // the balancer prefetches its endpoints.
        let prefetch = |i: usize| {
            black_box(standing[i].get().is_some());
            black_box(local[i].in_flight);
        };
        picker.pick_best_of_prefetching(rng, views.len(), choices, prefetch, |i| {
            let cost = match standing[i].get() {
                Some(cost) if cost.covers(seconds) => cost,
                _ => {
                    let time = time.get_or_insert_with(|| PickTime::new(settings, seconds));
                    let cost = StandingCost::new(&views[i], time, &pick);
                    standing[i].set(Some(cost));
                    cost
                }
            };
            cost.unary_score(seconds, local[i], &pick)
        })
    }

    /// A unary pick at `now` that drew `u` for the warm-up.
    fn context(&self, u: f64, now: Instant) -> PickContext<'_> {
        PickContext {
            stream: false,
            warm_up: u,
            panic: false,
            fleet: self.fleet,
            score: &self.config,
            now,
        }
    }
}

// === the parts of a pick ===

/// What orca-lb's pick at 8 endpoints is made of, to time one by one.
struct Parts {
    core: CoreFleet,
    /// The fed endpoints' standing costs at `core.now`.
    standing: Vec<StandingCost>,
    /// The fed endpoints' scores, computed once.
    scores: Vec<Score>,
    /// `core.now` as the views count it.
    at: PickTime,
}

/// The parts, in table order.
const PARTS: [&str; 9] = [
    "clock read",
    "pick time (PickTime::new)",
    "standing cost worked out (StandingCost::new)",
    "score from a standing cost",
    "8 scores from standing costs",
    "P2c::pick, scores given",
    "score afresh (PickView::score_at)",
    "best of 8 of 1,000, scores given",
    "score from a standing cost, calls in flight",
];

impl Parts {
    fn new() -> Parts {
        let core = CoreFleet::new(8);
        let origin = core.views[0].origin();
        let at = PickTime::new(&core.settings, PickView::seconds_since(origin, core.now));
        let pick = core.context(0.5, core.now);
        let standing: Vec<StandingCost> = core
            .views
            .iter()
            .map(|view| StandingCost::new(view, &at, &pick))
            .collect();
        let scores = (0..core.views.len())
            .map(|i| {
                standing[i]
                    .unary_score(at.seconds(), core.local[i], &pick)
                    .expect("eligible")
            })
            .collect();
        Parts {
            core,
            standing,
            scores,
            at,
        }
    }

    /// One run of part `p` (an index into [`PARTS`]).
    fn run(&mut self, p: usize) {
        let core = &self.core;
        match p {
            0 => {
                black_box(tokio::time::Instant::now());
            }
            1 => {
                let origin = black_box(core.views[0].origin());
                let seconds = PickView::seconds_since(origin, black_box(core.now));
                black_box(PickTime::new(black_box(&core.settings), seconds));
            }
            2 => {
                let pick = core.context(black_box(0.5), core.now);
                let view = black_box(&core.views[0]);
                black_box(StandingCost::new(view, black_box(&self.at), &pick));
            }
            3 => {
                let pick = core.context(black_box(0.5), core.now);
                let cost = black_box(&self.standing[0]);
                black_box(cost.unary_score(black_box(self.at.seconds()), core.local[0], &pick));
            }
            4 => {
                let pick = core.context(black_box(0.5), core.now);
                let seconds = black_box(self.at.seconds());
                for (i, cost) in black_box(&self.standing).iter().enumerate() {
                    black_box(cost.unary_score(seconds, core.local[i], &pick));
                }
            }
            5 => {
                let scores = &self.scores;
                let core = &mut self.core;
                black_box(
                    core.picker
                        .pick(&mut core.rng, scores.len(), |i| Some(black_box(scores[i]))),
                );
            }
            7 => {
                let scores = &self.scores;
                let core = &mut self.core;
                black_box(
                    core.picker
                        .pick_best_of(&mut core.rng, 1_000, 8, |i| Some(black_box(scores[i & 7]))),
                );
            }
            8 => {
                let pick = core.context(black_box(0.5), core.now);
                let cost = black_box(&self.standing[0]);
                let local = LocalLoad {
                    in_flight: 2,
                    in_flight_since: core.now.checked_sub(Duration::from_millis(5)),
                    ..LocalLoad::default()
                };
                black_box(cost.unary_score(black_box(self.at.seconds()), black_box(local), &pick));
            }
            _ => {
                let pick = core.context(black_box(0.5), core.now);
                let view = black_box(&core.views[0]);
                black_box(view.score_at(black_box(&self.at), core.local[0], &pick));
            }
        }
    }
}

// === tower p2c: the peer ===

type Answer = fn(()) -> Ready<Result<(), Infallible>>;
type Leaf = PendingRequests<ServiceFn<Answer>, CompleteOnResponse>;

fn answer((): ()) -> Ready<Result<(), Infallible>> {
    ready(Ok(()))
}

/// tower's P2C balancer over `n` always-ready services, each counting its
/// pending requests (tower's `least_request`).
struct TowerFleet {
    balance: Balance<ServiceList<Vec<Leaf>>, ()>,
    cx: Context<'static>,
}

impl TowerFleet {
    fn new(n: usize) -> TowerFleet {
        let leaves: Vec<Leaf> = (0..n)
            .map(|_| {
                PendingRequests::new(service_fn(answer as Answer), CompleteOnResponse::default())
            })
            .collect();
        let mut fleet = TowerFleet {
            balance: Balance::new(ServiceList::new(leaves)),
            cx: Context::from_waker(Waker::noop()),
        };
        // The first pick takes in the discovered services.
        fleet.pick();
        assert_eq!(fleet.balance.len(), n);
        fleet
    }

    /// `poll_ready` (the pick), `call`, and the response to its end.
    fn pick(&mut self) {
        match self.balance.poll_ready(&mut self.cx) {
            Poll::Ready(Ok(())) => {}
            other => panic!("tower p2c not ready: {other:?}"),
        }
        let future = pin!(self.balance.call(()));
        match future.poll(&mut self.cx) {
            Poll::Ready(Ok(())) => {}
            other => panic!("a ready service answers at once: {other:?}"),
        }
    }
}

// === the rig ===

/// One fleet of each kind per size, and the parts of a pick.
struct Rig {
    sizes: Vec<Sizes>,
    parts: Parts,
}

struct Sizes {
    n: usize,
    orca: OrcaFleet,
    core: CoreFleet,
    tower: TowerFleet,
}

/// The variants, in table order.
const VARIANTS: [&str; 6] = [
    "orca-lb",
    "orca-lb core only",
    "orca-lb core, pair",
    "tower p2c",
    "pick_locality",
    "orca-lb, busy",
];

/// Where the busy balancer's pick is in [`VARIANTS`].
const BUSY: usize = 5;

/// Where tower's pick is in [`VARIANTS`].
const TOWER: usize = 3;

/// Where the core's best-of-8 pick is in [`VARIANTS`].
const CORE_BEST_OF: usize = 1;

/// Where the core's pair pick is in [`VARIANTS`].
const CORE_PAIR: usize = 2;

impl Sizes {
    /// One pick of variant `v` (an index into [`VARIANTS`]).
    fn pick(&mut self, v: usize) {
        match v {
            0 => {
                black_box(self.orca.pick().expect("an endpoint"));
            }
            CORE_BEST_OF => {
                black_box(self.core.pick().expect("an endpoint"));
            }
            CORE_PAIR => {
                black_box(self.core.pick_of(2).expect("an endpoint"));
            }
            TOWER => self.tower.pick(),
            BUSY => {
                black_box(self.orca.pick_busy().expect("an endpoint"));
            }
            _ => {
                black_box(self.orca.pick_locality().expect("an endpoint"));
            }
        }
    }
}

impl Rig {
    /// Builds every fleet; the orca-lb balancers run on `rt` and are fed
    /// there, and the call returns once their slow start is over.
    fn new(rt: &Runtime) -> Rig {
        let started = Instant::now();
        let mut sizes = Vec::new();
        let mut created = started;
        for n in SIZES {
            let (orca, at) = rt.block_on(OrcaFleet::start(n));
            created = created.max(at);
            sizes.push(Sizes {
                n,
                orca,
                core: CoreFleet::new(n),
                tower: TowerFleet::new(n),
            });
        }
        let warm = created + ScoreConfig::default().slow_start + Duration::from_millis(200);
        rt.block_on(tokio::time::sleep_until(warm.into()));
        println!(
            "pick cost: {} backends started and fed ({} calls) in {:.1} s",
            SIZES.iter().sum::<usize>(),
            SIZES.iter().sum::<usize>() * FEED_CALLS_PER_ENDPOINT,
            started.elapsed().as_secs_f64()
        );
        Rig {
            sizes,
            parts: Parts::new(),
        }
    }

    /// Refreshes the news of the orca-lb balancers with a few calls per
    /// endpoint, on `rt`.
    fn refresh(&mut self, rt: &Runtime) {
        for s in &self.sizes {
            rt.block_on(s.orca.feed(REFRESH_CALLS_PER_ENDPOINT));
        }
    }

    /// Has every busy balancer hold its calls in flight (see
    /// [`OrcaFleet::hold`]), and says how many are.
    fn hold(&mut self, rt: &Runtime) {
        for s in &mut self.sizes {
            let held = s.orca.hold(rt);
            println!(
                "pick cost: the busy balancer over {} endpoints holds {held} calls in flight",
                s.n
            );
        }
    }
}

/// Prints allocations per pick and asserts that orca-lb's picks make none.
fn allocation_check(rig: &mut Rig) {
    println!();
    println!("pick cost/allocations: per pick, mean of {COUNTED_PICKS} after as many of warm-up");
    println!(
        "endpoints  {:>10} {:>18} {:>18} {:>10} {:>14} {:>14} {:>15}",
        VARIANTS[0],
        VARIANTS[1],
        VARIANTS[2],
        VARIANTS[3],
        VARIANTS[4],
        VARIANTS[5],
        "orca-lb stream"
    );
    let mut failures = Vec::new();
    for s in &mut rig.sizes {
        let mut row = [0.0; VARIANTS.len()];
        for (v, cell) in row.iter_mut().enumerate() {
            for _ in 0..COUNTED_PICKS {
                s.pick(v);
            }
            let region = Region::new(GLOBAL);
            for _ in 0..COUNTED_PICKS {
                s.pick(v);
            }
            let stats = region.change();
            let allocations = (stats.allocations + stats.reallocations) as u64;
            *cell = allocations as f64 / COUNTED_PICKS as f64;
            if v != TOWER && allocations > 0 {
                failures.push(format!(
                    "{} at {}: {allocations} allocations ({} bytes) in {COUNTED_PICKS} picks",
                    VARIANTS[v], s.n, stats.bytes_allocated
                ));
            }
        }
        // A stream's pick scans every endpoint: it must not allocate either.
        for _ in 0..COUNTED_PICKS {
            black_box(s.orca.pick_stream().expect("an endpoint"));
        }
        let region = Region::new(GLOBAL);
        for _ in 0..COUNTED_PICKS {
            black_box(s.orca.pick_stream().expect("an endpoint"));
        }
        let stats = region.change();
        let stream_allocations = (stats.allocations + stats.reallocations) as u64;
        if stream_allocations > 0 {
            failures.push(format!(
                "orca-lb stream at {}: {stream_allocations} allocations ({} bytes) in {COUNTED_PICKS} picks",
                s.n, stats.bytes_allocated
            ));
        }
        println!(
            "{:<10} {:>10.2} {:>18.2} {:>18.2} {:>10.2} {:>14.2} {:>14.2} {:>15.2}",
            s.n,
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            stream_allocations as f64 / COUNTED_PICKS as f64
        );
    }
    println!();
    assert!(
        failures.is_empty(),
        "orca-lb's pick allocates: {failures:?}"
    );
}

fn pick_cost(c: &mut Criterion, rig: &mut Rig, rt: &Runtime) {
    let mut group = c.benchmark_group("pick cost");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for s in &mut rig.sizes {
        for (v, name) in VARIANTS.iter().enumerate() {
            if v == 0 || v == 3 {
                rt.block_on(s.orca.feed(REFRESH_CALLS_PER_ENDPOINT));
            }
            if v == BUSY {
                // Feeding let the held calls end.
                s.orca.hold(rt);
            }
            group.bench_function(BenchmarkId::new(*name, s.n), |b| b.iter(|| s.pick(v)));
        }
    }
    group.finish();

    let mut group = c.benchmark_group("pick cost parts");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let parts = &mut rig.parts;
    for (p, name) in PARTS.iter().enumerate() {
        group.bench_function(*name, |b| b.iter(|| parts.run(p)));
    }
    group.finish();
}

/// How much the interleaved check does: the full amount under `cargo bench`,
/// a token amount when the benchmarks run as tests, nothing when criterion
/// lists or profiles.
fn check_rounds() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    if has("--list") || has("--profile-time") {
        None
    } else if has("--bench") && !has("--test") {
        Some(201)
    } else {
        Some(1)
    }
}

/// Operations per timed batch in the interleaved check.
const BATCH: u32 = 2_000;

/// One thing the interleaved check times.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// A pick of variant `variant` at `SIZES[size]` endpoints.
    Pick { size: usize, variant: usize },
    /// A part of a pick (an index into [`PARTS`]).
    Part(usize),
}

impl Rig {
    fn run(&mut self, op: Op) {
        match op {
            Op::Pick { size, variant } => self.sizes[size].pick(variant),
            Op::Part(p) => self.parts.run(p),
        }
    }
}

/// Times batches of every pick and part in rotating order and prints the
/// median and the fastest batch per operation, with each pick's median of
/// the per-round ratios to tower's pick and to orca-lb's plain pick at the
/// same size.
fn interleaved(rig: &mut Rig, rounds: usize) {
    let mut ops = Vec::new();
    for size in 0..SIZES.len() {
        for variant in 0..VARIANTS.len() {
            ops.push(Op::Pick { size, variant });
        }
    }
    ops.extend((0..PARTS.len()).map(Op::Part));
    let mut ns: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); ops.len()];
    for r in 0..rounds {
        for k in 0..ops.len() {
            let i = (r + k) % ops.len();
            let start = Instant::now();
            for _ in 0..BATCH {
                rig.run(ops[i]);
            }
            ns[i].push(start.elapsed().as_secs_f64() * 1e9 / f64::from(BATCH));
        }
    }
    let fastest = |x: &[f64]| x.iter().copied().fold(f64::INFINITY, f64::min);
    let mid = |x: &[f64]| median(x).unwrap_or(f64::NAN);
    println!();
    println!(
        "pick cost/interleaved: {rounds} rounds of {BATCH} operations each, rotating order; ns per operation"
    );
    println!(
        "endpoints variant             median ns  fastest ns | median of per-round ratios: to tower p2c, to the core's pair, to orca-lb"
    );
    for (op, x) in ops.iter().zip(&ns) {
        let Op::Pick { size, variant } = *op else {
            continue;
        };
        let ratio_to = |other: usize| -> f64 {
            let other = &ns[size * VARIANTS.len() + other];
            let ratios: Vec<f64> = x.iter().zip(other).map(|(a, b)| a / b).collect();
            mid(&ratios)
        };
        println!(
            "{:<9} {:<18} {:>10.1} {:>11.1} | {:>10.3} {:>10.3} {:>8.3}",
            SIZES[size],
            VARIANTS[variant],
            mid(x),
            fastest(x),
            ratio_to(TOWER),
            ratio_to(CORE_PAIR),
            ratio_to(0),
        );
    }
    println!();
    println!("part of a pick (8 endpoints)   median ns  fastest ns");
    for (op, x) in ops.iter().zip(&ns) {
        if let Op::Part(p) = *op {
            println!("{:<30} {:>10.1} {:>11.1}", PARTS[p], mid(x), fastest(x));
        }
    }
    println!();
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() {
    let rt = runtime();
    // `Balancer::choose` reads tokio's clock: the runtime is entered, never
    // driven, while picks run.
    let _entered = rt.enter();
    let mut rig = Rig::new(&rt);
    let rounds = check_rounds();
    if rounds.is_some() {
        rig.hold(&rt);
        allocation_check(&mut rig);
    }
    let mut c = Criterion::default().configure_from_args();
    pick_cost(&mut c, &mut rig, &rt);
    if let Some(rounds) = rounds {
        rig.refresh(&rt);
        rig.hold(&rt);
        interleaved(&mut rig, rounds);
    }
    c.final_summary();
}
