//! CPU time per group of threads, from `/proc/self/task`.
//!
//! Servers and clients share the process in the loopback harness and the
//! client overhead benchmark, so the process's CPU time does not say what
//! the client side costs. They do not share threads: the servers run on one
//! tokio runtime (threads named `server-rt`), the clients on another
//! (`client-rt`), and the harness's schedule is driven by one thread of its
//! own (`client-load`). Each thread's CPU time, user and
//! system, is read from `/proc/self/task/<tid>/schedstat` (nanoseconds), or
//! from `stat` (clock ticks, assumed 100 per second) where the kernel has
//! no schedstat.

use std::fs;

/// Threads whose name starts with this are the client side.
pub const CLIENT_PREFIX: &str = "client-";
/// Threads whose name starts with this are the servers.
pub const SERVER_PREFIX: &str = "server-";

/// A tokio runtime with one worker whose threads are named `name`: with
/// [`CLIENT_PREFIX`] or [`SERVER_PREFIX`] in front, their CPU time counts
/// in that group.
pub fn named_runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Cumulative CPU time, nanoseconds, of the threads alive when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Client runtime and load thread.
    pub client: u64,
    /// Server runtime.
    pub server: u64,
    /// Every thread of the process.
    pub process: u64,
}

impl CpuTimes {
    /// Reads every thread of this process now.
    pub fn now() -> CpuTimes {
        let mut t = CpuTimes::default();
        let Ok(tasks) = fs::read_dir("/proc/self/task") else {
            return t;
        };
        for task in tasks.flatten() {
            let dir = task.path();
            let name = fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let Some(ns) = thread_ns(&dir) else { continue };
            t.process += ns;
            if name.starts_with(CLIENT_PREFIX) {
                t.client += ns;
            } else if name.starts_with(SERVER_PREFIX) {
                t.server += ns;
            }
        }
        t
    }

    /// CPU used from `earlier` to `self` over `wall_ns`, in cores.
    pub fn cores_since(&self, earlier: &CpuTimes, wall_ns: u64) -> Cores {
        let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / wall_ns.max(1) as f64;
        Cores {
            client: per(self.client, earlier.client),
            server: per(self.server, earlier.server),
            process: per(self.process, earlier.process),
        }
    }
}

/// CPU use over an interval, in cores (1.0: one core busy throughout).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Cores {
    /// Client runtime and load thread.
    pub client: f64,
    /// Server runtime.
    pub server: f64,
    /// The whole process (also the monitor and the main thread).
    pub process: f64,
}

fn thread_ns(dir: &std::path::Path) -> Option<u64> {
    if let Ok(s) = fs::read_to_string(dir.join("schedstat"))
        && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok())
    {
        return Some(ns);
    }
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    // The name is in parentheses and may hold spaces: count fields after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread named as the client side that keeps busy shows up as
    /// client CPU; one named otherwise does not, but counts in the process. Each spins until it has had
    /// 50 ms of CPU time (however long a busy machine takes to give it
    /// that), for at most 30 s.
    #[test]
    fn a_busy_thread_shows_up_in_its_group() {
        const WANTED: u64 = 50_000_000;
        let spin = |name: String| {
            std::thread::Builder::new()
                .name(name)
                .spawn(|| {
                    let own_now = || {
                        thread_ns(std::path::Path::new("/proc/thread-self"))
                            .expect("this thread's CPU time")
                    };
                    let before = CpuTimes::now();
                    // Read after `before`, so that what this thread spins
                    // from here is all within the groups' difference: its
                    // time up to `before` (its start, reading every thread)
                    // is not counted as spun.
                    let from = own_now();
                    let start = std::time::Instant::now();
                    let mut x = 0u64;
                    loop {
                        for i in 0..100_000u64 {
                            x = x.wrapping_add(i);
                            std::hint::black_box(x);
                        }
                        // Read while alive: an exited thread's time is gone.
                        let spun = own_now() - from;
                        if spun >= WANTED || start.elapsed().as_secs() >= 30 {
                            return (before, CpuTimes::now(), spun);
                        }
                    }
                })
                .unwrap()
                .join()
                .unwrap()
        };
        let (before, after, spun) = spin(format!("{CLIENT_PREFIX}test"));
        assert!(spun >= WANTED, "{spun} ns of CPU in 30 s");
        let client = after.client.saturating_sub(before.client);
        assert!(client >= WANTED, "{client} ns of client CPU");
        assert!(after.process >= after.client);

        // The process's total counts the threads alive when read: other
        // tests' threads that ended meanwhile leave it, so compare this
        // thread's own time with what is counted outside the groups now.
        let (before, after, spun) = spin("other-test".to_string());
        let ungrouped = after.process - after.client - after.server;
        assert!(
            ungrouped >= spun,
            "{ungrouped} ns outside the groups, {spun} ns spun"
        );
        // Other client threads may run meanwhile (none do in this test
        // binary), but not 50 ms of them.
        let client = after.client.saturating_sub(before.client);
        assert!(client < WANTED, "{client} ns counted as client");
    }
}
