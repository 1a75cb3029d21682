//! Prequal (Wydrowski et al., NSDI 2024) over tonic channels: asynchronous
//! probes of each backend's requests in flight and latency, picked by the
//! hot-cold lexicographic rule. The simulator's `prequal`, with its
//! parameters; the backends answer the probes with `probe`'s layer.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use orca_lb_client::BoxError;
use orca_lb_sim::{Nanos, SECOND};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt;
use tower_service::Service;

use super::{BoxFuture, CallService};
use crate::attribution::{Attribution, CallId};
use crate::probe;

/// Probes sent per query, on average (a fraction is sent with that
/// probability). The paper's tail worsens below one probe per query.
const PROBES_PER_QUERY: f64 = 3.0;

/// Most probe results kept.
const POOL_SIZE: usize = 16;

/// A probe result older than this is dropped.
const MAX_AGE: Nanos = SECOND;

/// An entry is hot when its RIF is above this quantile of recent RIFs.
const HOT_QUANTILE: f64 = 0.6;

/// Recent probe RIFs kept for the quantile.
const RIF_HISTORY: usize = 4 * POOL_SIZE;

/// A probe not answered by then is given up (its answer would be stale:
/// the pool keeps answers for [`MAX_AGE`]). Not in the simulator, whose
/// backends always answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A probe's answer, as the pool holds it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    backend: usize,
    /// Calls in flight the server reported, plus this client's picks of it
    /// since.
    rif: u32,
    /// The server's latency estimate at its RIF then (0: none yet).
    latency: Nanos,
    received: Nanos,
}

/// One client's Prequal balancer: the simulator's `Prequal`, line for line.
///
/// Each query sends [`PROBES_PER_QUERY`] probes to random distinct
/// backends; each answer (the backend's calls in flight and the median
/// latency it recently saw at that many) enters a pool of at most
/// [`POOL_SIZE`] entries, replacing an older one from the same backend or,
/// when full, the oldest. Entries older than [`MAX_AGE`] are dropped. A
/// pick takes, among the pool, the lowest latency among the cold entries
/// (RIF at or below the [`HOT_QUANTILE`] of the last [`RIF_HISTORY`] probed
/// RIFs), or the lowest RIF when all are hot, and adds 1 to that entry's
/// RIF. After each pick one entry leaves the pool, alternately the oldest
/// and the worst. With an empty pool the pick is uniformly random.
#[derive(Debug)]
struct Prequal {
    len: usize,
    rng: SmallRng,
    pool: Vec<Entry>,
    rifs: [u32; RIF_HISTORY],
    rifs_seen: usize,
    remove_oldest_next: bool,
    /// The quantile's buffer.
    sorted: Vec<u32>,
}

impl Prequal {
    fn new(len: usize, seed: u64) -> Self {
        Self {
            len,
            rng: SmallRng::seed_from_u64(seed),
            pool: Vec::with_capacity(POOL_SIZE),
            rifs: [0; RIF_HISTORY],
            rifs_seen: 0,
            remove_oldest_next: true,
            sorted: Vec::with_capacity(RIF_HISTORY),
        }
    }

    /// The hot threshold: the [`HOT_QUANTILE`] of recent probed RIFs.
    fn hot_threshold(&mut self) -> u32 {
        let n = self.rifs_seen.min(RIF_HISTORY);
        if n == 0 {
            return u32::MAX;
        }
        self.sorted.clear();
        self.sorted.extend_from_slice(&self.rifs[..n]);
        self.sorted.sort_unstable();
        let rank = ((HOT_QUANTILE * n as f64).ceil() as usize).clamp(1, n) - 1;
        self.sorted[rank]
    }

    /// The pool's index of the best entry (`best`) or the worst, by the
    /// hot-cold rule with `threshold`.
    fn rank(&self, threshold: u32, best: bool) -> Option<usize> {
        let all_hot = self.pool.iter().all(|e| e.rif > threshold);
        // Lower key is better: (RIF) when all are hot, else cold entries
        // by (latency, RIF) before hot ones by RIF.
        let key = |e: &Entry| -> (u8, u64, u32) {
            if all_hot {
                (0, u64::from(e.rif), 0)
            } else if e.rif <= threshold {
                (0, e.latency, e.rif)
            } else {
                (1, u64::from(e.rif), 0)
            }
        };
        let keyed = self.pool.iter().enumerate().map(|(i, e)| (key(e), i));
        if best {
            keyed.min().map(|(_, i)| i)
        } else {
            keyed.max().map(|(_, i)| i)
        }
    }

    fn oldest(&self) -> Option<usize> {
        self.pool
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.received)
            .map(|(i, _)| i)
    }

    /// The backend of a new call at `now`, counted in its entry's RIF.
    fn pick(&mut self, now: Nanos) -> usize {
        self.pool
            .retain(|e| now.saturating_sub(e.received) <= MAX_AGE);
        let threshold = self.hot_threshold();
        let backend = match self.rank(threshold, true) {
            Some(i) => {
                self.pool[i].rif += 1;
                self.pool[i].backend
            }
            None => self.rng.random_range(0..self.len),
        };
        // One entry leaves per query: alternately the oldest and the worst.
        let leaving = if self.remove_oldest_next {
            self.oldest()
        } else {
            self.rank(threshold, false)
        };
        if let Some(i) = leaving {
            self.pool.swap_remove(i);
            self.remove_oldest_next = !self.remove_oldest_next;
        }
        backend
    }

    /// The backends to probe after a pick, pushed onto `out`.
    fn probes(&mut self, out: &mut Vec<usize>) {
        let whole = PROBES_PER_QUERY.floor();
        let extra = self.rng.random::<f64>() < PROBES_PER_QUERY - whole;
        let k = (whole as usize + usize::from(extra)).min(self.len);
        let start = out.len();
        while out.len() - start < k {
            let b = self.rng.random_range(0..self.len);
            if !out[start..].contains(&b) {
                out.push(b);
            }
        }
    }

    /// A probe's answer from `backend`, received at `now`.
    fn probe_reply(&mut self, backend: usize, rif: u32, latency: Option<Nanos>, now: Nanos) {
        self.rifs[self.rifs_seen % RIF_HISTORY] = rif;
        self.rifs_seen += 1;
        let entry = Entry {
            backend,
            rif,
            latency: latency.unwrap_or(0),
            received: now,
        };
        if let Some(e) = self.pool.iter_mut().find(|e| e.backend == backend) {
            *e = entry;
        } else if self.pool.len() < POOL_SIZE {
            self.pool.push(entry);
        } else if let Some(i) = self.oldest() {
            self.pool[i] = entry;
        }
    }
}

/// Each call goes where the client's pool says; then the probes of that
/// query go out on tasks of their own, each over its backend's channel,
/// and their answers enter the pool as they come.
///
/// Over the first `present` channels, and each further one as `present`
/// grows (a backend that joins is probed like the others from then on).
pub(crate) fn service(
    channels: Vec<Channel>,
    attribution: Arc<Attribution>,
    seed: u64,
    present: watch::Receiver<usize>,
) -> CallService {
    let len = (*present.borrow()).min(channels.len());
    super::boxed(PrequalService {
        state: Arc::new(Mutex::new(Prequal::new(len, seed))),
        channels: channels.into(),
        attribution,
        present,
        epoch: Instant::now(),
    })
}

#[derive(Debug, Clone)]
struct PrequalService {
    channels: Arc<[Channel]>,
    state: Arc<Mutex<Prequal>>,
    attribution: Arc<Attribution>,
    present: watch::Receiver<usize>,
    /// The pool's clock starts here.
    epoch: Instant,
}

impl Service<http::Request<Body>> for PrequalService {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is per channel: the call waits on its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let len = (*self.present.borrow()).min(self.channels.len());
        let now = self.epoch.elapsed().as_nanos() as Nanos;
        let mut targets = Vec::with_capacity(PROBES_PER_QUERY.ceil() as usize);
        let i = {
            let mut state = self.state.lock();
            state.len = len;
            let i = state.pick(now);
            state.probes(&mut targets);
            i
        };
        if let Some(CallId(id)) = request.extensions().get::<CallId>() {
            self.attribution.record(*id, i);
        }
        for b in targets {
            tokio::spawn(send_probe(
                self.channels[b].clone(),
                self.state.clone(),
                b,
                self.epoch,
            ));
        }
        let channel = self.channels[i].clone();
        Box::pin(async move { channel.oneshot(request).await.map_err(BoxError::from) })
    }
}

/// Probes `backend` over its channel and hands the answer to the pool.
async fn send_probe(channel: Channel, state: Arc<Mutex<Prequal>>, backend: usize, epoch: Instant) {
    let answer = tokio::time::timeout(PROBE_TIMEOUT, channel.oneshot(probe::probe_request())).await;
    let Ok(Ok(response)) = answer else { return };
    let Some((rif, latency)) = probe::read_answer(response.headers()) else {
        return;
    };
    let now = epoch.elapsed().as_nanos() as Nanos;
    state.lock().probe_reply(backend, rif, latency, now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_lowest_latency_wins_and_its_rif_grows() {
        let mut p = Prequal::new(4, 1);
        // RIFs 1, 2, 9, 10: the 0.6 quantile is 9, so backend 3 is hot.
        p.probe_reply(0, 1, Some(50), 0);
        p.probe_reply(1, 2, Some(20), 0);
        p.probe_reply(2, 9, Some(30), 0);
        p.probe_reply(3, 10, Some(1), 0);
        assert_eq!(p.pick(1), 1, "coldest latency");
        let e = p.pool.iter().find(|e| e.backend == 1).unwrap();
        assert_eq!(e.rif, 3, "own pick counted");
        assert_eq!(p.pool.len(), 3, "one entry removed per query");
    }

    #[test]
    fn all_hot_takes_the_lowest_rif_and_old_entries_age_out() {
        let mut p = Prequal::new(3, 1);
        for _ in 0..RIF_HISTORY {
            p.probe_reply(1, 0, None, 0);
        }
        p.pool.clear();
        p.pool.push(Entry {
            backend: 0,
            rif: 5,
            latency: 1,
            received: 0,
        });
        p.pool.push(Entry {
            backend: 2,
            rif: 3,
            latency: 9,
            received: 0,
        });
        assert_eq!(p.pick(10), 2);
        p.pool.clear();
        p.pool.push(Entry {
            backend: 1,
            rif: 0,
            latency: 0,
            received: 0,
        });
        p.pick(MAX_AGE + 1);
        assert!(p.pool.is_empty(), "aged out");
    }

    #[test]
    fn probes_go_to_distinct_backends() {
        let mut p = Prequal::new(3, 7);
        let mut out = Vec::new();
        for _ in 0..50 {
            out.clear();
            p.probes(&mut out);
            assert_eq!(out.len(), 3);
            let mut s = out.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 3);
        }
    }
}
