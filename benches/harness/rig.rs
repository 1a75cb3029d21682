//! The rig: two runtimes, a fleet of real backends, and the monitor that
//! samples them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orca_lb_server::LoadRecorder;
use orca_lb_sim::{Action, Event, FiredEvent, Nanos, Scenario};
use orca_lb_testkit::{Backend, BackendConfig, ServiceTime, TestGreeter};
use parking_lot::Mutex;
use tokio::runtime::Runtime;
use tonic::Code;

use crate::attribution::Attribution;
use crate::keys::{self, Caches};
use crate::probe::ProbeState;
use orca_lb_benches::cpu::{CLIENT_PREFIX, Cores, CpuTimes, SERVER_PREFIX};

/// The servers' runtime and the clients', on threads of their own so that
/// each side's CPU time can be read apart.
#[derive(Debug)]
pub(crate) struct Rig {
    pub(crate) server: Runtime,
    pub(crate) client: Runtime,
}

impl Rig {
    pub(crate) fn new(server_threads: usize, client_threads: usize) -> std::io::Result<Rig> {
        let runtime = |threads: usize, name: String| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name(name)
                .enable_all()
                .build()
        };
        Ok(Rig {
            server: runtime(server_threads, format!("{SERVER_PREFIX}rt"))?,
            client: runtime(client_threads, format!("{CLIENT_PREFIX}rt"))?,
        })
    }
}

/// The scenario's backends as real tonic servers on 127.0.0.1, each with
/// the reporting layer and `capacity` worker slots, serving the test
/// greeter with the scenario's service time (a `tokio::time::sleep`).
#[derive(Debug)]
pub(crate) struct Fleet {
    backends: Vec<Backend>,
    base: Vec<ServiceTime>,
    capacities: Vec<usize>,
    /// With probes, each backend's probe layer.
    probes: Vec<Arc<ProbeState>>,
}

impl Fleet {
    /// Starts the backends on the server runtime. Each greeter's hook
    /// records the call number it serves in `attribution`; with `caches`
    /// (keyed calls), a call's key is looked up in its backend's cache when
    /// it is served, and a hit shortens its service time. With `probes`,
    /// each backend answers Prequal's probes (`probe`'s layer, outermost).
    pub(crate) fn spawn(
        runtime: &Runtime,
        scenario: &Scenario,
        attribution: &Arc<Attribution>,
        caches: Option<&Arc<Caches>>,
        probes: bool,
    ) -> Result<Fleet, String> {
        let mut fleet = Fleet {
            backends: Vec::new(),
            base: Vec::new(),
            capacities: Vec::new(),
            probes: Vec::new(),
        };
        for (b, group) in scenario.backend_groups().enumerate() {
            let st = service_time(&group.service_time)?;
            let attribution = attribution.clone();
            let name = format!("backend-{b}");
            let mut greeter =
                TestGreeter::new(&name)
                    .with_service_time(st)
                    .with_hook(move |request| {
                        if let Ok(call) = request.get_ref().name.parse::<u32>() {
                            attribution.record(call, b);
                        }
                    });
            if let Some(caches) = caches {
                let caches = caches.clone();
                greeter = greeter.with_work_factor(move |request| {
                    keys::key_of(request.metadata()).map_or(1.0, |key| {
                        let call = request.get_ref().name.parse::<u32>().ok();
                        caches.serve(b, call, key)
                    })
                });
            }
            let mut config = BackendConfig::named(&name);
            config.capacity = Some(group.capacity as usize);
            config.greeter = Some(greeter);
            config.max_stream_age = scenario
                .streams
                .as_ref()
                .and_then(|s| s.max_age_s)
                .map(Duration::from_secs_f64);
            if probes {
                let state = ProbeState::new();
                config.wrap = Some(state.wrap());
                fleet.probes.push(state);
            }
            let backend = runtime
                .block_on(Backend::spawn(config))
                .map_err(|e| format!("cannot start {name}: {e}"))?;
            fleet.backends.push(backend);
            fleet.base.push(st);
            fleet.capacities.push(group.capacity as usize);
        }
        Ok(fleet)
    }

    /// Probes the backends answered so far, in all (0 without probes).
    pub(crate) fn probes_answered(&self) -> u64 {
        self.probes.iter().map(|p| p.answered()).sum()
    }

    /// `http://127.0.0.1:PORT` of each backend, by index.
    pub(crate) fn uris(&self) -> Vec<String> {
        self.backends.iter().map(Backend::url).collect()
    }

    /// Schedules the scenario's events on the server runtime, at their
    /// times from `start`; each fired event is added to `fired`.
    pub(crate) fn schedule_events(
        &self,
        runtime: &Runtime,
        events: &[Event],
        start: Instant,
        fired: &Arc<Mutex<Vec<FiredEvent>>>,
    ) {
        for e in events {
            let greeters: Vec<(TestGreeter, ServiceTime)> = e
                .backends
                .iter()
                .map(|&b| (self.backends[b].greeter().clone(), self.base[b]))
                .collect();
            let e = e.clone();
            let fired = fired.clone();
            let at = start + Duration::from_secs_f64(e.at_s);
            runtime.spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                for (greeter, base) in &greeters {
                    apply(greeter, *base, &e);
                }
                fired.lock().push(FiredEvent {
                    at_s: start.elapsed().as_secs_f64(),
                    backends: e.backends.clone(),
                    action: e.action.name().to_owned(),
                });
            });
        }
    }

    /// What the monitor samples: each backend's load recorder and slots.
    pub(crate) fn monitor(&self) -> Monitor {
        Monitor {
            recorders: self.backends.iter().map(|b| b.recorder().clone()).collect(),
            capacities: self.capacities.clone(),
        }
    }
}

/// A scripted event on one backend's greeter. `fail_fast` answers
/// UNAVAILABLE at once (the simulator waits 1 ms); `recover` restores the
/// service time and stops failing; `join` changes nothing on the server
/// (it serves from the start; the clients learn of it at the event, see
/// `run.rs`).
fn apply(greeter: &TestGreeter, base: ServiceTime, e: &Event) {
    match e.action {
        Action::Slow => greeter.set_service_time(base.scaled(e.factor.unwrap_or(1.0))),
        Action::FailFast => greeter.set_failing(Some(Code::Unavailable)),
        Action::Recover => {
            greeter.set_failing(None);
            greeter.set_service_time(base);
        }
        Action::Join => {}
    }
}

/// The test greeter's form of a scenario's service time.
fn service_time(st: &orca_lb_sim::ServiceTime) -> Result<ServiceTime, String> {
    let ms = |v: f64| Duration::from_secs_f64(v / 1e3);
    match *st {
        orca_lb_sim::ServiceTime::Exponential { mean_ms } => {
            Ok(ServiceTime::Exponential(ms(mean_ms)))
        }
        orca_lb_sim::ServiceTime::ShiftedExponential { shift_ms, mean_ms } => {
            Ok(ServiceTime::ShiftedExponential {
                shift: ms(shift_ms),
                mean: ms(mean_ms),
            })
        }
        other => Err(format!(
            "service time {other:?}: the test greeter draws exponential and shifted exponential times only"
        )),
    }
}

/// Samples the backends' busy workers every millisecond, and the CPU
/// time of the client and server threads when the measurement starts and
/// ends.
#[derive(Debug)]
pub(crate) struct Monitor {
    recorders: Vec<LoadRecorder>,
    capacities: Vec<usize>,
}

/// What the monitor saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sampled {
    /// Busy worker time per backend over the measurement window,
    /// nanoseconds.
    pub(crate) busy_ns: Vec<u64>,
    /// CPU use over the measurement window.
    pub(crate) cores: Cores,
    /// Each backend's load, once a second for the whole run.
    pub(crate) load: Vec<LoadSample>,
    /// Open streams per backend, every [`STREAMS_EVERY`], from the start
    /// of the run.
    pub(crate) streams: Vec<(Nanos, Vec<u32>)>,
}

/// How often the monitor counts each backend's open streams.
pub(crate) const STREAMS_EVERY: Duration = Duration::from_millis(100);

/// One backend's load over one second: what it reported (as its next
/// response would carry it) and what the monitor measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub(crate) struct LoadSample {
    /// The end of the second, seconds from the start of the run.
    pub(crate) t_s: f64,
    pub(crate) backend: usize,
    /// `application_utilization` of its report.
    pub(crate) reported_utilization: f64,
    /// `rps_fractional` of its report.
    pub(crate) reported_rps: f64,
    /// `eps` of its report.
    pub(crate) reported_eps: f64,
    /// Busy worker time over the second, per slot.
    pub(crate) measured_utilization: f64,
}

/// How often the monitor samples the backends.
const SAMPLE_EVERY: Duration = Duration::from_millis(1);

impl Monitor {
    /// Runs on the calling thread from `start` until `to` after it;
    /// `[from, to)` is the measurement window.
    pub(crate) fn run(self, start: Instant, from: Nanos, to: Nanos) -> Sampled {
        let from = start + Duration::from_nanos(from);
        let to = start + Duration::from_nanos(to);
        let n = self.recorders.len();
        let mut busy_ns = vec![0u64; n];
        let mut second_ns = vec![0u64; n];
        let mut next_second = start + Duration::from_secs(1);
        let mut load = Vec::new();
        let mut streams = Vec::new();
        let mut next_streams = start + STREAMS_EVERY;
        let mut cpu_from: Option<(Instant, CpuTimes)> = None;
        if let Some(wait) = start.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut prev = Instant::now();
        loop {
            std::thread::sleep(SAMPLE_EVERY);
            let now = Instant::now();
            if now >= to {
                break;
            }
            if now >= from && cpu_from.is_none() {
                cpu_from = Some((now, CpuTimes::now()));
            }
            let dt = (now - prev).as_nanos() as u64;
            let in_window = now >= from;
            for (b, rec) in self.recorders.iter().enumerate() {
                // Calls holding a worker slot: in flight, less those
                // waiting for one and any streams.
                let busy = rec
                    .in_flight()
                    .saturating_sub(rec.queue_depth() + rec.active_streams())
                    .min(self.capacities[b]) as u64;
                second_ns[b] += busy * dt;
                if in_window {
                    busy_ns[b] += busy * dt;
                }
            }
            if now >= next_streams {
                let open = self
                    .recorders
                    .iter()
                    .map(|r| u32::try_from(r.active_streams()).unwrap_or(u32::MAX))
                    .collect();
                streams.push(((now - start).as_nanos() as Nanos, open));
                next_streams += STREAMS_EVERY;
            }
            if now >= next_second {
                for (b, rec) in self.recorders.iter().enumerate() {
                    let report = rec.report();
                    load.push(LoadSample {
                        t_s: (now - start).as_secs_f64(),
                        backend: b,
                        reported_utilization: report.application_utilization(),
                        reported_rps: report.qps(),
                        reported_eps: report.eps(),
                        measured_utilization: second_ns[b] as f64 / 1e9 / self.capacities[b] as f64,
                    });
                    second_ns[b] = 0;
                }
                next_second += Duration::from_secs(1);
            }
            prev = now;
        }
        let cores = match cpu_from {
            Some((at, cpu)) => {
                let now = Instant::now();
                CpuTimes::now().cores_since(&cpu, (now - at).as_nanos() as u64)
            }
            None => Cores::default(),
        };
        Sampled {
            busy_ns,
            cores,
            load,
            streams,
        }
    }
}
