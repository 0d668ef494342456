//! Samplers propose the parameters of the next trial from the study's history.
//!
//! Every sampler here is a pure function of (seed, trial number, history): a study run
//! sequentially is reproducible, and several workers asking at once get different points
//! because they ask for different trial numbers.

mod grid;
mod halton;
mod parzen;
mod random;
mod tpe;

use serde::{Deserialize, Serialize};

pub use grid::GridSampler;
pub use halton::HaltonSampler;
pub(crate) use parzen::normal as parzen_normal;
pub use random::RandomSampler;
pub use tpe::TpeSampler;

use crate::error::{Result, TuneError};
use crate::objective::StudyDef;
use crate::space::Params;
use crate::trial::Trial;
use opt_core::rng::SplitMix64;

/// Proposes parameters for trial `number`; `None` when the sampler has nothing left (a grid
/// that is exhausted).
pub trait Sampler: Send + Sync {
    /// The parameters of trial `number`, given every trial of the study so far.
    fn propose(&self, def: &StudyDef, history: &[Trial], number: u64) -> Option<Params>;
}

/// Which sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Every combination of a per-dimension grid, in a seeded order.
    Grid,
    /// Independent uniform draws.
    Random,
    /// A randomly shifted Halton sequence (quasi-random, low discrepancy).
    Halton,
    /// Tree-structured Parzen estimator.
    #[default]
    Tpe,
}

/// Sampler settings (`[tune.sampler]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerConfig {
    /// The sampler.
    pub kind: SamplerKind,
    /// Seed (with the trial number) of every random choice.
    pub seed: u64,
    /// Grid: values per float dimension (and per integer dimension with more values).
    pub grid_points: usize,
    /// TPE: one joint density over all dimensions (captures interactions) instead of one
    /// density per dimension.
    pub multivariate: bool,
    /// TPE: trials drawn at random before the densities are used.
    pub startup_trials: usize,
    /// TPE: candidates drawn from the good density, scored by the density ratio.
    pub ei_candidates: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            kind: SamplerKind::Tpe,
            seed: 0,
            grid_points: 5,
            multivariate: true,
            startup_trials: 10,
            ei_candidates: 24,
        }
    }
}

impl SamplerConfig {
    /// Checks the settings against the space and builds the sampler; `prefix` names the table.
    pub fn build(&self, def: &StudyDef, prefix: &str) -> Result<Box<dyn Sampler>> {
        match self.kind {
            SamplerKind::Grid => {
                if !(2..=1_000_000).contains(&self.grid_points) {
                    return Err(TuneError::invalid(
                        format!("{prefix}.grid_points"),
                        self.grid_points,
                        "a grid needs between 2 and 1,000,000 points per dimension",
                    ));
                }
                let grid = GridSampler::new(&def.space, self.grid_points, self.seed);
                if grid.len() > 1_000_000 {
                    return Err(TuneError::invalid(
                        format!("{prefix}.grid_points"),
                        self.grid_points,
                        format!(
                            "the grid has {} points; lower grid_points or use tpe/random",
                            grid.len()
                        ),
                    ));
                }
                Ok(Box::new(grid))
            }
            SamplerKind::Random => Ok(Box::new(RandomSampler { seed: self.seed })),
            SamplerKind::Halton => Ok(Box::new(HaltonSampler::new(def.space.len(), self.seed)?)),
            SamplerKind::Tpe => {
                if self.ei_candidates == 0 {
                    return Err(TuneError::invalid(
                        format!("{prefix}.ei_candidates"),
                        0,
                        "TPE needs at least one candidate per trial (24 is the usual value)",
                    ));
                }
                Ok(Box::new(TpeSampler {
                    seed: self.seed,
                    multivariate: self.multivariate,
                    startup_trials: self.startup_trials,
                    ei_candidates: self.ei_candidates,
                }))
            }
        }
    }
}

/// The generator for one (seed, trial number, purpose).
pub(crate) fn trial_rng(seed: u64, number: u64, salt: u64) -> SplitMix64 {
    let mut mix = SplitMix64::new(seed ^ salt.wrapping_mul(0xa076_1d64_78bd_642f));
    let a = mix.next_u64();
    SplitMix64::new(a ^ number.wrapping_mul(0xe703_7ed1_a0b4_28db))
}

#[cfg(test)]
pub(crate) mod test_util {
    use crate::objective::{Direction, Objective, StudyDef};
    use crate::space::SearchSpace;

    /// A single-objective definition over a TOML space.
    pub fn def(space: &str, direction: Direction) -> StudyDef {
        StudyDef {
            space: SearchSpace::from_toml(space, "space").unwrap(),
            objectives: vec![Objective {
                metric: "y".into(),
                direction,
            }],
            constraints: vec![],
            watch: 0,
        }
    }
}
