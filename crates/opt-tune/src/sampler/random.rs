//! Independent uniform sampling (in each dimension's internal coordinate).

use super::{Sampler, trial_rng};
use crate::objective::StudyDef;
use crate::space::Params;
use crate::trial::Trial;

/// Uniform random search.
#[derive(Debug, Clone)]
pub struct RandomSampler {
    /// Seed.
    pub seed: u64,
}

impl Sampler for RandomSampler {
    fn propose(&self, def: &StudyDef, _history: &[Trial], number: u64) -> Option<Params> {
        let mut rng = trial_rng(self.seed, number, 1);
        let u: Vec<f64> = (0..def.space.len()).map(|_| rng.next_f64()).collect();
        Some(def.space.from_unit(&u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::Direction;
    use crate::sampler::test_util::def;

    #[test]
    fn reproducible_per_number_and_different_across_numbers() {
        let d = def(
            "x = { float = [0.0, 1.0] }\ny = { int = [0, 100] }",
            Direction::Minimize,
        );
        let s = RandomSampler { seed: 3 };
        assert_eq!(s.propose(&d, &[], 5), s.propose(&d, &[], 5));
        assert_ne!(s.propose(&d, &[], 5), s.propose(&d, &[], 6));
        assert_ne!(
            s.propose(&d, &[], 5),
            RandomSampler { seed: 4 }.propose(&d, &[], 5)
        );
    }
}
