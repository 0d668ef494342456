//! Settings of a quantization run (`[stages.quantize]` in a pipeline, the flags of
//! `optkit quantize`), checked before any work starts.

use burn::tensor::backend::Backend;
use opt_core::data::{Batcher, ImageDataset, Normalization};
use opt_core::model::{InputShape, Model};
use serde::{Deserialize, Serialize};

use crate::calibrate::calibrate;
use crate::error::{QuantError, Result};
use crate::graph::FloatGraph;
use crate::observer::{Observer, TensorStats};
use crate::qat::QatConfig;
use crate::qmodel::{ActivationScheme, Granularity, QuantModel};

/// Bit widths of weight codes: 8 (the integer path, or weight-only) and 4 (weight-only).
pub const SUPPORTED_BITS: [u32; 2] = [4, 8];

/// How the quantized model is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Post-training quantization: calibrate, then quantize.
    #[default]
    Ptq,
    /// Quantization-aware training: calibrate, fine-tune with fake quantization, then quantize
    /// (see [`crate::qat`]).
    Qat,
}

impl Method {
    /// The snake_case name (`ptq`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Ptq => "ptq",
            Method::Qat => "qat",
        }
    }
}

/// How activations are calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalibrationConfig {
    /// Range observer.
    pub method: Observer,
    /// Training images run through the float model (the first ones of the training split).
    pub samples: usize,
    /// Central percentage kept by the percentile observer, in (0, 100].
    pub percentile: f64,
    /// Symmetric activation codes instead of a calibrated zero point.
    pub symmetric: bool,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self {
            method: Observer::MinMax,
            samples: 1024,
            percentile: 99.99,
            symmetric: false,
        }
    }
}

/// Quantization settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantConfig {
    /// Post-training (`ptq`) or quantization-aware training (`qat`).
    pub method: Method,
    /// Bits of the weight codes: 8 (int8 weights and uint8 activations on the integer path,
    /// or weight-only) or 4 (weight-only).
    pub bits: u32,
    /// Quantize only the weights and keep activations float (the model is dequantized when
    /// loaded: smaller file, float speed). Default: true for 4 bits, false for 8.
    pub weights_only: Option<bool>,
    /// Weight scales per output channel, per tensor, or per block (weight-only).
    pub granularity: Granularity,
    /// Consecutive values per scale with `granularity = "per_block"`.
    pub block_size: usize,
    /// Activation calibration (integer path).
    pub calibration: CalibrationConfig,
    /// Fine-tuning of `method = "qat"`.
    pub qat: QatConfig,
    /// Largest accepted validation accuracy drop against the float model, in points: when the
    /// quantized model loses more, the most sensitive layers stay float until it does not
    /// (see [`crate::fallback`]). Unset: every layer is quantized.
    pub tolerance: Option<f64>,
}

impl Default for QuantConfig {
    fn default() -> Self {
        Self {
            method: Method::Ptq,
            bits: 8,
            weights_only: None,
            granularity: Granularity::PerChannel,
            block_size: 32,
            calibration: CalibrationConfig::default(),
            qat: QatConfig::default(),
            tolerance: None,
        }
    }
}

impl QuantConfig {
    /// Whether only the weights are quantized.
    pub fn is_weights_only(&self) -> bool {
        self.weights_only.unwrap_or(self.bits == 4)
    }

    /// Checks the ranges; keys are named under `prefix` (`stages.quantize`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !SUPPORTED_BITS.contains(&self.bits) {
            return Err(QuantError::invalid(
                format!("{prefix}.bits"),
                self.bits,
                "supported: 8 (integer path or weight-only) and 4 (weight-only)",
            ));
        }
        if self.is_weights_only() {
            if self.method == Method::Qat {
                return Err(QuantError::invalid(
                    format!("{prefix}.method"),
                    "qat",
                    "quantization-aware training targets the int8 integer path; use \
                     method = \"ptq\" for weight-only quantization, or weights_only = false",
                ));
            }
            if self.granularity == Granularity::PerBlock && self.block_size == 0 {
                return Err(QuantError::invalid(
                    format!("{prefix}.block_size"),
                    0,
                    "a block needs at least one value; 32 or 64 is typical",
                ));
            }
        } else {
            if self.bits != 8 {
                return Err(QuantError::invalid(
                    format!("{prefix}.bits"),
                    self.bits,
                    "the integer path runs 8-bit weights and activations; 4-bit weights are \
                     weight-only (leave weights_only out or set it to true)",
                ));
            }
            if self.granularity == Granularity::PerBlock {
                return Err(QuantError::invalid(
                    format!("{prefix}.granularity"),
                    "per_block",
                    "the integer path runs per_channel or per_tensor weight scales; per_block \
                     is for weight-only quantization (weights_only = true)",
                ));
            }
        }
        if let Some(t) = self.tolerance
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(QuantError::invalid(
                format!("{prefix}.tolerance"),
                t,
                "an accuracy drop in points, at least 0, for example 0.5",
            ));
        }
        if self.method == Method::Qat {
            if self.qat.epochs == 0 {
                return Err(QuantError::invalid(
                    format!("{prefix}.qat.epochs"),
                    0,
                    "quantization-aware training needs at least one epoch (1-3 is typical)",
                ));
            }
            if let Some(lr) = self.qat.learning_rate
                && !(lr.is_finite() && lr > 0.0)
            {
                return Err(QuantError::invalid(
                    format!("{prefix}.qat.learning_rate"),
                    lr,
                    "must be a positive number, for example 1e-4",
                ));
            }
        }
        if self.calibration.samples == 0 {
            return Err(QuantError::invalid(
                format!("{prefix}.calibration.samples"),
                0,
                "calibration needs at least one image; a few hundred to a few thousand (1024) is typical",
            ));
        }
        let p = self.calibration.percentile;
        if !(p > 0.0 && p <= 100.0) {
            return Err(QuantError::invalid(
                format!("{prefix}.calibration.percentile"),
                p,
                "must be in (0, 100], for example 99.99",
            ));
        }
        Ok(())
    }

    /// The activation scheme these settings describe.
    pub fn activations(&self) -> ActivationScheme {
        ActivationScheme {
            observer: self.calibration.method,
            percentile: self.calibration.percentile,
            symmetric: self.calibration.symmetric,
        }
    }
}

/// A float graph with calibrated activation statistics: quantized with any set of layers kept
/// in float by [`Calibrated::quantize`].
#[derive(Debug, Clone)]
pub struct Calibrated {
    /// The float layers.
    pub graph: FloatGraph,
    /// The input normalization.
    pub norm: Normalization,
    /// Per-layer activation statistics (see [`calibrate`]).
    pub stats: Vec<Option<TensorStats>>,
    /// Weight scale granularity.
    pub granularity: Granularity,
    /// Activation scheme.
    pub activations: ActivationScheme,
}

impl Calibrated {
    /// The layers with weights, in order.
    pub fn layer_names(&self) -> Vec<String> {
        self.graph
            .layers
            .iter()
            .filter_map(|l| l.name().map(str::to_string))
            .collect()
    }

    /// The int8 model with the layers in `float_layers` kept float.
    ///
    /// # Errors
    /// See [`QuantModel::build_mixed`].
    pub fn quantize(&self, float_layers: &[String]) -> Result<QuantModel> {
        QuantModel::build_mixed(
            &self.graph,
            self.norm,
            &self.stats,
            self.granularity,
            self.activations,
            float_layers,
        )
    }
}

/// Reads `model` out and calibrates it on the first `cfg.calibration.samples` images of
/// `calibration`.
///
/// # Errors
/// Invalid settings, an unsupported layer, calibration data that does not fit, or non-finite
/// activations (each error names the key or layer).
pub fn calibrate_model<B: Backend>(
    model: &Model<B>,
    input: InputShape,
    norm: Normalization,
    calibration: &ImageDataset,
    cfg: &QuantConfig,
    device: &B::Device,
) -> Result<Calibrated> {
    cfg.validate("quantize")?;
    if cfg.is_weights_only() {
        return Err(QuantError::invalid(
            "quantize.weights_only",
            true,
            "the int8 integer model quantizes activations too; weight-only quantization is \
             opt_quant::weight_only::quantize_weights_only",
        ));
    }
    let graph = FloatGraph::from_model(model, input)?;
    let stats = calibrate::<B>(
        &graph,
        calibration,
        &Batcher { norm },
        cfg.calibration.samples,
        device,
    )?;
    Ok(Calibrated {
        graph,
        norm,
        stats,
        granularity: cfg.granularity,
        activations: cfg.activations(),
    })
}

/// Post-training quantization of `model`: read out, calibrated on the first
/// `cfg.calibration.samples` images of `calibration`, quantized to the int8 model.
///
/// # Errors
/// As [`calibrate_model`].
pub fn quantize_ptq<B: Backend>(
    model: &Model<B>,
    input: InputShape,
    norm: Normalization,
    calibration: &ImageDataset,
    cfg: &QuantConfig,
    device: &B::Device,
) -> Result<QuantModel> {
    calibrate_model(model, input, norm, calibration, cfg, device)?.quantize(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_key() {
        let mut c = QuantConfig {
            bits: 4,
            weights_only: Some(false),
            ..Default::default()
        };
        assert!(
            c.validate("q")
                .unwrap_err()
                .to_string()
                .contains("q.bits = 4")
        );
        c.weights_only = None;
        c.validate("q").unwrap();
        c.method = Method::Qat;
        assert!(
            c.validate("q")
                .unwrap_err()
                .to_string()
                .contains("q.method")
        );
        c.method = Method::Ptq;
        c.bits = 3;
        assert!(
            c.validate("q")
                .unwrap_err()
                .to_string()
                .contains("q.bits = 3")
        );
        c.bits = 8;
        c.granularity = Granularity::PerBlock;
        assert!(
            c.validate("q")
                .unwrap_err()
                .to_string()
                .contains("per_block")
        );
        c.granularity = Granularity::PerChannel;
        c.method = Method::Qat;
        c.qat.epochs = 0;
        assert!(
            c.validate("q")
                .unwrap_err()
                .to_string()
                .contains("q.qat.epochs = 0")
        );
        c.qat.epochs = 1;
        c.qat.learning_rate = Some(-1.0);
        assert!(
            c.validate("q")
                .unwrap_err()
                .to_string()
                .contains("learning_rate")
        );
        c.qat.learning_rate = None;
        c.method = Method::Ptq;
        c.tolerance = Some(-0.1);
        assert!(
            c.validate("q")
                .unwrap_err()
                .to_string()
                .contains("q.tolerance = -0.1")
        );
        c.tolerance = Some(0.5);
        c.calibration.samples = 0;
        assert!(
            c.validate("q")
                .unwrap_err()
                .to_string()
                .contains("q.calibration.samples = 0")
        );
        c.calibration.samples = 10;
        for p in [0.0, -1.0, 100.5, f64::NAN] {
            c.calibration.percentile = p;
            assert!(
                c.validate("q")
                    .unwrap_err()
                    .to_string()
                    .contains("percentile"),
                "{p}"
            );
        }
        c.calibration.percentile = 100.0;
        c.validate("q").unwrap();
    }
}
