//! What structured pruning needs to know about a model: its prunable layers and its channel
//! groups (coupled tensors that must lose the same channels), and how the spec shrinks.
//!
//! A [`ChannelGroup`] lists every tensor slice that follows one set of channels: the
//! convolution or linear layer that produces them ([`SliceRole::Producer`]), its batch norm
//! ([`SliceRole::Norm`]), every layer that consumes them ([`SliceRole::Consumer`]): the next
//! convolution's input axis, a depthwise convolution whose channels are tied to its input,
//! squeeze-excitation, residual partners, and the linear layer after a flatten, where one
//! channel is a block of `h * w` consecutive input features. Keeping channels `[2, 5]` of a
//! group keeps index 2 and 5 (or the blocks `2*b..3*b` and `5*b..6*b`) along each slice's axis.
//!
//! The groups are computed from the model graph by dependency analysis
//! ([`Graph::channel_groups`](crate::graph::Graph::channel_groups)); a family shrinks through
//! [`Architecture::with_group_widths`](super::Architecture::with_group_widths).

use serde::{Deserialize, Serialize};

use super::spec::{LayerCost, LayerKind};

/// What a slice of a channel group is to the group's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SliceRole {
    /// Output axis of the weight (or the bias) of the layer that computes the channels.
    Producer,
    /// Batch-norm scale, shift or running statistic over the channels.
    Norm,
    /// Input axis of a layer that reads the channels.
    Consumer,
    /// Output axis of a layer that rescales the channels without computing them (the second
    /// squeeze-excitation convolution): sliced with them, ignored by importance criteria.
    Gate,
}

/// One tensor along one axis of a channel group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSlice {
    /// Parameter path (`blocks.0.conv.weight`, `fc1.weight`).
    pub path: String,
    /// Axis of the tensor that runs over the group's channels.
    pub axis: usize,
    /// Consecutive indices per channel along the axis: 1, or `h * w` for the linear layer
    /// after a flatten of `[c, h, w]`.
    pub block: usize,
    /// What the slice is to the channels.
    pub role: SliceRole,
}

impl TensorSlice {
    /// A slice with block 1.
    pub fn new(path: impl Into<String>, axis: usize, role: SliceRole) -> Self {
        Self {
            path: path.into(),
            axis,
            block: 1,
            role,
        }
    }

    /// The same slice with `block` consecutive indices per channel.
    pub fn with_block(mut self, block: usize) -> Self {
        self.block = block;
        self
    }
}

/// A set of channels shared by coupled layers; pruning removes the same channels from every
/// slice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelGroup {
    /// Name of the group (the producing layer, or `blocks.3.expanded`).
    pub name: String,
    /// Number of channels.
    pub channels: usize,
    /// Every tensor slice that follows the channels.
    pub slices: Vec<TensorSlice>,
}

impl ChannelGroup {
    /// A group of `channels` channels with no slices yet.
    pub fn new(name: impl Into<String>, channels: usize) -> Self {
        Self {
            name: name.into(),
            channels,
            slices: Vec::new(),
        }
    }
}

/// A layer whose weights unstructured pruning may zero: every convolution and linear layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunableLayer {
    /// Layer path (`conv1`, `blocks.2.depthwise.conv`).
    pub name: String,
    /// Convolution or linear.
    pub kind: LayerKind,
    /// Path of its weight tensor (`conv1.weight`).
    pub weight: String,
}

/// The convolution and linear layers among `layers`, with their weight paths.
pub fn prunable_layers(layers: &[LayerCost]) -> Vec<PrunableLayer> {
    layers
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::Conv2d | LayerKind::Linear))
        .map(|l| PrunableLayer {
            name: l.name.clone(),
            kind: l.kind,
            weight: format!("{}.weight", l.name),
        })
        .collect()
}

/// Checks that `widths` has one entry per group, each between 1 and the group's channels.
pub fn check_group_widths(groups: &[ChannelGroup], widths: &[usize]) -> crate::Result<()> {
    if widths.len() != groups.len() {
        return Err(crate::CoreError::invalid(
            "widths",
            format!("{widths:?}"),
            format!(
                "{} widths for {} channel groups; give one width per group",
                widths.len(),
                groups.len()
            ),
        ));
    }
    for (g, &w) in groups.iter().zip(widths) {
        if w == 0 || w > g.channels {
            return Err(crate::CoreError::invalid(
                format!("widths[{}]", g.name),
                w,
                format!("must be between 1 and the group's {} channels", g.channels),
            ));
        }
    }
    Ok(())
}

/// Checks a family's channel groups against a built module: every slice names an existing
/// tensor whose axis has `channels * block` entries, and no tensor axis is claimed by two
/// groups. Tests call it on every family; structured pruning calls it before slicing anything.
pub fn verify_groups<B: burn::tensor::backend::Backend, M: burn::module::Module<B>>(
    module: &M,
    groups: &[ChannelGroup],
) -> Result<(), String> {
    let shapes: std::collections::HashMap<String, Vec<usize>> =
        super::params::param_entries(module, false)
            .into_iter()
            .map(|e| (e.path, e.shape))
            .collect();
    let mut claimed = std::collections::HashMap::new();
    for g in groups {
        for s in &g.slices {
            let shape = shapes.get(&s.path).ok_or_else(|| {
                format!(
                    "group {} names tensor {}, which the model does not have",
                    g.name, s.path
                )
            })?;
            let len = shape.get(s.axis).copied().ok_or_else(|| {
                format!(
                    "group {}: tensor {} {shape:?} has no axis {}",
                    g.name, s.path, s.axis
                )
            })?;
            if len != g.channels * s.block {
                return Err(format!(
                    "group {} has {} channels but tensor {} {shape:?} has {len} entries on axis {} \
                     (expected {} x block {})",
                    g.name, g.channels, s.path, s.axis, g.channels, s.block
                ));
            }
            if let Some(other) = claimed.insert((s.path.clone(), s.axis), g.name.clone()) {
                return Err(format!(
                    "axis {} of tensor {} belongs to both group {other} and group {}",
                    s.axis, s.path, g.name
                ));
            }
        }
    }
    Ok(())
}
