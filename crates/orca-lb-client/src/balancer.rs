//! The tower `Service` that a generated tonic client uses in place of a
//! `Channel`.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use orca_lb_core::{Admission, P2c, PickContext, PickTime, PickView, RingPick, ZoneSide, capacity};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tower_service::Service;

use crate::call::CallGuard;
use crate::discovery::Change;
use crate::endpoint::Endpoint;
use crate::endpoint_set::EndpointList;
use crate::error::BalanceError;
use crate::readiness::Readiness;
use crate::shared::Shared;
use crate::snapshot::BalancerSnapshot;
use crate::{BalancerConfig, BuildError, ResponseBody, ResponseFuture};

/// A load-aware balancer over a changing set of gRPC endpoints.
///
/// Use it wherever tonic takes a `Channel`: `GreeterClient::new(balancer)`.
/// Every call goes to the cheapest of a few endpoints drawn at random
/// ([`ScoreConfig::choices`](orca_lb_core::ScoreConfig::choices), 8 by
/// default), by expected completion time: the service time
/// the endpoint reports (or this client observes), scaled by the calls ahead
/// of this one, plus a penalty for recent failures. Endpoints that fail or
/// report overload are ejected by their circuit breaker and probed back.
///
/// Cloning is cheap (an `Arc` and a small RNG); clones share endpoints,
/// connections and state, and may be moved to other tasks. A pick takes no
/// lock and allocates nothing: it reads the drawn endpoints' published pick
/// views (see [`PickView`](orca_lb_core::PickView)), each without a lock.
///
/// With [`BalancerConfig::affinity`] on, a call with a key (a metadata
/// entry, or a [`CallKey`](crate::CallKey) extension) goes to its key's
/// endpoint on a consistent-hash ring while that endpoint's load is under
/// the bound, and to the next endpoints on the ring beyond it
/// (`docs/affinity.md`); the ring is built when the endpoint list changes,
/// and a keyed pick hashes the key in place, allocating nothing.
#[derive(Debug)]
pub struct Balancer {
    shared: Arc<Shared>,
    list: EndpointList,
    generation: u64,
    rng: SmallRng,
    picker: P2c,
    readiness: Readiness,
}

impl Clone for Balancer {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            list: self.list.clone(),
            generation: self.generation,
            rng: SmallRng::seed_from_u64(self.shared.next_seed()),
            picker: self.picker,
            readiness: Readiness::default(),
        }
    }
}

impl Balancer {
    /// A balancer over the endpoints `discovery` announces, starting its
    /// discovery and maintenance tasks on the current tokio runtime. The tasks
    /// end when every clone of the balancer is dropped.
    pub fn new<D>(config: BalancerConfig, discovery: D) -> Result<Balancer, BuildError>
    where
        D: Stream<Item = Change> + Send + 'static,
    {
        Self::with_seed(config, discovery, rand::random())
    }

    /// Like [`new`](Self::new) with a fixed RNG seed, for reproducible picks.
    pub fn with_seed<D>(
        config: BalancerConfig,
        discovery: D,
        seed: u64,
    ) -> Result<Balancer, BuildError>
    where
        D: Stream<Item = Change> + Send + 'static,
    {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let interval = config.maintenance_interval;
        let shared = Arc::new(Shared::new(config, seed));
        runtime.spawn(crate::discovery::run(
            Arc::downgrade(&shared),
            Box::pin(discovery),
        ));
        runtime.spawn(crate::maintenance::run(Arc::downgrade(&shared), interval));
        Ok(Self::from_shared(shared))
    }

    fn from_shared(shared: Arc<Shared>) -> Balancer {
        let (list, generation) = shared.set.list();
        Balancer {
            rng: SmallRng::seed_from_u64(shared.next_seed()),
            picker: P2c::with_tie_tolerance(shared.config.score.tie_tolerance),
            shared,
            list,
            generation,
            readiness: Readiness::default(),
        }
    }

    /// A balancer over a fixed list of endpoint URIs (`http://host:port`).
    /// An unparsable URI is refused, naming it.
    pub fn from_uris<I, S>(config: BalancerConfig, uris: I) -> Result<Balancer, BuildError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::from_changes(config, crate::discovery::static_list(uris)?)
    }

    /// A balancer over a fixed list of endpoint URIs, each in a zone (see
    /// [`static_zoned_list`](crate::static_zoned_list) and
    /// [`BalancerConfig::locality`]). An unparsable URI or an invalid zone
    /// is refused, naming the URI.
    pub fn from_zoned_uris<I, S, Z>(
        config: BalancerConfig,
        entries: I,
    ) -> Result<Balancer, BuildError>
    where
        I: IntoIterator<Item = (S, Z)>,
        S: AsRef<str>,
        Z: AsRef<str>,
    {
        Self::from_changes(config, crate::discovery::static_zoned_list(entries)?)
    }

    fn from_changes(config: BalancerConfig, changes: Vec<Change>) -> Result<Balancer, BuildError> {
        // A template that cannot connect to an address fails here, not on
        // the first call.
        tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        for change in &changes {
            if let Change::Insert(_, uri) | Change::InsertInZone(_, uri, _) = change {
                config
                    .endpoint
                    .connect_lazy(uri, config.connect_timeout)
                    .map_err(|e| BuildError::Endpoint {
                        uri: uri.to_string(),
                        why: e.to_string(),
                    })?;
            }
        }
        Self::new(
            config,
            tokio_stream::iter(changes).chain(tokio_stream::pending()),
        )
    }

    /// What the balancer knows and decided, per endpoint, now.
    pub fn snapshot(&self) -> BalancerSnapshot {
        BalancerSnapshot::take(&self.shared, tokio::time::Instant::now().into_std())
    }

    /// A handle that observes the balancer without keeping it alive, for
    /// registries such as the debug service: the balancer, its discovery and
    /// its connections go away with its last `Balancer` clone.
    pub fn downgrade(&self) -> WeakBalancer {
        WeakBalancer {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// The balancer's target name.
    pub fn target(&self) -> &str {
        &self.shared.config.target
    }

    /// Waits until at least `n` endpoints are known (discovery runs on its
    /// own task).
    pub async fn wait_for_endpoints(&self, n: usize) {
        self.shared.set.wait_for_list(|list| list.len() >= n).await;
    }

    fn refresh(&mut self) {
        if self.shared.set.generation() != self.generation {
            (self.list, self.generation) = self.shared.set.list();
        }
    }

    /// Draws the endpoint a call would go to now, without sending anything
    /// or reserving a probe: the pick alone, for benchmarks and diagnostics.
    /// Returns its index in [`snapshot`](Self::snapshot) order.
    #[doc(hidden)]
    pub fn choose(&mut self, stream: bool) -> Option<usize> {
        let now = tokio::time::Instant::now().into_std();
        self.refresh();
        let mut pick = PickContext {
            stream,
            warm_up: self.rng.random(),
            panic: self.shared.set.is_panic(),
            fleet: self.shared.fleet(),
            score: &self.shared.config.score,
            now,
        };
        let spill = self.shared.spill();
        draw_zoned(
            &self.shared,
            &self.picker,
            &mut self.rng,
            &self.list,
            spill,
            &mut pick,
            None,
        )
    }

    /// Picks an endpoint other than `failed` for a call whose attempt there
    /// never reached it (see `future.rs`).
    pub(crate) fn repick(
        shared: &Arc<Shared>,
        stream: bool,
        failed: &Arc<Endpoint>,
        now: std::time::Instant,
    ) -> Result<CallGuard, BalanceError> {
        Balancer::from_shared(shared.clone()).pick_avoiding(stream, now, Some(failed), None)
    }

    /// Picks an endpoint for a call; `key` is the ring hash of its affinity
    /// key, if it has one and affinity is on.
    fn pick(
        &mut self,
        stream: bool,
        now: std::time::Instant,
        key: Option<u64>,
    ) -> Result<CallGuard, BalanceError> {
        self.pick_avoiding(stream, now, None, key)
    }

    /// The endpoint for a keyed call (see [`HashRing::pick`](orca_lb_core::HashRing::pick)):
    /// the first on the ring from the key's point whose load is under
    /// `1 + epsilon` times the mean (the mean of the last maintenance pass,
    /// with this call added), passing over `excluded`. `None` without a
    /// ring or when no endpoint is eligible: the call is then picked as
    /// any other.
    fn ring_pick(
        &self,
        key: u64,
        now: std::time::Instant,
        excluded: Option<usize>,
    ) -> Option<RingPick> {
        let ring = self.list.ring()?;
        let epsilon = self.shared.affinity.as_ref()?.epsilon;
        let mean = self.shared.affinity_mean() + 1.0 / self.list.len() as f64;
        let median = self.shared.fleet_service_time();
        ring.pick(key, capacity(mean, epsilon), |i| {
            if Some(i) == excluded {
                return None;
            }
            self.list[i].affinity_load(median, now)
        })
    }

    fn pick_avoiding(
        &mut self,
        stream: bool,
        now: std::time::Instant,
        avoid: Option<&Arc<Endpoint>>,
        key: Option<u64>,
    ) -> Result<CallGuard, BalanceError> {
        self.refresh();
        if self.list.is_empty() {
            return Err(BalanceError::NoEndpoints {
                target: self.shared.config.target.clone(),
            });
        }
        // Endpoints still warming up are considered with probability equal
        // to their warm-up share: one draw per pick.
        let mut pick = PickContext {
            stream,
            warm_up: self.rng.random(),
            panic: self.shared.set.is_panic(),
            fleet: self.shared.fleet(),
            score: &self.shared.config.score,
            now,
        };
        let panic = pick.panic;
        let spill = self.shared.spill();
        let mut excluded = avoid.and_then(|a| self.list.iter().position(|e| Arc::ptr_eq(e, a)));
        // A HalfOpen endpoint whose probe budget went to another caller
        // between the pick and the admission is excluded and replaced.
        for _ in 0..2 {
            // A keyed call goes where the ring says; one without a key, or
            // whose ring walk found nothing eligible, is drawn as usual.
            let keyed = key.and_then(|k| self.ring_pick(k, now, excluded));
            let drawn = match keyed {
                Some(k) => Some(k.index),
                None => draw_zoned(
                    &self.shared,
                    &self.picker,
                    &mut self.rng,
                    &self.list,
                    spill,
                    &mut pick,
                    excluded,
                ),
            };
            let Some(i) = drawn else {
                break;
            };
            let ep = &self.list[i];
            match ep.admit(panic) {
                Admission::Refused => excluded = Some(i),
                admission => {
                    if let Some(k) = keyed {
                        ep.on_keyed_pick();
                        if k.passed_on {
                            self.list[k.owner].on_passed_on();
                        }
                    }
                    let probe = admission.is_probe();
                    tracing::trace!(
                        target_name = %self.shared.config.target,
                        endpoint = %ep.key(),
                        stream,
                        probe,
                        panic,
                        "picked"
                    );
                    return Ok(CallGuard::new(
                        ep.clone(),
                        self.shared.clone(),
                        stream,
                        probe,
                        now,
                    ));
                }
            }
        }
        // Nothing pickable: say so by the reason that applies.
        if let Some(check) = &self.shared.config.health_check
            && !self.list.iter().any(|ep| ep.is_healthy())
        {
            return Err(BalanceError::Unhealthy {
                target: self.shared.config.target.clone(),
                endpoints: self.list.len(),
                service: check.service.clone(),
            });
        }
        Err(BalanceError::NoneAvailable {
            target: self.shared.config.target.clone(),
            endpoints: self.list.len(),
        })
    }
}

/// One draw over `list` as [`draw`] makes it, with locality on first
/// among the endpoints of the zone side drawn for this pick (other zones
/// with probability `spill`), then, if none of those is eligible, among all
/// (see [`ZoneIndex::pick_preferring`](orca_lb_core::ZoneIndex::pick_preferring)).
/// The split by zone comes with the list: nothing is computed or allocated
/// here.
fn draw_zoned(
    shared: &Shared,
    picker: &P2c,
    rng: &mut SmallRng,
    list: &EndpointList,
    spill: f64,
    pick: &mut PickContext<'_>,
    excluded: Option<usize>,
) -> Option<usize> {
    let Some(zones) = list.zones() else {
        return draw(shared, picker, rng, list, None, pick, excluded);
    };
    let side = ZoneSide::draw(rng, spill);
    zones.pick_preferring(side, |subset| {
        draw(shared, picker, rng, list, subset, pick, excluded)
    })
}

/// One draw over `list`, or over the list indices in `subset` when given:
/// the best of the configured `choices` random endpoints (see
/// [`P2c::pick_best_of`]), each scored by its standing cost (see
/// [`Endpoint::unary_candidate`]), or for a stream the least of all (see
/// [`P2c::pick_least`]), passing over `excluded`; returns a list index.
/// When the warm-up draw leaves nothing (every endpoint is new, as at
/// start-up), `pick.warm_up` is reset to 0 and all endpoints count.
fn draw(
    shared: &Shared,
    picker: &P2c,
    rng: &mut SmallRng,
    list: &[Arc<Endpoint>],
    subset: Option<&[u32]>,
    pick: &mut PickContext<'_>,
    excluded: Option<usize>,
) -> Option<usize> {
    let len = subset.map_or(list.len(), <[u32]>::len);
    let at = |k: usize| subset.map_or(k, |s| s[k] as usize);
    // The pick's time as the endpoints' pick views count it; split for
    // their weights (`PickTime`) only if a candidate needs it: a stream's
    // score, or a standing cost to work out again.
    let seconds = PickView::seconds_since(shared.origin, pick.now);
    let settings = &shared.pick_settings;
    let mut time: Option<PickTime> = None;
    loop {
        let chosen = if pick.stream {
            let time = *time.get_or_insert_with(|| PickTime::new(settings, seconds));
            picker.pick_least(rng, len, |k| {
                let i = at(k);
                if Some(i) == excluded {
                    return None;
                }
                list[i].candidate(&time, pick)
            })
        } else {
            let pick = &*pick;
            let prefetch = |k: usize| list[at(k)].prefetch();
            picker.pick_best_of_prefetching(
                rng,
                len,
                pick.score.choices,
                prefetch,
                // Inlined into the pick's loop over its candidates: a call
                // per candidate saved and restored registers around it.
                #[inline(always)]
                |k| {
                    let i = at(k);
                    if Some(i) == excluded {
                        return None;
                    }
                    let time = || *time.get_or_insert_with(|| PickTime::new(settings, seconds));
                    list[i].unary_candidate(seconds, pick, time, || shared.fleet())
                },
            )
        };
        if chosen.is_some() || pick.warm_up == 0.0 {
            return chosen.map(at);
        }
        pick.warm_up = 0.0;
    }
}

impl Service<Request<Body>> for Balancer {
    type Response = http::Response<ResponseBody>;
    type Error = crate::BoxError;
    type Future = ResponseFuture;

    /// Ready when the balancer knows an endpoint. With none (discovery has
    /// not answered yet, or removed them all), pending until discovery adds
    /// one, for at most [`BalancerConfig::discovery_wait`]; then ready, and
    /// the call fails at once with UNAVAILABLE naming the target.
    ///
    /// Ejected endpoints do not make the balancer unready: when too few are
    /// left, panic mode sends calls to every endpoint (see
    /// `docs/balancing.md`), so there is always somewhere to send. A
    /// connection is made on a call's behalf, and a call whose connection
    /// fails is re-picked; per-endpoint readiness is the call's wait.
    ///
    /// With health checking on, an endpoint whose health stream has not
    /// answered yet is not picked (as gRPC keeps it out of `READY`): while
    /// no endpoint is healthy and some have yet to answer, `poll_ready`
    /// waits for an answer, for at most `discovery_wait` as well.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.refresh();
        if crate::readiness::is_usable(&self.shared, &self.list) {
            self.readiness.ready();
            return Poll::Ready(Ok(()));
        }
        self.readiness.poll_wait(&self.shared, cx).map(Ok)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let now = tokio::time::Instant::now().into_std();
        let stream = self.shared.config.streaming.contains(request.uri().path());
        let key = self
            .shared
            .affinity
            .as_ref()
            .and_then(|a| a.key_hash(&request));
        // A unary call without a key may be handed back by a busy server,
        // when there is another endpoint to send it to.
        let hand_backs = if stream || key.is_some() || self.list.len() < 2 {
            0
        } else {
            self.shared.config.hand_backs
        };
        match self.pick(stream, now, key) {
            // The endpoint's channel sets the request's origin.
            Ok(call) => ResponseFuture::send(call, request, hand_backs),
            Err(e) => ResponseFuture::failed(e),
        }
    }
}

/// A [`Balancer`] handle that does not keep it alive; from
/// [`Balancer::downgrade`].
#[derive(Debug, Clone)]
pub struct WeakBalancer {
    shared: std::sync::Weak<Shared>,
}

impl WeakBalancer {
    /// The balancer, if a clone of it still exists somewhere.
    pub fn upgrade(&self) -> Option<Balancer> {
        self.shared.upgrade().map(Balancer::from_shared)
    }

    /// Whether the balancer is gone.
    pub fn is_dropped(&self) -> bool {
        self.shared.strong_count() == 0
    }
}
