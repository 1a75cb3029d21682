//! The state as a plain-text table, one row per endpoint.

use std::fmt::Write as _;

use orca_lb_core::escaped::escape;

use super::{age, circuit_word, health_words, reason_words, state_word, std_duration};
use crate::pb;

/// Column headers; numeric columns are right-aligned. `HEALTH` is shown
/// before `CIRCUIT` for balancers that check health.
const COLUMNS: [(&str, Align); 10] = [
    ("ENDPOINT", Align::Left),
    ("STATE", Align::Left),
    ("SCORE MS", Align::Right),
    ("SERVICE MS", Align::Right),
    ("BACKLOG", Align::Right),
    ("UTIL", Align::Right),
    ("IN-FLIGHT", Align::Right),
    ("PICKS/10S", Align::Right),
    ("FAILS/10S", Align::Right),
    ("CIRCUIT", Align::Left),
];

/// The health column, where a balancer checks health.
const HEALTH: (&str, Align) = ("HEALTH", Align::Left);

/// The affinity columns, before the circuit (and health), where a balancer
/// keys calls: the endpoint's share of the hash ring and the keyed calls it
/// passed on because of the load bound.
const AFFINITY: [(&str, Align); 2] = [("KEYS %", Align::Right), ("PASSED ON", Align::Right)];

/// The zone column, after the key, where a balancer knows zones.
const ZONE: (&str, Align) = ("ZONE", Align::Left);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Every balancer in `state`: a header line, then one row per endpoint with
/// its key, state, score (expected completion time of a unary call, ms), the
/// service time and backlog that score used, reported utilization, this
/// client's calls in flight, picks and failures in the last 10 s, its health
/// (`serving`, `not serving`, `unknown`, `unimplemented`; a column shown
/// only for balancers that check health), and the circuit with the reason
/// and age of its last change. Ends with a newline.
///
/// With locality on, or with endpoints in zones, the header names the
/// client's zone and a `ZONE` column follows the key; while picks spill to
/// other zones a `SPILLING x%` line follows the header.
///
/// With affinity on (some endpoint owns a share of the hash ring), `KEYS %`
/// (its share of the ring, so of the keys, in percent) and `PASSED ON`
/// (keyed calls whose first choice it was that went elsewhere because it
/// was at or over the load bound) follow `FAILS/10S`.
/// Names, targets and keys are printed through [`escape`](orca_lb_core::escaped::escape).
pub fn table(state: &pb::State) -> String {
    let mut out = String::new();
    if state.balancers.is_empty() {
        out.push_str("no balancer registered\n");
        return out;
    }
    for (i, b) in state.balancers.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        balancer(&mut out, b);
    }
    out
}

fn balancer(out: &mut String, b: &pb::Balancer) {
    let _ = write!(
        out,
        "balancer {} (target {}): {} endpoint{}, {} ejected",
        escape(&b.name),
        escape(&b.target),
        b.endpoints.len(),
        if b.endpoints.len() == 1 { "" } else { "s" },
        b.ejected
    );
    if !b.local_zone.is_empty() {
        let _ = write!(out, ", zone {}", escape(&b.local_zone));
    }
    if b.panic {
        out.push_str(", PANIC: too few healthy endpoints, ejections ignored");
    }
    out.push('\n');
    if b.spill > 0.0 {
        let _ = writeln!(
            out,
            "SPILLING {:.0}% of picks to other zones: the local zone is loaded",
            b.spill * 100.0
        );
    }
    let checks_health = b.endpoints.iter().any(|e| health_words(e.health).is_some());
    let zoned = !b.local_zone.is_empty() || b.endpoints.iter().any(|e| !e.zone.is_empty());
    let keyed = b.endpoints.iter().any(|e| e.ring_share > 0.0);
    let mut columns = COLUMNS.to_vec();
    if keyed {
        let at = columns.len() - 1;
        columns.splice(at..at, AFFINITY);
    }
    if checks_health {
        columns.insert(columns.len() - 1, HEALTH);
    }
    if zoned {
        columns.insert(1, ZONE);
    }
    let rows: Vec<Vec<String>> = b
        .endpoints
        .iter()
        .map(|e| row(e, checks_health, zoned, keyed))
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let header: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    line(out, &header, &widths, &columns);
    for r in &rows {
        line(out, r, &widths, &columns);
    }
}

fn line(out: &mut String, cells: &[String], widths: &[usize], columns: &[(&str, Align)]) {
    let last = cells.len() - 1;
    for (i, ((cell, w), (_, align))) in cells.iter().zip(widths).zip(columns).enumerate() {
        if i > 0 {
            out.push_str("  ");
        }
        match align {
            Align::Right => {
                let _ = write!(out, "{cell:>w$}");
            }
            // No trailing spaces after the last column.
            Align::Left if i == last => out.push_str(cell),
            Align::Left => {
                let _ = write!(out, "{cell:<w$}");
            }
        }
    }
    out.push('\n');
}

fn row(e: &pb::Endpoint, checks_health: bool, zoned: bool, keyed: bool) -> Vec<String> {
    let score = e.score.unwrap_or_default();
    let signals = e.signals.unwrap_or_default();
    let mut cells = vec![escape(&e.key).into_owned()];
    if zoned {
        cells.push(if e.zone.is_empty() {
            "-".to_string()
        } else {
            escape(&e.zone).into_owned()
        });
    }
    cells.extend([
        state_word(e.state).to_string(),
        format!("{:.1}", score.total_seconds * 1e3),
        format!("{:.1}", score.service_time_seconds * 1e3),
        format!("{:.1}", score.backlog),
        signals
            .utilization
            .map_or_else(|| "-".to_string(), |u| format!("{u:.2}")),
        e.in_flight.to_string(),
        e.recent_picks.to_string(),
        e.recent_failures.to_string(),
    ]);
    if keyed {
        cells.push(format!("{:.1}", e.ring_share * 100.0));
        cells.push(e.passed_on.to_string());
    }
    if checks_health {
        cells.push(health_words(e.health).unwrap_or("-").to_string());
    }
    cells.push(circuit(e.circuit.as_ref()));
    cells
}

/// `closed`, `open (5 consecutive errors, 1.2s ago)`, `half-open (40ms ago)`.
fn circuit(c: Option<&pb::Circuit>) -> String {
    let Some(c) = c else {
        return "-".to_string();
    };
    let mut s = circuit_word(c.state).to_string();
    if let Some(t) = &c.last_transition {
        let mut detail = Vec::new();
        if let Some(r) = &t.reason {
            detail.push(reason_words(r));
        }
        if let Some(a) = &t.age {
            detail.push(format!("{} ago", age(std_duration(a))));
        }
        if !detail.is_empty() {
            let _ = write!(s, " ({})", detail.join(", "));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(key: &str, state: pb::EndpointState, circuit: pb::Circuit) -> pb::Endpoint {
        pb::Endpoint {
            key: key.to_string(),
            address: key.to_string(),
            state: state.into(),
            score: Some(pb::Score {
                total_seconds: 0.0125,
                service_time_seconds: 0.01,
                backlog: 1.5,
                ..Default::default()
            }),
            signals: Some(pb::Signals {
                utilization: Some(0.5),
                ..Default::default()
            }),
            in_flight: 2,
            recent_picks: 120,
            recent_failures: 3,
            circuit: Some(circuit),
            ..Default::default()
        }
    }

    #[test]
    fn one_row_per_endpoint_with_aligned_columns() {
        let closed = pb::Circuit {
            state: pb::CircuitState::Closed.into(),
            ..Default::default()
        };
        let open = pb::Circuit {
            state: pb::CircuitState::Open.into(),
            ejections: 1,
            last_transition: Some(pb::Transition {
                to: pb::CircuitState::Open.into(),
                age: Some(prost_types::Duration {
                    seconds: 2,
                    nanos: 100_000_000,
                }),
                reason: Some(pb::OpenReason {
                    kind: pb::open_reason::Kind::ConsecutiveErrors.into(),
                    value: Some(5.0),
                }),
            }),
        };
        let state = pb::State {
            balancers: vec![pb::Balancer {
                name: "greeter".into(),
                target: "greeter".into(),
                panic: false,
                ejected: 1,
                endpoints: vec![
                    endpoint("http://10.0.0.1:80", pb::EndpointState::Ready, closed),
                    endpoint("http://10.0.0.22:80", pb::EndpointState::Ejected, open),
                ],
                ..Default::default()
            }],
        };
        let text = table(&state);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "balancer greeter (target greeter): 2 endpoints, 1 ejected",
                "ENDPOINT             STATE    SCORE MS  SERVICE MS  BACKLOG  UTIL  IN-FLIGHT  PICKS/10S  FAILS/10S  CIRCUIT",
                "http://10.0.0.1:80   ready        12.5        10.0      1.5  0.50          2        120          3  closed",
                "http://10.0.0.22:80  ejected      12.5        10.0      1.5  0.50          2        120          3  open (5 consecutive errors, 2.1s ago)",
            ],
            "{text}"
        );
    }

    #[test]
    fn health_column_only_where_health_is_checked() {
        let closed = pb::Circuit {
            state: pb::CircuitState::Closed.into(),
            ..Default::default()
        };
        let mut serving = endpoint("http://10.0.0.1:80", pb::EndpointState::Ready, closed);
        serving.health = pb::EndpointHealth::Serving.into();
        let mut not_serving = endpoint("http://10.0.0.2:80", pb::EndpointState::Ready, closed);
        not_serving.health = pb::EndpointHealth::NotServing.into();
        let state = pb::State {
            balancers: vec![pb::Balancer {
                name: "greeter".into(),
                target: "greeter".into(),
                endpoints: vec![serving, not_serving],
                ..Default::default()
            }],
        };
        let text = table(&state);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].ends_with("FAILS/10S  HEALTH       CIRCUIT"),
            "{text}"
        );
        assert!(lines[2].ends_with("  serving      closed"), "{text}");
        assert!(lines[3].ends_with("  not serving  closed"), "{text}");
    }

    #[test]
    fn affinity_columns_with_a_hash_ring() {
        let closed = pb::Circuit {
            state: pb::CircuitState::Closed.into(),
            ..Default::default()
        };
        let mut a = endpoint("http://10.0.0.1:80", pb::EndpointState::Ready, closed);
        a.ring_share = 0.625;
        a.passed_on = 17;
        let mut b = endpoint("http://10.0.0.2:80", pb::EndpointState::Ready, closed);
        b.ring_share = 0.375;
        let state = pb::State {
            balancers: vec![pb::Balancer {
                name: "keyed".into(),
                target: "keyed".into(),
                endpoints: vec![a, b],
                ..Default::default()
            }],
        };
        let text = table(&state);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1..],
            [
                "ENDPOINT            STATE  SCORE MS  SERVICE MS  BACKLOG  UTIL  IN-FLIGHT  PICKS/10S  FAILS/10S  KEYS %  PASSED ON  CIRCUIT",
                "http://10.0.0.1:80  ready      12.5        10.0      1.5  0.50          2        120          3    62.5         17  closed",
                "http://10.0.0.2:80  ready      12.5        10.0      1.5  0.50          2        120          3    37.5          0  closed",
            ],
            "{text}"
        );
    }

    #[test]
    fn zone_column_and_spill_line_with_locality() {
        let closed = pb::Circuit {
            state: pb::CircuitState::Closed.into(),
            ..Default::default()
        };
        let mut a = endpoint("http://10.0.0.1:80", pb::EndpointState::Ready, closed);
        a.zone = "us-east-1a".into();
        let b = endpoint("http://10.0.0.2:80", pb::EndpointState::Ready, closed);
        let mut state = pb::State {
            balancers: vec![pb::Balancer {
                name: "greeter".into(),
                target: "greeter".into(),
                endpoints: vec![a, b],
                local_zone: "us-east-1a".into(),
                spill: 0.347,
                ..Default::default()
            }],
        };
        let text = table(&state);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "balancer greeter (target greeter): 2 endpoints, 0 ejected, zone us-east-1a"
        );
        assert_eq!(
            lines[1],
            "SPILLING 35% of picks to other zones: the local zone is loaded"
        );
        assert!(
            lines[2].starts_with("ENDPOINT            ZONE        STATE"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("http://10.0.0.1:80  us-east-1a  ready"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("http://10.0.0.2:80  -           ready"),
            "{text}"
        );
        // Not spilling: no line.
        state.balancers[0].spill = 0.0;
        assert!(!table(&state).contains("SPILLING"));
    }

    #[test]
    fn empty_and_panic() {
        assert_eq!(table(&pb::State::default()), "no balancer registered\n");
        let state = pb::State {
            balancers: vec![pb::Balancer {
                name: "a".into(),
                target: "t".into(),
                panic: true,
                ..Default::default()
            }],
        };
        assert!(table(&state).starts_with("balancer a (target t): 0 endpoints, 0 ejected, PANIC"));
    }
}
