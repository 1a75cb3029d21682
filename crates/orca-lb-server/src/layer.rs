//! The tower `Layer` that adds ORCA reporting to a tonic server.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::sampler::SystemSampler;
use crate::sysinfo_sampler::SysinfoSampler;
use crate::tracker::{LoadTracker, run_sampler};
use crate::{ConfigError, LoadRecorder, Reporting, ReportingConfig, StreamingMethods};

/// Wraps services in [`Reporting`], which tracks their load and sends an ORCA
/// report in the trailers of every call.
///
/// All services wrapped by one layer (and its clones) share one load state,
/// as they share one server process.
#[derive(Debug, Clone)]
pub struct ReportingLayer {
    tracker: Arc<LoadTracker>,
}

/// Builds a [`ReportingLayer`].
#[derive(Debug)]
pub struct Builder {
    config: ReportingConfig,
    streaming: StreamingMethods,
    sampler: Option<Box<dyn SystemSampler>>,
}

impl ReportingLayer {
    /// A layer with the default configuration and the `sysinfo` sampler, and
    /// the recorder for its load.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`: the sampler runs on a
    /// task. Use [`builder`](ReportingLayer::builder) to get an error instead.
    pub fn pair() -> (ReportingLayer, LoadRecorder) {
        Self::builder()
            .build()
            .expect("ReportingLayer::pair must be called within a tokio runtime")
    }

    /// Starts configuring a layer.
    pub fn builder() -> Builder {
        Builder {
            config: ReportingConfig::default(),
            streaming: StreamingMethods::new(),
            sampler: None,
        }
    }

    /// The recorder for this layer's load.
    pub fn recorder(&self) -> LoadRecorder {
        LoadRecorder::new(self.tracker.clone())
    }
}

impl<S> Layer<S> for ReportingLayer {
    type Service = Reporting<S>;

    fn layer(&self, inner: S) -> Reporting<S> {
        Reporting::new(inner, self.tracker.clone())
    }
}

impl Builder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: ReportingConfig) -> Self {
        self.config = config;
        self
    }

    /// Limits unary calls to `slots` at once; the rest wait in FIFO order and
    /// are reported as queue depth. See [`ReportingConfig::capacity`].
    pub fn capacity(mut self, slots: usize) -> Self {
        self.config.capacity = Some(slots);
        self
    }

    /// Sets [`ReportingConfig::window`].
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window = window;
        self
    }

    /// Sets [`ReportingConfig::sample_interval`].
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.config.sample_interval = interval;
        self
    }

    /// Sets [`ReportingConfig::min_oob_interval`].
    pub fn min_oob_interval(mut self, interval: Duration) -> Self {
        self.config.min_oob_interval = interval;
        self
    }

    /// Sets [`ReportingConfig::report_reuse`].
    pub fn report_reuse(mut self, reuse: Duration) -> Self {
        self.config.report_reuse = reuse;
        self
    }

    /// Sets [`ReportingConfig::call_recorder`].
    pub fn call_recorder(mut self, enabled: bool) -> Self {
        self.config.call_recorder = enabled;
        self
    }

    /// Sets [`ReportingConfig::call_recorder_in_extensions`]: for stacks
    /// that run the handler's code on a task of its own.
    pub fn call_recorder_in_extensions(mut self, enabled: bool) -> Self {
        self.config.call_recorder_in_extensions = enabled;
        self
    }

    /// Sets [`ReportingConfig::max_report_bytes`].
    pub fn max_report_bytes(mut self, bytes: usize) -> Self {
        self.config.max_report_bytes = bytes;
        self
    }

    /// Sets [`ReportingConfig::max_name_len`].
    pub fn max_name_len(mut self, bytes: usize) -> Self {
        self.config.max_name_len = bytes;
        self
    }

    /// Sets [`ReportingConfig::max_queue_depth`].
    pub fn max_queue_depth(mut self, calls: usize) -> Self {
        self.config.max_queue_depth = calls;
        self
    }

    /// Sets [`ReportingConfig::hand_back_queue_depth`].
    pub fn hand_back_queue_depth(mut self, calls: impl Into<Option<usize>>) -> Self {
        self.config.hand_back_queue_depth = calls.into();
        self
    }

    /// Sets [`ReportingConfig::max_queue_wait`].
    pub fn max_queue_wait(mut self, wait: Duration) -> Self {
        self.config.max_queue_wait = wait;
        self
    }

    /// Sets [`ReportingConfig::backpressure`].
    pub fn backpressure(mut self, enabled: bool) -> Self {
        self.config.backpressure = enabled;
        self
    }

    /// Sets [`ReportingConfig::max_stream_age`].
    pub fn max_stream_age(mut self, age: Duration) -> Self {
        self.config.max_stream_age = Some(age);
        self
    }

    /// Sets [`ReportingConfig::max_oob_subscribers`].
    pub fn max_oob_subscribers(mut self, subscribers: usize) -> Self {
        self.config.max_oob_subscribers = subscribers;
        self
    }

    /// Tells the layer which methods stream. The layer's own
    /// `OpenRcaService/StreamCoreMetrics` always counts as a stream.
    pub fn streaming_methods(mut self, methods: StreamingMethods) -> Self {
        self.streaming = methods;
        self
    }

    /// Reads CPU and memory from `sampler` instead of the operating system.
    pub fn sampler(mut self, sampler: impl SystemSampler) -> Self {
        self.sampler = Some(Box::new(sampler));
        self
    }

    /// Validates the configuration, takes a first sample, starts the sampler
    /// task on the current tokio runtime, and returns the layer with its
    /// recorder. The task ends when the layer, its services and recorders are
    /// all dropped.
    pub fn build(self) -> Result<(ReportingLayer, LoadRecorder), ConfigError> {
        self.config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let mut sampler = self
            .sampler
            .unwrap_or_else(|| Box::new(SysinfoSampler::new()));
        let initial = sampler.sample();
        let interval = self.config.sample_interval;
        let tracker = Arc::new(LoadTracker::new(
            self.config,
            self.streaming,
            initial,
            tokio::time::Instant::now().into_std(),
        ));
        runtime.spawn(run_sampler(Arc::downgrade(&tracker), sampler, interval));
        let layer = ReportingLayer { tracker };
        let recorder = layer.recorder();
        Ok((layer, recorder))
    }
}
