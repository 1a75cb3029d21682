//! Configuration of the reporting layer.

use std::time::Duration;

use orca_lb_core::load_model;

use crate::ConfigError;

/// Tunables of a [`ReportingLayer`](crate::ReportingLayer).
///
/// The defaults suit a server whose calls take milliseconds to a second.
/// Start from [`default`](Self::default) and change what differs with the
/// `with_*` setters (or by assigning the public fields).
///
/// ```
/// use orca_lb_server::ReportingConfig;
///
/// let config = ReportingConfig::default().with_capacity(8).with_backpressure(true);
/// assert!(config.validate().is_ok());
/// assert_eq!(config.capacity, Some(8));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReportingConfig {
    /// Worker slots. When set, unary calls beyond this many wait in a FIFO
    /// queue (reported as queue depth) and `application_utilization` is the
    /// busy fraction of the slots, averaged over the window. Streams are not
    /// limited: they would hold a slot for their whole life. Default: none.
    pub capacity: Option<usize>,
    /// Span over which `rps_fractional`, `eps` and the busy fraction are
    /// measured. Default: 10 s.
    pub window: Duration,
    /// How often CPU and memory are sampled and the rate window advances, on a
    /// background task. Default: 1 s.
    pub sample_interval: Duration,
    /// Time constant of the unary service-time EWMA. Default: 1 s, short
    /// enough that a backend slowing down shows within a second or two.
    pub service_time_decay: Duration,
    /// Floor on the out-of-band report interval, whatever clients ask for.
    /// gRPC's servers use 30 s; ours can go lower. Default: 1 s.
    pub min_oob_interval: Duration,
    /// Give every call a [`CallRecorder`](crate::CallRecorder), for handlers
    /// that report per-call costs ([`CallRecorder::of`](crate::CallRecorder::of)).
    /// It allocates nothing per call (recorders are reused) and costs a few
    /// nanoseconds; turn it off if no handler uses it. Default: on.
    ///
    /// The layer keeps the recorder itself and makes it the thread's current
    /// call while it runs the handler's code: the wrapped service's `call`
    /// and each poll of its future and body. A handler that asks from
    /// anywhere else finds none (see
    /// [`call_recorder_in_extensions`](Self::call_recorder_in_extensions)).
    pub call_recorder: bool,
    /// Put each call's [`CallRecorder`](crate::CallRecorder) in its
    /// request's extensions, where
    /// [`CallRecorder::of`](crate::CallRecorder::of) finds it wherever it is
    /// asked, instead of only while the layer runs the handler's code on
    /// the thread. Turn it on when something between the layer and the
    /// handler runs the handler's code on a task of its own: a service that
    /// serves each call on a task it spawns, or a tower `Buffer` in front of
    /// a service that asks in its `call` (the buffer's worker task runs
    /// `call`; tonic's generated services ask in the future they return,
    /// which the buffer hands back to the layer's task, so they find it
    /// without this). It also lets a task the handler spawns find the
    /// recorder from the request, if it is given the request.
    ///
    /// Costs one allocation per call: `http::Extensions` boxes every value.
    /// Has no effect without [`call_recorder`](Self::call_recorder).
    /// Default: off.
    pub call_recorder_in_extensions: bool,
    /// Largest encoded report, in protobuf bytes, per call and out of band.
    /// The standard fields and orca-lb's own named metrics always go out;
    /// application entries that would pass the limit are refused when set
    /// ([`RecordError::ReportFull`](crate::RecordError::ReportFull)) or, if the
    /// report filled up since, left out of that report and counted. The
    /// trailer carries the report in base64, a third larger: the default
    /// keeps it at 4 KiB, well inside the 8 KiB of metadata grpc-java
    /// accepts and the 16 KiB hyper does. Default: 3072. At least 512.
    pub max_report_bytes: usize,
    /// Longest application metric name, in bytes; longer ones are refused
    /// ([`RecordError::NameTooLong`](crate::RecordError::NameTooLong)).
    /// Default: 64.
    pub max_name_len: usize,
    /// Most unary calls waiting for a worker slot (with `capacity`). A call
    /// arriving with the queue full is answered `RESOURCE_EXHAUSTED` at once.
    /// Default: 1024.
    pub max_queue_depth: usize,
    /// Hand back a unary call that an `orca-lb-client` offers (the
    /// [`MAY_HAND_BACK_HEADER`](orca_lb_proto::MAY_HAND_BACK_HEADER) request
    /// header) when every worker slot is taken and at least this many calls
    /// already wait (with `capacity`): the call is answered at once, its
    /// handler never run, with a trailers-only `UNAVAILABLE`, the
    /// [`HANDED_BACK_HEADER`](orca_lb_proto::HANDED_BACK_HEADER) header and
    /// the load report, and the client sends it to another backend. Among
    /// many independent clients, each balancing on its own view, this is
    /// how a call that landed on a backend others just filled gets a second
    /// choice, instead of waiting behind them (see `docs/balancing.md`). A
    /// handed-back call counts in neither the request rate nor the error
    /// rate. Calls from other clients never carry the header and queue as
    /// before. `None` turns it off; `Some(0)` hands back an offered call
    /// whenever no slot is free. Default: `Some(1)`.
    pub hand_back_queue_depth: Option<usize>,
    /// Longest a unary call waits for a worker slot before it is answered
    /// `RESOURCE_EXHAUSTED`. Default: 10 s.
    pub max_queue_wait: Duration,
    /// Report a full queue through `poll_ready`: while `max_queue_depth`
    /// calls wait, the service is not ready, so that tower's `LoadShed` (or
    /// tonic's `Server::load_shed`) refuses new calls before they reach the
    /// layer. Off by default: tonic polls readiness per call, and a call
    /// waiting there is neither counted nor bounded by `max_queue_wait`; the
    /// layer refuses calls beyond a full queue itself. Default: off.
    pub backpressure: bool,
    /// Most out-of-band subscribers at once; more are refused with
    /// `RESOURCE_EXHAUSTED`. Default: 1024.
    pub max_oob_subscribers: usize,
    /// Longest a stream of a streaming method stays open: the layer ends a
    /// stream older than this (times a jitter uniform in ±10 %, so that
    /// streams opened together do not end together) after the message in
    /// flight, with `UNAVAILABLE`, the message "stream max age reached" and
    /// the [`STREAM_ENDED_TRAILER`](orca_lb_proto::STREAM_ENDED_TRAILER)
    /// trailer, and its load report. The stream's age counts from when its
    /// response starts. The layer's own out-of-band report stream is exempt.
    ///
    /// gRPC's `max_connection_age` does this for connections; long-lived
    /// streams need it too, since a balancer places a stream only when it
    /// opens: without an end, streams opened before a scale-out stay on the
    /// old backends for their whole life. UNAVAILABLE is the code gRPC
    /// clients and retry policies treat as "try again, elsewhere", so a
    /// caller that reopens is picked anew; orca-lb's balancer reads the
    /// trailer and does not count the end against the server. The end
    /// counts as a normal end in the server's own error rate. Default: none
    /// (streams end when their handler ends them).
    pub max_stream_age: Option<Duration>,
    /// How long a thread may send the report it made last in the trailers
    /// of later calls, instead of making a new one. Under load the calls in
    /// flight change with every call, so reports made call by call are new
    /// almost every time, and HTTP/2 sends each as text that both ends
    /// encode (Huffman) and decode; a report sent again is an index of a
    /// byte or two (see `docs/orca.md`), and the layer does not build it
    /// again either. A report is thus at most this old when its call ends.
    /// A new one is made whatever its age when the call recorded entries of
    /// its own, when the application or the sampler changed what reports
    /// carry, when a call enters or leaves the layer's queue, and for the
    /// reports of calls the layer refuses or ends. Zero makes a new report
    /// for every call.
    ///
    /// The price: a report made at the end of an earlier call counted the
    /// calls then in flight or open, so when it is sent again it may count
    /// the call it ends (and miss calls started since): a stream that
    /// closes can report itself still open. Readers that subtract their own
    /// calls (orca-lb's balancer) then see one call too many for up to this
    /// long. A server whose capacity goes to the layer's work at very high
    /// call rates may take that for about 4 points of throughput (see
    /// `docs/benchmarks.md`, "Run M"). Default: zero, a report per call.
    pub report_reuse: Duration,
}

// === setters of ReportingConfig ===

impl ReportingConfig {
    /// Sets [`capacity`](Self::capacity).
    #[must_use]
    pub fn with_capacity(mut self, capacity: impl Into<Option<usize>>) -> Self {
        self.capacity = capacity.into();
        self
    }

    /// Sets [`window`](Self::window).
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets [`sample_interval`](Self::sample_interval).
    #[must_use]
    pub fn with_sample_interval(mut self, sample_interval: Duration) -> Self {
        self.sample_interval = sample_interval;
        self
    }

    /// Sets [`service_time_decay`](Self::service_time_decay).
    #[must_use]
    pub fn with_service_time_decay(mut self, service_time_decay: Duration) -> Self {
        self.service_time_decay = service_time_decay;
        self
    }

    /// Sets [`min_oob_interval`](Self::min_oob_interval).
    #[must_use]
    pub fn with_min_oob_interval(mut self, min_oob_interval: Duration) -> Self {
        self.min_oob_interval = min_oob_interval;
        self
    }

    /// Sets [`report_reuse`](Self::report_reuse).
    #[must_use]
    pub fn with_report_reuse(mut self, report_reuse: Duration) -> Self {
        self.report_reuse = report_reuse;
        self
    }

    /// Sets [`call_recorder`](Self::call_recorder).
    #[must_use]
    pub fn with_call_recorder(mut self, call_recorder: bool) -> Self {
        self.call_recorder = call_recorder;
        self
    }

    /// Sets [`call_recorder_in_extensions`](Self::call_recorder_in_extensions).
    #[must_use]
    pub fn with_call_recorder_in_extensions(mut self, in_extensions: bool) -> Self {
        self.call_recorder_in_extensions = in_extensions;
        self
    }

    /// Sets [`max_report_bytes`](Self::max_report_bytes).
    #[must_use]
    pub fn with_max_report_bytes(mut self, max_report_bytes: usize) -> Self {
        self.max_report_bytes = max_report_bytes;
        self
    }

    /// Sets [`max_name_len`](Self::max_name_len).
    #[must_use]
    pub fn with_max_name_len(mut self, max_name_len: usize) -> Self {
        self.max_name_len = max_name_len;
        self
    }

    /// Sets [`max_queue_depth`](Self::max_queue_depth).
    #[must_use]
    pub fn with_max_queue_depth(mut self, max_queue_depth: usize) -> Self {
        self.max_queue_depth = max_queue_depth;
        self
    }

    /// Sets [`max_queue_wait`](Self::max_queue_wait).
    #[must_use]
    pub fn with_max_queue_wait(mut self, max_queue_wait: Duration) -> Self {
        self.max_queue_wait = max_queue_wait;
        self
    }

    /// Sets [`backpressure`](Self::backpressure).
    #[must_use]
    pub fn with_backpressure(mut self, backpressure: bool) -> Self {
        self.backpressure = backpressure;
        self
    }

    /// Sets [`hand_back_queue_depth`](Self::hand_back_queue_depth).
    #[must_use]
    pub fn with_hand_back_queue_depth(mut self, depth: impl Into<Option<usize>>) -> Self {
        self.hand_back_queue_depth = depth.into();
        self
    }

    /// Sets [`max_oob_subscribers`](Self::max_oob_subscribers).
    #[must_use]
    pub fn with_max_oob_subscribers(mut self, max_oob_subscribers: usize) -> Self {
        self.max_oob_subscribers = max_oob_subscribers;
        self
    }
}

/// The smallest [`ReportingConfig::max_report_bytes`]: room for the standard
/// fields and orca-lb's own named metrics.
pub const MIN_REPORT_BYTES: usize = 512;

impl Default for ReportingConfig {
    fn default() -> Self {
        Self {
            capacity: None,
            window: load_model::DEFAULT_WINDOW,
            sample_interval: load_model::DEFAULT_SAMPLE_INTERVAL,
            service_time_decay: load_model::DEFAULT_SERVICE_TIME_DECAY,
            min_oob_interval: Duration::from_secs(1),
            call_recorder: true,
            call_recorder_in_extensions: false,
            max_report_bytes: 3072,
            max_name_len: 64,
            max_queue_depth: 1024,
            hand_back_queue_depth: Some(1),
            max_queue_wait: Duration::from_secs(10),
            backpressure: false,
            max_oob_subscribers: 1024,
            max_stream_age: None,
            report_reuse: Duration::ZERO,
        }
    }
}

impl ReportingConfig {
    /// Checks every field, naming the first one that is wrong and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == Some(0) {
            return Err(ConfigError::ZeroCapacity);
        }
        for (field, d) in [
            ("window", self.window),
            ("sample_interval", self.sample_interval),
            ("service_time_decay", self.service_time_decay),
            ("min_oob_interval", self.min_oob_interval),
            ("max_queue_wait", self.max_queue_wait),
            (
                "max_stream_age",
                self.max_stream_age.unwrap_or(Duration::MAX),
            ),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration { field });
            }
        }
        if self.max_report_bytes < MIN_REPORT_BYTES {
            return Err(ConfigError::ReportTooSmall {
                max_report_bytes: self.max_report_bytes,
            });
        }
        for (field, n) in [
            ("max_name_len", self.max_name_len),
            ("max_queue_depth", self.max_queue_depth),
            ("max_oob_subscribers", self.max_oob_subscribers),
        ] {
            if n == 0 {
                return Err(ConfigError::ZeroLimit { field });
            }
        }
        if self.window < self.sample_interval * 2 {
            return Err(ConfigError::WindowTooShort {
                window: self.window,
                sample_interval: self.sample_interval,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(ReportingConfig::default().validate(), Ok(()));
    }

    #[test]
    fn refuses_bad_fields_by_name() {
        let zero_cap = ReportingConfig {
            capacity: Some(0),
            ..Default::default()
        };
        assert_eq!(zero_cap.validate(), Err(ConfigError::ZeroCapacity));

        let zero_oob = ReportingConfig {
            min_oob_interval: Duration::ZERO,
            ..Default::default()
        };
        let err = zero_oob.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid reporting config: min_oob_interval must be greater than zero"
        );

        let short = ReportingConfig {
            window: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(matches!(
            short.validate(),
            Err(ConfigError::WindowTooShort { .. })
        ));

        let tiny = ReportingConfig {
            max_report_bytes: 100,
            ..Default::default()
        };
        assert_eq!(
            tiny.validate(),
            Err(ConfigError::ReportTooSmall {
                max_report_bytes: 100
            })
        );
        let no_subscribers = ReportingConfig {
            max_oob_subscribers: 0,
            ..Default::default()
        };
        assert_eq!(
            no_subscribers.validate().unwrap_err().to_string(),
            "invalid reporting config: max_oob_subscribers must be at least 1"
        );
        let mut no_age = ReportingConfig {
            max_stream_age: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(
            no_age.validate(),
            Err(ConfigError::ZeroDuration {
                field: "max_stream_age"
            })
        );
        no_age.max_stream_age = Some(Duration::from_secs(60));
        assert_eq!(no_age.validate(), Ok(()));
    }
}
