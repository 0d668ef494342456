//! Distillation settings, checked before any training.

use serde::{Deserialize, Serialize};

use crate::error::{DistillError, Result};

/// One FitNets hint: the student layer whose output is matched (through a learned 1x1
/// adapter) to the teacher layer's output. Names are the module paths a forward pass reports
/// (`conv2`, `blocks.1.conv`, `blocks.3.project.conv`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintConfig {
    /// Student layer.
    pub student: String,
    /// Teacher layer.
    pub teacher: String,
}

/// How to distill (Hinton et al. 2015, FitNets hints by Romero et al. 2015).
///
/// Loss = α·T²·KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − α)·CE(student, labels)
///        + β·mean over hints of MSE(adapter(student feature), teacher feature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    /// Softmax temperature T (> 0); 2 to 8 suits small students.
    pub temperature: f64,
    /// Weight α of the soft-target term, in [0, 1]; 0 is plain training on the labels.
    pub alpha: f64,
    /// FitNets hints (none by default).
    pub hints: Vec<HintConfig>,
    /// Weight β of the hint term (≥ 0).
    pub hint_weight: f64,
    /// Training epochs (default: `[train]`'s).
    pub epochs: Option<usize>,
    /// Peak learning rate (default: `[train]`'s).
    pub learning_rate: Option<f64>,
    /// Compute the teacher's logits once for the whole training split and reuse them every
    /// epoch (valid because training applies no augmentation). Hints need the teacher's
    /// feature maps, so with hints the teacher runs on every batch regardless.
    pub cache_teacher: bool,
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            temperature: 4.0,
            alpha: 0.7,
            hints: Vec::new(),
            hint_weight: 1.0,
            epochs: None,
            learning_rate: None,
            cache_teacher: true,
        }
    }
}

impl DistillConfig {
    /// Checks every range; errors name the key under `prefix` (for example `stages[2].distill`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let bad = |key: &str, v: &dyn std::fmt::Display, why: &str| {
            Err(DistillError::invalid(format!("{prefix}.{key}"), v, why))
        };
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(
                "temperature",
                &self.temperature,
                "must be a positive number; 2 to 8 is usual, for example 4",
            );
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad(
                "alpha",
                &self.alpha,
                "must be in [0, 1]: the weight of the teacher's soft targets (1 - alpha goes \
                 to the labels), for example 0.7",
            );
        }
        if !(self.hint_weight >= 0.0 && self.hint_weight.is_finite()) {
            return bad(
                "hint_weight",
                &self.hint_weight,
                "must be zero or positive, for example 1",
            );
        }
        if self.epochs == Some(0) {
            return bad(
                "epochs",
                &0,
                "must be at least 1, or left out to use [train]'s",
            );
        }
        if let Some(lr) = self.learning_rate
            && !(lr > 0.0 && lr.is_finite())
        {
            return bad(
                "learning_rate",
                &lr,
                "must be a positive number, for example 0.001",
            );
        }
        for (i, h) in self.hints.iter().enumerate() {
            if h.student.is_empty() || h.teacher.is_empty() {
                return bad(
                    &format!("hints[{i}]"),
                    &format!("{{ student = {:?}, teacher = {:?} }}", h.student, h.teacher),
                    "both layer names are needed, for example { student = \"conv2\", teacher = \"conv2\" }",
                );
            }
        }
        Ok(())
    }

    /// Whether training needs the teacher at all (not when α = 0 and there are no hints).
    pub fn needs_teacher(&self) -> bool {
        self.alpha > 0.0 || !self.hints.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        DistillConfig::default().validate("distill").unwrap();
        let cases: Vec<(DistillConfig, &str)> = vec![
            (
                DistillConfig {
                    temperature: 0.0,
                    ..Default::default()
                },
                "distill.temperature = 0",
            ),
            (
                DistillConfig {
                    temperature: -2.0,
                    ..Default::default()
                },
                "distill.temperature = -2",
            ),
            (
                DistillConfig {
                    alpha: 1.5,
                    ..Default::default()
                },
                "distill.alpha = 1.5",
            ),
            (
                DistillConfig {
                    alpha: -0.1,
                    ..Default::default()
                },
                "distill.alpha = -0.1",
            ),
            (
                DistillConfig {
                    hint_weight: f64::NAN,
                    ..Default::default()
                },
                "distill.hint_weight",
            ),
            (
                DistillConfig {
                    epochs: Some(0),
                    ..Default::default()
                },
                "distill.epochs = 0",
            ),
            (
                DistillConfig {
                    hints: vec![HintConfig {
                        student: String::new(),
                        teacher: "conv2".into(),
                    }],
                    ..Default::default()
                },
                "distill.hints[0]",
            ),
        ];
        for (cfg, expect) in cases {
            let e = cfg.validate("distill").unwrap_err().to_string();
            assert!(e.contains(expect), "{e}");
        }
    }

    #[test]
    fn the_teacher_is_needed_unless_alpha_is_zero_without_hints() {
        assert!(DistillConfig::default().needs_teacher());
        let plain = DistillConfig {
            alpha: 0.0,
            ..Default::default()
        };
        assert!(!plain.needs_teacher());
    }
}
