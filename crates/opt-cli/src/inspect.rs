//! `optkit inspect`: an architecture's parameters and MACs, from its spec alone.

use anyhow::{Result, bail};
use opt_arch::{ArchChoice, Preset, ZooArch};
use opt_core::model::{InputShape, LayerCost, ModelSpec};
use serde::Serialize;

/// What `optkit inspect` asks for.
#[derive(Debug, Clone)]
pub struct InspectRequest {
    /// Family name.
    pub arch: String,
    /// Square input side.
    pub input_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Classes.
    pub classes: usize,
    /// Width multiplier.
    pub width: Option<f64>,
    /// Small-input stem.
    pub small_input: Option<bool>,
    /// Include the per-layer table.
    pub layers: bool,
}

/// What `optkit inspect` prints.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// Family name.
    pub arch: String,
    /// Input shape.
    pub input: InputShape,
    /// Classes.
    pub classes: usize,
    /// Parameters (PyTorch convention: batch-norm running statistics excluded).
    pub params: u64,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// How MACs are counted.
    pub macs_convention: &'static str,
    /// One-line description.
    pub describe: String,
    /// The explicit spec (paste it into a pipeline's `[model]` to edit single blocks).
    pub spec: ZooArch,
    /// Every layer, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerCost>>,
}

/// Builds the spec and counts it.
pub fn inspect(req: &InspectRequest) -> Result<InspectReport> {
    let input = InputShape {
        channels: req.in_channels,
        height: req.input_size,
        width: req.input_size,
    };
    let arch = match ArchChoice::named(&req.arch)? {
        ArchChoice::Preset(p) => Preset {
            width: req.width.unwrap_or(1.0),
            small_input: req.small_input,
            ..p
        }
        .build(input)?,
        ArchChoice::Explicit(a) => {
            if req.width.is_some() || req.small_input.is_some() {
                bail!(
                    "--width and --small-input apply to MobileNet and EfficientNet families, not to {}",
                    req.arch
                );
            }
            a
        }
    };
    let spec = ModelSpec {
        input,
        classes: req.classes,
        arch,
    };
    spec.validate()?;
    Ok(InspectReport {
        arch: req.arch.clone(),
        input,
        classes: req.classes,
        params: spec.params(),
        macs: spec.macs(),
        macs_convention: "1 multiply-accumulate = 1 MAC; convolutions and linear layers only, per image",
        describe: spec.describe(),
        layers: req.layers.then(|| spec.layers()),
        spec: spec.arch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(arch: &str) -> InspectRequest {
        InspectRequest {
            arch: arch.into(),
            input_size: 224,
            in_channels: 3,
            classes: 1000,
            width: None,
            small_input: None,
            layers: false,
        }
    }

    #[test]
    fn counts_torchvision_families() {
        assert_eq!(
            inspect(&req("mobilenet_v3_large")).unwrap().params,
            5_483_032
        );
        let r = inspect(&InspectRequest {
            width: Some(0.5),
            ..req("mobilenet_v2")
        })
        .unwrap();
        assert_eq!(r.params, 1_968_680);
    }

    #[test]
    fn bad_requests_are_errors() {
        let e = inspect(&req("resnet")).unwrap_err().to_string();
        assert!(e.contains("unknown architecture `resnet`"), "{e}");
        let e = inspect(&InspectRequest {
            width: Some(0.0),
            ..req("efficientnet_b0")
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("model.width"), "{e}");
        let e = inspect(&InspectRequest {
            classes: 0,
            ..req("mobilenet_v2")
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("data.classes"), "{e}");
        let e = inspect(&InspectRequest {
            input_size: 16,
            small_input: Some(false),
            ..req("mobilenet_v2")
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("total stride 32"), "{e}");
    }
}
