//! The discrete-event loop of one policy over one scenario.

mod queue;

use std::collections::VecDeque;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use self::queue::EventQueue;
use orca_lb_core::load_model::LoadSnapshot;
use orca_lb_core::splitmix::{GOLDEN_GAMMA, mix64};

use crate::backend::{Backend, Job, SAMPLE_INTERVAL, decoded_report};
use crate::call::{Call, CallRef, Calls};
use crate::central_queue::CentralQueue;
use crate::clock::{Clock, MILLISECOND, Nanos, SECOND, secs, to_secs};
use crate::keys::{KeyCache, ZipfKeys};
use crate::measurements::Measurements;
use crate::policy::{Client, ClientZones, Done, Policy};
use crate::results::FiredEvent;
use crate::route::Route;
use crate::scenario::{Action, Scenario};
use crate::service_time::Draw;

/// How long a failing backend takes to answer UNAVAILABLE.
const FAIL_FAST: Nanos = MILLISECOND;

/// How often the spread of open streams is sampled after a scale-out.
const BALANCE_INTERVAL: Nanos = 100 * MILLISECOND;

/// What happens next.
#[derive(Debug)]
enum Ev {
    /// The next unary call is due.
    Arrival,
    /// The next stream is due.
    StreamArrival,
    /// One of the streams opened at the start is due.
    InitialStream,
    /// A call reaches its backend.
    ServerArrive { backend: usize, job: Job },
    /// A call reaches the limit's central queue.
    CentralQueueArrive { job: Job },
    /// A worker finishes a call that took `service`.
    ServiceDone {
        backend: usize,
        job: Job,
        service: Nanos,
    },
    /// A worker drops a call it was serving: the client's deadline reached
    /// the server after `ran` of service.
    ServiceCut { backend: usize, ran: Nanos },
    /// A failing backend answers.
    FailFastDone { backend: usize, job: Job },
    /// A stream's server ends it; at its max age when `reopen` is some:
    /// the client opens it again for the rest of its duration.
    StreamEnd {
        backend: usize,
        job: Job,
        reopen: Option<Reopen>,
    },
    /// A response reaches its client.
    Response {
        call: CallRef,
        failed: bool,
        report: Option<LoadSnapshot>,
        reopen: Option<Reopen>,
        /// The server handed the call back unserved: its random numbers
        /// and key, for the client to send it again.
        handed_back: Option<(Draw, Option<u32>)>,
    },
    /// The spread of open streams is due for a sample (after a scale-out).
    Balance,
    /// A client's probe reaches a backend (Prequal).
    ProbeArrive { client: usize, backend: usize },
    /// A probe's answer reaches its client.
    ProbeReply {
        client: usize,
        backend: usize,
        rif: u32,
        latency: Option<Nanos>,
    },
    /// A client's periodic upkeep.
    Tick { client: usize, every: Nanos },
    /// A client's out-of-band reports are due.
    Oob { client: usize, every: Nanos },
    /// The servers' samplers advance their rate windows.
    Sample,
    /// A scripted event.
    Script { index: usize },
}

/// A stream its server ended at its max age, to be opened again.
#[derive(Debug, Clone, Copy)]
struct Reopen {
    draw: Draw,
    /// How much longer it was meant to stay open.
    rest: Nanos,
}

/// Seeds for the random streams of a run. The arrival and setup streams do
/// not depend on the policy, so every policy sees the same calls.
fn seed_for(seed: u64, stream: u64) -> u64 {
    mix64(seed ^ stream.wrapping_mul(GOLDEN_GAMMA))
}

/// One policy's run over a scenario.
pub(crate) struct Run<'a> {
    scenario: &'a Scenario,
    queue: EventQueue<Ev>,
    backends: Vec<Backend>,
    clients: Vec<Box<dyn Client>>,
    /// Cumulative call-rate weights of the clients, when not all equal.
    client_weights: Option<Vec<f64>>,
    /// Backends a client probes after a pick (reused).
    probe_targets: Vec<usize>,
    /// The limit's queue; `None` when clients balance.
    central: Option<CentralQueue>,
    calls: Calls,
    deadlines: VecDeque<(Nanos, CallRef)>,
    arrivals: SmallRng,
    stream_arrivals: SmallRng,
    /// The jitter of stream max ages.
    ages: SmallRng,
    /// Backends `0..present` are in the fleet; the rest join later.
    present: usize,
    measurements: Measurements,
    reads_reports: bool,
    /// The servers hand back a unary call its client offers when no worker
    /// is free and at least this many calls wait.
    hand_back_queue_depth: Option<u32>,
    delay: Nanos,
    /// With zones: each backend's and each client's zone (as an index), and
    /// the extra one-way delay between zones.
    zones: Option<ZoneMap>,
    deadline: Nanos,
    end: Nanos,
    /// With keyed calls: the key distribution, its own random stream (the
    /// same keys for every policy), each backend's cache and the service
    /// time factor of a hit.
    keys: Option<KeyedCalls>,
}

/// Keyed calls and the backends' caches.
struct KeyedCalls {
    zipf: ZipfKeys,
    rng: SmallRng,
    caches: Vec<KeyCache>,
    hit_factor: f64,
}

/// Who runs in which zone, by index into the zone names.
struct ZoneMap {
    backends: Vec<u16>,
    clients: Vec<u16>,
    cross: Nanos,
}

impl ZoneMap {
    fn new(scenario: &Scenario) -> Option<ZoneMap> {
        let z = scenario.zones.as_ref()?;
        let mut names: Vec<String> = Vec::new();
        let mut id = |name: &str| -> u16 {
            let i = names.iter().position(|n| n == name).unwrap_or_else(|| {
                names.push(name.to_owned());
                names.len() - 1
            });
            u16::try_from(i).expect("fewer than 65536 zones")
        };
        let backends = z.backends.iter().map(|n| id(n)).collect();
        let clients = (0..scenario.clients as usize)
            .map(|c| id(z.client(c)))
            .collect();
        Some(ZoneMap {
            backends,
            clients,
            cross: z.cross_zone_delay(),
        })
    }

    fn is_cross(&self, client: usize, backend: usize) -> bool {
        self.clients[client] != self.backends[backend]
    }
}

impl<'a> Run<'a> {
    pub(crate) fn new(scenario: &'a Scenario, policy: &Policy, seed: u64) -> Self {
        let clock = Clock::new();
        let present = scenario.initial_backends();
        let backends: Vec<Backend> = scenario
            .backend_groups()
            .enumerate()
            .map(|(i, g)| {
                let mut b = Backend::new(g.capacity, g.service_time, clock);
                b.queue_in_utilization = scenario.sim.utilization_includes_queue;
                b.joined = i < present;
                b
            })
            .collect();
        let mut setup = SmallRng::seed_from_u64(seed_for(seed, 3));
        let mut queue = EventQueue::new();
        let (clients, central) = if policy.is_limit() {
            (Vec::new(), Some(CentralQueue::new(&backends)))
        } else {
            let oob = scenario.sim.oob_period_ms.map(crate::clock::millis);
            let mixed = scenario.mixed_with.as_ref().map(|name| {
                Policy::parse_list(name, scenario)
                    .expect("checked by Scenario::validate")
                    .remove(0)
            });
            let k = u64::from(scenario.mixed_clients());
            let clients: Vec<Box<dyn Client>> = (0..u64::from(scenario.clients))
                .map(|c| {
                    let p = match &mixed {
                        Some(m) if c < k => m,
                        _ => policy,
                    };
                    let zones = scenario.zones.as_ref().map(|z| {
                        let zone = |name: &str| {
                            orca_lb_core::Zone::new(name).expect("checked by Scenario::validate")
                        };
                        ClientZones {
                            local: zone(z.client(c as usize)),
                            backends: z.backends.iter().map(|n| zone(n)).collect(),
                        }
                    });
                    p.client(
                        present,
                        scenario.clients,
                        seed_for(seed, 1000 + c),
                        clock,
                        oob,
                        zones,
                    )
                })
                .collect();
            for (c, client) in clients.iter().enumerate() {
                // Each client's tasks start at their own phase.
                if let Some(every) = client.tick_interval() {
                    queue.push(setup.random_range(0..every), Ev::Tick { client: c, every });
                }
                if let Some(every) = client.oob_period() {
                    queue.push(setup.random_range(0..every), Ev::Oob { client: c, every });
                }
            }
            (clients, None)
        };
        let reads_reports = clients.iter().any(|c| c.reads_reports());
        let client_weights = (!scenario.client_weights.is_empty()).then(|| {
            let mut sum = 0.0;
            scenario
                .client_rate_weights()
                .into_iter()
                .map(|w| {
                    sum += w;
                    sum
                })
                .collect()
        });
        let mut arrivals = SmallRng::seed_from_u64(seed_for(seed, 1));
        let mut stream_arrivals = SmallRng::seed_from_u64(seed_for(seed, 2));
        // Each process's first call comes one inter-arrival time in.
        queue.push(exp_gap(&mut arrivals, scenario.rate), Ev::Arrival);
        if let Some(s) = &scenario.streams {
            queue.push(exp_gap(&mut stream_arrivals, s.rate), Ev::StreamArrival);
            for _ in 0..s.initial {
                queue.push(stream_arrivals.random_range(0..SECOND), Ev::InitialStream);
            }
        }
        queue.push(SAMPLE_INTERVAL, Ev::Sample);
        for (index, e) in scenario.events.iter().enumerate() {
            queue.push(secs(e.at_s), Ev::Script { index });
        }
        let join = scenario.first_join().filter(|_| scenario.streams.is_some());
        if let Some(at) = join {
            queue.push(at, Ev::Balance);
        }
        let end = scenario.end();
        let mut measurements = Measurements::for_scenario(scenario);
        if let Some(other) = &scenario.mixed_with
            && !policy.is_limit()
        {
            let k = scenario.mixed_clients();
            measurements.split_clients(
                [
                    format!("{other} ({k} clients)"),
                    format!("{} ({} clients)", policy.name(), scenario.clients - k),
                ],
                k,
            );
        }
        Self {
            scenario,
            queue,
            backends,
            clients,
            client_weights,
            probe_targets: Vec::new(),
            central,
            calls: Calls::default(),
            deadlines: VecDeque::new(),
            arrivals,
            stream_arrivals,
            ages: SmallRng::seed_from_u64(seed_for(seed, 4)),
            present,
            measurements,
            reads_reports,
            hand_back_queue_depth: scenario.sim.hand_back_queue_depth,
            delay: scenario.network_delay(),
            zones: ZoneMap::new(scenario),
            deadline: scenario.deadline(),
            end,
            keys: scenario.keys.as_ref().map(|k| KeyedCalls {
                zipf: ZipfKeys::new(k.count, k.zipf_s),
                rng: SmallRng::seed_from_u64(seed_for(seed, 5)),
                caches: (0..scenario.backend_count())
                    .map(|_| KeyCache::new(k.cache_size))
                    .collect(),
                hit_factor: k.hit_factor,
            }),
        }
    }

    /// Runs to the end and returns what was measured.
    pub(crate) fn run(mut self) -> Measurements {
        // Every measured call ends by its deadline.
        let cross = self.zones.as_ref().map_or(0, |z| z.cross);
        let stop = self.end + self.deadline + 2 * (self.delay + cross) + FAIL_FAST;
        loop {
            let next_event = self.queue.next_at().unwrap_or(Nanos::MAX);
            let next_deadline = self.deadlines.front().map_or(Nanos::MAX, |d| d.0);
            if next_deadline <= next_event {
                if next_deadline > stop {
                    break;
                }
                let (at, call) = self.deadlines.pop_front().expect("peeked");
                self.on_deadline(at, call);
            } else {
                if next_event > stop {
                    break;
                }
                let (now, ev) = self.queue.pop().expect("peeked");
                self.handle(now, ev);
            }
        }
        self.measurements
    }

    fn handle(&mut self, now: Nanos, ev: Ev) {
        match ev {
            Ev::Arrival => self.on_arrival(now),
            Ev::StreamArrival => self.on_stream_arrival(now, true),
            Ev::InitialStream => self.on_stream_arrival(now, false),
            Ev::ServerArrive { backend, job } => self.on_server_arrive(now, backend, job),
            Ev::CentralQueueArrive { job } => {
                let central = self.central.as_mut().expect("limit mode");
                central.arrive(job);
                self.dispatch_central(now);
            }
            Ev::ServiceDone {
                backend,
                job,
                service,
            } => self.on_service_done(now, backend, job, service),
            Ev::ServiceCut { backend, ran } => {
                let b = &mut self.backends[backend];
                b.abandon_service(ran);
                b.call_finished(false, true);
                // No response: its client gave up at the deadline.
                self.worker_freed(now, backend);
            }
            Ev::FailFastDone { backend, job } => {
                let stream = job.stream_for > 0;
                self.backends[backend].call_finished(stream, true);
                self.respond(now, backend, job, true);
            }
            Ev::StreamEnd {
                backend,
                job,
                reopen,
            } => {
                self.backends[backend].call_finished(true, false);
                self.respond_reopen(now, backend, job, false, reopen);
            }
            Ev::Response {
                call,
                failed,
                report,
                reopen,
                handed_back: Some((draw, key)),
            } => {
                debug_assert!(!failed && reopen.is_none());
                self.on_handed_back(now, call, report, draw, key);
            }
            Ev::Response {
                call,
                failed,
                report,
                reopen,
                handed_back: None,
            } => self.on_response(now, call, failed, report, reopen),
            Ev::Balance => {
                self.measurements
                    .sample_balance(now, self.backends.iter().map(Backend::streams));
                let next = now + BALANCE_INTERVAL;
                if next < self.end {
                    self.queue.push(next, Ev::Balance);
                }
            }
            Ev::ProbeArrive { client, backend } => {
                let (rif, latency) = self.backends[backend].probe();
                self.queue.push(
                    now + self.delay_between(client, backend),
                    Ev::ProbeReply {
                        client,
                        backend,
                        rif,
                        latency,
                    },
                );
            }
            Ev::ProbeReply {
                client,
                backend,
                rif,
                latency,
            } => self.clients[client].probe_reply(backend, rif, latency, now),
            Ev::Tick { client, every } => {
                self.clients[client].tick(now);
                self.queue.push(now + every, Ev::Tick { client, every });
            }
            Ev::Oob { client, every } => {
                for b in 0..self.present {
                    let report = decoded_report(&self.backends[b].snapshot(now));
                    self.clients[client].oob_report(b, &report, now);
                }
                self.queue.push(now + every, Ev::Oob { client, every });
            }
            Ev::Sample => {
                for b in &mut self.backends {
                    b.advance(now);
                }
                self.measurements
                    .sample_streams(now, self.backends.iter().map(Backend::streams));
                self.queue.push(now + SAMPLE_INTERVAL, Ev::Sample);
            }
            Ev::Script { index } => self.on_script(now, index),
        }
    }

    fn on_arrival(&mut self, now: Nanos) {
        let rng = &mut self.arrivals;
        let client = match &self.client_weights {
            None => rng.random_range(0..self.scenario.clients as usize),
            Some(cumulative) => {
                let total = cumulative.last().copied().unwrap_or(1.0);
                let u = rng.random::<f64>() * total;
                cumulative
                    .partition_point(|&c| c <= u)
                    .min(cumulative.len() - 1)
            }
        };
        let draw = Draw::new(rng);
        let next = now + exp_gap(rng, self.scenario.rate);
        if next < self.end {
            self.queue.push(next, Ev::Arrival);
        }
        let key = self.keys.as_mut().map(|k| k.zipf.draw(&mut k.rng));
        self.send(now, client, draw, 0, key);
    }

    /// A stream is due; the next one is scheduled if `steady` (a stream of
    /// the steady rate, not one of the initial ones).
    fn on_stream_arrival(&mut self, now: Nanos, steady: bool) {
        let streams = self
            .scenario
            .streams
            .as_ref()
            .expect("scheduled with streams");
        let rng = &mut self.stream_arrivals;
        let client = rng.random_range(0..self.scenario.clients as usize);
        let draw = Draw::new(rng);
        let open_for = secs(streams.duration.sample_secs(draw)).max(1);
        if steady {
            let next = now + exp_gap(rng, streams.rate);
            if next < self.end {
                self.queue.push(next, Ev::StreamArrival);
            }
        }
        self.send(now, client, draw, open_for, None);
    }

    /// A client sends a call (or opens a stream if `stream_for > 0`), with
    /// `key` if it is keyed.
    fn send(&mut self, now: Nanos, client: usize, draw: Draw, stream_for: Nanos, key: Option<u32>) {
        let stream = stream_for > 0;
        let (route, probe) = match &mut self.central {
            // The limit has no central queue for streams: each goes to the
            // backend with the fewest open.
            Some(central) if stream => (
                Route::Backend(backend_index(central.stream_backend(&self.backends))),
                false,
            ),
            Some(_) => (Route::CentralQueue, false),
            None => match self.clients[client].pick_keyed(stream, key, now) {
                Some(p) => {
                    self.send_probes(now, client);
                    (Route::Backend(backend_index(p.backend)), p.probe)
                }
                None => {
                    // No endpoint available: UNAVAILABLE at once.
                    if stream {
                        self.measurements.stream_ended(now, true);
                    } else {
                        self.measurements.concluded_by(client as u32, now, None);
                    }
                    return;
                }
            },
        };
        let call = self.calls.insert(Call {
            client: client as u32,
            route,
            t0: now,
            stream,
            probe,
            picked: now,
            hand_backs: 0,
        });
        let delay = match route {
            Route::Backend(b) => self.delay_between(client, b as usize),
            Route::CentralQueue => self.delay,
        };
        let job = Job {
            call,
            t0: now,
            draw,
            stream_for,
            arrived: 0,
            rif: 0,
            delay,
            key,
            may_hand_back: !stream
                && matches!(route, Route::Backend(_))
                && self.clients[client].hand_backs() > 0,
        };
        if !stream {
            self.deadlines.push_back((now + self.deadline, call));
        }
        let at = now + delay;
        match route {
            Route::CentralQueue => self.queue.push(at, Ev::CentralQueueArrive { job }),
            Route::Backend(backend) => {
                let backend = backend as usize;
                if !stream {
                    self.measurements.sent(now, backend);
                    if let Some(z) = &self.zones {
                        let cross = z.is_cross(client, backend);
                        self.measurements.zone_of_call(now, cross);
                    }
                }
                self.queue.push(at, Ev::ServerArrive { backend, job });
            }
        }
    }

    /// The probes `client` sends after a pick leave now.
    fn send_probes(&mut self, now: Nanos, client: usize) {
        self.probe_targets.clear();
        self.clients[client].probes(now, &mut self.probe_targets);
        for &backend in &self.probe_targets {
            let at = now + self.delay_between(client, backend);
            self.queue.push(at, Ev::ProbeArrive { client, backend });
        }
    }

    /// The one-way network delay between `client` and `backend`: more
    /// across zones.
    fn delay_between(&self, client: usize, backend: usize) -> Nanos {
        match &self.zones {
            Some(z) if z.is_cross(client, backend) => self.delay + z.cross,
            _ => self.delay,
        }
    }

    fn on_server_arrive(&mut self, now: Nanos, backend: usize, mut job: Job) {
        let stream = job.stream_for > 0;
        let b = &mut self.backends[backend];
        if job.may_hand_back
            && !b.fail_fast
            && !b.has_free_worker()
            && self
                .hand_back_queue_depth
                .is_some_and(|q| b.waiting() >= q as usize)
        {
            // Handed back unserved: answered at once, with a report.
            let report = self.reads_reports.then(|| b.snapshot(now));
            self.queue.push(
                now + job.delay,
                Ev::Response {
                    call: job.call,
                    failed: false,
                    report,
                    reopen: None,
                    handed_back: Some((job.draw, job.key)),
                },
            );
            return;
        }
        job.arrived = now;
        job.rif = b.in_flight();
        b.call_started(stream);
        if b.fail_fast {
            self.queue
                .push(now + FAIL_FAST, Ev::FailFastDone { backend, job });
        } else if stream {
            // The server's max age, jittered so that streams opened
            // together do not end together.
            let max_age = self.scenario.streams.as_ref().and_then(|s| s.max_age_s);
            let age = max_age.map(|a| secs(a * self.ages.random_range(0.9..1.1)).max(1));
            let (open_for, reopen) = match age {
                Some(age) if age < job.stream_for => (
                    age,
                    Some(Reopen {
                        draw: job.draw,
                        rest: job.stream_for - age,
                    }),
                ),
                _ => (job.stream_for, None),
            };
            self.queue.push(
                now + open_for,
                Ev::StreamEnd {
                    backend,
                    job,
                    reopen,
                },
            );
        } else if b.try_take_worker() {
            self.start_service(now, backend, job);
        } else {
            b.enqueue(job, now);
        }
    }

    /// When the server lets go of `job` unanswered: its client's deadline,
    /// as `grpc-timeout` or the client's reset, one network delay after the
    /// client gave up.
    fn cutoff(&self, job: &Job) -> Nanos {
        job.t0 + self.deadline + job.delay
    }

    /// A worker of `backend`, already taken, starts serving `job`; it serves
    /// until the call's cut-off at the latest, as a tonic server drops a
    /// handler whose deadline passed.
    fn start_service(&mut self, now: Nanos, backend: usize, job: Job) {
        let mut service = self.backends[backend].service_time(job.draw);
        if let (Some(keys), Some(key)) = (&mut self.keys, job.key) {
            let hit = keys.caches[backend].access(key);
            if hit {
                service = ((service as f64) * keys.hit_factor).round() as Nanos;
            }
            self.measurements.cache_access(job.t0, hit);
        }
        let cutoff = self.cutoff(&job);
        if now + service > cutoff {
            let ran = cutoff.saturating_sub(now);
            self.measurements.busy(backend, now, now + ran);
            self.queue.push(now + ran, Ev::ServiceCut { backend, ran });
            return;
        }
        self.measurements.busy(backend, now, now + service);
        self.queue.push(
            now + service,
            Ev::ServiceDone {
                backend,
                job,
                service,
            },
        );
    }

    fn on_service_done(&mut self, now: Nanos, backend: usize, job: Job, service: Nanos) {
        let b = &mut self.backends[backend];
        b.end_service(service, now);
        b.call_finished(false, false);
        b.record_latency(&job, now);
        self.respond(now, backend, job, false);
        self.worker_freed(now, backend);
    }

    /// A worker of `backend` is free again.
    fn worker_freed(&mut self, now: Nanos, backend: usize) {
        if let Some(central) = &mut self.central {
            central.freed(backend, &self.backends);
            self.dispatch_central(now);
            return;
        }
        // The freed worker takes the next waiting call; one past its
        // cut-off is dropped unserved.
        while let Some(next) = self.backends[backend].dequeue() {
            let cutoff = self.cutoff(&next);
            let b = &mut self.backends[backend];
            if now >= cutoff {
                b.call_finished(false, true);
                continue;
            }
            let took = b.try_take_worker();
            debug_assert!(took);
            self.start_service(now, backend, next);
            break;
        }
    }

    /// Starts the central queue's calls that free workers should take.
    fn dispatch_central(&mut self, now: Nanos) {
        let mut central = self.central.take().expect("limit mode");
        let mut started = Vec::new();
        central.dispatch(
            now,
            self.deadline,
            &mut self.backends,
            |b, job, backends| {
                backends[b].call_started(false);
                started.push((b, job));
            },
        );
        self.central = Some(central);
        for (b, job) in started {
            self.measurements.sent(job.t0, b);
            self.start_service(now, b, job);
        }
    }

    /// The server answers `job`: the response and its report travel back.
    fn respond(&mut self, now: Nanos, backend: usize, job: Job, failed: bool) {
        self.respond_reopen(now, backend, job, failed, None);
    }

    /// As [`respond`](Self::respond), for a stream its server may have
    /// ended at its max age.
    fn respond_reopen(
        &mut self,
        now: Nanos,
        backend: usize,
        job: Job,
        failed: bool,
        reopen: Option<Reopen>,
    ) {
        let report = self
            .reads_reports
            .then(|| self.backends[backend].snapshot(now));
        self.queue.push(
            now + job.delay,
            Ev::Response {
                call: job.call,
                failed,
                report,
                reopen,
                handed_back: None,
            },
        );
    }

    fn on_response(
        &mut self,
        now: Nanos,
        r: CallRef,
        failed: bool,
        report: Option<LoadSnapshot>,
        reopen: Option<Reopen>,
    ) {
        // Gone: the client gave up at the deadline.
        let Some(call) = self.calls.remove(r) else {
            return;
        };
        let latency = now - call.t0;
        if call.stream {
            self.measurements.stream_ended(call.t0, failed);
        } else {
            self.measurements
                .concluded_by(call.client, call.t0, (!failed).then_some(latency));
        }
        // Only a client's balancer picked the backend; the limit's calls
        // have no client to tell.
        if let (Some(client), Route::Backend(backend)) =
            (self.clients.get_mut(call.client as usize), call.route)
        {
            let report = report.map(|s| decoded_report(&s));
            client.done(Done {
                backend: backend as usize,
                stream: call.stream,
                probe: call.probe,
                failed,
                // This attempt's: from its pick (later than `t0` after a
                // hand-back).
                latency: (!call.stream).then_some(now - call.picked),
                report: report.as_ref(),
                now,
            });
        }
        // A stream ended at its max age is opened again at once: the client
        // sees UNAVAILABLE and calls again, and the new call is picked anew.
        if let Some(r) = reopen {
            self.send(now, call.client as usize, r.draw, r.rest, None);
        }
    }

    /// A call came back handed back: its client picks again and sends it
    /// on, no longer offered once its hand-backs are spent.
    fn on_handed_back(
        &mut self,
        now: Nanos,
        r: CallRef,
        report: Option<LoadSnapshot>,
        draw: Draw,
        key: Option<u32>,
    ) {
        // Gone: the client gave up at the deadline.
        let Some(call) = self.calls.get_mut(r) else {
            return;
        };
        let Route::Backend(backend) = call.route else {
            unreachable!("only calls sent to a backend are handed back");
        };
        let client = call.client as usize;
        let report = report.map(|s| decoded_report(&s));
        let picked = call.picked;
        let Some(p) =
            self.clients[client].repick_handed_back(backend as usize, report.as_ref(), picked, now)
        else {
            let call = self.calls.remove(r).expect("present");
            self.measurements.concluded_by(call.client, call.t0, None);
            return;
        };
        let call = self.calls.get_mut(r).expect("present");
        call.hand_backs += 1;
        call.picked = now;
        call.route = Route::Backend(backend_index(p.backend));
        call.probe = p.probe;
        let may_hand_back = call.hand_backs < self.clients[client].hand_backs();
        let t0 = call.t0;
        self.measurements.handed_back(t0);
        let delay = self.delay_between(client, p.backend);
        let job = Job {
            call: r,
            t0,
            draw,
            stream_for: 0,
            arrived: 0,
            rif: 0,
            delay,
            key,
            may_hand_back,
        };
        self.measurements.sent(now, p.backend);
        self.queue.push(
            now + delay,
            Ev::ServerArrive {
                backend: p.backend,
                job,
            },
        );
    }

    fn on_deadline(&mut self, now: Nanos, r: CallRef) {
        let Some(call) = self.calls.remove(r) else {
            return;
        };
        self.measurements.concluded_by(call.client, call.t0, None);
        if let (Some(client), Route::Backend(backend)) =
            (self.clients.get_mut(call.client as usize), call.route)
        {
            // DEADLINE_EXCEEDED: a failure, no trailers.
            client.done(Done {
                backend: backend as usize,
                stream: false,
                probe: call.probe,
                failed: true,
                latency: Some(now - call.picked),
                report: None,
                now,
            });
        }
    }

    fn on_script(&mut self, now: Nanos, index: usize) {
        let e = &self.scenario.events[index];
        for &i in &e.backends {
            let b = &mut self.backends[i];
            match e.action {
                Action::Slow => b.speed = e.factor.unwrap_or(1.0),
                Action::FailFast => b.fail_fast = true,
                Action::Recover => {
                    b.speed = 1.0;
                    b.fail_fast = false;
                }
                Action::Join => b.joined = true,
            }
        }
        if e.action == Action::Join {
            let present = self.backends.iter().take_while(|b| b.joined).count();
            if present > self.present {
                self.present = present;
                for client in &mut self.clients {
                    client.grow(present, now);
                }
            }
        }
        self.measurements.fired.push(FiredEvent {
            at_s: to_secs(now),
            backends: e.backends.clone(),
            action: e.action.name().to_owned(),
        });
        if let Some(central) = &mut self.central {
            central.rebuild(&self.backends);
            self.dispatch_central(now);
        }
    }
}

/// An exponential gap between Poisson arrivals at `rate` per second.
fn exp_gap(rng: &mut SmallRng, rate: f64) -> Nanos {
    let u: f64 = 1.0 - rng.random::<f64>();
    ((-u.ln() / rate) * 1e9).round().max(1.0) as Nanos
}

/// A backend's index as a [`Route`] holds it.
fn backend_index(backend: usize) -> u32 {
    u32::try_from(backend).expect("fewer than 2^32 backends")
}
