use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::random_history::{fed, random_pick, score_config, t0};

fn close(a: Option<Score>, b: Option<Score>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let (a, b) = (a.seconds(), b.seconds());
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-15
        }
        _ => false,
    }
}

#[test]
fn scores_as_the_candidate_view_does() {
    let t = t0();
    let mut rng = SmallRng::seed_from_u64(11);
    let mut compared = 0;
    for case in 0..3_000 {
        let score = score_config(case);
        let (policy, last) = fed(&mut rng, &score, t);
        let view = policy.view();
        // From its creation, or (as a balancer does) from an earlier origin
        // shared by all endpoints.
        let origin = if case % 2 == 0 {
            t
        } else {
            t.checked_sub(Duration::from_secs(3_600)).unwrap_or(t)
        };
        let prepared = view.prepare(&score, origin);
        assert_eq!(
            PickView::from_words(prepared.origin(), prepared.to_words()),
            prepared
        );
        if case % 2 == 0 {
            assert_eq!(policy.pick_view(&score), prepared);
        }
        assert_eq!(prepared.eligible(), view.eligible);
        for _ in 0..20 {
            // From before the last event (clock skew between threads) to
            // long after it, when every weight has underflowed.
            let now = match rng.random_range(0..4) {
                0 => last.checked_sub(Duration::from_millis(5)).unwrap_or(last),
                1 => last + Duration::from_micros(rng.random_range(0..100_000)),
                2 => last + Duration::from_millis(rng.random_range(0..20_000)),
                _ => last + Duration::from_secs(rng.random_range(0..5_000)),
            };
            let in_flight = rng.random_range(0..4);
            let local = LocalLoad {
                in_flight,
                streams: rng.random_range(0..3),
                in_flight_since: (in_flight > 0)
                    .then(|| now.checked_sub(Duration::from_millis(rng.random_range(0..300))))
                    .flatten(),
            };
            // `stream` is drawn first, as the fields are evaluated in order.
            let pick = PickContext {
                stream: rng.random_bool(0.2),
                ..random_pick(&mut rng, &score, now)
            };
            let (want, got) = (view.score(local, &pick), prepared.score(local, &pick));
            let time = PickTime::new(
                &PickSettings::new(&score),
                PickView::seconds_since(origin, now),
            );
            assert_eq!(prepared.score_at(&time, local, &pick), got);
            // The words a pick does not read, left 0, change nothing.
            let mut words = prepared.to_words();
            let read = PickView::words_read(words[0], pick.stream);
            words[read..].fill(0);
            let partial = PickView::from_words(prepared.origin(), words);
            assert_eq!(partial.score_at(&time, local, &pick), got);
            assert!(
                close(want, got),
                "case {case}: {want:?} against {got:?}\n{view:?}\n{local:?} {pick:?}"
            );
            compared += usize::from(want.is_some());
        }
    }
    assert!(compared > 30_000, "{compared}");
}
