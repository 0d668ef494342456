//! `optkit quantize`: post-training int8 quantization of a saved model folder. Calibrates on
//! the first training images, writes the int8 model (`model.int8`), and measures the float
//! model (on the chosen backend) and the int8 model (on the integer path) in one run.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use opt_arch::{ZooArch, ZooModel};
use opt_core::artifact::load_model;
use opt_core::data::Batcher;
use opt_core::eval::{EvalReport, MeasureConfig, Platform, measure};
use opt_core::fsutil::{gzip_len, write_atomic, write_json_atomic};
use opt_quant::measure::{StaticFigures, measure_int8};
use opt_quant::observer::Observer;
use opt_quant::qformat::{INT8_FILE, encode};
use opt_quant::qmodel::Granularity;
use opt_quant::{QuantConfig, quantize_ptq};
use serde::Serialize;

use crate::backend::{BackendKind, BackendTask};

/// What `optkit quantize` prints and writes to `quantize.json`.
#[derive(Debug, Clone, Serialize)]
pub struct QuantizeOutput {
    /// The float model, measured on its backend.
    pub float: EvalReport,
    /// The int8 model, measured on the integer path.
    pub int8: EvalReport,
    /// The settings used.
    pub config: QuantConfig,
    /// `int8 / float` accuracy difference in points (negative: int8 is worse).
    pub accuracy_delta_points: f64,
    /// Float batch-1 latency over int8's (above 1: int8 is faster).
    pub latency_b1_speedup: f64,
    /// int8 throughput over float's.
    pub throughput_speedup: f64,
    /// Float weights file size over the int8 file's.
    pub size_ratio: f64,
    /// The int8 model file.
    pub out: String,
}

/// The quantize command as a backend task.
pub struct QuantizeSaved {
    /// Model folder to quantize.
    pub model: PathBuf,
    /// Folder for the int8 model.
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
        if self.out.exists() && !self.out.is_dir() {
            bail!(
                "--out {} is an existing file; choose a folder",
                self.out.display()
            );
        }
        let (meta, model, saved) = load_model::<B::InnerBackend, ZooArch>(&self.model, &device)?;
        let ZooModel::Core(core) = &model else {
            bail!(
                "model {}: the int8 path runs opt-core's mlp, lenet5 and cnn families; {} is not \
                 supported yet",
                self.model.display(),
                meta.spec.describe()
            );
        };
        let splits = crate::evaluate::model_data(&meta, self.data_dir.as_deref())?;
        let test = splits.test;
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
            &test,
            &batcher,
            &self.measure,
            platform,
            &device,
        );
        let q = quantize_ptq::<B::InnerBackend>(
            core,
            meta.spec.input,
            meta.normalization,
            &splits.train,
            &self.config,
            &device,
        )?;
        let bytes = encode(&q);
        let path = self.out.join(INT8_FILE);
        write_atomic(&path, &bytes)?;
        let figures = StaticFigures {
            macs: meta.spec.macs(),
            size_bytes: bytes.len() as u64,
            size_gzip_bytes: gzip_len(&bytes),
        };
        let threads = opt_quant::measure::default_threads();
        let int8 = measure_int8(&q, &test, &self.measure, figures, threads);
        let output = QuantizeOutput {
            accuracy_delta_points: (int8.accuracy - float.accuracy) * 100.0,
            latency_b1_speedup: float.latency_b1_ms_p50 / int8.latency_b1_ms_p50,
            throughput_speedup: int8.throughput_per_s / float.throughput_per_s,
            size_ratio: float.size_bytes as f64 / int8.size_bytes as f64,
            float,
            int8,
            config: self.config,
            out: path.display().to_string(),
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

/// The settings from the command-line flags, checked.
pub fn settings(
    bits: u32,
    observer: &str,
    samples: usize,
    percentile: f64,
    granularity: &str,
    symmetric: bool,
) -> Result<QuantConfig> {
    let method: Observer = parse_choice(
        "--observer",
        observer,
        &["min_max", "percentile", "mse", "entropy"],
    )?;
    let granularity: Granularity =
        parse_choice("--granularity", granularity, &["per_channel", "per_tensor"])?;
    let cfg = QuantConfig {
        bits,
        granularity,
        calibration: opt_quant::CalibrationConfig {
            method,
            samples,
            percentile,
            symmetric,
        },
    };
    cfg.validate("quantize")?;
    Ok(cfg)
}
