//! Log lines captured in memory, for tests that count what was logged.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use tracing::dispatcher::{DefaultGuard, Dispatch};

thread_local! {
    /// The log sink of a [`SharedBuf::runtime`] thread, for as long as the
    /// thread runs.
    static THREAD_SINK: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

/// A log sink the test can read back: a `tracing_subscriber::fmt` writer.
#[derive(Debug, Clone, Default)]
pub struct SharedBuf(Arc<parking_lot::Mutex<Vec<u8>>>);

impl io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    /// The lines that contain `containing`.
    pub fn lines(&self, containing: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(containing))
            .map(str::to_string)
            .collect()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }

    /// A subscriber writing every event at `level` and above here, without
    /// colours. Installs the global subscriber that keeps scoped capture
    /// reliable (see `orca_lb_testkit::scoped_logs`).
    pub fn subscriber(
        &self,
        level: tracing::Level,
    ) -> impl tracing::Subscriber + Send + Sync + 'static {
        orca_lb_testkit::scoped_logs::allow_scoped_subscribers();
        let sink = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_max_level(level)
            .with_ansi(false)
            .finish()
    }

    /// A multi-threaded runtime (two workers) whose every thread logs here at
    /// `level` and above, and the dispatch to use on the thread that blocks
    /// on it (`tracing::dispatcher::with_default`). Unlike
    /// `tracing::subscriber::set_default`, which covers one thread, this
    /// captures what every task logs, wherever it runs.
    pub fn runtime(&self, level: tracing::Level) -> (tokio::runtime::Runtime, Dispatch) {
        let dispatch = Dispatch::new(self.subscriber(level));
        let on_start = dispatch.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(move || {
                let guard = tracing::dispatcher::set_default(&on_start);
                THREAD_SINK.with(|sink| *sink.borrow_mut() = Some(guard));
            })
            .on_thread_stop(|| THREAD_SINK.with(|sink| drop(sink.borrow_mut().take())))
            .build()
            .expect("a runtime");
        (runtime, dispatch)
    }
}
