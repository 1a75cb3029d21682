//! The balancer's background upkeep.

use std::sync::Weak;
use std::time::Duration;

use crate::shared::Shared;

/// Every `interval`: drives breaker deadlines, recomputes fleet medians,
/// updates gauges and the last-10-seconds windows. Ends when the balancer is
/// dropped.
pub(crate) async fn run(shared: Weak<Shared>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = tokio::time::Instant::now().into_std();
        shared.maintain(now);
        shared.repick.on_tick(&shared.set.list().0, now);
    }
}
