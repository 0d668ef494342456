//! Grid search: every combination of each dimension's grid, visited in a seeded order; a
//! point already taken by any trial of the study (also by another worker) is skipped.

use super::{Sampler, trial_rng};
use crate::objective::StudyDef;
use crate::space::{ParamValue, Params, SearchSpace};
use crate::trial::Trial;

/// Exhaustive search over a grid.
#[derive(Debug, Clone)]
pub struct GridSampler {
    names: Vec<String>,
    axes: Vec<Vec<ParamValue>>,
    order: Vec<usize>,
}

impl GridSampler {
    /// The grid of `space` with `points` values per continuous dimension, shuffled by `seed`.
    pub fn new(space: &SearchSpace, points: usize, seed: u64) -> Self {
        let names = space.dims.keys().cloned().collect();
        let axes: Vec<Vec<ParamValue>> = space.dims.values().map(|d| d.grid(points)).collect();
        let len = axes
            .iter()
            .map(Vec::len)
            .try_fold(1usize, |a, n| a.checked_mul(n))
            .unwrap_or(usize::MAX);
        let mut order: Vec<usize> = if len <= 1_000_000 {
            (0..len).collect()
        } else {
            Vec::new()
        };
        trial_rng(seed, 0, 3).shuffle(&mut order);
        Self { names, axes, order }
    }

    /// The number of grid points.
    pub fn len(&self) -> usize {
        self.axes
            .iter()
            .map(Vec::len)
            .try_fold(1usize, |a, n| a.checked_mul(n))
            .unwrap_or(usize::MAX)
    }

    /// Whether the grid is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn point(&self, mut index: usize) -> Params {
        let mut p = Params::new();
        for (name, axis) in self.names.iter().zip(&self.axes) {
            p.insert(name.clone(), axis[index % axis.len()].clone());
            index /= axis.len();
        }
        p
    }
}

impl Sampler for GridSampler {
    fn propose(&self, _def: &StudyDef, history: &[Trial], _number: u64) -> Option<Params> {
        // A re-queued trial repeats its parameters, so one point may appear twice; both count.
        self.order
            .iter()
            .map(|&i| self.point(i))
            .find(|p| !history.iter().any(|t| &t.params == p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::Direction;
    use crate::sampler::test_util::def;
    use crate::trial::TrialState;

    #[test]
    fn visits_every_point_once_then_stops() {
        let d = def(
            "a = { int = [0, 2] }\nb = { choices = [\"x\", \"y\"] }",
            Direction::Minimize,
        );
        let g = GridSampler::new(&d.space, 5, 7);
        assert_eq!(g.len(), 6);
        let mut history = Vec::new();
        while let Some(p) = g.propose(&d, &history, history.len() as u64) {
            history.push(Trial::new(history.len() as u64, TrialState::Complete, p));
        }
        assert_eq!(history.len(), 6);
        for (i, t) in history.iter().enumerate() {
            assert!(!history[..i].iter().any(|o| o.params == t.params));
        }
    }
}
