//! Markdown tables of a run: values, ratios to the limit and to the peers,
//! and the bar.

use std::fmt::Write;

use super::{check_bar, limit, ratio};
use crate::results::{Balance, LatencyStats, PolicyResult, Results};
use crate::scenario::BarWindow;

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn times(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}x"))
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

fn secs(v: Option<f64>) -> String {
    v.map_or("never".into(), |s| format!("{s:.1}"))
}

/// The run as Markdown: a heading line, one table for the window the bar is
/// judged on (the event window when the scenario has one), one for the whole
/// measurement, orca-lb against each peer, streams if any, and the bar.
pub fn table(results: &Results) -> String {
    let mut out = String::new();
    let seeds: Vec<String> = results.seeds.iter().map(u64::to_string).collect();
    let _ = writeln!(
        out,
        "**{}**: {} backends, {} client{}, {} rps, rho {:.2}; seed{} {} pooled.\n",
        results.scenario,
        results.backends,
        results.clients,
        if results.clients == 1 { "" } else { "s" },
        results.rate,
        results.rho,
        if seeds.len() == 1 { "" } else { "s" },
        seeds.join(", "),
    );
    let event = results.event_window_s.is_some();
    if let Some([a, b]) = results.event_window_s {
        let _ = writeln!(
            out,
            "Calls sent in the event window, {a:.0}-{b:.0} s; latency of all calls (an error counts as the deadline), ms, and as a ratio to the limit:\n"
        );
        latency_table(&mut out, results, true);
        out.push('\n');
    }
    let [a, b] = results.measure_s;
    let _ = writeln!(out, "Whole measurement, calls sent {a:.0}-{b:.0} s:\n");
    latency_table(&mut out, results, false);
    out.push('\n');
    balance_table(&mut out, results);
    hand_backs_line(&mut out, results);
    if results.policies.iter().any(|p| !p.client_groups.is_empty()) {
        out.push('\n');
        groups_table(&mut out, results);
    }
    if results.policies.iter().any(|p| p.cross_zone.is_some()) {
        out.push('\n');
        zones_table(&mut out, results);
    }
    if results.policies.iter().any(|p| p.hit_ratio.is_some()) {
        out.push('\n');
        keys_table(&mut out, results);
    }
    if results.policies.iter().any(|p| p.streams.is_some()) {
        out.push('\n');
        stream_table(&mut out, results);
        stream_balance_table(&mut out, results);
    }
    if let Some(orca) = results.policy("orca-lb") {
        out.push('\n');
        peers_table(&mut out, results, orca, event);
    }
    if let Some(e) = &results.erlang {
        let _ = writeln!(
            out,
            "\nPooled M/M/{} (Erlang C, before any event, network round trip included): P(wait) {:.3}, mean {} ms, p50 {} ms, p99 {} ms, p99.9 {} ms.",
            e.servers,
            e.p_wait,
            ms(e.mean_ms),
            ms(e.p50_ms),
            ms(e.p99_ms),
            ms(e.p999_ms),
        );
    }
    bar_lines(&mut out, results);
    out
}

fn latency_table(out: &mut String, results: &Results, event: bool) {
    let lim = limit(results).map(|l| l.stats(event).clone());
    out.push_str("| policy | p50 | p99 | p99.9 | errors | p50 / limit | p99 / limit | p99.9 / limit | success p99.9 |\n");
    out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for p in &results.policies {
        let s: &LatencyStats = p.stats(event);
        let r = |f: fn(&LatencyStats) -> f64| lim.as_ref().and_then(|l| ratio(f(s), f(l)));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.policy,
            ms(s.all.p50_ms),
            ms(s.all.p99_ms),
            ms(s.all.p999_ms),
            pct(s.error_rate),
            times(r(|s| s.all.p50_ms)),
            times(r(|s| s.all.p99_ms)),
            times(r(|s| s.all.p999_ms)),
            ms(s.success.p999_ms),
        );
    }
}

/// The calls busy servers handed back, per measured call, for the policies
/// whose calls they may hand back.
fn hand_backs_line(out: &mut String, results: &Results) {
    let handed: Vec<String> = results
        .policies
        .iter()
        .filter_map(|p| p.hand_backs.map(|h| format!("{} {h:.2}", p.policy)))
        .collect();
    if !handed.is_empty() {
        let _ = writeln!(
            out,
            "\nHand-backs per measured call: {}.",
            handed.join(", ")
        );
    }
}

/// With keyed calls: the share of calls whose key their backend had
/// cached, next to the latency of the whole measurement and of the event
/// window.
fn keys_table(out: &mut String, results: &Results) {
    out.push_str(
        "Keyed calls: cache hit ratio and latency (ms), whole measurement and event window:\n\n",
    );
    out.push_str("| policy | hit ratio | p50 | p99 | errors | event p50 | event p99 |\n");
    out.push_str("|---|--:|--:|--:|--:|--:|--:|\n");
    for p in results.policies.iter().filter(|p| p.hit_ratio.is_some()) {
        let s = &p.measure;
        let e = p.event_window.as_ref();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            p.policy,
            pct(p.hit_ratio.unwrap_or(0.0)),
            ms(s.all.p50_ms),
            ms(s.all.p99_ms),
            pct(s.error_rate),
            e.map_or("-".into(), |e| ms(e.all.p50_ms)),
            e.map_or("-".into(), |e| ms(e.all.p99_ms)),
        );
    }
}

/// With zones: the share of calls that crossed zones, next to the whole
/// measurement's latency ratios (the limit has no zones).
fn zones_table(out: &mut String, results: &Results) {
    let lim = limit(results).map(|l| l.measure.clone());
    out.push_str("Calls sent to another zone than their client's, whole measurement:\n\n");
    out.push_str("| policy | cross-zone | p50 / limit | p99 / limit |\n");
    out.push_str("|---|--:|--:|--:|\n");
    for p in results.policies.iter().filter(|p| p.cross_zone.is_some()) {
        let s = &p.measure;
        let r = |f: fn(&LatencyStats) -> f64| lim.as_ref().and_then(|l| ratio(f(s), f(l)));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            p.policy,
            pct(p.cross_zone.unwrap_or(0.0)),
            times(r(|s| s.all.p50_ms)),
            times(r(|s| s.all.p99_ms)),
        );
    }
}

/// A mixed fleet's groups of clients apart, whole measurement.
fn groups_table(out: &mut String, results: &Results) {
    let lim = limit(results).map(|l| l.measure.clone());
    out.push_str("Each group of clients of the mixed fleet apart, whole measurement:\n\n");
    out.push_str("| policy run | clients | p50 | p99 | p99.9 | errors | p50 / limit | p99 / limit | p99.9 / limit |\n");
    out.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|\n");
    for p in &results.policies {
        for g in &p.client_groups {
            let s = &g.stats;
            let r = |f: fn(&LatencyStats) -> f64| lim.as_ref().and_then(|l| ratio(f(s), f(l)));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p.policy,
                g.name,
                ms(s.all.p50_ms),
                ms(s.all.p99_ms),
                ms(s.all.p999_ms),
                pct(s.error_rate),
                times(r(|s| s.all.p50_ms)),
                times(r(|s| s.all.p99_ms)),
                times(r(|s| s.all.p999_ms)),
            );
        }
    }
}

fn balance_table(out: &mut String, results: &Results) {
    let watched = !results.watched.is_empty();
    out.push_str("| policy | share CV | utilization CV | utilization max / mean |");
    if watched {
        out.push_str(" watched share | reaction s | recovery s |");
    }
    out.push_str("\n|---|--:|--:|--:|");
    if watched {
        out.push_str("--:|--:|--:|");
    }
    out.push('\n');
    for p in &results.policies {
        let _ = write!(
            out,
            "| {} | {:.3} | {:.3} | {:.2} |",
            p.policy, p.share_cv, p.utilization_cv, p.utilization_max_over_mean
        );
        if watched {
            let share: f64 = results.watched.iter().map(|&i| p.backends[i].share).sum();
            let _ = write!(
                out,
                " {} | {} | {} |",
                pct(share),
                if results.event_window_s.is_some() {
                    secs(p.reaction_s)
                } else {
                    "-".into()
                },
                if results.event_window_s.is_some() {
                    secs(p.recovery_s)
                } else {
                    "-".into()
                },
            );
        }
        out.push('\n');
    }
    if watched {
        let [before, during, after] = results.optimal_share;
        let _ = writeln!(
            out,
            "\nWatched backends {:?}: share in proportion to service rate {} before, {} during and {} after the events. Reaction: first second-long window after the event starts whose watched share is at most twice that, or a tenth of the share before; recovery: first after recovery with at least half.",
            results.watched,
            pct(before),
            pct(during),
            pct(after),
        );
    }
}

fn stream_table(out: &mut String, results: &Results) {
    out.push_str("| policy | streams opened | failed | open streams CV (time-averaged) | max / mean | CV at an instant (mean) |\n");
    out.push_str("|---|--:|--:|--:|--:|--:|\n");
    for p in &results.policies {
        if let Some(s) = &p.streams {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.3} | {:.2} | {:.3} |",
                p.policy, s.opened, s.failed, s.cv, s.max_over_mean, s.instant_cv
            );
        }
    }
}

/// After a scale-out: how long until open streams were even, and the
/// spread second by second.
fn stream_balance_table(out: &mut String, results: &Results) {
    let rows: Vec<(&str, &Balance)> = results
        .policies
        .iter()
        .filter_map(|p| Some((p.policy.as_str(), p.streams.as_ref()?.balance.as_ref()?)))
        .collect();
    let Some(seconds) = rows.iter().map(|(_, b)| b.max_over_mean.len()).max() else {
        return;
    };
    out.push_str(
        "\nAfter the scale-out: seconds until most open streams on a backend over the mean \
         first reached 1.2 (over the runs; never: did not within the run), and most over mean \
         at whole seconds after it (averaged over samples and runs).\n\n",
    );
    let marks: Vec<usize> = [0, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120]
        .into_iter()
        .filter(|&s| s + 1 < seconds)
        .collect();
    out.push_str("| policy | median | p90 | never |");
    for m in &marks {
        let _ = write!(out, " {m} s |");
    }
    out.push_str("\n|---|--:|--:|--:|");
    out.push_str(&"--:|".repeat(marks.len()));
    out.push('\n');
    let time = |t: f64| {
        if t.is_finite() {
            format!("{t:.1}")
        } else {
            "never".to_owned()
        }
    };
    for (name, b) in rows {
        let never = b.balanced_after_s.iter().filter(|x| x.is_none()).count();
        let _ = write!(
            out,
            "| {name} | {} | {} | {never}/{} |",
            time(b.balanced_after_quantile(0.5)),
            time(b.balanced_after_quantile(0.9)),
            b.balanced_after_s.len()
        );
        for &m in &marks {
            match b.max_over_mean.get(m).copied().flatten() {
                Some(r) => {
                    let _ = write!(out, " {r:.2} |");
                }
                None => out.push_str(" - |"),
            }
        }
        out.push('\n');
    }
}

fn peers_table(out: &mut String, results: &Results, orca: &PolicyResult, event: bool) {
    let o = orca.stats(event);
    let _ = writeln!(
        out,
        "orca-lb over each peer ({}; below 1 is better):\n",
        if event {
            "event window"
        } else {
            "whole measurement"
        }
    );
    out.push_str("| peer | p50 | p99 | p99.9 | errors (orca-lb / peer) |\n|---|--:|--:|--:|--:|\n");
    for p in &results.policies {
        // Not the limit, nor another form of it (the harness adds
        // `limit/rig`).
        if p.policy == orca.policy || p.policy.starts_with("limit") {
            continue;
        }
        let s = p.stats(event);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} / {} |",
            p.policy,
            times(ratio(o.all.p50_ms, s.all.p50_ms)),
            times(ratio(o.all.p99_ms, s.all.p99_ms)),
            times(ratio(o.all.p999_ms, s.all.p999_ms)),
            pct(o.error_rate),
            pct(s.error_rate),
        );
    }
}

fn bar_lines(out: &mut String, results: &Results) {
    let Some(bar) = &results.bar else { return };
    let window = match bar.window {
        BarWindow::Event => "event window",
        BarWindow::Measure => "whole measurement",
    };
    let _ = writeln!(out, "\nThe bar ({window}, all calls):\n");
    for p in results
        .policies
        .iter()
        .filter(|p| p.policy.starts_with("orca-lb"))
    {
        let checks = check_bar(results, p);
        let parts: Vec<String> = checks
            .iter()
            .map(|c| {
                let got = match (c.what.as_str(), c.got) {
                    ("errors", Some(g)) => pct(g),
                    (_, Some(g)) => format!("{g:.2}"),
                    (_, None) => "never".into(),
                };
                let goal = if c.what == "errors" {
                    pct(c.goal)
                } else {
                    format!("{}", c.goal)
                };
                format!(
                    "{} {} (goal <= {}) {}",
                    c.what,
                    got,
                    goal,
                    if c.pass { "met" } else { "**missed**" }
                )
            })
            .collect();
        let _ = writeln!(out, "- {}: {}", p.policy, parts.join("; "));
    }
}
