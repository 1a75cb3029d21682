use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::random_history::{fed, random_pick as pick, score_config, t0};
use crate::{PickSettings, ScoreConfig};

#[test]
fn scores_within_its_span_as_the_view_does() {
    let t = t0();
    let origin = t.checked_sub(Duration::from_secs(3_600)).unwrap_or(t);
    let mut rng = SmallRng::seed_from_u64(21);
    let (mut compared, mut worst) = (0, 0.0f64);
    for case in 0..3_000 {
        let score = score_config(case);
        let settings = PickSettings::new(&score);
        let (policy, last) = fed(&mut rng, &score, t);
        let view = policy.view().prepare(&score, origin);
        // Worked out some time after the last event: at once, within the
        // backlog's window, within the freshness window, long after.
        let from = match rng.random_range(0..4) {
            0 => last,
            1 => last + Duration::from_micros(rng.random_range(0..100_000)),
            2 => last + Duration::from_millis(rng.random_range(0..20_000)),
            _ => last + Duration::from_secs(rng.random_range(0..5_000)),
        };
        let base = pick(&mut rng, &score, from);
        let from_time = PickTime::new(&settings, PickView::seconds_since(origin, from));
        let standing = StandingCost::new(&view, &from_time, &base);
        assert_eq!(StandingCost::from_words(standing.to_words()), standing);
        assert!(standing.span() > 0.0 && standing.span() <= MAX_STANDING_SPAN);
        for _ in 0..20 {
            // Anywhere in its span, a little before its start too (a clock
            // read on another thread).
            let dt = rng.random_range(-1.0 / 64.0..=1.0) * standing.span();
            let now = if dt >= 0.0 {
                from + Duration::from_secs_f64(dt)
            } else {
                from - Duration::from_secs_f64(-dt)
            };
            let seconds = PickView::seconds_since(origin, now);
            assert!(standing.covers(seconds), "{dt} of {}", standing.span());
            let in_flight = rng.random_range(0..4);
            let local = LocalLoad {
                in_flight,
                streams: 0,
                in_flight_since: None,
            };
            let draw = PickContext {
                warm_up: rng.random_range(0.0..1.0),
                now,
                ..base
            };
            let want = view.score(local, &draw);
            let got = standing.unary_score(seconds, local, &draw);
            match (want, got) {
                (Some(w), Some(g)) => {
                    let (w, g) = (w.seconds(), g.seconds());
                    let error = (w - g).abs() / w.abs().max(1e-9);
                    worst = worst.max(error);
                    assert!(
                        error < 5e-4,
                        "case {case}: {g} against {w} at {dt} of {}\n{view:?}\n{standing:?}",
                        standing.span()
                    );
                    compared += 1;
                }
                (None, None) => {}
                _ => {
                    // Passed over by one and not the other: only a warm-up
                    // draw within the share's straight-line error does that.
                    let share = view.warm_up_share(&PickTime::new(&settings, seconds));
                    assert!(
                        (draw.warm_up - share).abs() < 1e-3,
                        "case {case}: {want:?} against {got:?}, draw {} share {share}",
                        draw.warm_up
                    );
                }
            }
        }
    }
    assert!(compared > 20_000, "{compared}");
    println!("worst relative error {worst:e} over {compared} scores");
    assert!(
        worst > 0.0,
        "the straight lines are exact nowhere but at their ends"
    );
}

#[test]
fn the_in_flight_age_floor_raises_the_service_time() {
    let t = t0();
    let score = ScoreConfig::default();
    let mut rng = SmallRng::seed_from_u64(22);
    let (policy, last) = loop {
        let (policy, last) = fed(&mut rng, &score, t);
        let view = policy.view();
        if view.eligible && view.closed && view.estimate.reported_at.is_some() {
            break (policy, last);
        }
    };
    let view = policy.view().prepare(&score, t);
    let now = last + Duration::from_millis(1);
    let mut base = pick(&mut rng, &score, now);
    base.warm_up = 0.0;
    base.panic = false;
    let seconds = PickView::seconds_since(t, now);
    let standing = StandingCost::new(
        &view,
        &PickTime::new(&PickSettings::new(&score), seconds),
        &base,
    );
    let young = LocalLoad {
        in_flight: 1,
        streams: 0,
        in_flight_since: Some(now),
    };
    // A call in flight for 100 s makes the service time at least the
    // floor's share of that, whatever was reported.
    let old = LocalLoad {
        in_flight_since: now.checked_sub(Duration::from_secs(100)),
        ..young
    };
    let (young, old) = (
        standing
            .unary_score(seconds, young, &base)
            .unwrap()
            .seconds(),
        standing.unary_score(seconds, old, &base).unwrap().seconds(),
    );
    assert!(
        old >= score.in_flight_age_floor * 100.0 && old > young,
        "{old} against {young}"
    );
}

#[test]
fn spans_a_64th_of_the_backlog_window_after_a_report() {
    let t = t0();
    let score = ScoreConfig::default();
    let settings = PickSettings::new(&score);
    let mut rng = SmallRng::seed_from_u64(23);
    let mut checked = 0;
    for _ in 0..2_000 {
        let (policy, last) = fed(&mut rng, &score, t);
        let estimate = policy.view().estimate;
        let (Some(reported_at), Some(_)) = (estimate.reported_at, estimate.service_time) else {
            continue;
        };
        if estimate.backlog.is_none_or(|b| b == 0.0) || reported_at != last {
            continue;
        }
        let view = policy.view().prepare(&score, t);
        let mut base = pick(&mut rng, &score, last);
        base.fleet.backlog = 0.0;
        let time = PickTime::new(&settings, PickView::seconds_since(t, last));
        let standing = StandingCost::new(&view, &time, &base);
        // The backlog's window is `backlog_stale_services` service times
        // (as scored: the reported one, relaxed toward the fleet's), the
        // shortest window here but the error decay's.
        let window = view
            .cost_inputs(&time, LocalLoad::default(), &base)
            .backlog_window(&settings);
        assert!(
            standing.span() <= window * SPAN_OF_WINDOW * (1.0 + 1e-6),
            "{} against a window of {window}",
            standing.span()
        );
        assert!(!standing.covers(time.now + standing.span() * 1.01));
        assert!(!standing.covers(time.now - standing.span() * 0.02));
        checked += 1;
    }
    assert!(checked > 50, "{checked}");
}
