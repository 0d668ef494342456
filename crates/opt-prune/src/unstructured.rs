//! Unstructured pruning: which individual weights to zero. Per-layer or global ranking (one
//! threshold across layers, each layer held within `[min_layer_ratio, max_layer_ratio]` so no
//! layer is emptied), per-layer overrides, exclusions, and N:M semi-structured sparsity.

use std::collections::BTreeMap;

use opt_core::model::{LayerKind, PrunableLayer};
use opt_core::rng::SplitMix64;
use opt_core::weights::HostTensor;
use serde::{Deserialize, Serialize};

use crate::config::{PruneConfig, Scope};
use crate::criterion::{GradientProducts, weight_scores};
use crate::error::{PruneError, Result};

/// Keep flags per weight path (`true` = kept).
pub type Masks = BTreeMap<String, Vec<bool>>;

/// What pruning did to one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSparsity {
    /// Layer name.
    pub name: String,
    /// Weights in the layer.
    pub weights: usize,
    /// Weights zeroed by the mask.
    pub pruned: usize,
    /// `pruned / weights`.
    pub ratio: f64,
}

/// The layers pruning applies to: every convolution and linear layer not excluded. Every
/// exclusion and override pattern must match a layer, else the error lists the names.
pub fn select_layers<'a>(
    cfg: &PruneConfig,
    layers: &'a [PrunableLayer],
) -> Result<Vec<&'a PrunableLayer>> {
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    cfg.check_patterns("prune", &names, "prunable layer")?;
    Ok(layers.iter().filter(|l| !cfg.excluded(&l.name)).collect())
}

/// Keep flags with the `count` lowest scores dropped.
fn drop_lowest(scores: &[f64], count: usize) -> Vec<bool> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut keep = vec![true; scores.len()];
    for &i in &idx[..count.min(scores.len())] {
        keep[i] = false;
    }
    keep
}

/// N:M keep flags: in every run of `m` consecutive weights along the layer's input (a
/// convolution's `[in, kh, kw]` row, a linear layer's input axis), the `n` best are kept.
fn n_m_mask(kind: LayerKind, t: &HostTensor, scores: &[f64], n: usize, m: usize) -> Vec<bool> {
    let mut keep = vec![false; scores.len()];
    let (rows, row_len, stride) = match kind {
        // burn's linear weight is [in, out]: the input runs down a column.
        LayerKind::Linear => (t.shape[1], t.shape[0], t.shape[1]),
        _ => (t.shape[0], t.values.len() / t.shape[0].max(1), 1),
    };
    for r in 0..rows {
        let index = |i: usize| match kind {
            LayerKind::Linear => i * stride + r,
            _ => r * row_len + i,
        };
        let mut start = 0;
        while start < row_len {
            let end = (start + m).min(row_len);
            let mut run: Vec<usize> = (start..end).map(index).collect();
            run.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            for &i in run.iter().take(n) {
                keep[i] = true;
            }
            start = end;
        }
    }
    keep
}

/// Decides the masks from the current tensors. `at` maps a full ratio (the target or an
/// override's) to this step's (the schedule's progress: identity for one-shot, a partial ratio
/// for an iterative round or a gradual step). Weights already zero rank lowest under magnitude
/// criteria, so masks only grow.
pub fn plan_masks(
    cfg: &PruneConfig,
    layers: &[PrunableLayer],
    tensors: &BTreeMap<String, HostTensor>,
    taylor: Option<&GradientProducts>,
    at: &dyn Fn(f64) -> f64,
) -> Result<(Masks, Vec<LayerSparsity>)> {
    let selected = select_layers(cfg, layers)?;
    let mut rng = SplitMix64::new(cfg.seed);
    let mut scored = Vec::new();
    for l in &selected {
        let t = tensors.get(&l.weight).ok_or_else(|| {
            PruneError::Model(format!(
                "layer {} has no weight tensor {} in the model",
                l.name, l.weight
            ))
        })?;
        let s = weight_scores(cfg.criterion, &l.weight, t, taylor, &mut rng)?;
        let ratio = cfg.override_ratio(&l.name);
        scored.push((*l, t, s, ratio));
    }
    let mut masks = Masks::new();
    if let Some((n, m)) = cfg.n_m() {
        for (l, t, s, _) in &scored {
            masks.insert(l.weight.clone(), n_m_mask(l.kind, t, s, n, m));
        }
    } else {
        // Fraction pruned per layer: the override, the target, or the global threshold's.
        let mut ratios: Vec<f64> = scored
            .iter()
            .map(|(_, _, _, r)| at(r.unwrap_or(cfg.target)))
            .collect();
        if cfg.scope == Scope::Global {
            let pooled: Vec<usize> = (0..scored.len())
                .filter(|&i| scored[i].3.is_none())
                .collect();
            let sorted: Vec<Vec<f64>> = pooled
                .iter()
                .map(|&i| {
                    let mut v = scored[i].2.clone();
                    v.sort_unstable_by(f64::total_cmp);
                    v
                })
                .collect();
            let total: usize = sorted.iter().map(Vec::len).sum();
            let clamp = |f: f64| f.clamp(cfg.min_layer_ratio, cfg.max_layer_ratio);
            let pruned_at = |th: f64| -> Vec<f64> {
                sorted
                    .iter()
                    .map(|v| clamp(v.partition_point(|x| *x < th) as f64 / v.len().max(1) as f64))
                    .collect()
            };
            let count = |fr: &[f64]| -> f64 {
                fr.iter()
                    .zip(&sorted)
                    .map(|(f, v)| f * v.len() as f64)
                    .sum()
            };
            let mut all: Vec<f64> = sorted.iter().flatten().copied().collect();
            all.sort_unstable_by(f64::total_cmp);
            let want = at(cfg.target) * total as f64;
            // The smallest threshold whose clamped pruned count reaches the target.
            let (mut lo, mut hi) = (0usize, all.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                if count(&pruned_at(all[mid])) >= want {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            let th = if lo < all.len() {
                all[lo]
            } else {
                f64::INFINITY
            };
            for (&i, f) in pooled.iter().zip(pruned_at(th)) {
                ratios[i] = f;
            }
        }
        for ((l, _, s, _), r) in scored.iter().zip(&ratios) {
            let count = (r * s.len() as f64).round() as usize;
            masks.insert(l.weight.clone(), drop_lowest(s, count));
        }
    }
    let report = scored
        .iter()
        .map(|(l, _, _, _)| {
            let m = &masks[&l.weight];
            let pruned = m.iter().filter(|k| !**k).count();
            LayerSparsity {
                name: l.name.clone(),
                weights: m.len(),
                pruned,
                ratio: pruned as f64 / m.len().max(1) as f64,
            }
        })
        .collect();
    Ok((masks, report))
}

/// Zeroes the masked weights in place.
pub fn apply_masks(tensors: &mut BTreeMap<String, HostTensor>, masks: &Masks) {
    for (path, keep) in masks {
        if let Some(t) = tensors.get_mut(path) {
            for (v, k) in t.values.iter_mut().zip(keep) {
                if !k {
                    *v = 0.0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Criterion, Override};

    fn layer(name: &str, kind: LayerKind) -> PrunableLayer {
        PrunableLayer {
            name: name.into(),
            kind,
            weight: format!("{name}.weight"),
        }
    }

    fn tensors() -> BTreeMap<String, HostTensor> {
        let mut t = BTreeMap::new();
        // conv [2, 2, 2, 1]: 8 values; linear [4, 3]: 12 values, larger magnitudes.
        t.insert(
            "c.weight".into(),
            HostTensor {
                shape: vec![2, 2, 2, 1],
                values: (1..=8).map(|v| v as f32 * 0.1).collect(),
            },
        );
        t.insert(
            "l.weight".into(),
            HostTensor {
                shape: vec![4, 3],
                values: (1..=12).map(|v| -(v as f32)).collect(),
            },
        );
        t
    }

    #[test]
    fn global_ranking_respects_layer_limits() {
        let layers = [layer("c", LayerKind::Conv2d), layer("l", LayerKind::Linear)];
        let cfg = PruneConfig {
            target: 0.5,
            max_layer_ratio: 0.75,
            ..Default::default()
        };
        let (masks, report) = plan_masks(&cfg, &layers, &tensors(), None, &|r| r).unwrap();
        // 10 of 20 pruned: the conv (smallest values) is capped at 6 of 8, 4 come from l.
        assert_eq!(report[0].pruned, 6, "{report:?}");
        assert_eq!(report[1].pruned, 4, "{report:?}");
        assert_eq!(masks["l.weight"][..4], [false, false, false, false]);
        let per_layer = PruneConfig {
            scope: Scope::Layer,
            overrides: vec![Override {
                pattern: "l".into(),
                ratio: 0.25,
            }],
            ..cfg
        };
        let (_, report) = plan_masks(&per_layer, &layers, &tensors(), None, &|r| r).unwrap();
        assert_eq!((report[0].pruned, report[1].pruned), (4, 3));
    }

    #[test]
    fn n_m_keeps_n_of_every_m_along_the_input() {
        let layers = [layer("c", LayerKind::Conv2d), layer("l", LayerKind::Linear)];
        let cfg = PruneConfig {
            n_m: Some("2:4".into()),
            ..Default::default()
        };
        let (masks, report) = plan_masks(&cfg, &layers, &tensors(), None, &|r| r).unwrap();
        // conv rows of 4: keep the 2 largest (the last two of each row).
        assert_eq!(
            masks["c.weight"],
            [false, false, true, true, false, false, true, true]
        );
        // linear [4, 3]: every column has 4 inputs, keep 2 -> 6 of 12.
        assert_eq!(report[1].pruned, 6);
        for col in 0..3 {
            let kept = (0..4).filter(|i| masks["l.weight"][i * 3 + col]).count();
            assert_eq!(kept, 2);
        }
    }

    #[test]
    fn exclusion_that_matches_nothing_lists_the_layers() {
        let layers = [
            layer("conv1", LayerKind::Conv2d),
            layer("fc1", LayerKind::Linear),
        ];
        let cfg = PruneConfig {
            exclude: vec!["head".into()],
            criterion: Criterion::L2,
            ..Default::default()
        };
        let e = plan_masks(&cfg, &layers, &tensors(), None, &|r| r)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("exclude = head") && e.contains("conv1, fc1"),
            "{e}"
        );
    }
}
