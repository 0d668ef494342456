//! The MobileNets and EfficientNets as model graphs, with their PyTorch module names: the one
//! place their topology is written.
//!
//! PyTorch names follow torchvision (MobileNetV2: `features.{i}.conv.{k}`, MobileNetV3:
//! `features.{i}.block.{k}`, EfficientNet: `features.{stage}.{j}.block.{k}`). MobileNetV1 is
//! not in torchvision; it gets names in the same style: `features.0` the stem,
//! `features.{i}.{0,1}` a block's depthwise convolution and batch norm, `features.{i}.{3,4}`
//! its pointwise ones, `classifier.1` the linear layer.

use opt_core::graph::{Graph, GraphBuilder, Op};
use opt_core::model::InputShape;

use crate::activation::Activation;
use crate::family::Family;
use crate::spec::{MobileNetSpec, MobileNetV1Spec};

impl Activation {
    /// The graph operation, `None` for the identity.
    pub fn op(self) -> Option<Op> {
        match self {
            Activation::Identity => None,
            Activation::Relu => Some(Op::Relu),
            Activation::Relu6 => Some(Op::Relu6),
            Activation::Hardswish => Some(Op::HardSwish),
            Activation::Silu => Some(Op::Silu),
            Activation::Sigmoid => Some(Op::Sigmoid),
            Activation::Hardsigmoid => Some(Op::HardSigmoid),
        }
    }
}

/// Appends the activation `{name}.act` (nothing for the identity).
fn act(g: &mut GraphBuilder, name: &str, a: Activation) {
    if let Some(op) = a.op() {
        g.then(format!("{name}.act"), op);
    }
}

/// Batch-norm settings of a family's spec.
#[derive(Clone, Copy)]
struct Bn {
    eps: f64,
    momentum: f64,
}

/// Convolution `{name}.conv` (`conv`, no bias), batch norm `{name}.bn` and activation
/// `{name}.act`; PyTorch names for the convolution and the batch norm when given, and the
/// label of the channel group the convolution starts.
fn conv_bn(
    g: &mut GraphBuilder,
    name: &str,
    torch: [Option<String>; 2],
    group: Option<String>,
    conv: Op,
    bn: Bn,
    a: Activation,
) {
    let [tc, tb] = torch;
    g.then(format!("{name}.conv"), conv);
    if let Some(t) = tc {
        g.torch(t);
    }
    if let Some(l) = group {
        g.group(l);
    }
    g.then(
        format!("{name}.bn"),
        Op::BatchNorm {
            eps: bn.eps,
            momentum: bn.momentum,
        },
    );
    if let Some(t) = tb {
        g.torch(t);
    }
    act(g, name, a);
}

/// A graph that starts with the 3x3 stem `stem.{conv,bn,act}` (`features.0` in PyTorch).
fn stem(input: InputShape, out: usize, stride: usize, bn: Bn, a: Activation) -> GraphBuilder {
    let mut g = GraphBuilder::new(input);
    let conv = Op::conv(out, 3, stride, 1, false);
    conv_bn(
        &mut g,
        "stem",
        unit("features.0"),
        Some("stem".into()),
        conv,
        bn,
        a,
    );
    g
}

/// PyTorch names of a conv-bn unit at `{t}.0` and `{t}.1`.
fn unit(t: &str) -> [Option<String>; 2] {
    [Some(format!("{t}.0")), Some(format!("{t}.1"))]
}

/// Dropout and the classifier, named `torch` in PyTorch.
fn classifier(g: &mut GraphBuilder, dropout: f64, classes: usize, torch: &str) {
    g.then("dropout", Op::Dropout { p: dropout });
    g.then("classifier", Op::linear(classes));
    g.torch(torch);
}

impl MobileNetSpec {
    /// The graph of this spec for `family` (activations and PyTorch names depend on it).
    pub fn lower(&self, family: Family, input: InputShape, classes: usize) -> Graph {
        let bn = Bn {
            eps: self.bn_eps,
            momentum: self.bn_momentum,
        };
        let stem_act = family.stem_activation();
        let (se_act, se_gate) = family.se_activations();
        let mut g = stem(input, self.stem, self.stem_stride, bn, stem_act);
        let blocks = self.blocks();
        let total = blocks.len().max(1) as f64;
        let mut i = 0;
        for (s, stage) in self.stages.iter().enumerate() {
            for (j, b) in stage.iter().enumerate() {
                let name = format!("blocks.{i}");
                let cin = blocks[i].0;
                let x = g.last();
                // PyTorch's container of the block's layers, and how a layer's index reads.
                let (t, v2) = match family {
                    Family::MobilenetV2 => (format!("features.{}.conv", i + 1), true),
                    Family::Efficientnet(_) => (format!("features.{}.{j}.block", s + 1), false),
                    _ => (format!("features.{}.block", i + 1), false),
                };
                let mut k = 0;
                let hidden = b.expanded.unwrap_or(cin);
                if let Some(e) = b.expanded {
                    conv_bn(
                        &mut g,
                        &format!("{name}.expand"),
                        unit(&format!("{t}.{k}")),
                        Some(format!("{name}.expanded")),
                        Op::conv(e, 1, 1, 1, false),
                        bn,
                        b.act,
                    );
                    k += 1;
                }
                conv_bn(
                    &mut g,
                    &format!("{name}.depthwise"),
                    unit(&format!("{t}.{k}")),
                    None,
                    Op::conv(hidden, b.kernel, b.stride, hidden, false),
                    bn,
                    b.act,
                );
                k += 1;
                if let Some(sq) = b.se {
                    let map = g.last();
                    let se = format!("{name}.se");
                    g.then(format!("{se}.pool"), Op::GlobalAvgPool);
                    g.then(format!("{se}.fc1"), Op::conv(sq, 1, 1, 1, true));
                    g.torch(format!("{t}.{k}.fc1")).group(&se);
                    act(&mut g, &se, se_act);
                    g.then(format!("{se}.fc2"), Op::conv(hidden, 1, 1, 1, true));
                    g.torch(format!("{t}.{k}.fc2"));
                    let gate = se_gate.op().map(|op| g.then(format!("{se}.gate"), op));
                    let gate = gate.unwrap_or_else(|| g.last());
                    g.node(format!("{se}.scale"), Op::Mul, &[&map, &gate]);
                    k += 1;
                }
                let project = if v2 {
                    [Some(format!("{t}.{k}")), Some(format!("{t}.{}", k + 1))]
                } else {
                    unit(&format!("{t}.{k}"))
                };
                conv_bn(
                    &mut g,
                    &format!("{name}.project"),
                    project,
                    Some(format!("{name}.out")),
                    Op::conv(b.out, 1, 1, 1, false),
                    bn,
                    Activation::Identity,
                );
                if b.residual {
                    let p = self.drop_path * i as f64 / total;
                    if p > 0.0 {
                        g.then(format!("{name}.drop_path"), Op::StochasticDepth { p });
                    }
                    let y = g.last();
                    g.node(format!("{name}.add"), Op::Add, &[&y, &x]);
                }
                i += 1;
            }
        }
        let head = match family {
            Family::Efficientnet(_) => self.stages.len() + 1,
            _ => i + 1,
        };
        let torch = unit(&format!("features.{head}"));
        let conv = Op::conv(self.head, 1, 1, 1, false);
        conv_bn(
            &mut g,
            "head",
            torch,
            Some("head".into()),
            conv,
            bn,
            stem_act,
        );
        g.then("pool", Op::GlobalAvgPool);
        g.then("flatten", Op::Flatten);
        let classifier_name = match self.hidden {
            Some(h) => {
                g.then("hidden", Op::linear(h));
                g.torch("classifier.0");
                g.then("hidden.act", Op::HardSwish);
                "classifier.3"
            }
            None => "classifier.1",
        };
        classifier(&mut g, self.dropout, classes, classifier_name);
        g.finish()
    }
}

impl MobileNetV1Spec {
    /// The graph of this spec.
    pub fn lower(&self, input: InputShape, classes: usize) -> Graph {
        let bn = Bn {
            eps: self.bn_eps,
            momentum: 0.1,
        };
        let relu = Activation::Relu;
        let mut g = stem(input, self.stem, self.stem_stride, bn, relu);
        let mut prev = self.stem;
        for (i, b) in self.blocks.iter().enumerate() {
            let name = format!("blocks.{i}");
            let t = format!("features.{}", i + 1);
            let depthwise = Op::conv(prev, 3, b.stride, prev, false);
            conv_bn(
                &mut g,
                &format!("{name}.depthwise"),
                unit(&t),
                None,
                depthwise,
                bn,
                relu,
            );
            let pointwise = Op::conv(b.out, 1, 1, 1, false);
            let torch = [Some(format!("{t}.3")), Some(format!("{t}.4"))];
            let label = Some(format!("{name}.pointwise"));
            conv_bn(
                &mut g,
                &format!("{name}.pointwise"),
                torch,
                label,
                pointwise,
                bn,
                relu,
            );
            prev = b.out;
        }
        g.then("pool", Op::GlobalAvgPool);
        g.then("flatten", Op::Flatten);
        classifier(&mut g, self.dropout, classes, "classifier.1");
        g.finish()
    }
}
