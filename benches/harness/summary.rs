//! What the harness adds to the simulator's tables: the client's CPU, how
//! the calls were attributed, orca-lb against the best peer, and the
//! harness against the simulator on the same scenario.

use std::fmt::Write;

use orca_lb_sim::report::ratio;
use orca_lb_sim::{BarWindow, LatencyStats, PolicyResult, Results};
use serde::Serialize;

use crate::run::RunStats;

/// The limit at the service times the rig gave, as results name it.
pub(crate) const RIG_LIMIT: &str = "limit/rig";

/// The client side must stay well below one core; above this it is
/// flagged.
pub(crate) const CLIENT_CORES_LIMIT: f64 = 0.5;

/// The plan's tolerance between harness and simulator.
pub(crate) const AGREEMENT: f64 = 0.15;

/// The policies whose harness and simulator numbers must agree.
pub(crate) const MUST_AGREE: [&str; 2] = ["rr", "p2c_lr"];

/// One figure of a set of calls.
type Figure = fn(&LatencyStats) -> f64;

/// Error rates below this count as zero when comparing.
const NEGLIGIBLE_ERRORS: f64 = 0.001;

/// Whether the scenario's bar is judged on the event window.
pub(crate) fn event_window(results: &Results) -> bool {
    results
        .bar
        .as_ref()
        .map_or(results.event_window_s.is_some(), |b| {
            b.window == BarWindow::Event
        })
}

/// One policy's harness numbers over the simulator's.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Agreement {
    pub(crate) policy: String,
    /// `[harness, simulator]` for p50, p99, p99.9 (ms) and the error rate.
    pub(crate) p50_ms: [f64; 2],
    pub(crate) p99_ms: [f64; 2],
    pub(crate) p999_ms: [f64; 2],
    pub(crate) error_rate: [f64; 2],
    /// The watched backends' share, when the scenario watches some.
    pub(crate) watched_share: Option<[f64; 2]>,
    /// Every compared figure within [`AGREEMENT`].
    pub(crate) agrees: bool,
}

fn within(h: f64, s: f64) -> bool {
    ratio(h, s).is_some_and(|r| (r - 1.0).abs() <= AGREEMENT) || (h == 0.0 && s == 0.0)
}

fn errors_within(h: f64, s: f64) -> bool {
    (h < NEGLIGIBLE_ERRORS && s < NEGLIGIBLE_ERRORS) || within(h, s)
}

fn watched(results: &Results, p: &PolicyResult) -> Option<f64> {
    (!results.watched.is_empty())
        .then(|| results.watched.iter().map(|&i| p.backends[i].share).sum())
}

/// Compares every policy the harness and the simulator both ran, on the
/// window the bar is judged on.
pub(crate) fn agreement(harness: &Results, sim: &Results) -> Vec<Agreement> {
    let event = event_window(harness);
    harness
        .policies
        .iter()
        .filter(|p| !p.policy.starts_with("limit"))
        .filter_map(|h| {
            let s = sim.policy(&h.policy)?;
            let (hs, ss) = (h.stats(event), s.stats(event));
            let pair = |f: fn(&LatencyStats) -> f64| [f(hs), f(ss)];
            let p50 = pair(|s| s.all.p50_ms);
            let p99 = pair(|s| s.all.p99_ms);
            let p999 = pair(|s| s.all.p999_ms);
            let errors = pair(|s| s.error_rate);
            let share = watched(harness, h)
                .zip(watched(sim, s))
                .map(|(a, b)| [a, b]);
            let agrees = within(p50[0], p50[1])
                && within(p99[0], p99[1])
                && within(p999[0], p999[1])
                && errors_within(errors[0], errors[1]);
            Some(Agreement {
                policy: h.policy.clone(),
                p50_ms: p50,
                p99_ms: p99,
                p999_ms: p999,
                error_rate: errors,
                watched_share: share,
                agrees,
            })
        })
        .collect()
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn pct(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v < 0.001 {
        format!("{:.3}%", v * 100.0)
    } else {
        format!("{:.2}%", v * 100.0)
    }
}

fn times(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}x"))
}

/// The harness against one run of the simulator.
#[derive(Debug)]
pub(crate) struct Comparison<'a> {
    /// How the simulator ran, for the heading.
    pub(crate) what: String,
    pub(crate) sim: &'a Results,
    pub(crate) agreement: &'a [Agreement],
}

/// The harness's own tables, in Markdown.
pub(crate) fn tables(
    harness: &Results,
    runs: &[RunStats],
    shift_ms: f64,
    comparisons: &[Comparison<'_>],
) -> String {
    let mut out = String::new();
    cpu_table(&mut out, harness, runs);
    rig_bar(&mut out, harness, shift_ms);
    best_peer(&mut out, harness);
    for c in comparisons {
        agreement_table(&mut out, c);
    }
    out
}

/// orca-lb against the bar, with the limit at the rig's service times.
fn rig_bar(out: &mut String, harness: &Results, shift_ms: f64) {
    let (Some(orca), Some(rig)) = (harness.policy("orca-lb"), harness.policy(RIG_LIMIT)) else {
        return;
    };
    let mut at_rig = harness.clone();
    at_rig.policies.retain(|p| p.policy != "limit");
    for p in &mut at_rig.policies {
        if p.policy == RIG_LIMIT {
            p.policy = "limit".into();
        }
    }
    let checks = orca_lb_sim::report::check_bar(&at_rig, orca);
    if checks.is_empty() {
        return;
    }
    let parts: Vec<String> = checks
        .iter()
        .filter(|c| c.what.contains("limit"))
        .map(|c| {
            format!(
                "{} {} (goal <= {}) {}",
                c.what,
                c.got.map_or("never".into(), |g| format!("{g:.2}")),
                c.goal,
                if c.pass { "met" } else { "**missed**" }
            )
        })
        .collect();
    if parts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "The bar against `{RIG_LIMIT}`, the limit at the service times the rig gave (the scenario's, {shift_ms:.2} ms longer: the median backend's busy time per call served, over the scenario's mean; {RIG_LIMIT}'s p99 is {} ms): {}.\n",
        ms(rig.stats(event_window(harness)).all.p99_ms),
        parts.join("; "),
    );
}

fn cpu_table(out: &mut String, harness: &Results, runs: &[RunStats]) {
    let _ = writeln!(
        out,
        "Client side (per run, over the measurement window; the greatest of the repetitions): CPU of the client runtime and the load thread, of the server runtime, and of the whole process, in cores; how late calls were handed to the client runtime; calls no source placed on a backend; the service time a typical backend gave (busy worker time per call served, median over the backends).\n"
    );
    out.push_str("| policy | client cores | server cores | process cores | send lag p50 / p99 / max µs | unattributed | service ms |\n");
    out.push_str("|---|--:|--:|--:|--:|--:|--:|\n");
    for p in harness
        .policies
        .iter()
        .filter(|p| !p.policy.starts_with("limit"))
    {
        let mine: Vec<&RunStats> = runs.iter().filter(|r| r.policy == p.policy).collect();
        if mine.is_empty() {
            continue;
        }
        let max = |f: fn(&RunStats) -> f64| mine.iter().map(|r| f(r)).fold(0.0, f64::max);
        let measured: u64 = mine.iter().map(|r| r.measured_calls).sum();
        let unattributed: u64 = mine.iter().map(|r| r.unattributed).sum();
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.3} | {:.0} / {:.0} / {:.0} | {} | {:.1} |",
            p.policy,
            max(|r| r.cores.client),
            max(|r| r.cores.server),
            max(|r| r.cores.process),
            max(|r| r.send_lag_us[0]),
            max(|r| r.send_lag_us[1]),
            max(|r| r.send_lag_us[2]),
            pct(unattributed as f64 / measured.max(1) as f64),
            max(|r| r.mean_service_ms),
        );
    }
    let probed: Vec<f64> = runs.iter().filter_map(|r| r.probes_per_call).collect();
    if !probed.is_empty() {
        let mean = probed.iter().sum::<f64>() / probed.len() as f64;
        let _ = writeln!(
            out,
            "\nProbes the backends answered (prequal), per call of the schedule over the whole run: {mean:.2} on average over {} runs.",
            probed.len()
        );
    }
    let worst = runs.iter().map(|r| r.cores.client).fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "\nClient side at most {worst:.3} cores: {} (limit {CLIENT_CORES_LIMIT}).\n",
        if worst < CLIENT_CORES_LIMIT {
            "well under one core"
        } else {
            "**above the limit**"
        }
    );
}

fn best_peer(out: &mut String, harness: &Results) {
    let Some(orca) = harness.policy("orca-lb") else {
        return;
    };
    let event = event_window(harness);
    let peers: Vec<&PolicyResult> = harness
        .policies
        .iter()
        .filter(|p| p.policy != "orca-lb" && !p.policy.starts_with("limit"))
        .collect();
    if peers.is_empty() {
        return;
    }
    let o = orca.stats(event);
    let _ = writeln!(
        out,
        "orca-lb over the best peer for each figure ({}; below 1 is better):\n",
        if event {
            "event window"
        } else {
            "whole measurement"
        }
    );
    out.push_str("| figure | orca-lb | best peer | ratio |\n|---|--:|--:|--:|\n");
    let rows: [(&str, Figure); 3] = [
        ("p50 ms", |s| s.all.p50_ms),
        ("p99 ms", |s| s.all.p99_ms),
        ("p99.9 ms", |s| s.all.p999_ms),
    ];
    for (name, f) in rows {
        let best = peers
            .iter()
            .min_by(|a, b| f(a.stats(event)).total_cmp(&f(b.stats(event))))
            .expect("peers");
        let _ = writeln!(
            out,
            "| {name} | {} | {} ({}) | {} |",
            ms(f(o)),
            ms(f(best.stats(event))),
            best.policy,
            times(ratio(f(o), f(best.stats(event)))),
        );
    }
    let best = peers
        .iter()
        .min_by(|a, b| {
            a.stats(event)
                .error_rate
                .total_cmp(&b.stats(event).error_rate)
        })
        .expect("peers");
    let _ = writeln!(
        out,
        "| errors | {} | {} ({}) | {} |\n",
        pct(o.error_rate),
        pct(best.stats(event).error_rate),
        best.policy,
        times(ratio(o.error_rate, best.stats(event).error_rate)),
    );
}

fn agreement_table(out: &mut String, c: &Comparison<'_>) {
    let agreement = c.agreement;
    if agreement.is_empty() {
        return;
    }
    let seeds: Vec<String> = c.sim.seeds.iter().map(u64::to_string).collect();
    let _ = writeln!(
        out,
        "Harness against the simulator {} (the same scenario at the same scale, simulator seeds {} pooled), all calls on the window of the bar; `h / s` is harness over simulator. They should agree within {:.0} % on {}.\n",
        c.what,
        seeds.join(", "),
        AGREEMENT * 100.0,
        MUST_AGREE.join(" and "),
    );
    out.push_str("| policy | p50 h / s | p99 h / s | p99.9 h / s | errors h / s | watched share h / s | within 15 % |\n");
    out.push_str("|---|--:|--:|--:|--:|--:|---|\n");
    for a in agreement {
        let cell = |[h, s]: [f64; 2]| format!("{} / {} ({})", ms(h), ms(s), times(ratio(h, s)));
        let share = a
            .watched_share
            .map_or("-".into(), |[h, s]| format!("{} / {}", pct(h), pct(s)));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} / {} | {} | {} |",
            a.policy,
            cell(a.p50_ms),
            cell(a.p99_ms),
            cell(a.p999_ms),
            pct(a.error_rate[0]),
            pct(a.error_rate[1]),
            share,
            if a.agrees { "yes" } else { "no" },
        );
    }
    out.push('\n');
}
