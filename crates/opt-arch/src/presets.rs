//! The published configurations, written out block by block: MobileNetV1, MobileNetV2,
//! MobileNetV3-Large/-Small and EfficientNet-B0 to B7, with a width multiplier and a
//! small-input stem for 28x28 and 32x32 images. The tables and the rounding follow torchvision
//! 0.29 (`mobilenetv2.py`, `mobilenetv3.py`, `efficientnet.py`), so at 224x224 with 3 channels
//! and 1000 classes the parameter counts equal torchvision's.

use opt_core::model::InputShape;
use opt_core::{CoreError, Result};

use crate::activation::Activation;
use crate::family::Family;
use crate::make_divisible::make_divisible;
use crate::spec::{BlockSpec, MobileNetSpec, MobileNetV1Spec, SeparableSpec};
use crate::zoo::ZooArch;

/// Images whose shorter side is below this get the small-input stem unless told otherwise.
pub const SMALL_INPUT_BELOW: usize = 64;

/// A family plus the knobs a user turns; [`Preset::build`] writes the explicit spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    /// The family.
    pub family: Family,
    /// Width multiplier on every channel count (EfficientNet: on top of its own coefficient).
    pub width: f64,
    /// Small-input stem: stem stride 1 and the first stride-2 block at stride 1, so the total
    /// stride is 8 instead of 32. `None`: on when the shorter image side is below
    /// [`SMALL_INPUT_BELOW`].
    pub small_input: Option<bool>,
    /// Dropout before the classifier; `None`: the family's (0.2; EfficientNet 0.2 to 0.5).
    pub dropout: Option<f64>,
}

/// The largest width multiplier (MobileNetV1 at 16 has 16,384 channels in its last block).
pub const MAX_WIDTH_MULTIPLIER: f64 = 16.0;

/// EfficientNet's compound-scaling coefficients (width, depth, resolution, dropout) for B0-B7,
/// from the paper and torchvision.
pub const EFFICIENTNET_COEFFICIENTS: [(f64, f64, usize, f64); 8] = [
    (1.0, 1.0, 224, 0.2),
    (1.0, 1.1, 240, 0.2),
    (1.1, 1.2, 260, 0.3),
    (1.2, 1.4, 300, 0.3),
    (1.4, 1.8, 380, 0.4),
    (1.6, 2.2, 456, 0.4),
    (1.8, 2.6, 528, 0.5),
    (2.0, 3.1, 600, 0.5),
];

impl Preset {
    /// The family at width 1 with automatic stem and default dropout.
    pub fn new(family: Family) -> Self {
        Self {
            family,
            width: 1.0,
            small_input: None,
            dropout: None,
        }
    }

    /// The input resolution the family was designed for (224; EfficientNet-B1..B7 more).
    pub fn resolution(&self) -> usize {
        match self.family {
            Family::Efficientnet(b) => EFFICIENTNET_COEFFICIENTS[b as usize].2,
            _ => 224,
        }
    }

    /// Writes the explicit spec for images of shape `input`.
    pub fn build(&self, input: InputShape) -> Result<ZooArch> {
        if !(self.width > 0.0 && self.width <= MAX_WIDTH_MULTIPLIER) {
            return Err(CoreError::invalid(
                "model.width",
                self.width,
                format!(
                    "the width multiplier must be a positive number up to {MAX_WIDTH_MULTIPLIER} \
                     (1.0 is the published network)"
                ),
            ));
        }
        if let Some(d) = self.dropout
            && !(0.0..1.0).contains(&d)
        {
            return Err(CoreError::invalid("model.dropout", d, "must be in [0, 1)"));
        }
        let small = self
            .small_input
            .unwrap_or(input.height.min(input.width) < SMALL_INPUT_BELOW);
        let w = self.width;
        let arch = match self.family {
            Family::MobilenetV1 => {
                let mut spec = mobilenet_v1(w);
                if small {
                    small_input_strides(
                        &mut spec.stem_stride,
                        spec.blocks.iter_mut().map(|b| &mut b.stride),
                    );
                }
                spec.dropout = self.dropout.unwrap_or(spec.dropout);
                ZooArch::MobilenetV1(spec)
            }
            family => {
                let mut spec = match family {
                    Family::MobilenetV2 => mobilenet_v2(w),
                    Family::MobilenetV3Large => mobilenet_v3(w, &V3_LARGE, 1280),
                    Family::MobilenetV3Small => mobilenet_v3(w, &V3_SMALL, 1024),
                    Family::Efficientnet(b) => efficientnet(w, b as usize),
                    Family::MobilenetV1 => unreachable!("handled above"),
                };
                if small {
                    small_input_strides(
                        &mut spec.stem_stride,
                        spec.stages.iter_mut().flatten().map(|b| &mut b.stride),
                    );
                }
                spec.dropout = self.dropout.unwrap_or(spec.dropout);
                ZooArch::Mobilenet { family, spec }
            }
        };
        Ok(arch)
    }
}

/// The small-input stem: stride 1 in the stem and in the first stride-2 block, so the total
/// stride drops by 4 (a block keeps its residual flag as built).
fn small_input_strides<'a>(stem: &mut usize, mut blocks: impl Iterator<Item = &'a mut usize>) {
    *stem = 1;
    if let Some(s) = blocks.find(|s| **s == 2) {
        *s = 1;
    }
}

fn md(v: f64) -> usize {
    make_divisible(v, 8)
}

/// MobileNetV1 (the paper's table 1), channels rounded with [`make_divisible`].
fn mobilenet_v1(w: f64) -> MobileNetV1Spec {
    let table = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ];
    MobileNetV1Spec {
        stem: md(32.0 * w),
        stem_stride: 2,
        blocks: table
            .iter()
            .map(|&(c, stride)| SeparableSpec {
                out: md(c as f64 * w),
                stride,
            })
            .collect(),
        dropout: 0.2,
        bn_eps: 1e-5,
    }
}

/// MobileNetV2: (expansion t, channels c, repeats n, first stride s) per stage.
fn mobilenet_v2(w: f64) -> MobileNetSpec {
    let table = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let stem = md(32.0 * w);
    let mut prev = stem;
    let stages = table
        .iter()
        .map(|&(t, c, n, s)| {
            let out = md(c as f64 * w);
            (0..n)
                .map(|i| {
                    let stride = if i == 0 { s } else { 1 };
                    let b = BlockSpec {
                        expanded: (t != 1).then_some(prev * t),
                        out,
                        kernel: 3,
                        stride,
                        se: None,
                        act: Activation::Relu6,
                        residual: stride == 1 && prev == out,
                    };
                    prev = out;
                    b
                })
                .collect()
        })
        .collect();
    MobileNetSpec {
        stem,
        stem_stride: 2,
        stages,
        head: md(1280.0 * w.max(1.0)),
        hidden: None,
        dropout: 0.2,
        drop_path: 0.0,
        bn_eps: 1e-5,
        bn_momentum: 0.1,
    }
}

/// (input, kernel, expanded, out, squeeze-excitation, hard-swish, stride) per block.
type V3Row = (usize, usize, usize, usize, bool, bool, usize);

const V3_LARGE: [V3Row; 15] = [
    (16, 3, 16, 16, false, false, 1),
    (16, 3, 64, 24, false, false, 2),
    (24, 3, 72, 24, false, false, 1),
    (24, 5, 72, 40, true, false, 2),
    (40, 5, 120, 40, true, false, 1),
    (40, 5, 120, 40, true, false, 1),
    (40, 3, 240, 80, false, true, 2),
    (80, 3, 200, 80, false, true, 1),
    (80, 3, 184, 80, false, true, 1),
    (80, 3, 184, 80, false, true, 1),
    (80, 3, 480, 112, true, true, 1),
    (112, 3, 672, 112, true, true, 1),
    (112, 5, 672, 160, true, true, 2),
    (160, 5, 960, 160, true, true, 1),
    (160, 5, 960, 160, true, true, 1),
];

const V3_SMALL: [V3Row; 11] = [
    (16, 3, 16, 16, true, false, 2),
    (16, 3, 72, 24, false, false, 2),
    (24, 3, 88, 24, false, false, 1),
    (24, 5, 96, 40, true, true, 2),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 120, 48, true, true, 1),
    (48, 5, 144, 48, true, true, 1),
    (48, 5, 288, 96, true, true, 2),
    (96, 5, 576, 96, true, true, 1),
    (96, 5, 576, 96, true, true, 1),
];

/// MobileNetV3: every block of the table; the head is 6x the last block's channels.
fn mobilenet_v3(w: f64, table: &[V3Row], hidden: usize) -> MobileNetSpec {
    let adj = |c: usize| md(c as f64 * w);
    let stem = adj(table[0].0);
    let blocks: Vec<BlockSpec> = table
        .iter()
        .map(|&(cin, kernel, exp, out, se, hs, stride)| {
            let (cin, exp, out) = (adj(cin), adj(exp), adj(out));
            BlockSpec {
                expanded: (exp != cin).then_some(exp),
                out,
                kernel,
                stride,
                se: se.then(|| md((exp / 4) as f64)),
                act: if hs {
                    Activation::Hardswish
                } else {
                    Activation::Relu
                },
                residual: stride == 1 && cin == out,
            }
        })
        .collect();
    let last = blocks.last().map_or(stem, |b| b.out);
    MobileNetSpec {
        stem,
        stem_stride: 2,
        stages: vec![blocks],
        head: 6 * last,
        hidden: Some(adj(hidden)),
        dropout: 0.2,
        drop_path: 0.0,
        bn_eps: 1e-3,
        bn_momentum: 0.01,
    }
}

/// EfficientNet-B`b`: the B0 table (expansion, kernel, stride, input, output, repeats), widths
/// scaled by the width coefficient times `w`, repeats by the depth coefficient (rounded up).
fn efficientnet(w: f64, b: usize) -> MobileNetSpec {
    let table = [
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    ];
    let (wc, dc, _, dropout) = EFFICIENTNET_COEFFICIENTS[b];
    let width = wc * w;
    let adj = |c: usize| md(c as f64 * width);
    let stem = adj(32);
    let mut prev = stem;
    let stages: Vec<Vec<BlockSpec>> = table
        .iter()
        .map(|&(t, kernel, s, _, out, n)| {
            let out = adj(out);
            let repeats = (n as f64 * dc).ceil() as usize;
            (0..repeats)
                .map(|i| {
                    let stride = if i == 0 { s } else { 1 };
                    let expanded = md((prev * t) as f64);
                    let b = BlockSpec {
                        expanded: (expanded != prev).then_some(expanded),
                        out,
                        kernel,
                        stride,
                        se: Some((prev / 4).max(1)),
                        act: Activation::Silu,
                        residual: stride == 1 && prev == out,
                    };
                    prev = out;
                    b
                })
                .collect()
        })
        .collect();
    let (bn_eps, bn_momentum) = if b >= 5 { (1e-3, 0.01) } else { (1e-5, 0.1) };
    MobileNetSpec {
        stem,
        stem_stride: 2,
        head: 4 * prev,
        stages,
        hidden: None,
        dropout,
        drop_path: 0.2,
        bn_eps,
        bn_momentum,
    }
}
