//! Hyperband (Li et al. 2017) as in Optuna: `⌊log_η(max/min)⌋ + 1` successive-halving brackets
//! whose first rungs are `min · η^s`; each trial is assigned to one bracket by a hash of its
//! number, weighted by each bracket's budget, and competes only with trials of its bracket.

use super::{Pruner, SuccessiveHalving};
use crate::objective::StudyDef;
use crate::trial::Trial;
use opt_core::rng::SplitMix64;

/// Hyperband.
#[derive(Debug, Clone)]
pub struct Hyperband {
    brackets: Vec<SuccessiveHalving>,
    budgets: Vec<u64>,
}

impl Hyperband {
    /// Brackets for trials of `max_resource` steps, first rung `min_resource`, factor `eta`.
    pub fn new(min_resource: u32, max_resource: u32, eta: u32) -> Self {
        let mut n = 1;
        while u64::from(min_resource) * u64::from(eta).pow(n) <= u64::from(max_resource) {
            n += 1;
        }
        let brackets: Vec<SuccessiveHalving> = (0..n)
            .map(|s| SuccessiveHalving {
                min_resource,
                reduction_factor: eta,
                min_early_stopping_rate: s,
                max_resource: Some(max_resource),
            })
            .collect();
        let budgets = (0..n)
            .map(|i| {
                let s = n - 1 - i;
                (f64::from(n) * f64::from(eta).powi(s as i32) / f64::from(s + 1)).ceil() as u64
            })
            .collect();
        Self { brackets, budgets }
    }

    /// The number of brackets.
    pub fn len(&self) -> usize {
        self.brackets.len()
    }

    /// Whether there is no bracket (never: at least one).
    pub fn is_empty(&self) -> bool {
        self.brackets.is_empty()
    }

    /// The bracket of trial `number`.
    pub fn bracket_of(&self, number: u64) -> usize {
        let total: u64 = self.budgets.iter().sum();
        let mut h = SplitMix64::new(number ^ 0x4879_7065_7262_616e).next_u64() % total;
        for (i, b) in self.budgets.iter().enumerate() {
            if h < *b {
                return i;
            }
            h -= b;
        }
        self.budgets.len() - 1
    }
}

impl Pruner for Hyperband {
    fn should_prune(&self, def: &StudyDef, trial: &Trial, all: &[Trial]) -> bool {
        let b = self.bracket_of(trial.number);
        self.brackets[b].judge(
            def,
            trial,
            all.iter().filter(|t| self.bracket_of(t.number) == b),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_and_budgets_follow_optuna() {
        let hb = Hyperband::new(1, 27, 3);
        assert_eq!(hb.len(), 4);
        // s = 3, 2, 1, 0: ceil(4·27/4), ceil(4·9/3), ceil(4·3/2), ceil(4·1/1).
        assert_eq!(hb.budgets, vec![27, 12, 6, 4]);
        let counts = (0..4900u64).fold([0usize; 4], |mut c, n| {
            c[hb.bracket_of(n)] += 1;
            c
        });
        // Shares close to 27:12:6:4 of 49.
        for (c, b) in counts.iter().zip([27.0, 12.0, 6.0, 4.0]) {
            assert!((*c as f64 / 4900.0 - b / 49.0).abs() < 0.02, "{counts:?}");
        }
    }
}
