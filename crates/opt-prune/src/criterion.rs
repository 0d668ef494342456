//! Importance scores: per weight (unstructured) and per channel of a group (structured), for
//! every [`Criterion`]. Higher scores are kept.

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use opt_core::data::Batch;
use opt_core::model::{ChannelGroup, Classifier, PathStack, SliceRole, TensorSlice};
use opt_core::rng::SplitMix64;
use opt_core::weights::HostTensor;

use crate::config::Criterion;
use crate::error::{PruneError, Result};
use crate::slicing::per_channel;

/// `weight x gradient` of every float parameter, one map per training batch (the Taylor
/// criterion's raw material).
#[derive(Debug, Clone, Default)]
pub struct GradientProducts {
    /// Per batch: parameter path to the element-wise product.
    pub batches: Vec<BTreeMap<String, Vec<f32>>>,
}

struct Products<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    stack: PathStack,
    out: BTreeMap<String, Vec<f32>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Products<'_, B> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.stack.exit(container_type);
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let w = param.val();
        if let Some(g) = w.grad(self.grads) {
            let product = w.inner().mul(g).into_data().convert::<f32>();
            if let Ok(v) = product.into_vec::<f32>() {
                self.out.insert(self.stack.path(), v);
            }
        }
    }
}

impl GradientProducts {
    /// Runs forward and backward (cross-entropy) on each batch and records
    /// `weight x gradient` for every parameter. The model is not changed.
    pub fn compute<B, M>(model: &M, batches: impl IntoIterator<Item = Batch<B>>) -> Self
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + Classifier<B>,
    {
        let mut out = Vec::new();
        for batch in batches {
            let logits = model.forward(batch.images);
            let loss = CrossEntropyLossConfig::new()
                .init(&logits.device())
                .forward(logits, batch.targets);
            let grads = loss.backward();
            let mut v = Products::<B> {
                grads: &grads,
                stack: PathStack::default(),
                out: BTreeMap::new(),
            };
            model.visit(&mut v);
            out.push(v.out);
        }
        Self { batches: out }
    }

    fn get(&self, batch: usize, path: &str) -> Result<&[f32]> {
        self.batches[batch]
            .get(path)
            .map(|v| v.as_slice())
            .ok_or_else(|| {
                PruneError::Model(format!(
                    "no gradient for {path}: the Taylor criterion needs every pruned tensor to \
                     take part in the loss"
                ))
            })
    }
}

fn random_scores(n: usize, rng: &mut SplitMix64) -> Vec<f64> {
    (0..n)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
        .collect()
}

/// One score per value of the tensor at `path` (unstructured pruning).
pub fn weight_scores(
    criterion: Criterion,
    path: &str,
    t: &HostTensor,
    taylor: Option<&GradientProducts>,
    rng: &mut SplitMix64,
) -> Result<Vec<f64>> {
    Ok(match criterion {
        Criterion::L1 | Criterion::L2 => t.values.iter().map(|v| v.abs() as f64).collect(),
        Criterion::Random => random_scores(t.values.len(), rng),
        Criterion::Taylor => {
            let tp = taylor.ok_or_else(|| {
                PruneError::Model("the Taylor criterion needs gradient products".into())
            })?;
            let mut s = vec![0.0f64; t.values.len()];
            for b in 0..tp.batches.len() {
                for (acc, p) in s.iter_mut().zip(tp.get(b, path)?) {
                    *acc += (*p as f64) * (*p as f64);
                }
            }
            let n = tp.batches.len().max(1) as f64;
            s.iter_mut().for_each(|v| *v /= n);
            // A pruned (zero) weight stays below every live one.
            s.iter()
                .zip(&t.values)
                .map(|(s, w)| if *w == 0.0 { -1.0 } else { *s })
                .collect()
        }
        Criterion::BnScale => {
            return Err(PruneError::invalid(
                "criterion",
                "bn_scale",
                "ranks channels, not weights; use it with structured pruning",
            ));
        }
    })
}

/// One score per channel of `group` (structured pruning).
pub fn channel_scores(
    criterion: Criterion,
    group: &ChannelGroup,
    tensors: &BTreeMap<String, HostTensor>,
    taylor: Option<&GradientProducts>,
    rng: &mut SplitMix64,
) -> Result<Vec<f64>> {
    let c = group.channels;
    let tensor = |path: &str| {
        tensors.get(path).ok_or_else(|| {
            PruneError::Model(format!(
                "group {} names tensor {path}, which the model does not have",
                group.name
            ))
        })
    };
    let producers: Vec<&TensorSlice> = group
        .slices
        .iter()
        .filter(|s| s.role == SliceRole::Producer && s.path.ends_with(".weight"))
        .collect();
    let mut total = vec![0.0f64; c];
    let add = |total: &mut Vec<f64>, v: Vec<f64>| {
        total.iter_mut().zip(v).for_each(|(a, b)| *a += b);
    };
    // Sum over `slices` of `f(value)` per channel.
    let magnitude = |slices: &[&TensorSlice], f: fn(f32) -> f64| -> Result<Vec<f64>> {
        let mut sum = vec![0.0f64; c];
        for s in slices {
            add(
                &mut sum,
                per_channel(tensor(&s.path)?, s, c, None, |v, _| f(v)),
            );
        }
        Ok(sum)
    };
    match criterion {
        Criterion::L1 => total = magnitude(&producers, |v| v.abs() as f64)?,
        Criterion::L2 => {
            total = magnitude(&producers, |v| (v as f64) * (v as f64))?;
            total.iter_mut().for_each(|v| *v = v.sqrt());
        }
        Criterion::BnScale => {
            let gammas: Vec<&TensorSlice> = group
                .slices
                .iter()
                .filter(|s| s.role == SliceRole::Norm && s.path.ends_with(".gamma"))
                .collect();
            if gammas.is_empty() {
                return Err(PruneError::invalid(
                    "criterion",
                    "bn_scale",
                    format!(
                        "channel group {} has no batch norm to read a scale from; use l1, l2, \
                         taylor or random for this model",
                        group.name
                    ),
                ));
            }
            total = magnitude(&gammas, |v| v.abs() as f64)?;
        }
        Criterion::Taylor => {
            let tp = taylor.ok_or_else(|| {
                PruneError::Model("the Taylor criterion needs gradient products".into())
            })?;
            let slices: Vec<_> = group
                .slices
                .iter()
                .filter(|s| {
                    s.role == SliceRole::Producer
                        || (s.role == SliceRole::Norm
                            && (s.path.ends_with(".gamma") || s.path.ends_with(".beta")))
                })
                .collect();
            for b in 0..tp.batches.len() {
                let mut batch = vec![0.0f64; c];
                for s in &slices {
                    let t = tensor(&s.path)?;
                    let g = tp.get(b, &s.path)?;
                    // The products are already w * g: sum them per channel.
                    let v = per_channel(
                        &HostTensor {
                            shape: t.shape.clone(),
                            values: g.to_vec(),
                        },
                        s,
                        c,
                        None,
                        |p, _| p as f64,
                    );
                    add(&mut batch, v);
                }
                add(&mut total, batch.into_iter().map(|v| v * v).collect());
            }
            let n = tp.batches.len().max(1) as f64;
            total.iter_mut().for_each(|v| *v /= n);
        }
        Criterion::Random => total = random_scores(c, rng),
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opt_core::model::ChannelGroup;

    #[test]
    fn channel_scores_follow_the_producers() {
        // conv [3, 1, 1, 1] -> channel 1 largest; consumer ignored.
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "a.weight".to_string(),
            HostTensor {
                shape: vec![3, 1, 1, 1],
                values: vec![0.1, -3.0, 1.0],
            },
        );
        tensors.insert(
            "b.weight".to_string(),
            HostTensor {
                shape: vec![1, 3, 1, 1],
                values: vec![100.0, 0.0, 0.0],
            },
        );
        let mut g = ChannelGroup::new("a", 3);
        g.slices = vec![
            TensorSlice::new("a.weight", 0, SliceRole::Producer),
            TensorSlice::new("b.weight", 1, SliceRole::Consumer),
        ];
        let mut rng = SplitMix64::new(1);
        let l1 = channel_scores(Criterion::L1, &g, &tensors, None, &mut rng).unwrap();
        assert_eq!(l1, vec![0.1f32.abs() as f64, 3.0, 1.0]);
        let e = channel_scores(Criterion::BnScale, &g, &tensors, None, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no batch norm"), "{e}");
        let r1 = channel_scores(
            Criterion::Random,
            &g,
            &tensors,
            None,
            &mut SplitMix64::new(3),
        )
        .unwrap();
        let r2 = channel_scores(
            Criterion::Random,
            &g,
            &tensors,
            None,
            &mut SplitMix64::new(3),
        )
        .unwrap();
        assert_eq!(r1, r2);
    }
}
