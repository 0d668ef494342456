//! `optkit quantize`: quantization of a saved model folder (int8 on the integer path,
//! post-training or quantization-aware, or weight-only 8/4-bit), measuring the float model (on
//! the chosen backend) and the quantized one in one run. Calibration and QAT use the training
//! split of the data the model was measured on (10% of it held out for QAT's validation).

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use opt_arch::ZooArch;
use opt_core::artifact::load_model;
use opt_core::data::Batcher;
use opt_core::eval::{EvalReport, MeasureConfig, Platform, measure};
use opt_core::fsutil::write_json_atomic;
use opt_core::train::{TrainConfig, TrainData};
use opt_quant::observer::Observer;
use opt_quant::qmodel::Granularity;
use opt_quant::{Method, QatConfig, QuantConfig};
use serde::Serialize;

use crate::backend::{BackendKind, BackendTask};
use crate::quant_stage::{QuantDetails, QuantStageInput, run_quantize};

/// What `optkit quantize` prints and writes to `quantize.json`.
#[derive(Debug, Clone, Serialize)]
pub struct QuantizeOutput {
    /// The float model, measured on its backend.
    pub float: EvalReport,
    /// The quantized model, measured as deployed (integer path, or reloaded weight-only file).
    pub quantized: EvalReport,
    /// What was done.
    pub details: QuantDetails,
    /// `quantized − float` accuracy in points (negative: the quantized model is worse).
    pub accuracy_delta_points: f64,
    /// Float batch-1 latency over the quantized model's (above 1: quantized is faster).
    pub latency_b1_speedup: f64,
    /// Quantized throughput over float's.
    pub throughput_speedup: f64,
    /// Float weights file size over the quantized file's.
    pub size_ratio: f64,
    /// The quantized model folder.
    pub out: String,
}

/// The quantize command as a backend task.
pub struct QuantizeSaved {
    /// Model folder to quantize.
    pub model: PathBuf,
    /// Folder for the quantized model.
    pub out: PathBuf,
    /// Directory with the IDX files (default: the data the model was measured on).
    pub data_dir: Option<PathBuf>,
    /// Quantization settings (checked before the task runs).
    pub config: QuantConfig,
    /// How carefully to time.
    pub measure: MeasureConfig,
}

impl BackendTask for QuantizeSaved {
    type Output = QuantizeOutput;

    fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        backend: BackendKind,
        device_name: String,
    ) -> Result<QuantizeOutput> {
        crate::evaluate::check_out_folder(&self.out, &[("source model", &self.model)])?;
        let (meta, model, saved) = load_model::<B::InnerBackend, ZooArch>(&self.model, &device)?;
        let splits = crate::evaluate::model_data(&meta, self.data_dir.as_deref())?;
        let batcher = Batcher {
            norm: meta.normalization,
        };
        let platform = Platform {
            backend: backend.name(),
            device: &device_name,
        };
        let float = measure(
            &model,
            &meta.spec,
            &saved,
            &splits.test,
            &batcher,
            &self.measure,
            platform,
            &device,
        );
        let train_cfg = TrainConfig::default();
        let (train_ds, valid_ds) = splits.train.split(0.1, train_cfg.seed)?;
        std::fs::create_dir_all(&self.out)?;
        let out = run_quantize::<B>(
            QuantStageInput {
                dir: &self.out,
                spec: &meta.spec,
                model: &model,
                meta: meta.clone(),
                data: TrainData {
                    train: &train_ds,
                    valid: &valid_ds,
                    batcher,
                },
                train: &train_cfg,
                test: &splits.test,
                measure: self.measure,
                platform,
            },
            &self.config,
            &device,
        )?;
        let q = out.eval;
        let output = QuantizeOutput {
            accuracy_delta_points: (q.accuracy - float.accuracy) * 100.0,
            latency_b1_speedup: float.latency_b1_ms_p50 / q.latency_b1_ms_p50,
            throughput_speedup: q.throughput_per_s / float.throughput_per_s,
            size_ratio: float.size_bytes as f64 / q.size_bytes as f64,
            float,
            quantized: q,
            details: out.details,
            out: self.out.display().to_string(),
        };
        write_json_atomic(&self.out.join("quantize.json"), &output)?;
        Ok(output)
    }
}

/// Parses a snake_case setting (`min_max`, `per_channel`) into its enum, listing the choices
/// when it is not one of them.
pub fn parse_choice<T: serde::de::DeserializeOwned>(
    flag: &str,
    value: &str,
    choices: &[&str],
) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| anyhow::anyhow!("{flag} {value}: not one of {}", choices.join(", ")))
}

/// The flags of `optkit quantize`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuantizeFlags {
    /// ptq (post-training) or qat (quantization-aware fine-tuning, then conversion).
    #[arg(long, default_value = "ptq")]
    pub method: String,
    /// Bits of the weight codes: 8 (int8 integer path, or weight-only) or 4 (weight-only).
    #[arg(long, default_value_t = 8)]
    pub bits: u32,
    /// Quantize only the weights (activations stay float); implied by --bits 4.
    #[arg(long)]
    pub weights_only: bool,
    /// Weight scales: per_channel, per_tensor or per_block (weight-only).
    #[arg(long, default_value = "per_channel")]
    pub granularity: String,
    /// Values per scale with --granularity per_block.
    #[arg(long, default_value_t = 32)]
    pub block_size: usize,
    /// Activation range observer: min_max, percentile, mse or entropy.
    #[arg(long, default_value = "min_max")]
    pub observer: String,
    /// Calibration images (the first ones of the training split).
    #[arg(long, default_value_t = 1024)]
    pub samples: usize,
    /// Central percentage kept by the percentile observer, in (0, 100].
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// Symmetric activation codes instead of a calibrated zero point.
    #[arg(long)]
    pub symmetric: bool,
    /// Epochs of quantization-aware fine-tuning.
    #[arg(long, default_value_t = 2)]
    pub qat_epochs: usize,
    /// Learning rate of quantization-aware fine-tuning (default 1e-4).
    #[arg(long)]
    pub qat_lr: Option<f64>,
    /// Largest accepted validation accuracy drop in points: the most sensitive layers stay
    /// float until the drop is within it.
    #[arg(long)]
    pub tolerance: Option<f64>,
}

/// The settings from the command-line flags, checked.
pub fn settings(f: &QuantizeFlags) -> Result<QuantConfig> {
    let method: Method = parse_choice("--method", &f.method, &["ptq", "qat"])?;
    let observer: Observer = parse_choice(
        "--observer",
        &f.observer,
        &["min_max", "percentile", "mse", "entropy"],
    )?;
    let granularity: Granularity = parse_choice(
        "--granularity",
        &f.granularity,
        &["per_channel", "per_tensor", "per_block"],
    )?;
    let cfg = QuantConfig {
        method,
        bits: f.bits,
        weights_only: f.weights_only.then_some(true),
        granularity,
        block_size: f.block_size,
        calibration: opt_quant::CalibrationConfig {
            method: observer,
            samples: f.samples,
            percentile: f.percentile,
            symmetric: f.symmetric,
        },
        qat: QatConfig {
            epochs: f.qat_epochs,
            learning_rate: f.qat_lr,
        },
        tolerance: f.tolerance,
    };
    cfg.validate("quantize")?;
    Ok(cfg)
}
