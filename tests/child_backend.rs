//! A test backend in its own process (`orca-lb-test-backend`), so that a test
//! can kill it with SIGKILL or freeze it with SIGSTOP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use rustix::process::{Pid, Signal, kill_process};

/// A test backend in its own process; killed (SIGKILL) and reaped when
/// dropped, frozen or not.
#[derive(Debug)]
pub struct ChildBackend {
    child: Child,
    url: String,
}

impl ChildBackend {
    /// `n` backends of `bin`, named `b0`, `b1`, ..., each taking
    /// `service_ms` per call.
    pub fn spawn_fleet(bin: &str, n: usize, service_ms: u64) -> Vec<ChildBackend> {
        (0..n)
            .map(|i| ChildBackend::spawn(bin, &format!("b{i}"), service_ms))
            .collect()
    }

    /// Like [`spawn_fleet`](Self::spawn_fleet), each backend serving the
    /// health service too (the whole server SERVING).
    pub fn spawn_fleet_with_health(bin: &str, n: usize, service_ms: u64) -> Vec<ChildBackend> {
        (0..n)
            .map(|i| ChildBackend::spawn_with(bin, &format!("b{i}"), service_ms, &["health"]))
            .collect()
    }

    /// Starts `bin` (the `orca-lb-test-backend` binary: a test target gets
    /// its path as `env!("CARGO_BIN_EXE_orca-lb-test-backend")`) as the
    /// greeter `name` taking `service_ms` per call, and waits until it
    /// listens.
    pub fn spawn(bin: &str, name: &str, service_ms: u64) -> ChildBackend {
        Self::spawn_with(bin, name, service_ms, &[])
    }

    fn spawn_with(bin: &str, name: &str, service_ms: u64, extra: &[&str]) -> ChildBackend {
        let mut child = Command::new(bin)
            .args([name, &service_ms.to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("test backend starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("test backend prints its address");
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        ChildBackend {
            url: format!("http://{addr}"),
            child,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills it at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes it (SIGSTOP): its sockets stay open, the kernel still accepts
    /// connections and buffers requests, and nothing answers.
    pub fn freeze(&self) {
        self.signal(Signal::STOP);
    }

    /// Lets a frozen backend run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal(Signal::CONT);
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_child(&self.child);
        kill_process(pid, signal).unwrap_or_else(|e| panic!("{signal:?} to {pid:?}: {e}"));
    }
}

impl Drop for ChildBackend {
    fn drop(&mut self) {
        self.kill();
    }
}
