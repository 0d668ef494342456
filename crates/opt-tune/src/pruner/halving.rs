//! Asynchronous successive halving (ASHA, Li et al. 2018): rungs at `min_resource · η^k`
//! steps; a trial reaching a rung continues only if its value there is in the top `1/η` of all
//! values recorded at that rung so far (the first trials of a rung always continue, as in
//! Optuna, since nothing is suspended).

use super::Pruner;
use crate::objective::StudyDef;
use crate::trial::{Trial, TrialState};

/// ASHA.
#[derive(Debug, Clone)]
pub struct SuccessiveHalving {
    /// Steps of the first rung before the early-stopping rate.
    pub min_resource: u32,
    /// η.
    pub reduction_factor: u32,
    /// The first rung is `min_resource · η^rate` (Hyperband's brackets differ in it).
    pub min_early_stopping_rate: u32,
    /// The full budget: a trial at or past it is never stopped.
    pub max_resource: Option<u32>,
}

impl SuccessiveHalving {
    /// Whether `step` is a rung.
    pub fn is_rung(&self, step: u32) -> bool {
        let mut rung = u64::from(self.min_resource)
            * u64::from(self.reduction_factor).pow(self.min_early_stopping_rate);
        while rung < u64::from(step) {
            rung *= u64::from(self.reduction_factor);
        }
        rung == u64::from(step)
    }

    /// The decision, comparing only with `competitors` (Hyperband passes a bracket's trials).
    pub fn judge<'a>(
        &self,
        def: &StudyDef,
        trial: &Trial,
        competitors: impl Iterator<Item = &'a Trial>,
    ) -> bool {
        let Some((step, value)) = trial.intermediate.last().copied() else {
            return false;
        };
        if value.is_nan() {
            return true;
        }
        if self.max_resource.is_some_and(|m| step >= m) || !self.is_rung(step) {
            return false;
        }
        let dir = def.watch_direction();
        let mut values: Vec<f64> = competitors
            .filter(|t| t.number != trial.number && t.state != TrialState::Waiting)
            .filter_map(|t| t.value_at(step))
            .map(|v| {
                if v.is_nan() {
                    f64::INFINITY
                } else {
                    dir.minimized(v)
                }
            })
            .collect();
        values.push(dir.minimized(value));
        values.sort_by(f64::total_cmp);
        let keep = (values.len() / self.reduction_factor as usize).max(1);
        dir.minimized(value) > values[keep - 1]
    }
}

impl Pruner for SuccessiveHalving {
    fn should_prune(&self, def: &StudyDef, trial: &Trial, all: &[Trial]) -> bool {
        self.judge(def, trial, all.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::Direction;
    use crate::pruner::test_util::curve;
    use crate::sampler::test_util::def;

    #[test]
    fn rungs_grow_by_eta() {
        let sh = SuccessiveHalving {
            min_resource: 1,
            reduction_factor: 3,
            min_early_stopping_rate: 0,
            max_resource: None,
        };
        let rungs: Vec<u32> = (1..=30).filter(|s| sh.is_rung(*s)).collect();
        assert_eq!(rungs, vec![1, 3, 9, 27]);
        let later = SuccessiveHalving {
            min_early_stopping_rate: 1,
            ..sh
        };
        assert_eq!(
            (1..=30).filter(|s| later.is_rung(*s)).collect::<Vec<_>>(),
            vec![3, 9, 27]
        );
    }

    #[test]
    fn keeps_the_top_third_at_a_rung() {
        let d = def("x = { float = [0.0, 1.0] }", Direction::Maximize);
        let sh = SuccessiveHalving {
            min_resource: 1,
            reduction_factor: 3,
            min_early_stopping_rate: 0,
            max_resource: Some(9),
        };
        let all: Vec<Trial> = (0..5)
            .map(|i| curve(i, TrialState::Complete, &[0.1 * i as f64, 0.5, 0.5]))
            .collect();
        // Six values at rung 1 keep two: 0.4 and 0.3 are the top; 0.35 is kept, 0.25 is not.
        assert!(!sh.should_prune(&d, &curve(7, TrialState::Running, &[0.35]), &all));
        assert!(sh.should_prune(&d, &curve(8, TrialState::Running, &[0.25]), &all));
        // Step 2 is no rung; the first trial at a rung always continues.
        assert!(!sh.should_prune(&d, &curve(9, TrialState::Running, &[0.45, 0.0]), &all));
        assert!(!sh.should_prune(&d, &curve(10, TrialState::Running, &[0.0; 9]), &all));
        assert!(!sh.should_prune(&d, &curve(11, TrialState::Running, &[0.0]), &[]));
    }
}
