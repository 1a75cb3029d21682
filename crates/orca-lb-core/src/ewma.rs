//! placeholder
#![allow(missing_docs)]
use std::time::{Duration, Instant};
#[derive(Debug, Clone)]
pub struct Ewma { decay: Duration, value: Option<(f64, Instant)> }
impl Ewma {
    pub fn new(decay: Duration) -> Self { Self { decay, value: None } }
    pub fn observe(&mut self, v: f64, now: Instant) {
        let next = match self.value { None => v, Some((old, at)) => {
            let w = (-(now.saturating_duration_since(at).as_secs_f64()) / self.decay.as_secs_f64().max(1e-9)).exp();
            old * w + v * (1.0 - w) } };
        self.value = Some((next, now));
    }
    pub fn value(&self) -> Option<f64> { self.value.map(|(v, _)| v) }
}
