//! The pipeline's `quantize` stage: one quantized candidate from an earlier stage's model,
//! saved and measured the way it will be deployed.
//! - Integer path (`bits = 8`, the default): int8 weights and uint8 activations run by
//!   opt-quant's kernels, post-training (`method = "ptq"`) or after quantization-aware
//!   fine-tuning (`method = "qat"`); saved as `model.int8` and measured on the integer path.
//! - Weight-only (`bits = 4`, or `weights_only = true`): 8- or 4-bit weight codes in
//!   `weights.wq`, dequantized when loaded; measured on the float backend after a reload from
//!   that file, so the size is the file's and the latency is honestly the float model's.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use burn::tensor::backend::AutodiffBackend;
use opt_arch::{ZooArch, ZooModel};
use opt_core::artifact::{
    MODEL_FILE, ModelMeta, WeightsFormat, clear_model_files, load_model, save_quant_weights,
};
use opt_core::data::ImageDataset;
use opt_core::eval::{
    EvalReport, MeasureConfig, Platform, StaticFigures, evaluate_accuracy, measure, measure_model,
};
use opt_core::fsutil::{gzip_len, write_atomic, write_json_atomic};
use opt_core::model::ModelSpec;
use opt_core::qweights::{StoredTensor, dequantize_all};
use opt_core::train::{TrainConfig, TrainData, TrainReport};
use opt_core::weights::{host_tensors, load_host_tensors};
use opt_quant::fallback::{FallbackReport, accuracy_aware};
use opt_quant::measure::{Int8Run, accuracy, default_threads};
use opt_quant::qformat::{INT8_FILE, decode, encode};
use opt_quant::weight_only::{WeightOnlyReport, quantize_weights_only};
use opt_quant::{Method, QuantConfig, calibrate_model, quantize_qat};
use serde::Serialize;

/// What a quantize stage did, for report.json.
#[derive(Debug, Clone, Serialize)]
pub struct QuantDetails {
    /// The settings.
    pub config: QuantConfig,
    /// `integer` (int8 weights and activations on the integer path) or `weights_only`.
    pub path: &'static str,
    /// The quantized model file, relative to the candidate folder.
    pub file: String,
    /// Weight-only: what the codes changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_only: Option<WeightOnlyReport>,
    /// What runs in float: on the integer path the head's logits and any layer the
    /// accuracy-aware search kept float; weight-only keeps every activation float, and the
    /// weights of any tensor the search kept float.
    pub float_parts: Vec<String>,
    /// Bits of each weighted layer's (integer path) or weight tensor's (weight-only) stored
    /// weights: the stage's bits, or 32 where kept float.
    #[serde(default)]
    pub layers: Vec<LayerBits>,
    /// The accuracy-aware search, when `tolerance` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<FallbackReport>,
}

/// The bits one layer's weights are stored with.
#[derive(Debug, Clone, Serialize)]
pub struct LayerBits {
    /// Layer (integer path) or weight tensor (weight-only) name.
    pub name: String,
    /// 8 or 4, or 32 for float.
    pub bits: u32,
}

/// A quantize stage's result.
pub struct QuantStageOutput<B: burn::tensor::backend::Backend> {
    /// The float model later stages start from: the source model (PTQ), the fine-tuned one
    /// (QAT) or the dequantized one (weight-only).
    pub model: ZooModel<B>,
    /// The quantized model as measured.
    pub eval: EvalReport,
    /// Its validation accuracy (the integer path's for int8 models).
    pub valid_accuracy: f64,
    /// The QAT fine-tuning.
    pub train: Option<TrainReport>,
    /// For report.json.
    pub details: QuantDetails,
    /// For report.md.
    pub summary: Vec<String>,
}

/// Everything a quantize stage reads besides its settings.
pub struct QuantStageInput<'a, B: AutodiffBackend> {
    /// Candidate folder.
    pub dir: &'a Path,
    /// The source model's spec.
    pub spec: &'a ModelSpec<ZooArch>,
    /// The source model.
    pub model: &'a ZooModel<B::InnerBackend>,
    /// model.json of a weight-only candidate (its `weights` is replaced).
    pub meta: ModelMeta<ZooArch>,
    /// Training and validation data (calibration uses the first training images).
    pub data: TrainData<'a>,
    /// `[train]`, the base of QAT's fine-tuning.
    pub train: &'a TrainConfig,
    /// Test split.
    pub test: &'a ImageDataset,
    /// How carefully to time.
    pub measure: MeasureConfig,
    /// Backend and device names.
    pub platform: Platform<'a>,
}

/// Runs one quantize stage.
///
/// # Errors
/// Invalid settings, a model the integer path cannot run, calibration failures, I/O.
pub fn run_quantize<B: AutodiffBackend>(
    input: QuantStageInput<'_, B>,
    cfg: &QuantConfig,
    device: &B::Device,
) -> Result<QuantStageOutput<B::InnerBackend>> {
    cfg.validate("quantize")?;
    let QuantStageInput {
        dir,
        spec,
        model,
        mut meta,
        data,
        train,
        test,
        measure: mcfg,
        platform,
    } = input;
    let float_accuracy = |m: &ZooModel<B::InnerBackend>| {
        evaluate_accuracy(m, data.valid, &data.batcher, 256, device).accuracy
    };
    if cfg.is_weights_only() {
        let tensors = host_tensors(model).map_err(|e| anyhow!("reading the weights: {e}"))?;
        let (mut stored, report) =
            quantize_weights_only(&tensors, cfg.bits, cfg.granularity, cfg.block_size);
        let mut float_parts = vec!["every activation".to_string()];
        let fallback = match cfg.tolerance {
            None => None,
            Some(tol) => {
                let names: Vec<String> = stored
                    .iter()
                    .filter(|(_, t)| matches!(t, StoredTensor::Quant(_)))
                    .map(|(n, _)| n.clone())
                    .collect();
                let with_float = |float: &[String]| {
                    let mut m = stored.clone();
                    for name in float {
                        m.insert(name.clone(), StoredTensor::Float(tensors[name].clone()));
                    }
                    m
                };
                let r = accuracy_aware(&names, float_accuracy(model), tol, |float| {
                    let deq = dequantize_all(&with_float(float));
                    let m = load_host_tensors(spec.init::<B::InnerBackend>(device), &deq)
                        .map_err(|e| anyhow!("loading the dequantized weights: {e}"))?;
                    Ok::<f64, anyhow::Error>(float_accuracy(&m))
                })?;
                stored = with_float(&r.kept_float);
                float_parts.extend(r.kept_float.iter().cloned());
                Some(r)
            }
        };
        let layers: Vec<LayerBits> = stored
            .iter()
            .filter(|(name, t)| matches!(t, StoredTensor::Quant(_)) || float_parts.contains(name))
            .map(|(name, t)| LayerBits {
                name: name.clone(),
                bits: match t {
                    StoredTensor::Quant(_) => cfg.bits,
                    _ => 32,
                },
            })
            .collect();
        meta.weights = WeightsFormat::Quant.file_name().to_string();
        save_quant_weights(dir, &meta, &stored)?;
        // Measure what a user gets: the folder reloaded from the quantized file.
        let (_, reloaded, saved) = load_model::<B::InnerBackend, ZooArch>(dir, device)?;
        let eval = measure(
            &reloaded,
            spec,
            &saved,
            test,
            &data.batcher,
            &mcfg,
            platform,
            device,
        );
        let mut summary = vec![format!(
            "weight-only {}-bit codes ({}{}), float16 scales, activations float: {} tensors \
             ({} values) quantized, {} values kept float (biases, batch norm); mean |error| \
             {:.2e}, max {:.2e}; dequantized when loaded, so it runs at float speed",
            cfg.bits,
            choice_name(cfg.granularity),
            if cfg.granularity == opt_quant::qmodel::Granularity::PerBlock {
                format!(" of {}", cfg.block_size)
            } else {
                String::new()
            },
            report.tensors_quantized,
            report.values_quantized,
            report.values_float,
            report.mean_abs_error,
            report.max_abs_error
        )];
        summary.extend(fallback.as_ref().map(fallback_line));
        return Ok(QuantStageOutput {
            valid_accuracy: float_accuracy(&reloaded),
            model: reloaded,
            eval,
            train: None,
            details: QuantDetails {
                config: *cfg,
                path: "weights_only",
                file: meta.weights,
                weight_only: Some(report),
                float_parts,
                layers,
                fallback,
            },
            summary,
        });
    }
    let ZooModel::Core(core) = model else {
        bail!(
            "the int8 integer path runs opt-core's mlp, lenet5 and cnn; {} is not one of them \
             (quantize its weights only with weights_only = true)",
            spec.describe()
        );
    };
    let (calibrated, float_model, qat) = match cfg.method {
        Method::Ptq => (
            calibrate_model::<B::InnerBackend>(
                core,
                spec.input,
                data.batcher.norm,
                data.train,
                cfg,
                device,
            )?,
            model.clone(),
            None,
        ),
        Method::Qat => {
            let (c, tuned, report) = quantize_qat::<B>(core, spec.input, data, train, cfg, device)?;
            (c, ZooModel::Core(tuned), Some(report))
        }
    };
    let threads = default_threads();
    let mut float_parts = vec!["the head's logits".to_string()];
    let (q, fallback) = match cfg.tolerance {
        None => (calibrated.quantize(&[])?, None),
        Some(tol) => {
            // Against the float model the stage started from.
            let r = accuracy_aware(
                &calibrated.layer_names(),
                float_accuracy(model),
                tol,
                |float| {
                    let q = calibrated.quantize(float)?;
                    Ok::<f64, anyhow::Error>(accuracy(&q, data.valid, 256, threads).accuracy)
                },
            )?;
            float_parts.extend(r.kept_float.iter().cloned());
            (calibrated.quantize(&r.kept_float)?, Some(r))
        }
    };
    let layers: Vec<LayerBits> = calibrated
        .layer_names()
        .into_iter()
        .map(|name| LayerBits {
            bits: if float_parts.contains(&name) { 32 } else { 8 },
            name,
        })
        .collect();
    let bytes = encode(&q);
    let path = dir.join(INT8_FILE);
    std::fs::create_dir_all(dir)?;
    clear_model_files(dir)?;
    write_atomic(&path, &bytes)?;
    // The spec, normalization and class names beside it, for export and deployment bundles.
    meta.weights = INT8_FILE.to_string();
    write_json_atomic(&dir.join(MODEL_FILE), &meta)?;
    // Measure what a user gets: the model decoded from the file.
    let q = decode(&bytes, &path.display().to_string())?;
    let figures = StaticFigures {
        macs: spec.macs(),
        size_bytes: bytes.len() as u64,
        size_gzip_bytes: gzip_len(&bytes),
    };
    let eval = measure_model(&Int8Run { model: &q, threads }, figures, test, &mcfg);
    let c = &cfg.calibration;
    let mut summary = vec![format!(
        "int8 weights ({}) and uint8 activations ({} calibration on {} images{}) on the \
         integer path ({}, {threads} threads); logits dequantized to float",
        choice_name(cfg.granularity),
        choice_name(c.method),
        c.samples.min(data.train.len()),
        if c.symmetric { ", symmetric" } else { "" },
        q.isa.name()
    )];
    if let Some(r) = &qat {
        summary.push(format!(
            "quantization-aware fine-tuning: {} epochs at learning rate {:.1e}, best fake-quantized \
             validation accuracy {:.4}",
            r.epochs, r.learning_rate, r.train.best_val_accuracy
        ));
    }
    summary.extend(fallback.as_ref().map(fallback_line));
    Ok(QuantStageOutput {
        valid_accuracy: accuracy(&q, data.valid, 256, threads).accuracy,
        model: float_model,
        eval,
        train: qat.map(|r| r.train),
        details: QuantDetails {
            config: *cfg,
            path: "integer",
            file: INT8_FILE.into(),
            weight_only: None,
            float_parts,
            layers,
            fallback,
        },
        summary,
    })
}

/// One line of report.md about the accuracy-aware search.
fn fallback_line(r: &FallbackReport) -> String {
    let kept = if r.kept_float.is_empty() {
        "nothing kept in float".to_string()
    } else {
        format!("kept in float: {}", r.kept_float.join(", "))
    };
    format!(
        "accuracy-aware (tolerance {:.2} pts on the validation split, float {:.4}): {kept}; \
         validation accuracy {:.4} ({:+.2} pts){}; {} candidates measured",
        r.tolerance_points,
        r.float_accuracy,
        r.accuracy,
        0.0 - r.drop_points,
        if r.met {
            String::new()
        } else {
            " — the tolerance could not be met, this is the most accurate candidate".into()
        },
        r.steps.len()
    )
}

/// The snake_case name a setting has in the config file (`per_channel`).
fn choice_name(v: impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}
