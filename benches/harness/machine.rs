//! The machine a run ran on, as Linux describes it.

use serde::Serialize;

/// What `/proc` says about the machine, and how busy it was.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    /// CPUs this process may use.
    pub(crate) cpus: usize,
    /// The first `model name` of `/proc/cpuinfo`.
    pub(crate) cpu_model: String,
    /// `MemTotal` of `/proc/meminfo`.
    pub(crate) memory: String,
    /// The kernel release.
    pub(crate) kernel: String,
    /// The 1, 5 and 15 minute load averages.
    pub(crate) load_average: String,
}

impl Machine {
    /// Reads it now. Missing files give empty fields.
    pub(crate) fn read() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let load = read("/proc/loadavg");
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: field(&read("/proc/cpuinfo"), "model name"),
            memory: field(&read("/proc/meminfo"), "MemTotal"),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_average: load
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}
