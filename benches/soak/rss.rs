//! A process's resident set size, read from `/proc/PID/status`.

use std::fmt;

/// Resident memory, in KiB (`VmRSS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rss(pub(crate) u64);

impl Rss {
    /// The `VmRSS` of process `pid`.
    pub(crate) fn of(pid: u32) -> Result<Rss, String> {
        let path = format!("/proc/{pid}/status");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        parse_vm_rss(&text).ok_or_else(|| format!("no VmRSS line in {path}"))
    }

    /// `later` over `self`.
    pub(crate) fn ratio(self, later: Rss) -> f64 {
        later.0 as f64 / self.0.max(1) as f64
    }
}

impl fmt::Display for Rss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} MiB", self.0 as f64 / 1024.0)
    }
}

/// The `VmRSS:   1234 kB` line of a status file.
fn parse_vm_rss(status: &str) -> Option<Rss> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(Rss(kib))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tx\nVmHWM:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(Rss(5120)));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
        assert_eq!(Rss(1000).ratio(Rss(1100)), 1.1);
    }

    #[test]
    fn own_process() {
        let rss = Rss::of(std::process::id()).unwrap();
        assert!(rss.0 > 0);
    }
}
