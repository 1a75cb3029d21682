//! Streams after a scale-out, as one client's picks see them: new streams go
//! to the endpoints with the fewest streams of every client (as their
//! servers report them, with this client's own opens since each report
//! added), new endpoints included while they warm up.

use std::time::{Duration, Instant};

use orca_lb_core::{
    CircuitBreakerConfig, EndpointPolicy, FleetView, LoadReport, LocalLoad, P2c, PickContext,
    RawLoadReport, ScoreConfig, named_metrics,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn origin() -> Instant {
    #[allow(
        clippy::disallowed_methods,
        reason = "tests need one real instant as an origin"
    )]
    Instant::now()
}

/// A report of `streams` open streams (every client's) and nothing else.
fn streams_report(streams: f64) -> LoadReport {
    let mut raw = RawLoadReport {
        application_utilization: 0.1,
        ..Default::default()
    };
    raw.named_metrics
        .insert(named_metrics::ACTIVE_STREAMS.into(), streams);
    raw.named_metrics
        .insert(named_metrics::IN_FLIGHT.into(), streams);
    LoadReport::try_from(raw).unwrap()
}

/// One client: its endpoints and its own open streams on each.
struct Client {
    config: ScoreConfig,
    endpoints: Vec<EndpointPolicy>,
    local: Vec<LocalLoad>,
    picker: P2c,
    rng: SmallRng,
}

impl Client {
    fn new(config: ScoreConfig) -> Self {
        Self {
            picker: P2c::with_tie_tolerance(config.tie_tolerance),
            config,
            endpoints: Vec::new(),
            local: Vec::new(),
            rng: SmallRng::seed_from_u64(7),
        }
    }

    fn add(&mut self, now: Instant) -> usize {
        let breaker = CircuitBreakerConfig::default();
        self.endpoints
            .push(EndpointPolicy::new(&self.config, breaker, now));
        self.local.push(LocalLoad::default());
        self.endpoints.len() - 1
    }

    fn report(&mut self, i: usize, streams: f64, now: Instant) {
        self.endpoints[i].on_report(&streams_report(streams), self.local[i], true, now);
    }

    /// Opens a stream as the balancer does: the least stream cost of all.
    fn open(&mut self, now: Instant) -> usize {
        let pick = PickContext {
            stream: true,
            warm_up: self.rng.random(),
            panic: false,
            fleet: FleetView::unknown(self.config.default_service_time),
            score: &self.config,
            now,
        };
        let (endpoints, local) = (&self.endpoints, &self.local);
        let i = self
            .picker
            .pick_least(&mut self.rng, endpoints.len(), |i| {
                endpoints[i].view().score(local[i], &pick)
            })
            .expect("an endpoint");
        self.local[i].streams += 1;
        i
    }
}

#[test]
fn after_a_scale_out_new_streams_fill_the_new_endpoints_until_streams_are_even() {
    let t0 = origin();
    // Slow start on (the default): it must not hold streams back.
    let mut client = Client::new(ScoreConfig::default());
    let old: Vec<usize> = (0..4).map(|_| client.add(t0)).collect();
    // This client holds 5 of the 100 streams each old endpoint reports.
    for &i in &old {
        client.local[i].streams = 5;
    }
    let at_join = t0 + Duration::from_secs(60);
    for &i in &old {
        client.report(i, 100.0, at_join);
    }
    let new: Vec<usize> = (0..4).map(|_| client.add(at_join)).collect();

    // 40 opens right after the join, before any report from the new ones:
    // all on the new endpoints, spread evenly by this client's own count.
    let mut now = at_join;
    for _ in 0..40 {
        now += Duration::from_millis(10);
        let i = client.open(now);
        assert!(new.contains(&i), "a stream went to old endpoint {i}");
    }
    for &i in &new {
        assert_eq!(client.local[i].streams, 10, "{:?}", client.local);
    }

    // The new endpoints report what every client opened there: 60 streams,
    // 10 of them this client's. The next opens still avoid the old ones
    // (100 each) and go where others opened fewest: new endpoint `new[3]`
    // reports only its 10 (this client's).
    for &i in &new[..3] {
        client.report(i, 60.0, now);
    }
    client.report(new[3], 10.0, now);
    for _ in 0..20 {
        now += Duration::from_millis(1);
        assert_eq!(client.open(now), new[3]);
    }
    // 30 there now (this client's), compensated for the opens since its
    // report; from here on the four new endpoints spread the opens.
    assert_eq!(client.local[new[3]].streams, 30);
    let mut counts = [0u32; 8];
    for _ in 0..60 {
        now += Duration::from_millis(1);
        counts[client.open(now)] += 1;
    }
    assert_eq!(counts[..4].iter().sum::<u32>(), 0, "{counts:?}");
    // Every new endpoint is within one stream of the others' expected load:
    // 60 + k for the first three, 30 + k for the fourth, levelled.
    let totals: Vec<u32> = new
        .iter()
        .map(|&i| {
            let reported_others = if i == new[3] { 0 } else { 50 };
            reported_others + client.local[i].streams
        })
        .collect();
    let (lo, hi) = (totals.iter().min().unwrap(), totals.iter().max().unwrap());
    // Within the tie tolerance (5 %) and the little the reports aged.
    assert!(hi - lo <= 5, "uneven: {totals:?}");

    // Once the new endpoints hold more than the old ones, the old ones get
    // the next stream.
    for &i in &new {
        client.report(i, 130.0, now);
    }
    now += Duration::from_millis(10);
    assert!(old.contains(&client.open(now)));
}
