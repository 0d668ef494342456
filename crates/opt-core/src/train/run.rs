//! The one training loop: seeded, generic over `AutodiffBackend`, with hooks for custom losses,
//! after-step passes and per-epoch callbacks; validation every epoch, best epoch kept.

use std::ops::ControlFlow;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::{Batch, Batcher, ImageDataset};
use crate::eval::accuracy::evaluate_accuracy;
use crate::model::Classifier;
use crate::progress::progress_bar;
use crate::rng::SplitMix64;

use super::config::{OptimizerKind, TrainConfig};

/// Per-epoch figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch (as returned by the loss hook).
    pub train_loss: f64,
    /// Training accuracy over the epoch (model in training mode).
    pub train_accuracy: f64,
    /// Validation loss (cross-entropy).
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Training samples per second in this epoch (validation excluded).
    pub samples_per_s: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// One entry per epoch run.
    pub epochs: Vec<EpochStats>,
    /// The epoch whose model is returned (best validation accuracy).
    pub best_epoch: usize,
    /// Its validation accuracy.
    pub best_val_accuracy: f64,
    /// Whether a hook or the patience rule stopped the run before the last epoch.
    pub stopped_early: bool,
    /// Training samples per second over the whole run (validation excluded).
    pub samples_per_s: f64,
    /// Wall time of the whole run.
    pub seconds: f64,
}

/// Extension points of the loop. Every method has a default, so `DefaultHooks` is plain
/// cross-entropy training.
pub trait TrainHooks<B: AutodiffBackend, M> {
    /// The logits of one training batch; the default is `model.forward(images)`. A hook that
    /// needs intermediate outputs of the same pass (distillation hints) runs
    /// `forward_observed` here and keeps what it needs for [`TrainHooks::loss`].
    fn forward(&mut self, model: &M, batch: &Batch<B>) -> Tensor<B, 2>
    where
        M: Classifier<B>,
    {
        model.forward(batch.images.clone())
    }

    /// The loss to minimize for one batch; the default is cross-entropy on the labels.
    fn loss(&mut self, _model: &M, batch: &Batch<B>, logits: Tensor<B, 2>) -> Tensor<B, 1> {
        CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, batch.targets.clone())
    }

    /// Runs after every optimizer step (for example to re-apply pruning masks).
    fn after_step(&mut self, model: M, _step: usize) -> M {
        model
    }

    /// Runs after every epoch's validation; `Break` stops training.
    fn on_epoch_end(&mut self, _stats: &EpochStats) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    /// Whether this epoch's model may be returned as the best one (a gradual pruning schedule
    /// refuses epochs that ended before the target sparsity was reached). When no epoch is
    /// selectable the last one is returned.
    fn selectable(&mut self, _stats: &EpochStats) -> bool {
        true
    }
}

/// Plain cross-entropy training with no extra behaviour.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultHooks;

impl<B: AutodiffBackend, M> TrainHooks<B, M> for DefaultHooks {}

/// The data a run trains and validates on.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// Training split.
    pub train: &'a ImageDataset,
    /// Validation split (model selection and early stopping).
    pub valid: &'a ImageDataset,
    /// Normalization and batching.
    pub batcher: Batcher,
}

/// Trains `model` and returns the inference-mode model of the best validation epoch.
///
/// Seed the backend (`B::seed`) before building the model for reproducible weights; the data
/// order is seeded from `cfg.seed` here.
pub fn train<B, M, H>(
    model: M,
    data: TrainData<'_>,
    cfg: &TrainConfig,
    device: &B::Device,
    hooks: &mut H,
) -> (M::InnerModule, TrainReport)
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Classifier<B>,
    M::InnerModule: Classifier<B::InnerBackend>,
    H: TrainHooks<B, M>,
{
    let wd = cfg.weight_decay;
    let decay = (wd > 0.0).then(|| WeightDecayConfig::new(wd as f32));
    match cfg.optimizer {
        OptimizerKind::Adam => {
            let optim = AdamConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(decay)
                .init();
            run(model, optim, data, cfg, device, hooks)
        }
        OptimizerKind::Adamw => {
            let optim = AdamWConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(wd as f32)
                .init();
            run(model, optim, data, cfg, device, hooks)
        }
        OptimizerKind::Sgd => {
            let momentum = (cfg.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(cfg.momentum)
                    .with_dampening(0.0)
            });
            let optim = SgdConfig::new()
                .with_momentum(momentum)
                .with_weight_decay(decay)
                .init();
            run(model, optim, data, cfg, device, hooks)
        }
    }
}

fn run<B, M, O, H>(
    mut model: M,
    mut optim: O,
    data: TrainData<'_>,
    cfg: &TrainConfig,
    device: &B::Device,
    hooks: &mut H,
) -> (M::InnerModule, TrainReport)
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Classifier<B>,
    M::InnerModule: Classifier<B::InnerBackend>,
    O: Optimizer<M, B>,
    H: TrainHooks<B, M>,
{
    let _span = tracing::info_span!("train", epochs = cfg.epochs, batch = cfg.batch_size).entered();
    let start = Instant::now();
    let n = data.train.len();
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut rng = SplitMix64::new(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let (mut step, mut train_secs, mut samples) = (0usize, 0.0f64, 0usize);
    let mut epochs = Vec::new();
    let mut best: Option<(usize, f64, M::InnerModule)> = None;
    let mut last: Option<(usize, f64, M::InnerModule)> = None;
    let mut stopped_early = false;
    let mut lr = cfg.learning_rate;

    for epoch in 1..=cfg.epochs {
        let _span = tracing::info_span!("epoch", epoch).entered();
        let epoch_start = Instant::now();
        rng.shuffle(&mut order);
        let bar = progress_bar(n as u64, &format!("epoch {epoch}/{}", cfg.epochs));
        let mut loss_sum: Option<Tensor<B::InnerBackend, 1>> = None;
        let mut correct_sum: Option<Tensor<B::InnerBackend, 1, Int>> = None;
        for (i, batch) in data
            .batcher
            .batches::<B>(data.train, &order, cfg.batch_size, device)
            .enumerate()
        {
            let size = batch.targets.dims()[0];
            lr = cfg.lr_at(step, total_steps, steps_per_epoch);
            let logits = hooks.forward(&model, &batch);
            let correct = logits
                .clone()
                .inner()
                .argmax(1)
                .squeeze_dim::<1>(1)
                .equal(batch.targets.clone().inner())
                .int()
                .sum();
            let loss = hooks.loss(&model, &batch, logits);
            let loss_value = loss.clone().inner().mul_scalar(size as f64);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            model = hooks.after_step(model, step);
            loss_sum = Some(match loss_sum {
                Some(s) => s + loss_value,
                None => loss_value,
            });
            correct_sum = Some(match correct_sum {
                Some(s) => s + correct,
                None => correct,
            });
            step += 1;
            bar.inc(size as u64);
            if i % 20 == 19 {
                let l: f64 = loss_sum
                    .clone()
                    .map_or(0.0, |s| s.into_scalar().elem::<f64>());
                let seen = (i + 1) * cfg.batch_size;
                bar.set_message(format!("loss {:.4} lr {lr:.2e}", l / seen.min(n) as f64));
            }
        }
        let train_loss: f64 = loss_sum.map_or(0.0, |s| s.into_scalar().elem::<f64>()) / n as f64;
        let correct: f64 = correct_sum.map_or(0.0, |s| s.into_scalar().elem::<f64>());
        let _ = B::sync(device);
        let epoch_train_secs = epoch_start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        train_secs += epoch_train_secs;
        samples += n;

        let inner = model.valid();
        let val = evaluate_accuracy(&inner, data.valid, &data.batcher, 256, device);
        let stats = EpochStats {
            epoch,
            train_loss,
            train_accuracy: correct / n as f64,
            val_loss: val.loss,
            val_accuracy: val.accuracy,
            lr,
            samples_per_s: n as f64 / epoch_train_secs,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        tracing::info!(
            epoch,
            train_loss = format!("{:.4}", stats.train_loss),
            train_acc = format!("{:.4}", stats.train_accuracy),
            val_loss = format!("{:.4}", stats.val_loss),
            val_acc = format!("{:.4}", stats.val_accuracy),
            samples_per_s = format!("{:.0}", stats.samples_per_s),
            "epoch done"
        );
        let selectable = hooks.selectable(&stats);
        if selectable && best.as_ref().is_none_or(|(_, acc, _)| val.accuracy > *acc) {
            best = Some((epoch, val.accuracy, inner));
        } else if best.is_none() {
            last = Some((epoch, val.accuracy, inner));
        }
        let flow = hooks.on_epoch_end(&stats);
        epochs.push(stats);
        let best_epoch = best.as_ref().map_or(epoch, |b| b.0);
        let patience_out = cfg.patience > 0 && epoch - best_epoch >= cfg.patience;
        if (flow.is_break() || patience_out) && epoch < cfg.epochs {
            tracing::info!(epoch, best_epoch, "stopping early");
            stopped_early = true;
            break;
        }
    }
    let (best_epoch, best_val_accuracy, best_model) =
        best.or(last).expect("at least one epoch ran");
    let report = TrainReport {
        epochs,
        best_epoch,
        best_val_accuracy,
        stopped_early,
        samples_per_s: samples as f64 / train_secs.max(1e-9),
        seconds: start.elapsed().as_secs_f64(),
    };
    (best_model, report)
}

/// Seeds the backend's generator for reproducible weight initialization. The generator is
/// global to the process, so whoever seeds it must hold an [`RngSession`] for as long as the
/// seeded draws must not interleave with another thread's.
pub fn seed_backend<B: Backend>(device: &B::Device, seed: u64) {
    B::seed(device, seed);
}

static RNG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    /// How many sessions this thread holds, and the lock while it holds any.
    static HELD: std::cell::RefCell<(usize, Option<std::sync::MutexGuard<'static, ()>>)> =
        const { std::cell::RefCell::new((0, None)) };
}

/// While alive, this thread is the only one in the process drawing from the backends' global
/// random generators, so a model seeded in it draws the same weights (and dropout masks)
/// however many other runs share the process (in-process tests run side by side). Sessions
/// nest within a thread; another thread's session waits until the last one ends. Every
/// command optkit runs on a backend holds one (opt-cli's `dispatch`).
pub struct RngSession(std::marker::PhantomData<*const ()>);

/// Starts an [`RngSession`] (waiting for another thread's to end).
pub fn rng_session() -> RngSession {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        if h.0 == 0 {
            h.1 = Some(RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner()));
        }
        h.0 += 1;
    });
    RngSession(std::marker::PhantomData)
}

impl Drop for RngSession {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            h.0 -= 1;
            if h.0 == 0 {
                h.1 = None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataSource, Normalization};
    use crate::model::{Arch, InputShape, ModelSpec};
    use crate::test_util::{TestAutodiff, device, rng_lock};

    struct Counting {
        steps: usize,
        stop_after: usize,
    }

    impl<B: AutodiffBackend, M> TrainHooks<B, M> for Counting {
        fn after_step(&mut self, model: M, _step: usize) -> M {
            self.steps += 1;
            model
        }
        fn on_epoch_end(&mut self, stats: &EpochStats) -> ControlFlow<()> {
            if stats.epoch >= self.stop_after {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }

    fn small_run(seed: u64, hooks: &mut Counting) -> TrainReport {
        small_run_with(
            TrainConfig {
                epochs: 3,
                batch_size: 32,
                learning_rate: 3e-3,
                seed,
                ..Default::default()
            },
            hooks,
        )
    }

    fn small_run_with(cfg: TrainConfig, hooks: &mut Counting) -> TrainReport {
        let seed = cfg.seed;
        let _guard = rng_lock();
        let splits = DataSource::Embedded.load(10).unwrap();
        let data = splits.train.take(600);
        let (train_ds, valid_ds) = data.split(0.2, seed).unwrap();
        let batcher = Batcher {
            norm: Normalization::of(&train_ds),
        };
        let spec = ModelSpec {
            input: InputShape {
                channels: 1,
                height: 28,
                width: 28,
            },
            classes: 10,
            arch: Arch::Cnn {
                blocks: vec![4, 8],
                fc: 16,
            },
        };
        let dev = device();
        seed_backend::<TestAutodiff>(&dev, seed);
        let model = spec.init::<TestAutodiff>(&dev);
        let data = TrainData {
            train: &train_ds,
            valid: &valid_ds,
            batcher,
        };
        train(model, data, &cfg, &dev, hooks).1
    }

    #[test]
    fn a_short_run_learns_and_hooks_fire() {
        let mut hooks = Counting {
            steps: 0,
            stop_after: 2,
        };
        // 2 epochs of 15 steps on 480 images: well above chance (0.10), far from converged.
        let r = small_run(1, &mut hooks);
        // 480 training items at batch 32 = 15 steps per epoch; the hook stopped after epoch 2.
        assert_eq!(hooks.steps, 30);
        assert_eq!(r.epochs.len(), 2);
        assert!(r.stopped_early);
        assert!(
            r.epochs[1].train_loss < r.epochs[0].train_loss,
            "{:?}",
            r.epochs
        );
        assert!(r.best_val_accuracy > 0.25, "{}", r.best_val_accuracy);
    }

    #[test]
    fn every_optimizer_lowers_the_loss() {
        for (optimizer, lr) in [(OptimizerKind::Sgd, 0.05), (OptimizerKind::Adamw, 3e-3)] {
            let cfg = TrainConfig {
                epochs: 2,
                batch_size: 32,
                optimizer,
                learning_rate: lr,
                weight_decay: 1e-4,
                schedule: crate::train::ScheduleKind::Constant,
                seed: 3,
                ..Default::default()
            };
            let r = small_run_with(
                cfg,
                &mut Counting {
                    steps: 0,
                    stop_after: 9,
                },
            );
            assert_eq!(r.epochs.len(), 2);
            assert!(
                r.epochs[1].train_loss < r.epochs[0].train_loss,
                "{optimizer:?}: {:?}",
                r.epochs
            );
        }
    }

    #[test]
    fn patience_stops_a_run_that_stopped_improving() {
        // A learning rate of 0 cannot improve on epoch 1, so patience 1 stops after epoch 2.
        let cfg = TrainConfig {
            epochs: 5,
            batch_size: 64,
            learning_rate: 1e-12,
            schedule: crate::train::ScheduleKind::Constant,
            patience: 1,
            seed: 5,
            ..Default::default()
        };
        let r = small_run_with(
            cfg,
            &mut Counting {
                steps: 0,
                stop_after: 99,
            },
        );
        assert!(r.stopped_early);
        assert!(r.epochs.len() < 5, "{}", r.epochs.len());
    }

    #[test]
    fn same_seed_same_run() {
        let a = small_run(
            7,
            &mut Counting {
                steps: 0,
                stop_after: 1,
            },
        );
        let b = small_run(
            7,
            &mut Counting {
                steps: 0,
                stop_after: 1,
            },
        );
        assert_eq!(a.epochs[0].train_loss, b.epochs[0].train_loss);
        assert_eq!(a.epochs[0].val_accuracy, b.epochs[0].val_accuracy);
    }
}
