//! Keeping pruned weights at zero through fine-tuning: a training hook that multiplies every
//! masked weight by its mask after each optimizer step (optimizers with momentum or weight
//! decay would otherwise revive them), and, for the gradual schedule, raises the sparsity on
//! Zhu & Gupta's cubic curve while training runs.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use opt_core::model::{PathStack, PrunableLayer};
use opt_core::train::TrainHooks;
use opt_core::weights::host_tensors;

use crate::config::PruneConfig;
use crate::unstructured::{LayerSparsity, Masks, plan_masks};

/// Zhu & Gupta (2017): s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 for t in [t0, t0 + n dt],
/// s_i before and s_f after.
pub fn cubic_sparsity(initial: f64, target: f64, t: usize, t0: usize, span: usize) -> f64 {
    if t <= t0 {
        return initial;
    }
    if span == 0 || t >= t0 + span {
        return target;
    }
    let progress = (t - t0) as f64 / span as f64;
    target + (initial - target) * (1.0 - progress).powi(3)
}

struct ApplyMasks<'a, B: Backend> {
    masks: &'a HashMap<String, Tensor<B, 1>>,
    stack: PathStack,
}

impl<B: Backend> ModuleMapper<B> for ApplyMasks<'_, B> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.stack.exit(container_type);
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let path = self.stack.path();
        let Some(mask) = self.masks.get(&path) else {
            return param;
        };
        param.map(|w| {
            let grad = w.is_require_grad();
            let dims = w.dims();
            let masked = w.mul(mask.clone().reshape(dims)).detach();
            if grad { masked.require_grad() } else { masked }
        })
    }
}

/// Masks as device tensors of ones and zeros.
fn device_masks<B: Backend>(masks: &Masks, device: &B::Device) -> HashMap<String, Tensor<B, 1>> {
    masks
        .iter()
        .map(|(path, keep)| {
            let v: Vec<f32> = keep.iter().map(|k| if *k { 1.0 } else { 0.0 }).collect();
            let n = v.len();
            (
                path.clone(),
                Tensor::from_data(TensorData::new(v, [n]), device),
            )
        })
        .collect()
}

/// Multiplies every masked weight of `model` by its mask.
pub fn mask_module<B: Backend, M: Module<B>>(model: M, masks: &Masks, device: &B::Device) -> M {
    let m = device_masks::<B>(masks, device);
    model.map(&mut ApplyMasks {
        masks: &m,
        stack: PathStack::default(),
    })
}

/// The gradual schedule's state.
struct Gradual {
    cfg: PruneConfig,
    layers: Vec<PrunableLayer>,
    ramp_steps: usize,
    last_target: f64,
}

/// A training hook that keeps masked weights at zero (and, with the gradual schedule, prunes
/// further as training goes).
pub struct MaskHook<B: Backend> {
    masks: Masks,
    device_masks: HashMap<String, Tensor<B, 1>>,
    device: B::Device,
    gradual: Option<Gradual>,
    /// Sparsity targets the gradual schedule reached, with the step they were applied at.
    pub history: Vec<(usize, f64)>,
    /// The last per-layer report of the gradual schedule.
    pub layers: Vec<LayerSparsity>,
    /// The first error of a gradual update (the hook cannot return one; the caller checks).
    pub error: Option<String>,
}

impl<B: Backend> MaskHook<B> {
    /// Re-applies fixed `masks` after every step.
    pub fn fixed(masks: Masks, device: &B::Device) -> Self {
        Self {
            device_masks: device_masks::<B>(&masks, device),
            masks,
            device: device.clone(),
            gradual: None,
            history: Vec::new(),
            layers: Vec::new(),
            error: None,
        }
    }

    /// Starts with no mask and raises the sparsity from `cfg.initial_sparsity` to `cfg.target`
    /// over the first `cfg.ramp_fraction` of `total_steps`, recomputing masks every
    /// `cfg.prune_every` steps.
    pub fn gradual(
        cfg: &PruneConfig,
        layers: Vec<PrunableLayer>,
        total_steps: usize,
        device: &B::Device,
    ) -> Self {
        let mut hook = Self::fixed(Masks::new(), device);
        hook.gradual = Some(Gradual {
            cfg: cfg.clone(),
            layers,
            ramp_steps: ((total_steps as f64 * cfg.ramp_fraction).round() as usize).max(1),
            last_target: -1.0,
        });
        hook
    }

    /// The masks in force now.
    pub fn masks(&self) -> &Masks {
        &self.masks
    }

    fn update<M: Module<B>>(&mut self, model: &M, step: usize) {
        let Some(g) = &mut self.gradual else { return };
        let t = step + 1;
        let due = t.is_multiple_of(g.cfg.prune_every) || t == 1 || t == g.ramp_steps;
        if !due || t > g.ramp_steps {
            return;
        }
        let target = cubic_sparsity(g.cfg.initial_sparsity, g.cfg.target, t, 0, g.ramp_steps);
        if target <= g.last_target {
            return;
        }
        let tensors: BTreeMap<_, _> = match host_tensors(model) {
            Ok(t) => t,
            Err(e) => {
                self.error.get_or_insert(e);
                return;
            }
        };
        // Every layer's own final ratio (the target or an override) follows the same curve.
        let (initial, ramp) = (g.cfg.initial_sparsity, g.ramp_steps);
        let at = |r: f64| cubic_sparsity(initial.min(r), r, t, 0, ramp);
        match plan_masks(&g.cfg, &g.layers, &tensors, None, &at) {
            Ok((masks, report)) => {
                g.last_target = target;
                self.device_masks = device_masks::<B>(&masks, &self.device);
                self.masks = masks;
                self.layers = report;
                self.history.push((t, target));
                tracing::debug!(step = t, sparsity = target, "gradual pruning step");
            }
            Err(e) => {
                self.error.get_or_insert(e.to_string());
            }
        }
    }
}

impl<B: AutodiffBackend, M: Module<B>> TrainHooks<B, M> for MaskHook<B> {
    fn after_step(&mut self, model: M, step: usize) -> M {
        self.update(&model, step);
        if self.device_masks.is_empty() {
            return model;
        }
        model.map(&mut ApplyMasks {
            masks: &self.device_masks,
            stack: PathStack::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_schedule_rises_fast_then_flattens() {
        assert_eq!(cubic_sparsity(0.0, 0.9, 0, 0, 100), 0.0);
        assert_eq!(cubic_sparsity(0.0, 0.9, 100, 0, 100), 0.9);
        assert_eq!(cubic_sparsity(0.0, 0.9, 200, 0, 100), 0.9);
        let half = cubic_sparsity(0.0, 0.9, 50, 0, 100);
        assert!((half - 0.9 * (1.0 - 0.125)).abs() < 1e-12, "{half}");
        let mut prev = -1.0;
        for t in 0..=100 {
            let s = cubic_sparsity(0.1, 0.9, t, 0, 100);
            assert!(s >= prev);
            prev = s;
        }
    }
}
