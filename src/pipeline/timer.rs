//! Times the phases of a run: each one logs how long it took, and the summary line lists them.

use std::time::{Duration, Instant};

use tracing::info;

/// Times the phases; each `done` logs the phase and its duration.
#[derive(Debug)]
pub struct Timer {
    start: Instant,
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl Default for Timer {
    fn default() -> Timer {
        let now = Instant::now();
        Timer {
            start: now,
            last: now,
            phases: Vec::new(),
        }
    }
}

impl Timer {
    /// Ends the current phase.
    pub fn done(&mut self, phase: &'static str) {
        let took = self.last.elapsed();
        self.last = Instant::now();
        info!(
            phase,
            took_ms = took.as_millis() as u64,
            "{phase} done in {}",
            human(took)
        );
        self.phases.push((phase, took));
    }

    /// The phases so far, without a total: what a dry run reports.
    pub fn phases(self) -> Vec<(&'static str, Duration)> {
        self.phases
    }

    /// The phases and the whole run's duration, `total`, last.
    pub fn total(mut self) -> Vec<(&'static str, Duration)> {
        self.phases.push(("total", self.start.elapsed()));
        self.phases
    }
}

fn human(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}
