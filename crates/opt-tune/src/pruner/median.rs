//! The median rule (Golovin et al. 2017, Google Vizier): stop a trial whose best value so far
//! is worse than the median of the finished trials' values at the same step.

use super::Pruner;
use crate::objective::StudyDef;
use crate::trial::{Trial, TrialState};

/// The median stopping rule.
#[derive(Debug, Clone)]
pub struct MedianRule {
    /// Finished trials needed before any trial is stopped.
    pub startup_trials: usize,
    /// Steps every trial runs.
    pub warmup_steps: u32,
}

impl Pruner for MedianRule {
    fn should_prune(&self, def: &StudyDef, trial: &Trial, all: &[Trial]) -> bool {
        let Some((step, last)) = trial.intermediate.last().copied() else {
            return false;
        };
        if last.is_nan() {
            return true;
        }
        let done: Vec<&Trial> = all
            .iter()
            .filter(|t| t.number != trial.number && t.state == TrialState::Complete)
            .collect();
        if done.len() < self.startup_trials.max(1) || step <= self.warmup_steps {
            return false;
        }
        let dir = def.watch_direction();
        let mut at_step: Vec<f64> = done
            .iter()
            .filter_map(|t| t.value_at(step))
            .filter(|v| !v.is_nan())
            .collect();
        if at_step.is_empty() {
            return false;
        }
        at_step.sort_by(f64::total_cmp);
        let n = at_step.len();
        let median = if n % 2 == 1 {
            at_step[n / 2]
        } else {
            0.5 * (at_step[n / 2 - 1] + at_step[n / 2])
        };
        let best = trial
            .intermediate
            .iter()
            .map(|(_, v)| *v)
            .filter(|v| !v.is_nan())
            .min_by(|a, b| dir.minimized(*a).total_cmp(&dir.minimized(*b)))
            .unwrap_or(last);
        dir.better(median, best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::Direction;
    use crate::pruner::test_util::curve;
    use crate::sampler::test_util::def;

    #[test]
    fn stops_below_the_median_after_startup() {
        let d = def("x = { float = [0.0, 1.0] }", Direction::Maximize);
        let rule = MedianRule {
            startup_trials: 3,
            warmup_steps: 1,
        };
        let mut all: Vec<Trial> = [0.5, 0.6, 0.7]
            .iter()
            .enumerate()
            .map(|(i, v)| curve(i as u64, TrialState::Complete, &[v - 0.2, *v, v + 0.1]))
            .collect();
        let low = curve(9, TrialState::Running, &[0.1, 0.3]);
        let high = curve(10, TrialState::Running, &[0.1, 0.65]);
        assert!(rule.should_prune(&d, &low, &all));
        assert!(!rule.should_prune(&d, &high, &all));
        // In warm-up (step 1) nothing stops; with too few finished trials nothing stops.
        assert!(!rule.should_prune(&d, &curve(11, TrialState::Running, &[0.0]), &all));
        all.pop();
        assert!(!rule.should_prune(&d, &low, &all));
        // A diverged trial stops at once.
        assert!(rule.should_prune(&d, &curve(12, TrialState::Running, &[f64::NAN]), &all));
        // Minimizing, the same curves are judged the other way round.
        let dm = def("x = { float = [0.0, 1.0] }", Direction::Minimize);
        all.push(curve(2, TrialState::Complete, &[0.5, 0.7, 0.8]));
        // Median at step 2 is 0.6; the best value so far counts (0.3 keeps going, 0.65 stops).
        assert!(!rule.should_prune(&dm, &curve(13, TrialState::Running, &[0.3, 0.3]), &all));
        assert!(rule.should_prune(&dm, &curve(14, TrialState::Running, &[0.9, 0.65]), &all));
    }
}
