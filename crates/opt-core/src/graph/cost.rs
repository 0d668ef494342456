//! What a graph's weights are and what it costs: the parameter tensors of every node
//! ([`Graph::params`]) and the analytic cost of every layer with parameters
//! ([`Graph::layers`]).
//!
//! MAC convention: one multiply-accumulate = 1 MAC, counted for convolutions
//! (`out_h * out_w * out_c * in_c / groups * k_h * k_w`) and linear layers (`in * out`) per
//! image; bias additions, batch norm, activations, pooling, additions and products count 0.
//! Parameters are counted as PyTorch does: weights, biases and batch-norm scale and shift,
//! not batch-norm running statistics.

use super::{Graph, INPUT, Op};
use crate::error::Result;
use crate::model::{LayerCost, LayerKind};

/// One weight tensor of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// The node that owns it.
    pub node: String,
    /// Its path (`<node>.weight`).
    pub path: String,
    /// Its shape (burn's layouts: a linear weight is `[in, out]`).
    pub shape: Vec<usize>,
    /// Batch-norm running statistics: state, not trainable parameters.
    pub running_stat: bool,
}

impl Graph {
    /// The input shape of every node's first input (the image for nodes reading [`INPUT`]).
    fn first_input_shapes(&self, shapes: &[Vec<usize>]) -> Vec<Vec<usize>> {
        let input = vec![self.input.channels, self.input.height, self.input.width];
        let index: std::collections::HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        self.nodes
            .iter()
            .map(|n| match n.inputs.first().map(String::as_str) {
                Some(INPUT) | None => input.clone(),
                Some(t) => index.get(t).map_or_else(Vec::new, |&j| shapes[j].clone()),
            })
            .collect()
    }

    /// Every weight tensor, node by node in order (weight, bias; gamma, beta, running mean,
    /// running variance), after checking the graph.
    pub fn params(&self) -> Result<Vec<ParamSpec>> {
        let shapes = self.shapes()?;
        let inputs = self.first_input_shapes(&shapes);
        let mut out = Vec::new();
        for (n, x) in self.nodes.iter().zip(&inputs) {
            for (name, shape, running_stat) in node_params(&n.op, x) {
                out.push(ParamSpec {
                    node: n.name.clone(),
                    path: format!("{}.{name}", n.name),
                    shape,
                    running_stat,
                });
            }
        }
        Ok(out)
    }

    /// Every layer with parameters (convolution, batch norm, linear) in node order, with its
    /// output shape and cost, after checking the graph.
    pub fn layers(&self) -> Result<Vec<LayerCost>> {
        let shapes = self.shapes()?;
        let inputs = self.first_input_shapes(&shapes);
        let numel = |s: &[usize]| s.iter().fold(1u64, |a, &v| a.saturating_mul(v as u64));
        let mut out = Vec::new();
        for ((n, x), y) in self.nodes.iter().zip(&inputs).zip(&shapes) {
            let kind = match n.op {
                Op::Conv2d { .. } => LayerKind::Conv2d,
                Op::Linear { .. } => LayerKind::Linear,
                Op::BatchNorm { .. } => LayerKind::BatchNorm,
                _ => continue,
            };
            let tensors = node_params(&n.op, x);
            let params = tensors
                .iter()
                .filter(|(_, _, stat)| !stat)
                .fold(0u64, |a, (_, s, _)| a.saturating_add(numel(s)));
            // A weight's every value is one multiply-accumulate per output position.
            let weights = numel(&tensors[0].1);
            let macs = match kind {
                LayerKind::Conv2d => weights.saturating_mul(numel(&y[1..])),
                LayerKind::Linear => weights,
                LayerKind::BatchNorm => 0,
            };
            out.push(LayerCost {
                name: n.name.clone(),
                kind,
                output: y.clone(),
                params,
                macs,
            });
        }
        Ok(out)
    }
}

/// The weight tensors of one operation on input shape `x`: name, shape (burn's layouts) and
/// whether it is running state rather than a trainable parameter.
fn node_params(op: &Op, x: &[usize]) -> Vec<(&'static str, Vec<usize>, bool)> {
    match *op {
        Op::Conv2d {
            out_channels,
            kernel,
            groups,
            bias,
            ..
        } => {
            let mut t = vec![(
                "weight",
                vec![out_channels, x[0] / groups, kernel[0], kernel[1]],
                false,
            )];
            if bias {
                t.push(("bias", vec![out_channels], false));
            }
            t
        }
        Op::Linear { out_features, bias } => {
            let mut t = vec![("weight", vec![x[0], out_features], false)];
            if bias {
                t.push(("bias", vec![out_features], false));
            }
            t
        }
        Op::BatchNorm { .. } => [
            ("gamma", false),
            ("beta", false),
            ("running_mean", true),
            ("running_var", true),
        ]
        .into_iter()
        .map(|(name, stat)| (name, vec![x[0]], stat))
        .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::{GraphBuilder, Op};
    use crate::model::LayerKind;
    use crate::test_util::MNIST;

    #[test]
    fn grouped_convolutions_cost_a_fraction() {
        let mut g = GraphBuilder::new(MNIST);
        g.then("stem", Op::conv(8, 3, 1, 1, false));
        g.then("dw", Op::conv(8, 3, 2, 8, true));
        g.then("grouped", Op::conv(16, 1, 1, 4, false));
        g.then(
            "bn",
            Op::BatchNorm {
                eps: 1e-5,
                momentum: 0.1,
            },
        );
        g.then("pool", Op::GlobalAvgPool);
        g.then("flat", Op::Flatten);
        g.then("fc", Op::linear(10));
        let g = g.finish();
        let l = g.layers().unwrap();
        let figures: Vec<(&str, LayerKind, u64, u64)> = l
            .iter()
            .map(|l| (l.name.as_str(), l.kind, l.params, l.macs))
            .collect();
        assert_eq!(
            figures,
            [
                ("stem", LayerKind::Conv2d, 72, 72 * 28 * 28),
                ("dw", LayerKind::Conv2d, 72 + 8, 72 * 14 * 14),
                ("grouped", LayerKind::Conv2d, 16 * 2, 32 * 14 * 14),
                ("bn", LayerKind::BatchNorm, 32, 0),
                ("fc", LayerKind::Linear, 170, 160),
            ]
        );
        let p = g.params().unwrap();
        let dw = p.iter().find(|p| p.path == "dw.weight").unwrap();
        assert_eq!(dw.shape, [8, 1, 3, 3]);
        let fc = p.iter().find(|p| p.path == "fc.weight").unwrap();
        assert_eq!(fc.shape, [16, 10]);
        assert_eq!(p.iter().filter(|p| p.running_stat).count(), 2);
    }
}
