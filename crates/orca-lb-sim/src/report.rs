//! Renders [`Results`]: Markdown tables, JSON and SVG plots.
//!
//! The loopback harness fills the same [`Results`] and reuses these
//! renderers, so simulated and real runs read the same way.

mod svg;
mod table;

use std::path::{Path, PathBuf};

pub use self::svg::{latency_cdf, latency_tail, watched_share};
pub use self::table::table;
use crate::results::{PolicyResult, Results};
use crate::scenario::BarWindow;

/// One goal of the bar, checked for one policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What is measured, e.g. `p99.9 / limit`.
    pub what: String,
    /// The goal: at most this.
    pub goal: f64,
    /// What the policy reached (`None`: never reached, such as a reaction
    /// that did not happen).
    pub got: Option<f64>,
    /// Whether it meets the goal.
    pub pass: bool,
}

/// The limit's results, when the run has them.
pub fn limit(results: &Results) -> Option<&PolicyResult> {
    results.policy("limit")
}

/// Checks `policy` against the scenario's bar. Empty without a bar, and
/// latency goals are skipped without a limit run.
pub fn check_bar(results: &Results, policy: &PolicyResult) -> Vec<Check> {
    let Some(bar) = &results.bar else {
        return Vec::new();
    };
    let event = bar.window == BarWindow::Event;
    let stats = policy.stats(event);
    let mut out = Vec::new();
    let mut check = |what: &str, goal: Option<f64>, got: Option<f64>| {
        if let Some(goal) = goal {
            out.push(Check {
                what: what.to_owned(),
                goal,
                got,
                pass: got.is_some_and(|g| g <= goal),
            });
        }
    };
    if let Some(limit) = limit(results) {
        let l = limit.stats(event);
        check(
            "p99 / limit",
            bar.p99,
            ratio(stats.all.p99_ms, l.all.p99_ms),
        );
        check(
            "p99.9 / limit",
            bar.p999,
            ratio(stats.all.p999_ms, l.all.p999_ms),
        );
    }
    check("errors", bar.errors, Some(stats.error_rate));
    check("reaction s", bar.reaction_s, policy.reaction_s);
    check("recovery s", bar.recovery_s, policy.recovery_s);
    out
}

/// `a / b`, or `None` when `b` is not positive.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// The results as pretty-printed JSON.
pub fn json(results: &Results) -> String {
    serde_json::to_string_pretty(results).expect("results serialize")
}

/// Writes `results.json`, `table.md` and the plots (`latency_cdf.svg`,
/// `latency_tail.svg` and, with watched backends, `watched_share.svg`) into
/// `dir`, creating it. Returns the files written.
pub fn write_all(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    let mut write = |name: &str, text: String| -> Result<(), String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        files.push(path);
        Ok(())
    };
    write("results.json", json(results))?;
    write("table.md", table(results))?;
    let path = dir.join("latency_cdf.svg");
    latency_cdf(results, &path)?;
    files.push(path);
    let path = dir.join("latency_tail.svg");
    latency_tail(results, &path)?;
    files.push(path);
    if !results.watched.is_empty() {
        let path = dir.join("watched_share.svg");
        watched_share(results, &path)?;
        files.push(path);
    }
    Ok(files)
}
