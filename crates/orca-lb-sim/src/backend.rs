//! A simulated backend: worker slots, a FIFO queue, and the load it reports.

mod latency_by_rif;

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::time::Duration;

use orca_lb_core::LoadReport;
use orca_lb_core::load_model::{
    self, LoadSnapshot, RateWindow, ServiceTimeEwma, Totals, UtilizationSource,
};

use crate::call::CallRef;
use crate::clock::{Clock, Nanos};
use crate::service_time::{Draw, ServiceTime};

pub use self::latency_by_rif::LatencyByRif;

/// How often the server's sampler advances the rate window, as
/// `orca-lb-server` does by default.
pub(crate) const SAMPLE_INTERVAL: Nanos = load_model::DEFAULT_SAMPLE_INTERVAL.as_nanos() as Nanos;

/// A call as the server holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Job {
    /// The client's handle on the call.
    pub(crate) call: CallRef,
    /// When the client meant to send it; the deadline counts from here.
    pub(crate) t0: Nanos,
    /// Its random numbers.
    pub(crate) draw: Draw,
    /// How long it stays open, for a stream; 0 for a unary call.
    pub(crate) stream_for: Nanos,
    /// When it reached the server (set on arrival).
    pub(crate) arrived: Nanos,
    /// Calls in flight at the server when it arrived, itself excluded.
    pub(crate) rif: u32,
    /// The one-way network delay between its client and its server (more
    /// across zones).
    pub(crate) delay: Nanos,
    /// Its key, for a keyed unary call.
    pub(crate) key: Option<u32>,
    /// The client offers it to be handed back unserved (it will pick
    /// again).
    pub(crate) may_hand_back: bool,
}

/// One backend, counting what `orca-lb-server` counts: calls in flight
/// (queued ones and streams included), active streams, the queue, and the
/// totals and service times behind `orca_lb_core::load_model`, with the
/// server's defaults (a 10 s rate window, a 1 s service-time EWMA).
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    pub(crate) capacity: u32,
    pub(crate) service: ServiceTime,
    /// Service times are multiplied by this (scripted slow-downs).
    pub(crate) speed: f64,
    /// Answer every new call UNAVAILABLE after 1 ms.
    pub(crate) fail_fast: bool,
    /// In the fleet (false until a scripted `join`).
    pub(crate) joined: bool,
    /// Fold the queue into `application_utilization` (an experiment: the
    /// server does not, since it made weighted round robin unstable).
    pub(crate) queue_in_utilization: bool,
    busy: u32,
    /// Waiting calls, with when each started waiting.
    queue: VecDeque<(Job, Nanos)>,
    in_flight: u32,
    streams: u32,
    /// Virtual time as the load model's instants.
    clock: Clock,
    totals: Totals,
    window: RateWindow,
    service_time: ServiceTimeEwma,
    /// Recent latencies by calls in flight, for probes.
    latency_by_rif: LatencyByRif,
}

impl Backend {
    /// A backend with `capacity` workers (at least 1) starting at virtual
    /// time 0 of `clock`.
    pub(crate) fn new(capacity: u32, service: ServiceTime, clock: Clock) -> Self {
        assert!(capacity > 0, "a backend has at least one worker");
        Self {
            capacity,
            service,
            speed: 1.0,
            fail_fast: false,
            joined: true,
            queue_in_utilization: false,
            busy: 0,
            queue: VecDeque::new(),
            in_flight: 0,
            streams: 0,
            clock,
            totals: Totals::default(),
            window: RateWindow::new(load_model::DEFAULT_WINDOW, clock.at(0)),
            service_time: ServiceTimeEwma::new(load_model::DEFAULT_SERVICE_TIME_DECAY),
            latency_by_rif: LatencyByRif::new(),
        }
    }

    /// Mean service time now, seconds (infinite while failing fast or not
    /// yet in the fleet).
    pub(crate) fn mean_secs(&self) -> f64 {
        if self.fail_fast || !self.joined {
            f64::INFINITY
        } else {
            self.service.mean_ms() * 1e-3 * self.speed
        }
    }

    /// The service time of a call with these random numbers, at the current
    /// speed.
    pub(crate) fn service_time(&self, draw: Draw) -> Nanos {
        (self.service.sample_secs(draw) * self.speed * 1e9).round() as Nanos
    }

    /// Calls in flight now (queued ones and streams included).
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// A unary call that arrived at `job.arrived` to `job.rif` calls in
    /// flight is answered at `now`: its latency at the server is kept for
    /// probes.
    pub(crate) fn record_latency(&mut self, job: &Job, now: Nanos) {
        self.latency_by_rif
            .record(job.rif, now.saturating_sub(job.arrived));
    }

    /// A probe's answer: calls in flight now and the latency recently seen
    /// at that many (`None` before any call was answered).
    pub(crate) fn probe(&self) -> (u32, Option<Nanos>) {
        (self.in_flight, self.latency_by_rif.estimate(self.in_flight))
    }

    /// A call arrived (the layer's `call_started`).
    pub(crate) fn call_started(&mut self, stream: bool) {
        self.in_flight += 1;
        if stream {
            self.streams += 1;
        }
    }

    /// Takes a free worker, if any.
    pub(crate) fn try_take_worker(&mut self) -> bool {
        if self.busy < self.capacity {
            self.busy += 1;
            true
        } else {
            false
        }
    }

    /// Whether a worker is free.
    pub(crate) fn has_free_worker(&self) -> bool {
        self.busy < self.capacity
    }

    /// Calls waiting for a worker.
    pub(crate) fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// The call waits for a worker.
    pub(crate) fn enqueue(&mut self, job: Job, now: Nanos) {
        self.queue.push_back((job, now));
    }

    /// The next waiting call.
    pub(crate) fn dequeue(&mut self) -> Option<Job> {
        self.queue.pop_front().map(|(job, _since)| job)
    }

    /// Open streams.
    pub(crate) fn streams(&self) -> u32 {
        self.streams
    }

    /// A unary call's service of `service` ended at `now`: the worker is
    /// free (the layer's `end_service`).
    pub(crate) fn end_service(&mut self, service: Nanos, now: Nanos) {
        self.busy -= 1;
        let service = Duration::from_nanos(service);
        self.totals.record_busy(service);
        self.service_time.observe(service, self.clock.at(now));
    }

    /// A unary call's service was cut off after `ran`: the worker is free,
    /// its time counts as busy but not as a service time (the server's
    /// `service_abandoned`).
    pub(crate) fn abandon_service(&mut self, ran: Nanos) {
        self.busy -= 1;
        self.totals.record_busy(Duration::from_nanos(ran));
    }

    /// A call is over (the layer's `finish`).
    pub(crate) fn call_finished(&mut self, stream: bool, failed: bool) {
        self.in_flight -= 1;
        if stream {
            self.streams -= 1;
        }
        self.totals.record_call(failed);
    }

    /// The sampler's tick.
    pub(crate) fn advance(&mut self, now: Nanos) {
        self.window.advance(self.totals, self.clock.at(now));
    }

    /// The load now, as the server's tracker computes it with worker slots
    /// and no utilization of the application's own.
    pub(crate) fn snapshot(&self, now: Nanos) -> LoadSnapshot {
        let rates = self.window.rates(self.totals, self.clock.at(now));
        let queued = if self.queue_in_utilization {
            self.queue.len() as f64
        } else {
            0.0
        };
        let capacity = NonZeroUsize::new(self.capacity as usize).expect("checked in `new`");
        LoadSnapshot {
            application_utilization: UtilizationSource::Slots {
                busy: rates.busy,
                queued,
                capacity,
            }
            .reported(),
            rps: rates.rps,
            eps: rates.eps,
            queue_depth: self.queue.len(),
            in_flight: self.in_flight as usize,
            active_streams: self.streams as usize,
            capacity: Some(capacity.get()),
            service_time_ms: self.service_time.value_ms(),
            ..LoadSnapshot::default()
        }
    }
}

/// The report a client decodes from `snapshot`.
pub(crate) fn decoded_report(snapshot: &LoadSnapshot) -> LoadReport {
    LoadReport::try_from(snapshot.to_raw()).expect("the simulated server reports valid values")
}

#[cfg(test)]
mod tests {
    use orca_lb_core::named_metrics;

    use super::*;
    use crate::clock::SECOND;

    #[test]
    fn report_counts_as_the_server_does() {
        let mut b = Backend::new(2, ServiceTime::Exponential { mean_ms: 20.0 }, Clock::new());
        // Three calls: two served, one queued.
        for _ in 0..3 {
            b.call_started(false);
        }
        assert!(b.try_take_worker() && b.try_take_worker() && !b.try_take_worker());
        let job = Job {
            call: CallRef::default(),
            t0: 0,
            draw: Draw { u1: 0.5, u2: 0.5 },
            stream_for: 0,
            arrived: 0,
            rif: 0,
            delay: 0,
            key: None,
            may_hand_back: false,
        };
        b.enqueue(job, 0);
        // One ends after 1 s of service.
        b.end_service(SECOND, SECOND);
        b.call_finished(false, false);
        let r = decoded_report(&b.snapshot(SECOND));
        assert_eq!(
            r.in_flight(),
            Some(2.0),
            "the reporting call is not counted"
        );
        assert_eq!(r.queue_depth(), Some(1.0));
        assert_eq!(r.active_streams(), Some(0.0), "omitted, read as zero");
        assert_eq!(r.named_metric(named_metrics::ACTIVE_STREAMS), None);
        assert_eq!(r.capacity(), Some(2.0));
        assert_eq!(r.service_time_ms(), Some(1000.0));
        // Busy 1 s over 1 s on 2 slots.
        assert_eq!(r.application_utilization(), 0.5);
        assert_eq!(r.qps(), 1.0);
        // The queued call is not folded in (see `queue_in_utilization`).
        b.queue_in_utilization = true;
        assert_eq!(
            decoded_report(&b.snapshot(SECOND)).application_utilization(),
            1.0
        );
    }
}
