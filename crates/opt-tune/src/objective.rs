//! What a study optimizes: one or more objectives (metrics with a direction), constraints on
//! metrics, and which objective the early-stopping rule watches.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TuneError};
use crate::space::SearchSpace;

/// Whether larger or smaller is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger is better (accuracy).
    Maximize,
    /// Smaller is better (latency, size, MACs, loss).
    Minimize,
}

impl Direction {
    /// `value` turned into a quantity to minimize.
    pub fn minimized(self, value: f64) -> f64 {
        match self {
            Self::Maximize => -value,
            Self::Minimize => value,
        }
    }

    /// Whether `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        self.minimized(a) < self.minimized(b)
    }
}

/// One objective: a metric the trial returns and its direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// The metric's name (`accuracy`, `latency_ms`, `size_bytes`, `macs`).
    pub metric: String,
    /// Its direction.
    pub direction: Direction,
}

/// A constraint on a metric: `metric <= max` and/or `metric >= min`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// The metric's name.
    pub metric: String,
    /// Upper bound (included).
    #[serde(default)]
    pub max: Option<f64>,
    /// Lower bound (included).
    #[serde(default)]
    pub min: Option<f64>,
}

impl Constraint {
    /// How far `value` is outside the bounds (≤ 0 when satisfied; NaN counts as violated).
    pub fn violation(&self, value: f64) -> f64 {
        if value.is_nan() {
            return f64::INFINITY;
        }
        let over = self.max.map_or(f64::NEG_INFINITY, |m| value - m);
        let under = self.min.map_or(f64::NEG_INFINITY, |m| m - value);
        over.max(under)
    }
}

/// Everything that defines a study; two workers of one study must agree on all of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyDef {
    /// The search space.
    pub space: SearchSpace,
    /// The objectives (one: a best trial; several: a Pareto front).
    pub objectives: Vec<Objective>,
    /// Constraints; trials that break one are kept but never best nor on the front.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// Index of the objective reported per step and watched by early stopping.
    #[serde(default)]
    pub watch: usize,
}

impl StudyDef {
    /// Checks the definition; `prefix` is the config table (`tune`).
    pub fn check(&self, prefix: &str) -> Result<()> {
        if self.objectives.is_empty() {
            return Err(TuneError::invalid(
                format!("{prefix}.objectives"),
                "[]",
                "give at least one objective, e.g. { metric = \"accuracy\", direction = \"maximize\" }",
            ));
        }
        for (i, o) in self.objectives.iter().enumerate() {
            if self.objectives[..i].iter().any(|p| p.metric == o.metric) {
                return Err(TuneError::invalid(
                    format!("{prefix}.objectives"),
                    &o.metric,
                    "the metric appears twice among the objectives",
                ));
            }
        }
        for c in &self.constraints {
            let bad = |p: &str| TuneError::invalid(format!("{prefix}.constraints"), &c.metric, p);
            match (c.min, c.max) {
                (None, None) => return Err(bad("give max = .. and/or min = ..")),
                (Some(lo), Some(hi)) if lo > hi => {
                    return Err(bad("min is above max; no value can meet it"));
                }
                (lo, hi)
                    if lo.is_some_and(|v| !v.is_finite()) || hi.is_some_and(|v| !v.is_finite()) =>
                {
                    return Err(bad("bounds must be finite numbers"));
                }
                _ => {}
            }
        }
        if self.watch >= self.objectives.len() {
            return Err(TuneError::invalid(
                format!("{prefix}.watch"),
                self.watch,
                format!(
                    "there are {} objectives (0-based index)",
                    self.objectives.len()
                ),
            ));
        }
        Ok(())
    }

    /// The directions of the objectives.
    pub fn directions(&self) -> Vec<Direction> {
        self.objectives.iter().map(|o| o.direction).collect()
    }

    /// The direction of the watched objective.
    pub fn watch_direction(&self) -> Direction {
        self.objectives[self.watch].direction
    }

    /// Whether the study has more than one objective.
    pub fn is_multi_objective(&self) -> bool {
        self.objectives.len() > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(metric: &str, direction: Direction) -> Objective {
        Objective {
            metric: metric.into(),
            direction,
        }
    }

    #[test]
    fn violations_are_signed_distances() {
        let c = Constraint {
            metric: "latency_ms".into(),
            max: Some(5.0),
            min: None,
        };
        assert!(c.violation(4.0) <= 0.0);
        assert_eq!(c.violation(7.0), 2.0);
        assert!(c.violation(f64::NAN) > 0.0);
        let both = Constraint {
            metric: "x".into(),
            max: Some(2.0),
            min: Some(1.0),
        };
        assert_eq!(both.violation(0.5), 0.5);
        assert!(both.violation(1.5) <= 0.0);
    }

    #[test]
    fn bad_definitions_are_refused() {
        let ok = StudyDef {
            space: SearchSpace::default(),
            objectives: vec![obj("accuracy", Direction::Maximize)],
            constraints: vec![],
            watch: 0,
        };
        ok.check("tune").unwrap();
        let mut twice = ok.clone();
        twice.objectives.push(obj("accuracy", Direction::Minimize));
        assert!(
            twice
                .check("tune")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let mut watch = ok.clone();
        watch.watch = 1;
        assert!(
            watch
                .check("tune")
                .unwrap_err()
                .to_string()
                .contains("tune.watch")
        );
        let mut inverted = ok.clone();
        inverted.constraints.push(Constraint {
            metric: "x".into(),
            max: Some(1.0),
            min: Some(2.0),
        });
        assert!(
            inverted
                .check("tune")
                .unwrap_err()
                .to_string()
                .contains("min is above max")
        );
        let mut none = ok;
        none.objectives.clear();
        assert!(
            none.check("tune")
                .unwrap_err()
                .to_string()
                .contains("at least one objective")
        );
    }
}
