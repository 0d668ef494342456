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
use opt_core::artifact::{ModelMeta, WeightsFormat, load_model, save_quant_weights};
use opt_core::data::ImageDataset;
use opt_core::eval::{EvalReport, MeasureConfig, Platform, measure};
use opt_core::fsutil::{gzip_len, write_atomic};
use opt_core::model::ModelSpec;
use opt_core::train::{TrainConfig, TrainData, TrainReport};
use opt_core::weights::host_tensors;
use opt_quant::measure::{StaticFigures, default_threads, measure_int8};
use opt_quant::qformat::{INT8_FILE, decode, encode};
use opt_quant::weight_only::{WeightOnlyReport, quantize_weights_only};
use opt_quant::{Method, QuantConfig, quantize_ptq, quantize_qat};
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
    /// Layers that run in float: the integer path keeps only the head's logits float (the
    /// last layer's output is dequantized); weight-only keeps every activation float.
    pub float_parts: Vec<String>,
}

/// A quantize stage's result.
pub struct QuantStageOutput<B: burn::tensor::backend::Backend> {
    /// The float model later stages start from: the source model (PTQ), the fine-tuned one
    /// (QAT) or the dequantized one (weight-only).
    pub model: ZooModel<B>,
    /// The quantized model as measured.
    pub eval: EvalReport,
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
    if cfg.is_weights_only() {
        let tensors = host_tensors(model).map_err(|e| anyhow!("reading the weights: {e}"))?;
        let (stored, report) =
            quantize_weights_only(&tensors, cfg.bits, cfg.granularity, cfg.block_size);
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
        let summary = vec![format!(
            "weight-only {}-bit codes ({:?}{}), float16 scales, activations float: {} tensors \
             ({} values) quantized, {} values kept float (biases, batch norm); mean |error| \
             {:.2e}, max {:.2e}; dequantized when loaded, so it runs at float speed",
            cfg.bits,
            cfg.granularity,
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
        return Ok(QuantStageOutput {
            model: reloaded,
            eval,
            train: None,
            details: QuantDetails {
                config: *cfg,
                path: "weights_only",
                file: meta.weights,
                weight_only: Some(report),
                float_parts: vec!["every activation".into()],
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
    let (q, float_model, qat) = match cfg.method {
        Method::Ptq => (
            quantize_ptq::<B::InnerBackend>(
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
            let (q, tuned, report) = quantize_qat::<B>(core, spec.input, data, train, cfg, device)?;
            (q, ZooModel::Core(tuned), Some(report))
        }
    };
    let bytes = encode(&q);
    let path = dir.join(INT8_FILE);
    std::fs::create_dir_all(dir)?;
    write_atomic(&path, &bytes)?;
    // Measure what a user gets: the model decoded from the file.
    let q = decode(&bytes, &path.display().to_string())?;
    let figures = StaticFigures {
        macs: spec.macs(),
        size_bytes: bytes.len() as u64,
        size_gzip_bytes: gzip_len(&bytes),
    };
    let threads = default_threads();
    let eval = measure_int8(&q, test, &mcfg, figures, threads);
    let c = &cfg.calibration;
    let mut summary = vec![format!(
        "int8 weights ({:?}) and uint8 activations ({:?} calibration on {} images{}) on the \
         integer path ({}, {threads} threads); logits dequantized to float",
        cfg.granularity,
        c.method,
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
    Ok(QuantStageOutput {
        model: float_model,
        eval,
        train: qat.map(|r| r.train),
        details: QuantDetails {
            config: *cfg,
            path: "integer",
            file: INT8_FILE.into(),
            weight_only: None,
            float_parts: vec!["the head's logits".into()],
        },
        summary,
    })
}
