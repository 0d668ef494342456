//! Settings of a quantization run (`[stages.quantize]` in a pipeline, the flags of
//! `optkit quantize`), checked before any work starts.

use burn::tensor::backend::Backend;
use opt_core::data::{Batcher, ImageDataset, Normalization};
use opt_core::model::{InputShape, Model};
use serde::{Deserialize, Serialize};

use crate::calibrate::calibrate;
use crate::error::{QuantError, Result};
use crate::graph::FloatGraph;
use crate::observer::Observer;
use crate::qmodel::{ActivationScheme, Granularity, QuantModel};

/// Bit widths the integer path runs.
pub const SUPPORTED_BITS: [u32; 1] = [8];

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

/// Post-training quantization settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantConfig {
    /// Bits of weights and activations (8).
    pub bits: u32,
    /// Weight scales per output channel or per tensor.
    pub granularity: Granularity,
    /// Activation calibration.
    pub calibration: CalibrationConfig,
}

impl Default for QuantConfig {
    fn default() -> Self {
        Self {
            bits: 8,
            granularity: Granularity::PerChannel,
            calibration: CalibrationConfig::default(),
        }
    }
}

impl QuantConfig {
    /// Checks the ranges; keys are named under `prefix` (`stages.quantize`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !SUPPORTED_BITS.contains(&self.bits) {
            return Err(QuantError::invalid(
                format!("{prefix}.bits"),
                self.bits,
                format!("the integer path runs {SUPPORTED_BITS:?} bits; use bits = 8"),
            ));
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

/// Post-training quantization of `model`: read out, calibrated on the first
/// `cfg.calibration.samples` images of `calibration`, quantized to the int8 model.
///
/// # Errors
/// Invalid settings, an unsupported layer, calibration data that does not fit, or non-finite
/// activations (each error names the key or layer).
pub fn quantize_ptq<B: Backend>(
    model: &Model<B>,
    input: InputShape,
    norm: Normalization,
    calibration: &ImageDataset,
    cfg: &QuantConfig,
    device: &B::Device,
) -> Result<QuantModel> {
    cfg.validate("quantize")?;
    let graph = FloatGraph::from_model(model, input)?;
    let stats = calibrate::<B>(
        &graph,
        calibration,
        &Batcher { norm },
        cfg.calibration.samples,
        device,
    )?;
    QuantModel::build(&graph, norm, &stats, cfg.granularity, cfg.activations())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_key() {
        let mut c = QuantConfig {
            bits: 4,
            ..Default::default()
        };
        assert!(
            c.validate("q")
                .unwrap_err()
                .to_string()
                .contains("q.bits = 4")
        );
        c.bits = 8;
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
