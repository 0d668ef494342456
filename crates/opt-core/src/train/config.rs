//! Training settings: optimizer, learning-rate schedule, epochs, seed; checked before use.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Which optimizer to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam with L2 weight decay added to the gradient (epsilon 1e-8, as PyTorch).
    Adam,
    /// AdamW with decoupled weight decay (epsilon 1e-8).
    Adamw,
    /// SGD with momentum (no dampening, as PyTorch) and L2 weight decay.
    Sgd,
}

/// How the learning rate evolves over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Constant after warm-up.
    Constant,
    /// Cosine decay from the base rate to `min_lr` after warm-up.
    Cosine,
}

/// Everything the training loop needs to know. Field defaults are the quickstart's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training split (≥ 1).
    pub epochs: usize,
    /// Items per optimizer step (≥ 1).
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Peak learning rate (> 0).
    pub learning_rate: f64,
    /// Weight decay (≥ 0): L2 for adam and sgd, decoupled for adamw.
    pub weight_decay: f64,
    /// Momentum of sgd, in [0, 1).
    pub momentum: f64,
    /// Learning-rate schedule.
    pub schedule: ScheduleKind,
    /// Linear warm-up length in epochs (may be fractional, < epochs).
    pub warmup_epochs: f64,
    /// Final learning rate of the cosine schedule (≥ 0, ≤ learning_rate).
    pub min_lr: f64,
    /// Seed of weight initialization and data order.
    pub seed: u64,
    /// Stop when validation accuracy has not improved for this many epochs (0 = never).
    pub patience: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 64,
            optimizer: OptimizerKind::Adam,
            learning_rate: 2e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            schedule: ScheduleKind::Cosine,
            warmup_epochs: 0.0,
            min_lr: 0.0,
            seed: 42,
            patience: 0,
        }
    }
}

impl TrainConfig {
    /// Checks every range; the error names the key under `prefix` (for example `train`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let bad = |key: &str, v: &dyn std::fmt::Display, why: &str| {
            Err(CoreError::invalid(format!("{prefix}.{key}"), v, why))
        };
        if self.epochs == 0 {
            return bad("epochs", &self.epochs, "must be at least 1");
        }
        if self.batch_size == 0 {
            return bad(
                "batch_size",
                &self.batch_size,
                "must be at least 1, for example 64",
            );
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(
                "learning_rate",
                &self.learning_rate,
                "must be a positive number, for example 0.001",
            );
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(
                "weight_decay",
                &self.weight_decay,
                "must be zero or positive",
            );
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(
                "momentum",
                &self.momentum,
                "must be in [0, 1), for example 0.9",
            );
        }
        if !(self.warmup_epochs >= 0.0 && self.warmup_epochs < self.epochs as f64) {
            return bad(
                "warmup_epochs",
                &self.warmup_epochs,
                "must be zero or positive and below epochs",
            );
        }
        if !(self.min_lr >= 0.0 && self.min_lr <= self.learning_rate) {
            return bad(
                "min_lr",
                &self.min_lr,
                "must be between 0 and learning_rate",
            );
        }
        Ok(())
    }

    /// The learning rate at optimizer step `step` of `total` steps.
    pub fn lr_at(&self, step: usize, total: usize, steps_per_epoch: usize) -> f64 {
        let warmup = (self.warmup_epochs * steps_per_epoch as f64).round() as usize;
        if step < warmup {
            return self.learning_rate * (step + 1) as f64 / warmup as f64;
        }
        match self.schedule {
            ScheduleKind::Constant => self.learning_rate,
            ScheduleKind::Cosine => {
                let span = total.saturating_sub(warmup).max(1) as f64;
                let t = (step - warmup) as f64 / span;
                self.min_lr
                    + 0.5
                        * (self.learning_rate - self.min_lr)
                        * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range_values_by_key() {
        let cases: Vec<(TrainConfig, &str)> = vec![
            (
                TrainConfig {
                    epochs: 0,
                    ..Default::default()
                },
                "train.epochs = 0",
            ),
            (
                TrainConfig {
                    batch_size: 0,
                    ..Default::default()
                },
                "train.batch_size = 0",
            ),
            (
                TrainConfig {
                    learning_rate: 0.0,
                    ..Default::default()
                },
                "train.learning_rate = 0",
            ),
            (
                TrainConfig {
                    learning_rate: -1.0,
                    ..Default::default()
                },
                "train.learning_rate = -1",
            ),
            (
                TrainConfig {
                    momentum: 1.0,
                    ..Default::default()
                },
                "train.momentum = 1",
            ),
            (
                TrainConfig {
                    warmup_epochs: 9.0,
                    ..Default::default()
                },
                "train.warmup_epochs = 9",
            ),
        ];
        for (cfg, expect) in cases {
            let e = cfg.validate("train").unwrap_err().to_string();
            assert!(e.starts_with(expect), "{e}");
        }
        TrainConfig::default().validate("train").unwrap();
    }

    #[test]
    fn schedule_warms_up_then_decays_to_min() {
        let cfg = TrainConfig {
            warmup_epochs: 1.0,
            min_lr: 1e-4,
            learning_rate: 1e-2,
            ..Default::default()
        };
        let (spe, total) = (10, 50);
        assert!((cfg.lr_at(0, total, spe) - 1e-3).abs() < 1e-12);
        assert!((cfg.lr_at(9, total, spe) - 1e-2).abs() < 1e-12);
        assert!((cfg.lr_at(10, total, spe) - 1e-2).abs() < 1e-12);
        assert!(cfg.lr_at(30, total, spe) < 1e-2);
        assert!((cfg.lr_at(50, total, spe) - 1e-4).abs() < 1e-9);
        let constant = TrainConfig {
            schedule: ScheduleKind::Constant,
            ..cfg
        };
        assert_eq!(constant.lr_at(40, total, spe), 1e-2);
    }
}
