//! The whole pruning run on any model family: score, prune, re-estimate batch-norm
//! statistics, fine-tune (masks kept at zero), repeat for iterative schedules; the result is a
//! spec and weights that save, load and measure like any model.

use std::collections::BTreeMap;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use opt_core::artifact::WeightsFormat;
use opt_core::data::Batch;
use opt_core::eval::evaluate_accuracy;
use opt_core::model::{Architecture, ModelSpec, prunable_layers, verify_groups, with_bn_momentum};
use opt_core::rng::SplitMix64;
use opt_core::train::{DefaultHooks, TrainConfig, TrainData, TrainReport, train};
use opt_core::weights::{HostTensor, host_tensors, load_host_tensors};

use crate::config::{Criterion, Method, PruneConfig, Schedule};
use crate::criterion::GradientProducts;
use crate::error::{PruneError, Result};
use crate::hook::MaskHook;
use crate::report::{PruneReport, RoundReport};
use crate::structured::{plan_channels, shrink};
use crate::unstructured::{apply_masks, plan_masks};

/// The pruned model with its spec, how to store it, and what happened.
pub struct PruneOutcome<A: Architecture, B: Backend> {
    /// The (possibly smaller) spec.
    pub spec: ModelSpec<A>,
    /// The pruned, fine-tuned model in inference mode.
    pub model: A::Model<B>,
    /// Sparse for unstructured pruning (so the size shrinks), dense for structured.
    pub weights_format: WeightsFormat,
    /// What pruning did.
    pub report: PruneReport,
    /// The last fine-tuning run.
    pub train: Option<TrainReport>,
}

/// Seeded batches of the training split for scoring and batch-norm re-estimation.
pub(crate) fn sample_batches<B: Backend>(
    data: &TrainData<'_>,
    count: usize,
    batch_size: usize,
    seed: u64,
    device: &B::Device,
) -> Vec<Batch<B>> {
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    order.truncate(count * batch_size);
    data.batcher
        .batches::<B>(data.train, &order, batch_size, device)
        .collect()
}

/// Re-estimates every batch norm's running statistics as the plain average over `batches`
/// (momentum `1 / (k + 1)` for the k-th batch) with the model in training mode.
pub fn recalibrate_batch_norm<
    B: AutodiffBackend,
    M: AutodiffModule<B> + opt_core::model::Classifier<B>,
>(
    model: &M,
    batches: Vec<Batch<B>>,
) {
    for (k, b) in batches.into_iter().enumerate() {
        with_bn_momentum(1.0 / (k + 1) as f64, || {
            let _ = model.forward(b.images);
        });
    }
}

/// Checks `cfg` against a model before any work: ranges, and that every exclusion and
/// override pattern names a layer (unstructured) or a channel group (structured) of `spec`,
/// and that structured pruning has groups to work on.
pub fn check_config<A: Architecture>(
    spec: &ModelSpec<A>,
    cfg: &PruneConfig,
    prefix: &str,
) -> Result<()> {
    cfg.validate(prefix)?;
    match cfg.method {
        Method::Unstructured => {
            let layers = prunable_layers(&spec.layers());
            let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
            cfg.check_patterns(prefix, &names, "prunable layer")
        }
        Method::Structured => {
            let groups = groups_of(spec)?;
            let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
            cfg.check_patterns(prefix, &names, "channel group")
        }
    }
}

pub(crate) fn groups_of<A: Architecture>(
    spec: &ModelSpec<A>,
) -> Result<Vec<opt_core::model::ChannelGroup>> {
    Ok(spec.channel_groups()?)
}

/// `weight x gradient` of the model `spec` with `tensors` over `cfg.taylor_batches` seeded
/// training batches, when the criterion is Taylor (else nothing to compute).
pub(crate) fn taylor_products<B, A>(
    cfg: &PruneConfig,
    spec: &ModelSpec<A>,
    tensors: &BTreeMap<String, HostTensor>,
    data: &TrainData<'_>,
    batch_size: usize,
    device: &B::Device,
) -> Result<Option<GradientProducts>>
where
    B: AutodiffBackend,
    A: Architecture,
    A::Model<B>: AutodiffModule<B, InnerModule = A::Model<B::InnerBackend>>,
{
    if cfg.criterion != Criterion::Taylor {
        return Ok(None);
    }
    let m = load_host_tensors(spec.init::<B>(device), tensors).map_err(PruneError::Model)?;
    let batches = sample_batches::<B>(data, cfg.taylor_batches, batch_size, cfg.seed, device);
    Ok(Some(GradientProducts::compute(&m, batches)))
}

/// Prunes `model` (of `spec`) as `cfg` says, fine-tuning with `train_cfg`'s optimizer on
/// `data`. Returns the pruned model, its spec and the report.
pub fn prune_model<B, A>(
    spec: &ModelSpec<A>,
    model: &A::Model<B::InnerBackend>,
    cfg: &PruneConfig,
    data: TrainData<'_>,
    train_cfg: &TrainConfig,
    device: &B::Device,
) -> Result<PruneOutcome<A, B::InnerBackend>>
where
    B: AutodiffBackend,
    A: Architecture,
    A::Model<B>: AutodiffModule<B, InnerModule = A::Model<B::InnerBackend>>,
{
    check_config(spec, cfg, "prune")?;
    let _span =
        tracing::info_span!("prune", method = ?cfg.method, criterion = ?cfg.criterion).entered();
    let ft = TrainConfig {
        epochs: cfg.finetune_epochs.max(1),
        learning_rate: cfg
            .finetune_learning_rate
            .unwrap_or(train_cfg.learning_rate / 4.0),
        warmup_epochs: 0.0,
        min_lr: 0.0,
        patience: 0,
        ..train_cfg.clone()
    };
    let bs = train_cfg.batch_size;
    let build = |spec: &ModelSpec<A>, t: &BTreeMap<String, HostTensor>| -> Result<A::Model<B>> {
        load_host_tensors(spec.init::<B>(device), t).map_err(PruneError::Model)
    };
    let valid = |m: &A::Model<B::InnerBackend>| {
        evaluate_accuracy(m, data.valid, &data.batcher, 256, device).accuracy
    };
    let taylor = |spec: &ModelSpec<A>, t: &BTreeMap<String, HostTensor>| {
        taylor_products::<B, A>(cfg, spec, t, &data, bs, device)
    };
    let mut tensors = host_tensors(model).map_err(PruneError::Model)?;
    let mut report = PruneReport {
        config: cfg.clone(),
        val_accuracy_before: valid(model),
        rounds: Vec::new(),
        layers: Vec::new(),
        sparsity: None,
        groups: Vec::new(),
        notes: Vec::new(),
        sensitivity: None,
    };
    // With a scan, every unit's ratio is the one derived from it (an override).
    let derived;
    let cfg = match &cfg.sensitivity {
        Some(sens) => {
            let (c, scan) = crate::scan::sensitivity_pass::<B, A>(
                spec, &tensors, cfg, sens, &data, bs, device,
            )?;
            report.sensitivity = Some(scan);
            derived = c;
            &derived
        }
        None => cfg,
    };
    let mut last_train = None;
    let rounds = if cfg.schedule == Schedule::Iterative {
        cfg.steps
    } else {
        1
    };
    let mut spec_now = spec.clone();
    let weights_format;
    match cfg.method {
        Method::Unstructured => {
            weights_format = WeightsFormat::Sparse;
            let layers = prunable_layers(&spec.layers());
            if cfg.schedule == Schedule::Gradual {
                let m = build(spec, &tensors)?;
                let total = data.train.len().div_ceil(bs) * ft.epochs;
                let mut hook = MaskHook::<B>::gradual(cfg, layers.clone(), total, device);
                let (inner, tr) = train(m, data, &ft, device, &mut hook);
                if let Some(e) = hook.error.take() {
                    return Err(PruneError::Model(e));
                }
                tensors = host_tensors(&inner).map_err(PruneError::Model)?;
                let reached = hook.history.last().map_or(0.0, |h| h.1);
                let (masks, layer_report) = plan_masks(cfg, &layers, &tensors, None, &|r| r)?;
                if reached < cfg.target - 1e-9 {
                    report.notes.push(format!(
                        "the gradual schedule reached sparsity {reached:.3} during training; the \
                         remaining weights up to {} were pruned at the end without fine-tuning",
                        cfg.target
                    ));
                }
                apply_masks(&mut tensors, &masks);
                report.layers = layer_report;
                report.rounds.push(RoundReport {
                    round: 1,
                    target: cfg.target,
                    val_accuracy_pruned: tr.epochs.first().map_or(0.0, |e| e.val_accuracy),
                    val_accuracy_finetuned: Some(tr.best_val_accuracy),
                });
                last_train = Some(tr);
            } else {
                for k in 1..=rounds {
                    // Geometric steps: each round removes the same fraction of what is left.
                    let at = |r: f64| 1.0 - (1.0 - r).powf(k as f64 / rounds as f64);
                    let target = if cfg.n_m.is_some() {
                        0.0
                    } else {
                        at(cfg.target)
                    };
                    let tp = taylor(spec, &tensors)?;
                    let (masks, layer_report) =
                        plan_masks(cfg, &layers, &tensors, tp.as_ref(), &at)?;
                    apply_masks(&mut tensors, &masks);
                    let pruned = build(spec, &tensors)?.valid();
                    let mut round = RoundReport {
                        round: k,
                        target,
                        val_accuracy_pruned: valid(&pruned),
                        val_accuracy_finetuned: None,
                    };
                    if cfg.finetune_epochs > 0 {
                        let mut hook = MaskHook::<B>::fixed(masks.clone(), device);
                        let (inner, tr) =
                            train(build(spec, &tensors)?, data, &ft, device, &mut hook);
                        tensors = host_tensors(&inner).map_err(PruneError::Model)?;
                        apply_masks(&mut tensors, &masks);
                        round.val_accuracy_finetuned = Some(tr.best_val_accuracy);
                        last_train = Some(tr);
                    }
                    tracing::info!(round = k, target, pruned = round.val_accuracy_pruned, finetuned = ?round.val_accuracy_finetuned, "pruning round");
                    report.rounds.push(round);
                    report.layers = layer_report;
                }
            }
            let (w, p) = report
                .layers
                .iter()
                .fold((0, 0), |(w, p), l| (w + l.weights, p + l.pruned));
            report.sparsity = Some(p as f64 / w.max(1) as f64);
        }
        Method::Structured => {
            weights_format = WeightsFormat::Dense;
            let groups = groups_of(spec)?;
            verify_groups(model, &groups).map_err(|e| {
                PruneError::Model(format!(
                    "the channel groups of {} are wrong: {e}",
                    spec.describe()
                ))
            })?;
            let original: Vec<usize> = groups.iter().map(|g| g.channels).collect();
            for k in 1..=rounds {
                let progress = k as f64 / rounds as f64;
                let groups_now = spec_now.channel_groups()?;
                let tp = taylor(&spec_now, &tensors)?;
                let plan =
                    plan_channels(cfg, &groups_now, &tensors, tp.as_ref(), &original, progress)?;
                let (smaller, sliced) = shrink(&spec_now, &groups_now, &plan, &tensors)?;
                let m = build(&smaller, &sliced)?;
                recalibrate_batch_norm(
                    &m,
                    sample_batches::<B>(&data, cfg.bn_batches, bs, cfg.seed + k as u64, device),
                );
                let pruned = m.valid();
                tensors = host_tensors(&pruned).map_err(PruneError::Model)?;
                spec_now = smaller;
                let mut round = RoundReport {
                    round: k,
                    target: cfg.target * progress,
                    val_accuracy_pruned: valid(&pruned),
                    val_accuracy_finetuned: None,
                };
                if cfg.finetune_epochs > 0 {
                    let (inner, tr) = train(
                        build(&spec_now, &tensors)?,
                        data,
                        &ft,
                        device,
                        &mut DefaultHooks,
                    );
                    tensors = host_tensors(&inner).map_err(PruneError::Model)?;
                    round.val_accuracy_finetuned = Some(tr.best_val_accuracy);
                    last_train = Some(tr);
                }
                tracing::info!(round = k, macs = spec_now.macs(), pruned = round.val_accuracy_pruned, finetuned = ?round.val_accuracy_finetuned, "pruning round");
                report.rounds.push(round);
                report.notes = plan
                    .iter()
                    .filter_map(|g| {
                        g.note
                            .as_ref()
                            .filter(|n| n.contains("minimum"))
                            .map(|n| format!("{}: {n}", g.name))
                    })
                    .collect();
                report.groups = plan
                    .into_iter()
                    .zip(&original)
                    .map(|(mut g, &o)| {
                        g.before = o;
                        g
                    })
                    .collect();
            }
        }
    }
    let model = load_host_tensors(spec_now.init::<B::InnerBackend>(device), &tensors)
        .map_err(PruneError::Model)?;
    Ok(PruneOutcome {
        spec: spec_now,
        model,
        weights_format,
        report,
        train: last_train,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tensor};
    use opt_core::artifact::{FORMAT_VERSION, ModelMeta, load_model, save_model_as};
    use opt_core::model::{Arch, Classifier, count_params};
    use opt_core::test_util::{TestAutodiff, device, rng_lock};

    use crate::fixture::{Inner, data, fixture};

    #[test]
    fn unstructured_masks_survive_fine_tuning_and_the_sparse_file_reloads_exactly() {
        let _rng = rng_lock();
        let f = fixture();
        let cfg = PruneConfig {
            target: 0.8,
            finetune_epochs: 1,
            ..Default::default()
        };
        let out =
            prune_model::<TestAutodiff, Arch>(&f.spec, &f.model, &cfg, data(&f), &f.cfg, &device())
                .unwrap();
        let s = out.report.sparsity.unwrap();
        assert!((s - 0.8).abs() < 0.01, "{s}");
        // Zeros counted in the fine-tuned model itself: the masks held through training.
        let counts = count_params(&out.model);
        let weights: usize = out.report.layers.iter().map(|l| l.weights).sum();
        let zeros = (counts.params - counts.nonzero) as usize;
        assert!(
            zeros as f64 >= 0.8 * weights as f64 - 1.0,
            "{zeros} of {weights}"
        );
        let dir = std::env::temp_dir().join(format!("optkit-prune-sparse-{}", std::process::id()));
        let meta = |format: WeightsFormat| ModelMeta {
            format_version: FORMAT_VERSION,
            spec: out.spec.clone(),
            normalization: f.batcher.norm,
            class_names: (0..10).map(|i| i.to_string()).collect(),
            weights: format.file_name().into(),
            test_data: None,
        };
        let dense = save_model_as(
            &dir.join("dense"),
            &meta(WeightsFormat::Dense),
            &out.model,
            WeightsFormat::Dense,
        )
        .unwrap();
        let sparse = save_model_as(
            &dir.join("sparse"),
            &meta(WeightsFormat::Sparse),
            &out.model,
            WeightsFormat::Sparse,
        )
        .unwrap();
        assert!(
            sparse.size_bytes * 3 < dense.size_bytes,
            "{sparse:?} vs {dense:?}"
        );
        let (_, back, _) = load_model::<Inner, Arch>(&dir.join("sparse"), &device()).unwrap();
        let x = Tensor::<Inner, 4>::random([3, 1, 28, 28], Distribution::Default, &device());
        assert_eq!(
            out.model.forward(x.clone()).into_data(),
            back.forward(x).into_data()
        );
        // A damaged file is an error that says so.
        let file = dir.join("sparse").join(WeightsFormat::Sparse.file_name());
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
        let e = load_model::<Inner, Arch>(&dir.join("sparse"), &device())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("corrupt sparse weights file"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn structured_pruning_shrinks_the_spec_and_keeps_working() {
        let _rng = rng_lock();
        let f = fixture();
        let cfg = PruneConfig {
            method: Method::Structured,
            criterion: Criterion::BnScale,
            target: 0.5,
            round_to: 8,
            finetune_epochs: 1,
            ..Default::default()
        };
        let out =
            prune_model::<TestAutodiff, Arch>(&f.spec, &f.model, &cfg, data(&f), &f.cfg, &device())
                .unwrap();
        // 8 -> 4 and 16 -> 8 (too few kept to round to 8), fc 32 -> 16 (rounded: 16 is 2 x 8).
        assert_eq!(
            out.spec.arch,
            Arch::Cnn {
                blocks: vec![4, 8],
                fc: 16
            }
        );
        assert!(out.spec.macs() * 3 < f.spec.macs());
        assert_eq!(count_params(&out.model).params, out.spec.params());
        let r = &out.report.rounds[0];
        assert!(r.val_accuracy_pruned > 0.15, "{r:?}");
        assert!(r.val_accuracy_finetuned.unwrap() > 0.3, "{r:?}");
        // Taylor and iterative rounds run too, and a ratio near 1 keeps the minimum and says so.
        let cfg = PruneConfig {
            method: Method::Structured,
            criterion: Criterion::Taylor,
            schedule: Schedule::Iterative,
            steps: 2,
            target: 0.95,
            min_channels: 2,
            round_to: 1,
            finetune_epochs: 0,
            taylor_batches: 2,
            ..Default::default()
        };
        let out =
            prune_model::<TestAutodiff, Arch>(&f.spec, &f.model, &cfg, data(&f), &f.cfg, &device())
                .unwrap();
        assert_eq!(out.report.rounds.len(), 2);
        assert_eq!(
            out.spec.arch,
            Arch::Cnn {
                blocks: vec![2, 2],
                fc: 2
            }
        );
        assert!(
            out.report
                .notes
                .iter()
                .any(|n| n.contains("kept the minimum 2")),
            "{:?}",
            out.report.notes
        );
    }

    #[test]
    fn gradual_schedule_reaches_the_target_inside_training() {
        let _rng = rng_lock();
        let f = fixture();
        let cfg = PruneConfig {
            schedule: Schedule::Gradual,
            target: 0.7,
            prune_every: 3,
            ramp_fraction: 0.5,
            finetune_epochs: 2,
            ..Default::default()
        };
        let out =
            prune_model::<TestAutodiff, Arch>(&f.spec, &f.model, &cfg, data(&f), &f.cfg, &device())
                .unwrap();
        assert!(out.report.notes.is_empty(), "{:?}", out.report.notes);
        let s = out.report.sparsity.unwrap();
        assert!((s - 0.7).abs() < 0.01, "{s}");
        // Only an epoch that ended at full sparsity may be returned: epoch 2 here.
        assert_eq!(out.train.unwrap().best_epoch, 2);
    }

    #[test]
    fn batch_norm_statistics_are_the_average_over_the_batches() {
        let _rng = rng_lock();
        let f = fixture();
        let dev = device();
        let batches = |seed| sample_batches::<TestAutodiff>(&data(&f), 1, 16, seed, &dev);
        let fresh = || {
            let t = host_tensors(&f.model).unwrap();
            load_host_tensors(f.spec.init::<TestAutodiff>(&dev), &t).unwrap()
        };
        let mean_of = |m: &opt_core::model::Model<TestAutodiff>| {
            let opt_core::model::Model::Cnn(c) = m else {
                unreachable!()
            };
            c.blocks[0]
                .bn
                .running_mean
                .value_sync()
                .inner()
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        let both = fresh();
        let mut two = batches(1);
        two.extend(batches(2));
        recalibrate_batch_norm(&both, two);
        let (a, b) = (fresh(), fresh());
        recalibrate_batch_norm(&a, batches(1));
        recalibrate_batch_norm(&b, batches(2));
        for ((m, x), y) in mean_of(&both).iter().zip(mean_of(&a)).zip(mean_of(&b)) {
            assert!((m - (x + y) / 2.0).abs() < 1e-4, "{m} vs {x} {y}");
        }
    }
}
