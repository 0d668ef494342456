//! What to prune and how: method, criterion, target, scope, exclusions, overrides, limits,
//! N:M sparsity, channel rounding, schedule and fine-tuning; checked before anything runs.

use serde::{Deserialize, Serialize};

use crate::error::{PruneError, Result};
use crate::sensitivity::SensitivityConfig;

/// Unstructured (individual weights set to zero) or structured (whole channels removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Zero individual weights; the model keeps its shape and is stored sparse.
    Unstructured,
    /// Remove whole channels, filters and neurons: a smaller spec with sliced weights.
    Structured,
}

/// How weights or channels are ranked; the lowest go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Absolute value (a channel: sum of its producers' absolute values).
    L1,
    /// Squared value (a channel: L2 norm of its producers' weights).
    L2,
    /// Batch-norm scale |gamma| (network slimming); structured only.
    BnScale,
    /// First-order Taylor expansion of the loss (Molchanov et al. 2019): (weight x gradient)^2
    /// per weight, (sum over a channel of weight x gradient)^2 per channel, averaged over
    /// `taylor_batches` training batches.
    Taylor,
    /// Uniformly random scores (seeded): the control every criterion must beat.
    Random,
}

/// How the target is distributed over layers (unstructured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One ranking over all prunable layers (one threshold), within each layer's limits.
    Global,
    /// Every layer pruned to the target on its own.
    Layer,
}

/// When pruning happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Prune once to the target, then fine-tune.
    OneShot,
    /// `steps` rounds, each pruning further and fine-tuning (`finetune_epochs` per round).
    Iterative,
    /// Zhu & Gupta (2017) inside fine-tuning: sparsity rises as
    /// s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3, masks recomputed every `prune_every`
    /// steps during the first `ramp_fraction` of fine-tuning (unstructured, magnitude or random).
    Gradual,
}

/// A per-layer (unstructured) or per-group (structured) ratio for names matching `pattern`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Layer or group name pattern; `*` matches any characters (`blocks.*.expand.conv`).
    pub pattern: String,
    /// Fraction pruned there, in [0, 1).
    pub ratio: f64,
}

/// Every pruning setting. Defaults: unstructured global L1 at 50%, one-shot, 1 fine-tuning
/// epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PruneConfig {
    /// Unstructured or structured.
    pub method: Method,
    /// Ranking criterion.
    pub criterion: Criterion,
    /// Fraction removed, in [0, 1): of the weights of the prunable layers (unstructured), of
    /// the channels of each group (structured).
    pub target: f64,
    /// Global or per-layer ranking (unstructured).
    pub scope: Scope,
    /// Layers (unstructured) or groups (structured) left alone; `*` wildcards.
    pub exclude: Vec<String>,
    /// Ratios for particular layers or groups.
    pub overrides: Vec<Override>,
    /// Least fraction pruned in any layer under global ranking.
    pub min_layer_ratio: f64,
    /// Largest fraction pruned in any layer under global ranking (so no layer is emptied).
    pub max_layer_ratio: f64,
    /// N:M semi-structured sparsity (`"2:4"`): in every M consecutive weights along a layer's
    /// input, keep the N largest; replaces `target`.
    pub n_m: Option<String>,
    /// Round kept channel counts to the nearest multiple of this (structured) where at least
    /// twice as many are kept; 1 turns rounding off.
    pub round_to: usize,
    /// Fewest channels a group keeps (structured).
    pub min_channels: usize,
    /// One-shot, iterative or gradual.
    pub schedule: Schedule,
    /// Rounds of the iterative schedule.
    pub steps: usize,
    /// Fine-tuning epochs after pruning (per round when iterative; the whole run when gradual).
    pub finetune_epochs: usize,
    /// Peak learning rate of fine-tuning; absent: a quarter of `[train] learning_rate`.
    pub finetune_learning_rate: Option<f64>,
    /// Initial sparsity s_i of the gradual schedule.
    pub initial_sparsity: f64,
    /// Optimizer steps between mask updates of the gradual schedule (dt).
    pub prune_every: usize,
    /// Fraction of fine-tuning over which the gradual schedule ramps up (the rest recovers).
    pub ramp_fraction: f64,
    /// Training batches the Taylor criterion averages over.
    pub taylor_batches: usize,
    /// Training batches used to re-estimate batch-norm statistics after structured pruning.
    pub bn_batches: usize,
    /// Seed of the random criterion.
    pub seed: u64,
    /// Scan every layer's (group's) sensitivity first and derive the per-unit ratios that
    /// meet `target` from it (overrides and exclusions still apply); absent: no scan.
    pub sensitivity: Option<SensitivityConfig>,
}

impl Default for PruneConfig {
    fn default() -> Self {
        Self {
            method: Method::Unstructured,
            criterion: Criterion::L1,
            target: 0.5,
            scope: Scope::Global,
            exclude: Vec::new(),
            overrides: Vec::new(),
            min_layer_ratio: 0.0,
            max_layer_ratio: 0.99,
            n_m: None,
            round_to: 8,
            min_channels: 1,
            schedule: Schedule::OneShot,
            steps: 3,
            finetune_epochs: 1,
            finetune_learning_rate: None,
            initial_sparsity: 0.0,
            prune_every: 50,
            ramp_fraction: 0.7,
            taylor_batches: 8,
            bn_batches: 20,
            seed: 7,
            sensitivity: None,
        }
    }
}

fn ratio(key: &str, v: f64) -> Result<()> {
    if !(0.0..1.0).contains(&v) {
        return Err(PruneError::invalid(
            key,
            v,
            "must be in [0, 1): 0 prunes nothing, 0.9 removes 90%; 1 would remove everything",
        ));
    }
    Ok(())
}

impl PruneConfig {
    /// Checks every range and combination; keys are named under `prefix` (`stages[1]`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let key = |k: &str| format!("{prefix}.{k}");
        ratio(&key("target"), self.target)?;
        ratio(&key("min_layer_ratio"), self.min_layer_ratio)?;
        ratio(&key("max_layer_ratio"), self.max_layer_ratio)?;
        ratio(&key("initial_sparsity"), self.initial_sparsity)?;
        if self.min_layer_ratio > self.max_layer_ratio {
            return Err(PruneError::invalid(
                key("min_layer_ratio"),
                self.min_layer_ratio,
                format!("is above max_layer_ratio = {}", self.max_layer_ratio),
            ));
        }
        for (i, o) in self.overrides.iter().enumerate() {
            ratio(&key(&format!("overrides[{i}].ratio")), o.ratio)?;
        }
        if let Some(nm) = &self.n_m {
            let (n, m) = parse_n_m(nm).map_err(|p| PruneError::invalid(key("n_m"), nm, p))?;
            if self.method != Method::Unstructured {
                return Err(PruneError::invalid(
                    key("n_m"),
                    nm,
                    "N:M sparsity zeroes weights inside layers; use method = \"unstructured\"",
                ));
            }
            let _ = (n, m);
        }
        for (k, v) in [
            ("steps", self.steps),
            ("prune_every", self.prune_every),
            ("taylor_batches", self.taylor_batches),
            ("round_to", self.round_to),
            ("min_channels", self.min_channels),
        ] {
            if v == 0 {
                return Err(PruneError::invalid(key(k), v, "must be at least 1"));
            }
        }
        if let Some(lr) = self.finetune_learning_rate
            && !(lr > 0.0 && lr.is_finite())
        {
            return Err(PruneError::invalid(
                key("finetune_learning_rate"),
                lr,
                "must be a positive number, for example 0.0005",
            ));
        }
        if !(self.ramp_fraction > 0.0 && self.ramp_fraction <= 1.0) {
            return Err(PruneError::invalid(
                key("ramp_fraction"),
                self.ramp_fraction,
                "must be in (0, 1]",
            ));
        }
        if let Some(sens) = &self.sensitivity {
            sens.validate(&key("sensitivity"))?;
            if self.n_m.is_some() {
                return Err(PruneError::invalid(
                    key("sensitivity"),
                    "set",
                    "N:M sparsity has no per-layer ratio to derive; remove n_m or the scan",
                ));
            }
            let cap = match self.method {
                Method::Unstructured => sens.max_ratio().min(self.max_layer_ratio),
                Method::Structured => sens.max_ratio(),
            };
            if self.target > cap && self.overrides.iter().all(|o| o.ratio <= cap) {
                return Err(PruneError::invalid(
                    key("target"),
                    self.target,
                    format!(
                        "the sensitivity scan can give no layer more than {cap} (its largest \
                         ratio{}); add a larger ratio to sensitivity.ratios or lower the target",
                        if cap < sens.max_ratio() {
                            " capped by max_layer_ratio"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        if (self.method, self.criterion) == (Method::Unstructured, Criterion::BnScale) {
            return Err(PruneError::invalid(
                key("criterion"),
                "bn_scale",
                "the batch-norm scale ranks channels, not weights; use it with method = \
                 \"structured\", or use l1, l2, taylor or random",
            ));
        }
        if self.schedule == Schedule::Gradual {
            if self.method != Method::Unstructured || self.n_m.is_some() {
                return Err(PruneError::invalid(
                    key("schedule"),
                    "gradual",
                    "the gradual schedule raises the sparsity of unstructured pruning during \
                     fine-tuning; use schedule = \"iterative\" for structured or N:M pruning",
                ));
            }
            if self.criterion == Criterion::Taylor {
                return Err(PruneError::invalid(
                    key("criterion"),
                    "taylor",
                    "the gradual schedule re-ranks weights by magnitude during training; use \
                     l1, l2 or random with it",
                ));
            }
            if self.finetune_epochs == 0 {
                return Err(PruneError::invalid(
                    key("finetune_epochs"),
                    0,
                    "the gradual schedule prunes during fine-tuning, so it needs at least 1 epoch",
                ));
            }
            if self.initial_sparsity > self.target {
                return Err(PruneError::invalid(
                    key("initial_sparsity"),
                    self.initial_sparsity,
                    format!("is above target = {}", self.target),
                ));
            }
        }
        Ok(())
    }

    /// Checks that every exclusion and override pattern (keys under `prefix`) matches one of `names` (layers or
    /// channel groups, `what` says which); the error lists the names.
    pub fn check_patterns(&self, prefix: &str, names: &[&str], what: &str) -> Result<()> {
        for (key, pattern) in self
            .exclude
            .iter()
            .map(|p| ("exclude", p))
            .chain(self.overrides.iter().map(|o| ("overrides", &o.pattern)))
        {
            if !names.iter().any(|n| matches(pattern, n)) {
                return Err(PruneError::invalid(
                    format!("{prefix}.{key}"),
                    pattern,
                    format!("matches no {what}; the {what}s are: {}", names.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Whether an exclusion pattern matches layer or group `name`.
    pub fn excluded(&self, name: &str) -> bool {
        self.exclude.iter().any(|p| matches(p, name))
    }

    /// The ratio of the last override whose pattern matches `name`, if any.
    pub fn override_ratio(&self, name: &str) -> Option<f64> {
        self.overrides
            .iter()
            .rev()
            .find(|o| matches(&o.pattern, name))
            .map(|o| o.ratio)
    }

    /// The N:M pattern, if any.
    pub fn n_m(&self) -> Option<(usize, usize)> {
        self.n_m.as_deref().and_then(|s| parse_n_m(s).ok())
    }
}

/// Parses `"2:4"` into `(2, 4)`; N must be below M.
pub fn parse_n_m(s: &str) -> std::result::Result<(usize, usize), String> {
    let bad = || format!("write N:M with 1 <= N < M, for example \"2:4\"; got {s:?}");
    let (n, m) = s.split_once(':').ok_or_else(bad)?;
    let (n, m): (usize, usize) = (
        n.trim().parse().map_err(|_| bad())?,
        m.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || n >= m {
        return Err(bad());
    }
    Ok((n, m))
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("conv1", "conv1"));
        assert!(!matches("conv1", "conv10"));
        assert!(matches("blocks.*.expand.conv", "blocks.3.expand.conv"));
        assert!(!matches("blocks.*.expand.conv", "blocks.3.project.conv"));
        assert!(matches("*", "anything"));
        assert!(matches("fc*", "fc2"));
        assert!(matches("*.bn", "head.bn"));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let cases: Vec<(PruneConfig, &str)> = vec![
            (
                PruneConfig {
                    target: 1.0,
                    ..Default::default()
                },
                "p.target = 1",
            ),
            (
                PruneConfig {
                    target: -0.1,
                    ..Default::default()
                },
                "p.target = -0.1",
            ),
            (
                PruneConfig {
                    n_m: Some("4:2".into()),
                    ..Default::default()
                },
                "p.n_m = 4:2",
            ),
            (
                PruneConfig {
                    criterion: Criterion::BnScale,
                    ..Default::default()
                },
                "p.criterion = bn_scale",
            ),
            (
                PruneConfig {
                    method: Method::Structured,
                    schedule: Schedule::Gradual,
                    ..Default::default()
                },
                "p.schedule = gradual",
            ),
        ];
        for (cfg, expect) in cases {
            let e = cfg.validate("p").unwrap_err().to_string();
            assert!(e.starts_with(expect), "{e}");
        }
        PruneConfig::default().validate("p").unwrap();
        assert_eq!(parse_n_m("2:4"), Ok((2, 4)));
    }
}
