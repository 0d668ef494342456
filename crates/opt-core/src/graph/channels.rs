//! Structured-pruning channel groups by dependency analysis of a graph.
//!
//! Every dense convolution and linear layer computes a new set of channels; the tensors
//! that follow a set are found by walking the graph: a batch norm normalizes its input's
//! channels, activations, pooling and dropout keep them, a depthwise convolution computes its
//! input's channels again (tied to them), a flatten turns each channel into a block of
//! `h * w` features, and the next convolution or linear layer reads them (its input axis).
//! An `Add` ties its inputs' sets into one (a residual chain is one group); a `Mul` whose
//! second factor is broadcast over the map (a squeeze-excitation gate `[c, 1, 1]`) ties the
//! gate's set to the map's, and the layer that computed the gate becomes a
//! [`SliceRole::Gate`] of the group. Sets that reach the image or the logits, or pass
//! through an operation whose channels cannot follow a plain subset (a grouped convolution
//! that is not depthwise, a concatenation, a batch norm over flattened features), are not
//! prunable and give no group.
//!
//! Groups come in the order of their first producing node, named by that node's `group`
//! label (or its name); slices in node order.

use std::collections::HashMap;

use super::{Graph, INPUT, Op};
use crate::error::Result;
use crate::model::{ChannelGroup, SliceRole, TensorSlice};

/// The channels of one tensor: one set per part along its channel axis (several after a
/// concatenation) and the consecutive features per channel (after a flatten).
#[derive(Debug, Clone)]
struct Chan {
    parts: Vec<usize>,
    block: usize,
}

/// Union-find over channel sets, with the slices emitted so far.
#[derive(Default)]
struct Sets {
    parent: Vec<usize>,
    fixed: Vec<bool>,
    channels: Vec<usize>,
    names: Vec<String>,
    slices: Vec<(usize, TensorSlice)>,
}

impl Sets {
    fn new_set(&mut self, channels: usize, name: &str, fixed: bool) -> usize {
        let s = self.parent.len();
        self.parent.push(s);
        self.fixed.push(fixed);
        self.channels.push(channels);
        self.names.push(name.to_string());
        s
    }

    fn find(&mut self, mut s: usize) -> usize {
        while self.parent[s] != s {
            self.parent[s] = self.parent[self.parent[s]];
            s = self.parent[s];
        }
        s
    }

    /// Ties two sets; the earlier one names the group.
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            let (root, other) = (a.min(b), a.max(b));
            self.parent[other] = root;
            self.fixed[root] |= self.fixed[other];
        }
    }

    fn fix(&mut self, c: &Chan) {
        for &p in &c.parts {
            let r = self.find(p);
            self.fixed[r] = true;
        }
    }

    /// The one set of a tensor with block 1, or `None` after fixing its sets.
    fn single(&mut self, c: &Chan) -> Option<usize> {
        match c.parts[..] {
            [s] if c.block == 1 => Some(s),
            _ => {
                self.fix(c);
                None
            }
        }
    }

    fn slice(&mut self, set: usize, path: String, axis: usize, block: usize, role: SliceRole) {
        self.slices
            .push((set, TensorSlice::new(path, axis, role).with_block(block)));
    }

    /// A new set of `channels` computed by the layer whose weight runs over them along
    /// `weight_axis` (and whose bias, if any, along axis 0).
    fn produce(
        &mut self,
        channels: usize,
        name: &str,
        fixed: bool,
        node: &str,
        weight_axis: usize,
        bias: bool,
    ) -> Chan {
        let o = self.new_set(channels, name, fixed);
        self.slice(
            o,
            format!("{node}.weight"),
            weight_axis,
            1,
            SliceRole::Producer,
        );
        if bias {
            self.slice(o, format!("{node}.bias"), 0, 1, SliceRole::Producer);
        }
        Chan {
            parts: vec![o],
            block: 1,
        }
    }

    /// Ties a gate's set to the map's: the gate's producers become gates of the map's group.
    fn gate(&mut self, map: usize, gate: usize) {
        let (m, g) = (self.find(map), self.find(gate));
        if m == g {
            return;
        }
        for i in 0..self.slices.len() {
            let s = self.slices[i].0;
            if self.find(s) == g && self.slices[i].1.role == SliceRole::Producer {
                self.slices[i].1.role = SliceRole::Gate;
            }
        }
        self.union(m, g);
    }
}

impl Graph {
    /// The channel groups structured pruning may shrink (see the module documentation), after
    /// checking the graph.
    pub fn channel_groups(&self) -> Result<Vec<ChannelGroup>> {
        let shapes = self.shapes()?;
        let mut sets = Sets::default();
        let mut chans: HashMap<&str, (Chan, &[usize])> = HashMap::new();
        let input_shape = [self.input.channels, self.input.height, self.input.width];
        let image = sets.new_set(self.input.channels, INPUT, true);
        chans.insert(
            INPUT,
            (
                Chan {
                    parts: vec![image],
                    block: 1,
                },
                &input_shape[..],
            ),
        );
        for (n, y) in self.nodes.iter().zip(&shapes) {
            let args: Vec<(Chan, &[usize])> =
                n.inputs.iter().map(|t| chans[t.as_str()].clone()).collect();
            let (x, xs) = args[0].clone();
            let label = n.group.as_deref().unwrap_or(&n.name);
            let path = |p: &str| format!("{}.{p}", n.name);
            let out = match n.op {
                Op::Conv2d {
                    out_channels,
                    groups,
                    bias,
                    ..
                } => {
                    let cin = xs[0];
                    if groups > 1 && groups == cin && out_channels == cin {
                        // Depthwise: its outputs are its inputs' channels.
                        match sets.single(&x) {
                            Some(s) => {
                                sets.slice(s, path("weight"), 0, 1, SliceRole::Producer);
                                if bias {
                                    sets.slice(s, path("bias"), 0, 1, SliceRole::Producer);
                                }
                                x
                            }
                            None => Chan {
                                parts: vec![sets.new_set(out_channels, label, true)],
                                block: 1,
                            },
                        }
                    } else {
                        let dense = groups == 1;
                        if !dense {
                            sets.fix(&x);
                        } else if let Some(s) = sets.single(&x) {
                            sets.slice(s, path("weight"), 1, 1, SliceRole::Consumer);
                        }
                        sets.produce(out_channels, label, !dense, &n.name, 0, bias)
                    }
                }
                Op::Linear { out_features, bias } => {
                    if let [s] = x.parts[..] {
                        sets.slice(s, path("weight"), 0, x.block, SliceRole::Consumer);
                    } else {
                        sets.fix(&x);
                    }
                    sets.produce(out_features, label, false, &n.name, 1, bias)
                }
                Op::BatchNorm { .. } => {
                    if let Some(s) = sets.single(&x) {
                        for p in ["gamma", "beta", "running_mean", "running_var"] {
                            sets.slice(s, path(p), 0, 1, SliceRole::Norm);
                        }
                    }
                    x
                }
                Op::Flatten => Chan {
                    block: x.block * xs[1..].iter().product::<usize>(),
                    parts: x.parts,
                },
                Op::Add | Op::Mul => {
                    let (z, zs) = args[1].clone();
                    if xs[0] != zs[0] {
                        // One side has one channel that broadcasts: it cannot follow a subset.
                        let (one, other) = if xs[0] == 1 { (x, z) } else { (z, x) };
                        sets.fix(&one);
                        other
                    } else {
                        match (sets.single(&x), sets.single(&z)) {
                            (Some(a), Some(b)) => {
                                let numel = |s: &[usize]| s.iter().product::<usize>();
                                match n.op {
                                    Op::Mul if numel(zs) < numel(xs) => sets.gate(a, b),
                                    Op::Mul if numel(xs) < numel(zs) => sets.gate(b, a),
                                    _ => sets.union(a, b),
                                }
                                if numel(zs) > numel(xs) { z } else { x }
                            }
                            _ => {
                                sets.fix(&z);
                                sets.fix(&x);
                                x
                            }
                        }
                    }
                }
                Op::Concat => {
                    let mut parts = Vec::new();
                    for (c, _) in &args {
                        sets.fix(c);
                        parts.extend(&c.parts);
                    }
                    Chan { parts, block: 1 }
                }
                Op::Relu
                | Op::Relu6
                | Op::HardSwish
                | Op::HardSigmoid
                | Op::Sigmoid
                | Op::Silu
                | Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Dropout { .. }
                | Op::StochasticDepth { .. } => x,
            };
            chans.insert(&n.name, (out, y));
        }
        let (logits, _) = chans[self.output.as_str()].clone();
        sets.fix(&logits);
        let roots: Vec<usize> = (0..sets.parent.len()).map(|s| sets.find(s)).collect();
        let mut groups: Vec<Option<ChannelGroup>> = (0..roots.len())
            .map(|s| {
                (roots[s] == s && !sets.fixed[s])
                    .then(|| ChannelGroup::new(sets.names[s].clone(), sets.channels[s]))
            })
            .collect();
        for (s, slice) in sets.slices {
            if let Some(g) = groups[roots[s]].as_mut() {
                g.slices.push(slice);
            }
        }
        Ok(groups
            .into_iter()
            .flatten()
            .filter(|g| g.slices.iter().any(|s| s.role == SliceRole::Producer))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::{GraphBuilder, Op};
    use crate::model::SliceRole;
    use crate::test_util::MNIST;

    /// Stem, a residual block with a squeeze-excitation gate, a concatenation, a head.
    #[test]
    fn residuals_gates_and_concatenations() {
        let bn = || Op::BatchNorm {
            eps: 1e-5,
            momentum: 0.1,
        };
        let mut g = GraphBuilder::new(MNIST);
        g.then("stem", Op::conv(8, 3, 1, 1, false));
        g.then("stem.bn", bn());
        let stem = g.then("stem.act", Op::Relu);
        g.then("dw", Op::conv(8, 3, 1, 8, false));
        let dw = g.then("dw.bn", bn());
        g.then("se.pool", Op::GlobalAvgPool);
        g.then("se.fc1", Op::conv(2, 1, 1, 1, true));
        g.then("se.fc2", Op::conv(8, 1, 1, 1, true));
        let gate = g.then("se.gate", Op::Sigmoid);
        g.node("se.scale", Op::Mul, &[&dw, &gate]);
        g.then("project", Op::conv(8, 1, 1, 1, false));
        g.then("project.bn", bn());
        let sum = g.node("add", Op::Add, &["project.bn", &stem]);
        let left = g.node("left", Op::conv(4, 1, 1, 1, false), &[&sum]);
        let right = g.node("right", Op::conv(4, 3, 1, 1, false), &[&sum]);
        g.node("cat", Op::Concat, &[&left, &right]);
        g.then("head", Op::conv(16, 1, 1, 1, false));
        g.then("pool", Op::GlobalAvgPool);
        g.then("flat", Op::Flatten);
        g.then("fc", Op::linear(10));
        let groups = g.finish().channel_groups().unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        // left and right feed a concatenation: not prunable in this version.
        assert_eq!(names, ["stem", "se.fc1", "head"]);
        let stem = &groups[0];
        let slices: Vec<(&str, usize, SliceRole)> = stem
            .slices
            .iter()
            .map(|s| (s.path.as_str(), s.axis, s.role))
            .collect();
        use SliceRole::*;
        assert_eq!(
            slices,
            [
                ("stem.weight", 0, Producer),
                ("stem.bn.gamma", 0, Norm),
                ("stem.bn.beta", 0, Norm),
                ("stem.bn.running_mean", 0, Norm),
                ("stem.bn.running_var", 0, Norm),
                ("dw.weight", 0, Producer),
                ("dw.bn.gamma", 0, Norm),
                ("dw.bn.beta", 0, Norm),
                ("dw.bn.running_mean", 0, Norm),
                ("dw.bn.running_var", 0, Norm),
                ("se.fc1.weight", 1, Consumer),
                ("se.fc2.weight", 0, Gate),
                ("se.fc2.bias", 0, Gate),
                ("project.weight", 1, Consumer),
                ("project.weight", 0, Producer),
                ("project.bn.gamma", 0, Norm),
                ("project.bn.beta", 0, Norm),
                ("project.bn.running_mean", 0, Norm),
                ("project.bn.running_var", 0, Norm),
                ("left.weight", 1, Consumer),
                ("right.weight", 1, Consumer),
            ]
        );
        let head = &groups[2];
        assert_eq!(head.slices.last().unwrap().path, "fc.weight");
        assert_eq!(head.slices.last().unwrap().block, 1);
    }
}
