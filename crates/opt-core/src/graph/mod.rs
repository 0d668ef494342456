//! The model graph: one typed, serializable description of a network's topology, from which
//! every figure and table optkit derives about a model is computed once — output shapes
//! ([`Graph::shapes`]), parameter tensors ([`Graph::params`]), analytic costs
//! ([`Graph::layers`]), structured-pruning channel groups ([`Graph::channel_groups`]) and
//! PyTorch names ([`Graph::torch_modules`]).
//!
//! A graph is a list of named [`Node`]s in execution order. Each node computes one tensor,
//! named like the node; [`INPUT`] names the image. Shapes are per image (`[c, h, w]` for
//! feature maps, `[features]` after a flatten) and inferred from the input; every operation's
//! weights are addressed by its node (`<node>.weight`, `<node>.bias`, `<node>.gamma`, ... with
//! burn's layouts: a linear weight is `[in, out]`). The operations are the ones CNNs exported
//! from PyTorch need (ResNet, MobileNet, EfficientNet, SqueezeNet): convolutions with groups,
//! strides, dilations, asymmetric padding and rectangular kernels; linear layers; batch norm;
//! ReLU, ReLU6, hard-swish, hard-sigmoid, sigmoid, SiLU; max, average and global average
//! pooling; broadcasting add and multiply (residuals, squeeze-excitation gates); channel
//! concatenation; flatten; dropout and stochastic depth (identity at inference).
//!
//! Every family lowers into a graph through
//! [`Architecture::graph`](crate::model::Architecture::graph); ONNX import lowers into the
//! same type. A graph read from a file may be hostile: [`Graph::shapes`] checks it (arity,
//! references, cycles, shapes, bounds) and every error names the node.

mod builder;
mod channels;
mod cost;
mod shape;

use serde::{Deserialize, Serialize};

pub use builder::GraphBuilder;
pub use cost::ParamSpec;

use crate::model::InputShape;

/// The name of the graph's input tensor (the images).
pub const INPUT: &str = "input";

/// The most nodes a graph may have (EfficientNet-B7 lowers to about 1,100).
pub const MAX_NODES: usize = 1 << 14;

/// The most inputs one node may read (a concatenation of many branches).
pub const MAX_INPUTS: usize = 64;

/// A network: its input, its nodes in execution order and the tensor it returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// Shape of one input image.
    pub input: InputShape,
    /// The nodes in execution order (every input is computed before it is read).
    pub nodes: Vec<Node>,
    /// The tensor the network returns (the logits, `[classes]`).
    pub output: String,
}

/// One operation and the tensors it reads; its output tensor has the node's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique name; also the module path of its weights (`blocks.0.expand.conv`).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// The tensors it reads: [`INPUT`] or earlier nodes' names.
    pub inputs: Vec<String>,
    /// PyTorch module path of its weights (`features.1.conv.0.0`), for PyTorch-named files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch: Option<String>,
    /// Name of the channel group whose channels this node computes, when it starts one
    /// (structured pruning); the node's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The operations a graph holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// 2-D convolution of a `[c, h, w]` map; weight `[out, c / groups, kh, kw]`, optional
    /// bias `[out]`.
    Conv2d {
        /// Output channels.
        out_channels: usize,
        /// Kernel `[height, width]`.
        kernel: [usize; 2],
        /// Stride `[height, width]`.
        stride: [usize; 2],
        /// Zero padding `[top, left, bottom, right]` (ONNX's order).
        padding: [usize; 4],
        /// Dilation `[height, width]`.
        dilation: [usize; 2],
        /// Groups: 1 dense, the input channels for a depthwise convolution.
        groups: usize,
        /// Whether it adds a bias.
        bias: bool,
    },
    /// Fully connected layer on `[features]`; weight `[in, out]` (burn's layout), optional
    /// bias `[out]`.
    Linear {
        /// Output features.
        out_features: usize,
        /// Whether it adds a bias.
        bias: bool,
    },
    /// Batch normalization over axis 0 (channels or features): `gamma`, `beta`,
    /// `running_mean`, `running_var`.
    BatchNorm {
        /// Added to the variance.
        eps: f64,
        /// Running-statistics momentum (PyTorch's convention).
        momentum: f64,
    },
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x * relu6(x + 3) / 6`.
    HardSwish,
    /// `relu6(x + 3) / 6`.
    HardSigmoid,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x * sigmoid(x)`.
    Silu,
    /// Max pooling of a `[c, h, w]` map (floor rounding).
    MaxPool {
        /// Window `[height, width]`.
        kernel: [usize; 2],
        /// Stride `[height, width]`.
        stride: [usize; 2],
        /// Padding `[top, left, bottom, right]` (padded values never win).
        padding: [usize; 4],
    },
    /// Average pooling of a `[c, h, w]` map (floor rounding).
    AvgPool {
        /// Window `[height, width]`.
        kernel: [usize; 2],
        /// Stride `[height, width]`.
        stride: [usize; 2],
        /// Padding `[top, left, bottom, right]`.
        padding: [usize; 4],
        /// Whether padded zeros count in the divisor.
        count_include_pad: bool,
    },
    /// Mean over each channel's map: `[c, h, w]` -> `[c, 1, 1]`.
    GlobalAvgPool,
    /// Elementwise sum of two tensors of one rank; axes of size 1 broadcast.
    Add,
    /// Elementwise product of two tensors of one rank; axes of size 1 broadcast (a
    /// squeeze-excitation gate `[c, 1, 1]` scales a `[c, h, w]` map).
    Mul,
    /// Concatenation of `[c_i, h, w]` maps along the channels.
    Concat,
    /// `[c, h, w]` -> `[c * h * w]` (channel-major, as PyTorch's `flatten(1)`).
    Flatten,
    /// Dropout with probability `p` in training, identity at inference.
    Dropout {
        /// Probability of zeroing a value.
        p: f64,
    },
    /// Stochastic depth on a residual branch: the whole branch of an image is dropped with
    /// probability `p` in training (survivors scaled by `1 / (1 - p)`); identity at inference.
    StochasticDepth {
        /// Probability of dropping the branch.
        p: f64,
    },
}

impl Op {
    /// The operation's name as written in files (`conv2d`, `global_avg_pool`).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "conv2d",
            Op::Linear { .. } => "linear",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::HardSwish => "hard_swish",
            Op::HardSigmoid => "hard_sigmoid",
            Op::Sigmoid => "sigmoid",
            Op::Silu => "silu",
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Concat => "concat",
            Op::Flatten => "flatten",
            Op::Dropout { .. } => "dropout",
            Op::StochasticDepth { .. } => "stochastic_depth",
        }
    }

    /// A square `k x k` convolution with "same" padding `(k - 1) / 2` on every side.
    pub fn conv(out_channels: usize, k: usize, stride: usize, groups: usize, bias: bool) -> Op {
        let p = k.saturating_sub(1) / 2;
        Op::Conv2d {
            out_channels,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [p; 4],
            dilation: [1, 1],
            groups,
            bias,
        }
    }

    /// The same convolution without padding (a "valid" convolution).
    pub fn unpadded(self) -> Op {
        match self {
            Op::Conv2d {
                out_channels,
                kernel,
                stride,
                dilation,
                groups,
                bias,
                ..
            } => Op::Conv2d {
                out_channels,
                kernel,
                stride,
                padding: [0; 4],
                dilation,
                groups,
                bias,
            },
            other => other,
        }
    }

    /// A linear layer with bias.
    pub fn linear(out_features: usize) -> Op {
        Op::Linear {
            out_features,
            bias: true,
        }
    }

    /// A square `k x k` max pooling with stride `k` and no padding.
    pub fn max_pool(k: usize) -> Op {
        Op::MaxPool {
            kernel: [k, k],
            stride: [k, k],
            padding: [0; 4],
        }
    }

    /// Whether the operation has weights.
    pub fn has_params(&self) -> bool {
        matches!(
            self,
            Op::Conv2d { .. } | Op::Linear { .. } | Op::BatchNorm { .. }
        )
    }
}

impl Graph {
    /// Index of every node by name (names are checked unique by [`Graph::shapes`]).
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Our module path -> PyTorch module path for every node with weights and a PyTorch
    /// name; `None` when no node has one (our names are then the interchange names).
    pub fn torch_modules(&self) -> Option<Vec<(String, String)>> {
        let names: Vec<(String, String)> = self
            .nodes
            .iter()
            .filter(|n| n.op.has_params())
            .filter_map(|n| n.torch.clone().map(|t| (n.name.clone(), t)))
            .collect();
        (!names.is_empty()).then_some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::MNIST;

    /// A conv, ReLU, pooling, flatten and linear head on MNIST-sized input.
    pub(super) fn small() -> Graph {
        let mut g = GraphBuilder::new(MNIST);
        g.then("conv", Op::conv(4, 3, 2, 1, true));
        g.then("relu", Op::Relu);
        g.then("pool", Op::GlobalAvgPool);
        g.then("flatten", Op::Flatten);
        g.then("fc", Op::linear(10));
        g.finish()
    }

    #[test]
    fn graphs_round_trip_through_json_and_refuse_unknown_keys() {
        let g = small();
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<Graph>(&json).unwrap(), g);
        let bad = json.replacen("\"bias\"", "\"biass\"", 1);
        assert!(serde_json::from_str::<Graph>(&bad).is_err());
        let bad = json.replacen("{\"type\":\"relu\"}", "{\"type\":\"gelu\"}", 1);
        let e = serde_json::from_str::<Graph>(&bad).unwrap_err().to_string();
        assert!(e.contains("gelu"), "{e}");
    }
}
