//! CPU and memory of this process, from the operating system.

use std::fs;
use std::time::Instant;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::sampler::{SystemLoad, SystemSampler};

/// Samples this process's CPU and memory with `sysinfo`.
///
/// - CPU: the process's CPU time since the previous reading (or since the
///   sampler was created) over the wall time between them, divided by the
///   CPUs it may use: the cgroup v2 quota (`cpu.max`) where one is set, else
///   the machine's available parallelism.
/// - Memory: the process's resident set, divided by the cgroup memory limit
///   where one is set, else the machine's total memory.
#[derive(Debug)]
pub struct SysinfoSampler {
    system: System,
    pid: Option<Pid>,
    cpus: f64,
    /// When the process's CPU time was last read, and what it was (ms).
    last: Option<(Instant, u64)>,
}

impl SysinfoSampler {
    /// A sampler for the current process.
    pub fn new() -> Self {
        let pid = sysinfo::get_current_pid().ok();
        let mut sampler = Self {
            system: System::new(),
            pid,
            cpus: available_cpus(),
            last: None,
        };
        sampler.last = sampler.cpu_time().map(|ms| (Instant::now(), ms));
        sampler
    }

    /// The number of CPUs CPU utilization is a fraction of.
    pub fn cpus(&self) -> f64 {
        self.cpus
    }

    /// Refreshes the process and returns its CPU time so far, ms.
    fn cpu_time(&mut self) -> Option<u64> {
        let pid = self.pid?;
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        self.system.process(pid).map(|p| p.accumulated_cpu_time())
    }
}

impl Default for SysinfoSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemSampler for SysinfoSampler {
    fn sample(&mut self) -> SystemLoad {
        let Some(cpu_ms) = self.cpu_time() else {
            return SystemLoad::default();
        };
        let now = Instant::now();
        // CPU time is read from the kernel in clock ticks (10 ms): over a
        // short interval the quotient is coarse, never wrong on average.
        let cpu = match self.last.replace((now, cpu_ms)) {
            Some((then, before)) => {
                let wall = now.saturating_duration_since(then).as_secs_f64();
                let used = cpu_ms.saturating_sub(before) as f64 / 1000.0;
                if wall > 0.0 {
                    used / wall / self.cpus
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.system.refresh_memory();
        let Some(process) = self.pid.and_then(|pid| self.system.process(pid)) else {
            return SystemLoad::default();
        };
        let total_memory = self
            .system
            .cgroup_limits()
            .map(|l| l.total_memory)
            .filter(|&m| m > 0)
            .unwrap_or_else(|| self.system.total_memory());
        let mem = if total_memory > 0 {
            (process.memory() as f64 / total_memory as f64).clamp(0.0, 1.0)
        } else {
            0.0
        };
        SystemLoad {
            cpu_utilization: if cpu.is_finite() { cpu.max(0.0) } else { 0.0 },
            mem_utilization: mem,
        }
    }
}

fn available_cpus() -> f64 {
    let parallelism = std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0);
    match fs::read_to_string("/sys/fs/cgroup/cpu.max") {
        Ok(s) => parse_cpu_max(&s)
            .map(|quota| quota.min(parallelism))
            .unwrap_or(parallelism),
        Err(_) => parallelism,
    }
}

/// Parses cgroup v2 `cpu.max` ("<quota> <period>" or "max <period>").
fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let quota: f64 = it.next()?.parse().ok()?;
    let period: f64 = it.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then_some(quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_parsing() {
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("50000 100000"), Some(0.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cpu_max("0 100000"), None);
    }

    #[test]
    fn samples_this_process_in_range() {
        let mut s = SysinfoSampler::new();
        assert!(s.cpus() >= 0.5);
        // Keep this thread busy between readings: the reading after a busy
        // quarter second must show CPU. (CPU time comes in 10 ms ticks; a
        // starved machine may give the thread less than a tick in a quarter
        // second, so it keeps going for up to 5 s.)
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let load = loop {
            let round = std::time::Instant::now();
            while round.elapsed() < std::time::Duration::from_millis(250) {
                for i in 0..10_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(i);
                }
                std::hint::black_box(x);
            }
            let load = s.sample();
            if load.cpu_utilization > 0.0 || start.elapsed().as_secs() >= 5 {
                break load;
            }
        };
        // Busy, and a fraction of the CPUs this process may use (within a
        // tick's rounding).
        assert!(
            load.cpu_utilization > 0.0 && load.cpu_utilization <= 1.05,
            "{load:?}"
        );
        assert!(
            load.mem_utilization > 0.0 && load.mem_utilization <= 1.0,
            "{load:?}"
        );
    }
}
