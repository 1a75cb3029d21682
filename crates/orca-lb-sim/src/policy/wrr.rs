//! gRPC's `weighted_round_robin` (gRFC A58) on ORCA reports.

use orca_lb_core::LoadReport;
use orca_lb_core::baseline::{EdfScheduler, WrrConfig, WrrWeight};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::{Client, Done, Pick};
use crate::clock::{Clock, Nanos};

/// One [`WrrWeight`] per backend, fed by the reports calls carry (and the
/// out-of-band stream if subscribed), and an [`EdfScheduler`] rebuilt from
/// the current weights every `weight_update_period` (1 s), with gRPC's
/// defaults: blackout 10 s, expiry 180 s, error penalty 1.
#[derive(Debug)]
pub(crate) struct Wrr {
    config: WrrConfig,
    rng: SmallRng,
    clock: Clock,
    weights: Vec<WrrWeight>,
    current: Vec<Option<f64>>,
    schedule: EdfScheduler,
    oob_period: Option<Nanos>,
}

impl Wrr {
    pub(crate) fn new(len: usize, seed: u64, clock: Clock, oob_period: Option<Nanos>) -> Self {
        let config = WrrConfig::default();
        let mut rng = SmallRng::seed_from_u64(seed);
        let current = vec![None; len];
        let schedule = EdfScheduler::with_config(&current, &config, &mut rng)
            .expect("a scenario has backends");
        Self {
            config,
            rng,
            clock,
            weights: vec![WrrWeight::new(); len],
            current,
            schedule,
            oob_period,
        }
    }
}

impl Client for Wrr {
    fn pick(&mut self, _stream: bool, _now: Nanos) -> Option<Pick> {
        Some(Pick {
            backend: self.schedule.pick(),
            probe: false,
        })
    }

    fn done(&mut self, done: Done<'_>) {
        if let Some(report) = done.report {
            self.weights[done.backend].on_report(report, &self.config, self.clock.at(done.now));
        }
    }

    fn reads_reports(&self) -> bool {
        true
    }

    fn tick_interval(&self) -> Option<Nanos> {
        Some(self.config.weight_update_period.as_nanos() as Nanos)
    }

    fn tick(&mut self, now: Nanos) {
        let at = self.clock.at(now);
        for (slot, w) in self.current.iter_mut().zip(&self.weights) {
            *slot = w.weight(&self.config, at);
        }
        self.schedule = EdfScheduler::with_config(&self.current, &self.config, &mut self.rng)
            .expect("a scenario has backends");
    }

    fn oob_period(&self) -> Option<Nanos> {
        self.oob_period
    }

    fn oob_report(&mut self, backend: usize, report: &LoadReport, now: Nanos) {
        self.weights[backend].on_report(report, &self.config, self.clock.at(now));
    }

    /// New backends have no weight yet: the schedule gives them the mean
    /// weight, as gRPC's does, from now on.
    fn grow(&mut self, len: usize, now: Nanos) {
        self.weights.resize(len, WrrWeight::new());
        self.current.resize(len, None);
        self.tick(now);
    }
}
