//! Live heap bytes, counted by a wrapper around the system allocator: with
//! the RSS, it tells memory the process holds from memory the allocator
//! keeps after it was freed.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// `System`, counting every allocation in atomics.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed, now.
pub(crate) fn live_bytes() -> u64 {
    // A reallocation is counted in `bytes_allocated` (growth) or
    // `bytes_deallocated` (shrinking) already.
    let s = GLOBAL.stats();
    s.bytes_allocated.saturating_sub(s.bytes_deallocated) as u64
}

/// `bytes` in MiB, one decimal.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_live_allocation() {
        // Other tests allocate at the same time: only a large block is
        // sure to show.
        let before = live_bytes();
        let block = vec![1u8; 64 << 20];
        let during = live_bytes();
        drop(block);
        assert!(during >= before + (48 << 20), "{before} -> {during}");
        // Growing and shrinking by reallocation moves the count both ways.
        let mut v: Vec<u8> = Vec::with_capacity(1 << 20);
        let small = live_bytes();
        v.reserve_exact(64 << 20);
        let grown = live_bytes();
        assert!(
            grown < small + (80 << 20),
            "counted twice: {small} -> {grown}"
        );
        v.shrink_to(1 << 20);
        let shrunk = live_bytes();
        drop(v);
        assert!(grown >= shrunk + (48 << 20), "{grown} -> {shrunk}");
    }
}
