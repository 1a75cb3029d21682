//! CPU and memory of this process, from the operating system.

use std::fs;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::sampler::{SystemLoad, SystemSampler};

/// Samples this process's CPU and memory with `sysinfo`.
///
/// - CPU: the process's CPU time over the last interval, divided by the CPUs
///   it may use: the cgroup v2 quota (`cpu.max`) where one is set, else the
///   machine's available parallelism.
/// - Memory: the process's resident set, divided by the cgroup memory limit
///   where one is set, else the machine's total memory.
///
/// The first reading reports CPU 0: CPU use is a difference between two reads.
#[derive(Debug)]
pub struct SysinfoSampler {
    system: System,
    pid: Option<Pid>,
    cpus: f64,
}

impl SysinfoSampler {
    /// A sampler for the current process.
    pub fn new() -> Self {
        let pid = sysinfo::get_current_pid().ok();
        Self {
            system: System::new(),
            pid,
            cpus: available_cpus(),
        }
    }

    /// The number of CPUs CPU utilization is a fraction of.
    pub fn cpus(&self) -> f64 {
        self.cpus
    }
}

impl Default for SysinfoSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemSampler for SysinfoSampler {
    fn sample(&mut self) -> SystemLoad {
        let Some(pid) = self.pid else {
            return SystemLoad::default();
        };
        self.system.refresh_memory();
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let Some(process) = self.system.process(pid) else {
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
        // sysinfo reports percent of one CPU.
        let cpu = (f64::from(process.cpu_usage()) / 100.0 / self.cpus).max(0.0);
        SystemLoad {
            cpu_utilization: if cpu.is_finite() { cpu } else { 0.0 },
            mem_utilization: mem,
        }
    }
}

/// CPUs this process may use: the cgroup v2 quota if set, else the
/// available parallelism.
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
        // Burn a little CPU so the second reading has something to see.
        let _ = s.sample();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let load = s.sample();
        assert!(load.cpu_utilization.is_finite() && load.cpu_utilization >= 0.0);
        assert!(
            load.mem_utilization > 0.0 && load.mem_utilization <= 1.0,
            "{load:?}"
        );
    }
}
