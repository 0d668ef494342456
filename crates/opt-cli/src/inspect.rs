//! `optkit inspect`: an architecture's parameters and MACs, from its spec alone.

use anyhow::{Result, bail};
use opt_arch::{ArchChoice, Preset, ZooArch};
use opt_core::model::{InputShape, LayerCost, ModelSpec};
use serde::Serialize;

/// What `optkit inspect` asks for (its command-line arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct InspectRequest {
    /// Family as torchvision names it: mobilenet_v1, mobilenet_v2, mobilenet_v3_large,
    /// mobilenet_v3_small, efficientnet_b0 … efficientnet_b7; or mlp, lenet5, cnn.
    #[arg(long)]
    pub arch: String,
    /// Square input side in pixels.
    #[arg(long, default_value_t = 224)]
    pub input_size: usize,
    /// Input channels.
    #[arg(long, default_value_t = 3)]
    pub in_channels: usize,
    /// Number of classes.
    #[arg(long, default_value_t = 1000)]
    pub classes: usize,
    /// Width multiplier (MobileNet/EfficientNet; 1.0 is the published network).
    #[arg(long)]
    pub width: Option<f64>,
    /// Small-input stem (total stride 8): on/off; default on below 64 pixels.
    #[arg(long)]
    pub small_input: Option<bool>,
    /// Also print every layer's output shape, parameters and MACs.
    #[arg(long)]
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
