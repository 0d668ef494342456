//! Structured pruning: which channels each group keeps, and the physically smaller model that
//! results (a spec with smaller widths plus the kept slices of every tensor).

use std::collections::BTreeMap;

use opt_core::model::{Architecture, ChannelGroup, ModelSpec, SliceRole};
use opt_core::rng::SplitMix64;
use opt_core::weights::HostTensor;
use serde::{Deserialize, Serialize};

use crate::config::{Criterion, PruneConfig};
use crate::criterion::{GradientProducts, channel_scores};
use crate::error::{PruneError, Result};
use crate::slicing::keep_channels;

/// What structured pruning did to one channel group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupChange {
    /// Group name.
    pub name: String,
    /// Channels before.
    pub before: usize,
    /// Channels after.
    pub after: usize,
    /// Kept channel indices (ascending, into the channels before).
    #[serde(skip)]
    pub kept: Vec<usize>,
    /// Why the count differs from the plain ratio (rounding, minimum), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Channels a group of `channels` keeps when `ratio` of them go, rounded to the nearest
/// multiple of `round_to` where at least `2 * round_to` are kept (so rounding changes a
/// count by at most a quarter), and never below `min_channels`. Returns the count and a note when rounding or the minimum changed it.
pub fn kept_count(
    channels: usize,
    ratio: f64,
    round_to: usize,
    min_channels: usize,
) -> (usize, Option<String>) {
    let plain = channels - ((channels as f64 * ratio).round() as usize).min(channels);
    let mut keep = plain;
    let mut note = None;
    if round_to > 1 && keep >= 2 * round_to {
        let rounded = (((keep as f64) / round_to as f64).round() as usize * round_to)
            .clamp(round_to, channels);
        if rounded != keep {
            note = Some(format!(
                "{plain} rounded to {rounded} (a multiple of {round_to})"
            ));
            keep = rounded;
        }
    }
    let floor = min_channels.clamp(1, channels);
    if keep < floor {
        note = Some(format!(
            "ratio {ratio} would keep {plain} of {channels} channels; kept the minimum {floor}"
        ));
        keep = floor;
    }
    (keep, note)
}

/// Decides the kept channels of every group: `progress` (1 for one-shot and the last
/// iterative round) times the target ratio, or the matching override's, of each group's
/// original channels goes; counts are rounded only in the last round. Excluded groups keep
/// everything. Every exclusion and override pattern must
/// match a group, else the error lists the group names.
pub fn plan_channels(
    cfg: &PruneConfig,
    groups: &[ChannelGroup],
    tensors: &BTreeMap<String, HostTensor>,
    taylor: Option<&GradientProducts>,
    original: &[usize],
    progress: f64,
) -> Result<Vec<GroupChange>> {
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    cfg.check_patterns("prune", &names, "channel group")?;
    let mut rng = SplitMix64::new(cfg.seed);
    let mut out = Vec::with_capacity(groups.len());
    let round = progress >= 1.0;
    for (g, &orig) in groups.iter().zip(original) {
        let all: Vec<usize> = (0..g.channels).collect();
        if cfg.excluded(&g.name) {
            out.push(GroupChange {
                name: g.name.clone(),
                before: g.channels,
                after: g.channels,
                kept: all,
                note: Some("excluded".into()),
            });
            continue;
        }
        let r = cfg.override_ratio(&g.name).unwrap_or(cfg.target);
        let (keep, note) = kept_count(
            orig,
            r * progress,
            if round { cfg.round_to } else { 1 },
            cfg.min_channels,
        );
        let keep = keep.min(g.channels);
        // Network slimming reads batch-norm scales; a group without one (a linear layer) is
        // ranked by L1 magnitude instead, and the report says so.
        let has_bn = g
            .slices
            .iter()
            .any(|s| s.role == SliceRole::Norm && s.path.ends_with(".gamma"));
        let (criterion, note) = if cfg.criterion == Criterion::BnScale && !has_bn {
            (
                Criterion::L1,
                Some("no batch norm to read a scale from: ranked by l1".to_string()),
            )
        } else {
            (cfg.criterion, note)
        };
        let scores = channel_scores(criterion, g, tensors, taylor, &mut rng)?;
        let mut order = all;
        order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let mut kept = order[..keep].to_vec();
        kept.sort_unstable();
        if let Some(n) = &note {
            tracing::debug!(group = %g.name, "{n}");
        }
        out.push(GroupChange {
            name: g.name.clone(),
            before: g.channels,
            after: keep,
            kept,
            note,
        });
    }
    Ok(out)
}

/// The smaller spec and its tensors: every slice of every group keeps only its group's kept
/// channels. The new spec's groups must describe the sliced tensors (checked when loading).
pub fn shrink<A: Architecture>(
    spec: &ModelSpec<A>,
    groups: &[ChannelGroup],
    plan: &[GroupChange],
    tensors: &BTreeMap<String, HostTensor>,
) -> Result<(ModelSpec<A>, BTreeMap<String, HostTensor>)> {
    let widths: Vec<usize> = plan.iter().map(|p| p.after).collect();
    let arch = spec
        .arch
        .with_group_widths(spec.input, spec.classes, &widths)?;
    let mut out = tensors.clone();
    for (g, p) in groups.iter().zip(plan) {
        if p.after == p.before {
            continue;
        }
        for s in &g.slices {
            let t = out.get(&s.path).ok_or_else(|| {
                PruneError::Model(format!(
                    "group {} names tensor {}, which the model does not have",
                    g.name, s.path
                ))
            })?;
            let sliced = keep_channels(t, s, &p.kept);
            out.insert(s.path.clone(), sliced);
        }
    }
    let spec = ModelSpec {
        input: spec.input,
        classes: spec.classes,
        arch,
    };
    spec.validate()?;
    Ok((spec, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_counts_round_and_respect_the_minimum() {
        assert_eq!(kept_count(64, 0.5, 8, 1), (32, None));
        let (k, note) = kept_count(64, 0.3, 8, 1);
        assert_eq!(k, 48);
        assert!(note.unwrap().contains("45 rounded to 48"));
        // Too few kept to round: 10 of 20 with round_to 8.
        assert_eq!(kept_count(20, 0.5, 8, 1), (10, None));
        let (k, note) = kept_count(20, 0.99, 1, 2);
        assert_eq!(k, 2);
        assert!(note.unwrap().contains("kept the minimum 2"));
    }
}
