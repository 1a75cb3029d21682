//! The server-wide load state every call updates and every report reads.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use orca_lb_core::load_model::{LoadSnapshot, UtilizationSource};
use orca_lb_core::{Field, RawLoadReport};
use orca_lb_proto::encode::{ReportEncoder, map_entry_len};
use parking_lot::RwLock;
use tokio::sync::{Notify, Semaphore};

use crate::RecordError;
use crate::call_counters::CallCounters;
use crate::refusal_log::{RefusalLog, Source};
use crate::report_budget::{BoundedReport, Entries, STANDARD_FIELDS_BYTES, set_within};
use crate::report_precision::round_estimate;
use crate::sampler::{SystemLoad, SystemSampler};
use crate::server_metrics::ServerMetrics;
use crate::shared_rate_window::SharedRateWindow;
use crate::shared_service_time::SharedServiceTime;
use crate::snapshot_encoding::encode_snapshot;
use crate::{ReportingConfig, StreamingMethods};
use orca_lb_core::AtomicF64;

/// The layer's own out-of-band method: always a stream, whatever the
/// application declares.
pub(crate) const OOB_METHOD: &str = "/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics";

/// Hands out [`LoadTracker::id`]s.
static NEXT_TRACKER: AtomicU64 = AtomicU64::new(0);

/// Shared load state of one server.
///
/// Aligned to 128 bytes so that, in its `Arc`, the reference counts (which
/// every call changes) do not share a cache line with the configuration
/// (which every call reads).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct LoadTracker {
    pub(crate) config: ReportingConfig,
    pub(crate) streaming: StreamingMethods,
    pub(crate) slots: Option<Arc<Semaphore>>,
    /// Calls in flight, streams, and the totals the rates come from.
    pub(crate) calls: CallCounters,
    pub(crate) window: SharedRateWindow,
    service_time: SharedServiceTime,
    // Every atomic below is a statistic, a gauge or a limit read on its own:
    // none publishes other memory (the named metrics sit behind their own
    // lock), so `Relaxed` suffices for each load, store and
    // read-modify-write. A report may combine values a moment apart (a call
    // counted in flight and not yet queued); the next report sees both.
    // Read-modify-writes stay atomic under `Relaxed`, so no count is lost
    // and the subscriber limit holds.
    layer_queue: AtomicUsize,
    /// Changes whenever something a report carries changes other than by
    /// the calls' own counts: a value the application or the sampler sets,
    /// the rate window's step, a call entering or leaving the queue. A
    /// thread reuses its last report only while this stays the same (see
    /// `trailer`).
    generation: AtomicU64,
    /// Tells this tracker's reports from another's (a tracker dropped and
    /// another made at the same address included).
    id: u64,
    app_queue: AtomicUsize,
    /// NaN while the application has not set one.
    app_utilization: AtomicF64,
    /// Whether `named` holds anything, so that reports without named
    /// metrics skip its lock.
    has_named: AtomicBool,
    named: RwLock<Entries>,
    cpu: AtomicF64,
    mem: AtomicF64,
    oob_subscribers: AtomicUsize,
    /// Woken when a call leaves the queue (for `backpressure`).
    pub(crate) queue_space: Arc<Notify>,
    pub(crate) refusals: RefusalLog,
    pub(crate) metrics: ServerMetrics,
}

impl LoadTracker {
    pub(crate) fn new(
        config: ReportingConfig,
        streaming: StreamingMethods,
        initial: SystemLoad,
        now: Instant,
    ) -> Self {
        let tracker = Self {
            slots: config.capacity.map(|c| Arc::new(Semaphore::new(c))),
            calls: CallCounters::new(),
            window: SharedRateWindow::new(config.window, now),
            service_time: SharedServiceTime::new(config.service_time_decay, now),
            config,
            streaming: streaming.with(OOB_METHOD),
            layer_queue: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            // Relaxed: a ticket, ordering nothing else.
            id: NEXT_TRACKER.fetch_add(1, Relaxed),
            app_queue: AtomicUsize::new(0),
            app_utilization: AtomicF64::new(f64::NAN),
            has_named: AtomicBool::new(false),
            named: RwLock::new(Vec::new()),
            cpu: AtomicF64::new(0.0),
            mem: AtomicF64::new(0.0),
            oob_subscribers: AtomicUsize::new(0),
            queue_space: Arc::new(Notify::new()),
            refusals: RefusalLog::default(),
            metrics: ServerMetrics::new(),
        };
        tracker.apply_system_load(initial);
        tracker
    }

    // --- counters each `InFlightCall` drives ---

    pub(crate) fn call_started(&self, stream: bool) {
        self.calls.started(stream);
    }

    pub(crate) fn call_finished(&self, stream: bool, failed: bool) {
        self.calls.finished(stream, failed);
    }

    /// The call is no longer in flight; it counts in no rate (handed back).
    pub(crate) fn call_released(&self, stream: bool) {
        self.calls.released(stream);
    }

    /// Whether a unary call offered for hand-back that finds no free slot
    /// is handed back: `hand_back_queue_depth` calls already wait.
    pub(crate) fn hands_back(&self) -> bool {
        self.config
            .hand_back_queue_depth
            .is_some_and(|depth| self.layer_queue() >= depth)
    }

    pub(crate) fn enqueued(&self) {
        // Relaxed: a counter read on its own (see the struct).
        self.layer_queue.fetch_add(1, Relaxed);
        self.changed();
    }

    /// Something a report carries changed other than by a call's counts.
    fn changed(&self) {
        // Relaxed: a statistic read on its own (see the struct); a report
        // that reads it stale is one made a moment before the change.
        self.generation.fetch_add(1, Relaxed);
    }

    /// The count of changes in the `generation` field.
    pub(crate) fn generation(&self) -> u64 {
        // Relaxed: see `changed`.
        self.generation.load(Relaxed)
    }

    /// This tracker's number among those the process made.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn dequeued(&self) {
        // Relaxed: a counter read on its own (see the struct). A waiter woken
        // below reads it again, and `Notify` does its own synchronization.
        self.layer_queue.fetch_sub(1, Relaxed);
        self.changed();
        if self.config.backpressure {
            self.queue_space.notify_waiters();
        }
    }

    /// Calls waiting for a worker slot in the layer.
    pub(crate) fn layer_queue(&self) -> usize {
        // Relaxed: a counter read on its own (see the struct).
        self.layer_queue.load(Relaxed)
    }

    /// Whether the layer's queue has no room for another call.
    pub(crate) fn queue_full(&self) -> bool {
        self.layer_queue() >= self.config.max_queue_depth
    }

    /// A unary call's service ended: busy time, and a sample of the
    /// service-time average.
    pub(crate) fn service_ended(&self, service_time: Duration) {
        self.calls.service_ended(service_time);
    }

    /// A call's handler was dropped before it answered: its time counts as
    /// busy, but not as a service time (it would have taken longer).
    pub(crate) fn service_abandoned(&self, ran: Duration) {
        self.calls.service_abandoned(ran);
    }

    /// Rates over the window as of `now`.
    pub(crate) fn rates(&self, now: Instant) -> orca_lb_core::load_model::Rates {
        self.window.rates(now, || self.calls.totals())
    }

    /// Records the totals at `now` in the rate window, and brings the
    /// service-time average up to date.
    pub(crate) fn advance(&self, now: Instant) {
        self.window.advance(now, || self.calls.totals());
        self.service_time_ms(now);
        self.changed();
    }

    /// The unary service-time average in milliseconds as of `now`.
    fn service_time_ms(&self, now: Instant) -> Option<f64> {
        self.service_time.value_ms(now, || self.calls.services())
    }

    /// Counts a new out-of-band subscriber; `false`, counting nothing, when
    /// `max_oob_subscribers` are connected already.
    pub(crate) fn try_oob_subscribe(&self) -> bool {
        let max = self.config.max_oob_subscribers;
        // Relaxed: the limit rests on the update being atomic, not on order
        // with other memory (see the struct).
        self.oob_subscribers
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    pub(crate) fn oob_unsubscribed(&self) {
        // Relaxed: see `try_oob_subscribe`.
        self.oob_subscribers.fetch_sub(1, Relaxed);
    }

    // --- values the application sets ---

    pub(crate) fn set_app_utilization(&self, v: f64) {
        self.app_utilization.store(v);
        self.changed();
    }

    pub(crate) fn set_app_queue(&self, n: usize) {
        // Relaxed: a gauge read on its own (see the struct).
        self.app_queue.store(n, Relaxed);
        self.changed();
    }

    /// Sets a server-wide named metric; refuses a new name that would take
    /// the report past `max_report_bytes`.
    pub(crate) fn set_named(&self, name: &str, v: f64) -> Result<(), RecordError> {
        let mut named = self.named.write();
        let used: usize = named.iter().map(|(n, _)| map_entry_len(n)).sum();
        set_within(
            &mut named,
            name,
            v,
            STANDARD_FIELDS_BYTES + used,
            self.config.max_report_bytes,
        )?;
        // Relaxed: a hint that `named` is worth locking; written under its
        // write lock, and a report that reads it stale skips one update.
        self.has_named.store(true, Relaxed);
        self.changed();
        Ok(())
    }

    /// Bytes the server-wide named metrics take in a report.
    pub(crate) fn named_bytes(&self) -> usize {
        // Relaxed: a hint (see `set_named`); the lock below orders the data.
        if !self.has_named.load(Relaxed) {
            return 0;
        }
        self.named
            .read()
            .iter()
            .map(|(n, _)| map_entry_len(n))
            .sum()
    }

    /// Checks a name's length against `max_name_len`.
    pub(crate) fn check_name(&self, name: &str) -> Result<(), RecordError> {
        let max = self.config.max_name_len;
        if name.len() > max {
            return Err(RecordError::NameTooLong {
                len: name.len(),
                max,
            });
        }
        Ok(())
    }

    /// Counts and logs (once per kind, then summarised) a refused metric.
    pub(crate) fn refused(&self, source: Source, name: &str, error: &RecordError) {
        match source {
            Source::Report => self.metrics.dropped_metrics.increment(1),
            Source::LoadRecorder | Source::CallRecorder | Source::SystemSampler => {
                self.metrics.rejected_metrics.increment(1)
            }
        }
        self.refusals
            .refused(source, name, error, tokio::time::Instant::now().into_std());
    }

    pub(crate) fn remove_named(&self, name: &str) {
        let mut named = self.named.write();
        named.retain(|(n, _)| &**n != name);
        // Relaxed: a hint (see `set_named`), written under the write lock.
        self.has_named.store(!named.is_empty(), Relaxed);
        self.changed();
    }

    pub(crate) fn apply_system_load(&self, load: SystemLoad) {
        self.changed();
        // A bad reading keeps the last good one. A sampler that keeps
        // failing does so every tick: logged once per kind, then summarised.
        match Field::CpuUtilization.check(load.cpu_utilization) {
            Ok(v) => self.cpu.store(v),
            Err(e) => self.refused(
                Source::SystemSampler,
                "cpu_utilization",
                &RecordError::Invalid(e),
            ),
        }
        match Field::MemUtilization.check(load.mem_utilization) {
            Ok(v) => self.mem.store(v),
            Err(e) => self.refused(
                Source::SystemSampler,
                "mem_utilization",
                &RecordError::Invalid(e),
            ),
        }
    }

    // --- reading ---
    //
    // Relaxed loads throughout: each value is read on its own (see the
    // struct).

    pub(crate) fn in_flight(&self) -> usize {
        self.calls.in_flight()
    }

    pub(crate) fn active_streams(&self) -> usize {
        self.calls.streams()
    }

    pub(crate) fn queue_depth(&self) -> usize {
        self.layer_queue.load(Relaxed) + self.app_queue.load(Relaxed)
    }

    pub(crate) fn oob_subscribers(&self) -> usize {
        self.oob_subscribers.load(Relaxed)
    }

    pub(crate) fn snapshot(&self, now: Instant) -> LoadSnapshot {
        let rates = self.rates(now);
        let cpu = self.cpu.load();
        let queue_depth = self.queue_depth();
        let capacity = self.config.capacity;
        let app_set = self.app_utilization.load();
        let utilization = if !app_set.is_nan() {
            UtilizationSource::Application(app_set)
        } else if let Some(capacity) = capacity.and_then(NonZeroUsize::new) {
            // Calls waiting in the layer's queue are left out; a queue the
            // application keeps itself is added (see `UtilizationSource`).
            UtilizationSource::Slots {
                busy: round_estimate(rates.busy),
                queued: self.app_queue.load(Relaxed) as f64,
                capacity,
            }
        } else {
            UtilizationSource::Cpu(cpu)
        };
        LoadSnapshot {
            cpu_utilization: cpu,
            mem_utilization: self.mem.load(),
            application_utilization: utilization.reported(),
            rps: round_estimate(rates.rps),
            eps: round_estimate(rates.eps),
            queue_depth,
            in_flight: self.in_flight(),
            active_streams: self.active_streams(),
            capacity,
            service_time_ms: self.service_time_ms(now).map(round_estimate),
        }
    }

    /// Writes the server-wide report: the snapshot, always, plus the
    /// application's named metrics that fit.
    pub(crate) fn encode(&self, now: Instant, report: &mut BoundedReport<'_>) {
        encode_snapshot(&self.snapshot(now), &mut report.standard());
        // Relaxed: a hint (see `set_named`); the lock below orders the data.
        if self.has_named.load(Relaxed) {
            for (name, v) in self.named.read().iter() {
                report.named_metric(name, *v);
            }
        }
    }

    /// The server-wide report as a message, for the out-of-band stream:
    /// the snapshot plus the named metrics that fit in `max_report_bytes`.
    pub(crate) fn raw_report(&self, now: Instant) -> RawLoadReport {
        let snapshot = self.snapshot(now);
        let mut size = {
            let mut buf = Vec::with_capacity(STANDARD_FIELDS_BYTES);
            encode_snapshot(&snapshot, &mut ReportEncoder::new(&mut buf));
            buf.len()
        };
        let mut raw = snapshot.to_raw();
        // Relaxed: a hint (see `set_named`); the lock below orders the data.
        if self.has_named.load(Relaxed) {
            for (name, v) in self.named.read().iter() {
                let len = map_entry_len(name);
                if size + len > self.config.max_report_bytes {
                    self.refused(
                        Source::Report,
                        name,
                        &RecordError::ReportFull {
                            max: self.config.max_report_bytes,
                        },
                    );
                    continue;
                }
                size += len;
                raw.named_metrics.insert(name.to_string(), *v);
            }
        }
        raw
    }
}

/// Samples CPU and memory and advances the rate window every
/// `sample_interval`, until the tracker is dropped.
pub(crate) async fn run_sampler(
    tracker: Weak<LoadTracker>,
    mut sampler: Box<dyn SystemSampler>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(tracker) = tracker.upgrade() else {
            return;
        };
        tracker.apply_system_load(sampler.sample());
        let now = tokio::time::Instant::now().into_std();
        tracker.advance(now);
        tracker.refusals.flush(now);
    }
}
