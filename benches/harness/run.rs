//! One run: one policy, a fresh fleet, the whole schedule.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orca_lb_core::splitmix::splitmix64;
use orca_lb_sim::{Action, CallLog, Nanos, Scenario};
use orca_lb_testkit::pb::HelloRequest;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use crate::attribution::{Attribution, CallId, InCall, PickTarget, capture_picks};
use crate::keys::{CacheCounts, Caches, KEY_METADATA};
use crate::policy::{Client, Policy, Settings};
use crate::rig::{Fleet, LoadSample, Rig};
use crate::schedule::{Planned, PlannedStream};
use orca_lb_benches::cpu::{CLIENT_PREFIX, Cores};

/// How long before the first intended send time the run starts, so that
/// the load thread is waiting when it comes.
const LEAD: Duration = Duration::from_millis(200);

/// How long after the last deadline the harness waits for stragglers.
const GRACE: Duration = Duration::from_secs(5);

/// What a run measured besides the calls.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunStats {
    pub(crate) policy: String,
    pub(crate) repetition: u32,
    pub(crate) seed: u64,
    /// Calls meant for the measurement window.
    pub(crate) measured_calls: u64,
    /// Of those, calls no source could place on a backend.
    pub(crate) unattributed: u64,
    /// CPU over the measurement window.
    pub(crate) cores: Cores,
    /// How late the load thread handed calls to the client runtime after
    /// their intended send times, microseconds: p50, p99, max.
    pub(crate) send_lag_us: [f64; 3],
    /// Per backend, busy worker time over the calls it served successfully
    /// in the window; the median over the backends: the service time a
    /// typical backend actually gave (the sleep timer's resolution
    /// included).
    pub(crate) mean_service_ms: f64,
    /// With keyed calls: each backend's cache hits and misses over the
    /// whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cache: Option<Vec<CacheCounts>>,
    /// The mean factor the caches applied to the service times served (1
    /// without keyed calls): `mean_service_ms` over it is what a typical
    /// backend took per miss.
    pub(crate) service_factor: f64,
    /// With probes (`prequal`): probes the backends answered over the
    /// whole run, per call of the schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) probes_per_call: Option<f64>,
    /// Wall-clock seconds the run took, set-up included.
    pub(crate) wall_s: f64,
    /// Each backend's reported and measured load, once a second.
    pub(crate) load: Vec<LoadSample>,
}

/// A run's calls and its other numbers.
#[derive(Debug)]
pub(crate) struct RunOutcome {
    pub(crate) log: CallLog,
    pub(crate) stats: RunStats,
}

/// How often a stream's server sends a message.
const STREAM_MESSAGE_EVERY: Duration = Duration::from_millis(1000);

/// Shared by the call tasks of one run.
struct Calls {
    clients: Vec<Client>,
    /// Per stream attempt (a stream, or its reopening after its server
    /// ended it at its max age): its intended open time and whether it
    /// failed.
    streams: Mutex<Vec<(Nanos, bool)>>,
    start: Instant,
    deadline: Duration,
    /// Per call: 0 while in flight, `u64::MAX` on failure, else latency in
    /// nanoseconds + 1.
    outcomes: Box<[AtomicU64]>,
    concluded: AtomicUsize,
}

/// Failed.
const FAILED: u64 = u64::MAX;

/// Runs `policy` over `scenario` (as scaled) on a fresh fleet, sending the
/// calls of `schedule`.
#[allow(clippy::too_many_arguments, reason = "one run's inputs, each its own")]
pub(crate) fn run(
    rig: &Rig,
    scenario: &Scenario,
    policy: Policy,
    schedule: &Arc<Vec<Planned>>,
    streams: &[PlannedStream],
    seed: u64,
    repetition: u32,
    settings: &Settings,
) -> Result<RunOutcome, String> {
    let began = Instant::now();
    let attribution = Attribution::new(schedule.len());
    let caches = scenario
        .keys
        .as_ref()
        .map(|k| Arc::new(Caches::new(k, scenario.backend_count(), schedule.len())));
    let fleet = Fleet::spawn(
        &rig.server,
        scenario,
        &attribution,
        caches.as_ref(),
        policy.probes(),
    )?;
    let uris = fleet.uris();
    if policy.is_orca_lb() {
        capture_picks(Some(PickTarget {
            uris: uris.clone(),
            attribution: attribution.clone(),
        }));
    }
    // The backends the clients know: the first ones, and those that join
    // as they do.
    let (present, known) = watch::channel(scenario.initial_backends());
    let clients: Vec<Client> = rig.client.block_on(async {
        let mut clients = Vec::new();
        for c in 0..u64::from(scenario.clients) {
            let seed = splitmix64(seed ^ splitmix64(1000 + c));
            clients.push(
                policy
                    .client(&uris, &known, &attribution, seed, settings)
                    .await?,
            );
        }
        Ok::<_, String>(clients)
    })?;

    let start = Instant::now() + LEAD;
    let calls = Arc::new(Calls {
        clients,
        start,
        deadline: Duration::from_secs_f64(scenario.deadline_ms / 1e3),
        outcomes: (0..schedule.len()).map(|_| AtomicU64::new(0)).collect(),
        concluded: AtomicUsize::new(0),
        streams: Mutex::new(Vec::new()),
    });
    let fired = Arc::new(Mutex::new(Vec::new()));
    fleet.schedule_events(&rig.server, &scenario.events, start, &fired);
    for e in scenario.events.iter().filter(|e| e.action == Action::Join) {
        let at = start + Duration::from_secs_f64(e.at_s);
        let count = e.backends.iter().max().map_or(0, |&b| b + 1);
        let present = present.clone();
        rig.client.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            present.send_modify(|n| *n = (*n).max(count));
        });
    }
    let run_end = start + Duration::from_nanos(scenario.end());
    let stream_tasks: Vec<_> = streams
        .iter()
        .map(|&s| rig.client.spawn(stream(calls.clone(), s, run_end)))
        .collect();
    let monitor = fleet.monitor();
    let (from, to) = (scenario.measure_start(), scenario.end());
    let monitor = std::thread::Builder::new()
        .name("harness-monitor".into())
        .spawn(move || monitor.run(start, from, to))
        .map_err(|e| e.to_string())?;
    let load = {
        let calls = calls.clone();
        let schedule = schedule.clone();
        let handle = rig.client.handle().clone();
        std::thread::Builder::new()
            .name(format!("{CLIENT_PREFIX}load"))
            .spawn(move || drive(&handle, &calls, &schedule))
            .map_err(|e| e.to_string())?
    };
    let mut lags = load.join().map_err(|_| "the load thread panicked")?;
    let sampled = monitor.join().map_err(|_| "the monitor thread panicked")?;
    let give_up = start + Duration::from_nanos(scenario.end()) + calls.deadline + GRACE;
    while calls.concluded.load(Ordering::Acquire) < schedule.len() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(20));
    }
    rig.client.block_on(async {
        let all = async {
            for task in stream_tasks {
                let _ = task.await;
            }
        };
        let stragglers = tokio::time::timeout_at(give_up.into(), all);
        if stragglers.await.is_err() {
            tracing::warn!("streams still open after the run");
        }
    });
    drop(present);
    capture_picks(None);

    let mut log = CallLog::new(scenario);
    let mut measured_calls = 0;
    let mut unattributed = 0;
    let mut served = vec![0u64; sampled.busy_ns.len()];
    for (i, p) in schedule.iter().enumerate() {
        let measured = (from..to).contains(&p.t0);
        let backend = attribution.get(i);
        match backend {
            Some(b) => log.sent(p.t0, b),
            None if measured => unattributed += 1,
            None => {}
        }
        let latency = match calls.outcomes[i].load(Ordering::Acquire) {
            0 | FAILED => None,
            v => Some(v - 1),
        };
        if measured {
            measured_calls += 1;
            if let (Some(b), Some(_)) = (backend, latency) {
                served[b] += 1;
            }
        }
        log.concluded(p.t0, latency);
        if let Some(hit) = caches.as_ref().and_then(|c| c.hit(i)) {
            log.cache_access(p.t0, hit);
        }
    }
    let window = to - from;
    for (b, &busy) in sampled.busy_ns.iter().enumerate() {
        // `busy` only takes the part of an interval inside the window:
        // hand it the total in pieces no longer than the window.
        let mut left = busy;
        while left > 0 {
            let piece = left.min(window);
            log.busy(b, from, from + piece);
            left -= piece;
        }
    }
    for &(t0, failed) in calls.streams.lock().iter() {
        log.stream_ended(t0, failed);
    }
    for (t, open) in &sampled.streams {
        log.sample_streams(*t, open);
    }
    let mut fired = std::mem::take(&mut *fired.lock());
    fired.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    for e in fired {
        log.fired(e);
    }
    let mut service_ms: Vec<f64> = sampled
        .busy_ns
        .iter()
        .zip(&served)
        .filter(|(_, n)| **n > 0)
        .map(|(&busy, &n)| busy as f64 / n as f64 / 1e6)
        .collect();
    service_ms.sort_by(f64::total_cmp);
    lags.sort_unstable();
    let lag = |q: f64| {
        lags.get(((q * lags.len() as f64) as usize).min(lags.len().saturating_sub(1)))
            .map_or(0.0, |&ns| ns as f64 / 1e3)
    };
    let probes_per_call = policy
        .probes()
        .then(|| fleet.probes_answered() as f64 / schedule.len().max(1) as f64);
    // Close the clients' connections before the servers go.
    drop(calls);
    std::thread::sleep(Duration::from_millis(200));
    drop(fleet);
    Ok(RunOutcome {
        log,
        stats: RunStats {
            policy: policy.name().to_owned(),
            repetition,
            seed,
            measured_calls,
            unattributed,
            cores: sampled.cores,
            send_lag_us: [
                lag(0.5),
                lag(0.99),
                lags.last().map_or(0.0, |&ns| ns as f64 / 1e3),
            ],
            mean_service_ms: service_ms.get(service_ms.len() / 2).copied().unwrap_or(0.0),
            cache: caches.as_ref().map(|c| c.counts()),
            service_factor: caches.as_ref().map_or(1.0, |c| c.mean_factor()),
            probes_per_call,
            wall_s: began.elapsed().as_secs_f64(),
            load: sampled.load,
        },
    })
}

/// The load thread: sleeps until each call's intended send time and hands
/// the call to the client runtime, never waiting for earlier calls.
/// Returns how late each hand-over was, nanoseconds.
fn drive(handle: &tokio::runtime::Handle, calls: &Arc<Calls>, schedule: &[Planned]) -> Vec<u64> {
    let mut lags = Vec::with_capacity(schedule.len());
    for (i, p) in schedule.iter().enumerate() {
        let at = calls.start + Duration::from_nanos(p.t0);
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        lags.push(at.elapsed().as_nanos() as u64);
        handle.spawn(call(calls.clone(), i, *p));
    }
    lags
}

/// One long-lived stream: opened at its intended time, read until its
/// server ends it, which the request asks for after its duration (in whole
/// messages) or the end of the run, whichever comes first. A stream its
/// server ends at its max age is opened again at once, as a caller would,
/// for the rest of its duration. Its open time and outcome, per opening,
/// go to `calls.streams`.
async fn stream(calls: Arc<Calls>, s: PlannedStream, run_end: Instant) {
    let mut t0 = s.t0;
    tokio::time::sleep_until((calls.start + Duration::from_nanos(t0)).into()).await;
    let end = (calls.start + Duration::from_nanos(s.t0 + s.open_for)).min(run_end);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let count = (left.as_millis() / STREAM_MESSAGE_EVERY.as_millis()).max(1);
        let request = HelloRequest {
            name: "stream".into(),
            count: u32::try_from(count).unwrap_or(u32::MAX),
            work_ms: STREAM_MESSAGE_EVERY.as_millis() as u32,
            ..Default::default()
        };
        let mut client = calls.clients[s.client as usize].clone();
        let read = async move {
            let mut replies = client.say_hello_stream(request).await?.into_inner();
            while replies.message().await?.is_some() {}
            Ok::<(), tonic::Status>(())
        };
        let outcome = tokio::time::timeout_at((run_end + GRACE).into(), read).await;
        let reopen = match &outcome {
            Ok(Err(status)) => status
                .metadata()
                .get(orca_lb_proto::STREAM_ENDED_TRAILER)
                .is_some_and(|v| v.as_bytes() == orca_lb_proto::STREAM_ENDED_MAX_AGE.as_bytes()),
            _ => false,
        };
        let failed = !reopen && !matches!(outcome, Ok(Ok(())));
        calls.streams.lock().push((t0, failed));
        if !reopen || Instant::now() + STREAM_MESSAGE_EVERY >= end {
            return;
        }
        t0 = (Instant::now() - calls.start).as_nanos() as Nanos;
    }
}

/// One unary call, its deadline counted from its intended send time and
/// propagated as `grpc-timeout`, its key (if keyed) as the
/// [`KEY_METADATA`] entry. No retries.
async fn call(calls: Arc<Calls>, i: usize, p: Planned) {
    let intended = calls.start + Duration::from_nanos(p.t0);
    let deadline = intended + calls.deadline;
    let mut client = calls.clients[p.client as usize].clone();
    let mut request = tonic::Request::new(HelloRequest {
        name: i.to_string(),
        ..Default::default()
    });
    if let Some(key) = p.key {
        request.metadata_mut().insert(KEY_METADATA, key.into());
    }
    request.set_timeout(deadline.saturating_duration_since(Instant::now()));
    request.extensions_mut().insert(CallId(i as u32));
    let reply = InCall::new(i as u32, async move { client.say_hello(request).await });
    let result = tokio::time::timeout_at(deadline.into(), reply).await;
    let outcome = match result {
        Ok(Ok(_)) => (intended.elapsed().as_nanos() as u64).saturating_add(1),
        _ => FAILED,
    };
    calls.outcomes[i].store(outcome, Ordering::Release);
    calls.concluded.fetch_add(1, Ordering::AcqRel);
}
