//! A scoped subscriber sees a log statement that another thread, with no
//! subscriber, reached first. Its own process: the global subscriber it
//! installs is process-wide.

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn log_something(n: u32) {
    tracing::warn!(n, "something happened");
}

#[test]
fn a_statement_first_reached_elsewhere_is_still_captured() {
    orca_lb_testkit::scoped_logs::allow_scoped_subscribers();
    let buf = Buf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Another thread, with no subscriber of its own, reaches the statement
    // first. Without the global subscriber, the only one registered is this
    // thread's, `tracing` asks the other thread's default (none) and caches
    // "never" for the statement.
    std::thread::spawn(|| log_something(1)).join().unwrap();

    log_something(2);
    let text = String::from_utf8_lossy(&buf.0.lock()).into_owned();
    assert!(
        text.contains("something happened n=2"),
        "captured: {text:?}"
    );
    assert!(
        !text.contains("n=1"),
        "the other thread's event is not ours"
    );
}
