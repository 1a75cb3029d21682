//! A simulated backend: worker slots, a FIFO queue, and the load it reports.

mod rate_window;

use std::collections::VecDeque;
use std::time::Duration;

use orca_lb_core::{Ewma, LoadReport, RawLoadReport, named_metrics};

use self::rate_window::RateWindow;
use crate::clock::{Clock, Nanos, SECOND};
use crate::service_time::{Draw, ServiceTime};

/// The smallest `application_utilization` a report carries (the server's
/// `MIN_REPORTED_UTILIZATION`).
const MIN_REPORTED_UTILIZATION: f64 = 1e-4;

/// The server's rate window (`ReportingConfig::window`).
const RATE_WINDOW: Nanos = 10 * SECOND;

/// The server's service-time EWMA time constant
/// (`ReportingConfig::service_time_decay`).
const SERVICE_TIME_DECAY: Duration = Duration::from_secs(1);

/// How often the server's sampler advances the rate window
/// (`ReportingConfig::sample_interval`).
pub(crate) const SAMPLE_INTERVAL: Nanos = SECOND;

/// A call as the server holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Job {
    /// The client's handle on the call.
    pub(crate) call: crate::engine::CallRef,
    /// When the client meant to send it; the deadline counts from here.
    pub(crate) t0: Nanos,
    /// Its random numbers.
    pub(crate) draw: Draw,
    /// How long it stays open, for a stream; 0 for a unary call.
    pub(crate) stream_for: Nanos,
}

/// One backend, mirroring what `orca-lb-server`'s `LoadTracker` counts:
/// calls in flight (queued ones and streams included), active streams, the
/// queue, busy worker time and a 1 s EWMA of service time.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    pub(crate) capacity: u32,
    pub(crate) service: ServiceTime,
    /// Service times are multiplied by this (scripted slow-downs).
    pub(crate) speed: f64,
    /// Answer every new call UNAVAILABLE after 1 ms.
    pub(crate) fail_fast: bool,
    /// Fold the queue into `application_utilization` (an experiment: the
    /// server does not, since it made weighted round robin unstable).
    pub(crate) queue_in_utilization: bool,
    busy: u32,
    /// Waiting calls, with when each started waiting.
    queue: VecDeque<(Job, Nanos)>,
    in_flight: u32,
    streams: u32,
    window: RateWindow,
    service_time: Ewma,
}

/// The server-wide load at one instant: what a report carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Snapshot {
    application_utilization: f64,
    rps: f64,
    eps: f64,
    queue_depth: u32,
    in_flight: u32,
    active_streams: u32,
    capacity: u32,
    /// NaN before the first service ended.
    service_time_ms: f64,
}

impl Backend {
    pub(crate) fn new(capacity: u32, service: ServiceTime) -> Self {
        Self {
            capacity,
            service,
            speed: 1.0,
            fail_fast: false,
            queue_in_utilization: false,
            busy: 0,
            queue: VecDeque::new(),
            in_flight: 0,
            streams: 0,
            window: RateWindow::new(RATE_WINDOW, 0),
            service_time: Ewma::new(SERVICE_TIME_DECAY),
        }
    }

    /// Mean service time now, seconds (infinite while failing fast).
    pub(crate) fn mean_secs(&self) -> f64 {
        if self.fail_fast {
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
    pub(crate) fn end_service(&mut self, service: Nanos, now: Nanos, clock: &Clock) {
        self.busy -= 1;
        self.window.record_busy(service);
        self.service_time
            .observe(service as f64 / 1e6, clock.at(now));
    }

    /// A unary call's service was cut off after `ran`: the worker is free,
    /// its time counts as busy but not as a service time (the server's
    /// `service_abandoned`).
    pub(crate) fn abandon_service(&mut self, ran: Nanos) {
        self.busy -= 1;
        self.window.record_busy(ran);
    }

    /// A call is over (the layer's `finish`).
    pub(crate) fn call_finished(&mut self, stream: bool, failed: bool) {
        self.in_flight -= 1;
        if stream {
            self.streams -= 1;
        }
        self.window.record_call(failed);
    }

    /// The sampler's tick.
    pub(crate) fn advance(&mut self, now: Nanos) {
        self.window.advance(now);
    }

    /// The load now, as the tracker's `snapshot` computes it.
    pub(crate) fn snapshot(&self, now: Nanos) -> Snapshot {
        let rates = self.window.rates(now);
        let capacity = f64::from(self.capacity);
        let queued = if self.queue_in_utilization {
            self.queue.len() as f64
        } else {
            0.0
        };
        let app = (rates.busy + queued) / capacity;
        Snapshot {
            application_utilization: app.max(MIN_REPORTED_UTILIZATION),
            rps: rates.rps,
            eps: rates.eps,
            queue_depth: self.queue.len() as u32,
            in_flight: self.in_flight,
            active_streams: self.streams,
            capacity: self.capacity,
            service_time_ms: self.service_time.value().unwrap_or(f64::NAN),
        }
    }
}

impl Snapshot {
    /// The report as a client decodes it.
    pub(crate) fn report(&self) -> LoadReport {
        let mut raw = RawLoadReport {
            application_utilization: self.application_utilization,
            rps_fractional: self.rps,
            eps: self.eps,
            ..RawLoadReport::default()
        };
        // Zero queue and stream counts are omitted, as the server does:
        // `in_flight` being present says they are zero.
        let m = &mut raw.named_metrics;
        m.reserve(5);
        if self.queue_depth > 0 {
            m.insert(
                named_metrics::QUEUE_DEPTH.to_owned(),
                f64::from(self.queue_depth),
            );
        }
        m.insert(
            named_metrics::IN_FLIGHT.to_owned(),
            f64::from(self.in_flight),
        );
        if self.active_streams > 0 {
            m.insert(
                named_metrics::ACTIVE_STREAMS.to_owned(),
                f64::from(self.active_streams),
            );
        }
        m.insert(named_metrics::CAPACITY.to_owned(), f64::from(self.capacity));
        if !self.service_time_ms.is_nan() {
            m.insert(
                named_metrics::SERVICE_TIME_MS.to_owned(),
                self.service_time_ms,
            );
        }
        LoadReport::try_from(raw).expect("the simulated server reports valid values")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_as_the_server_does() {
        let clock = Clock::new();
        let mut b = Backend::new(2, ServiceTime::Exponential { mean_ms: 20.0 });
        // Three calls: two served, one queued.
        for _ in 0..3 {
            b.call_started(false);
        }
        assert!(b.try_take_worker() && b.try_take_worker() && !b.try_take_worker());
        let job = Job {
            call: crate::engine::CallRef::default(),
            t0: 0,
            draw: Draw { u1: 0.5, u2: 0.5 },
            stream_for: 0,
        };
        b.enqueue(job, 0);
        // One ends after 1 s of service.
        b.end_service(SECOND, SECOND, &clock);
        b.call_finished(false, false);
        let r = b.snapshot(SECOND).report();
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
        assert_eq!(b.snapshot(SECOND).report().application_utilization(), 1.0);
    }
}
