//! Shape inference and the checks a graph from a file must pass: unique names, known inputs
//! computed earlier (no cycles, no dangling tensors), each operation's arity, attributes and
//! input shapes, and bounded sizes. Every error names the node.

use std::collections::HashMap;

use super::{Graph, INPUT, MAX_INPUTS, MAX_NODES, Node, Op};
use crate::error::{CoreError, Result};
use crate::model::{InputShape, MAX_INPUT_CHANNELS, MAX_SIDE, MAX_WIDTH};

/// The error for node `i`: `graph.nodes[i] (name) = op: problem`.
pub(super) fn node_error(i: usize, node: &Node, problem: impl Into<String>) -> CoreError {
    CoreError::invalid(
        format!("graph.nodes[{i}] ({})", node.name),
        node.op.kind(),
        problem.into(),
    )
}

/// Output size along one axis of a convolution or pooling window, or `None` when the window
/// does not fit.
fn window_out(
    size: usize,
    pad: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    let padded = size.checked_add(pad)?;
    (padded >= span).then(|| (padded - span) / stride + 1)
}

fn check_window(
    i: usize,
    node: &Node,
    x: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
    dilation: [usize; 2],
) -> Result<[usize; 2]> {
    let [_, h, w] = map(i, node, x)?;
    for (what, v) in [
        ("kernel", kernel[0]),
        ("kernel", kernel[1]),
        ("stride", stride[0]),
        ("stride", stride[1]),
        ("dilation", dilation[0]),
        ("dilation", dilation[1]),
    ] {
        if v == 0 || v > MAX_SIDE {
            return Err(node_error(
                i,
                node,
                format!("{what} {v} must be between 1 and {MAX_SIDE}"),
            ));
        }
    }
    if padding.iter().any(|&p| p > MAX_SIDE) {
        return Err(node_error(
            i,
            node,
            format!("padding {padding:?} must be at most {MAX_SIDE} on each side"),
        ));
    }
    let oh = window_out(
        h,
        padding[0] + padding[2],
        kernel[0],
        stride[0],
        dilation[0],
    );
    let ow = window_out(
        w,
        padding[1] + padding[3],
        kernel[1],
        stride[1],
        dilation[1],
    );
    match (oh, ow) {
        (Some(oh), Some(ow)) => Ok([oh, ow]),
        _ => Err(node_error(
            i,
            node,
            format!(
                "a {}x{} window (dilation {dilation:?}, padding {padding:?}) does not fit its \
                 {h}x{w} input; use larger images or fewer downsampling layers",
                kernel[0], kernel[1]
            ),
        )),
    }
}

/// The input as a `[c, h, w]` map, or an error saying the node needs one.
fn map(i: usize, node: &Node, x: &[usize]) -> Result<[usize; 3]> {
    match *x {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(node_error(
            i,
            node,
            format!("needs a [channels, height, width] map, got shape {x:?}"),
        )),
    }
}

fn check_rate(i: usize, node: &Node, p: f64) -> Result<()> {
    if !(0.0..1.0).contains(&p) {
        return Err(node_error(i, node, format!("p = {p} must be in [0, 1)")));
    }
    Ok(())
}

fn width(i: usize, node: &Node, what: &str, v: usize) -> Result<usize> {
    if v == 0 || v > MAX_WIDTH {
        return Err(node_error(
            i,
            node,
            format!("{what} {v} must be between 1 and {MAX_WIDTH}"),
        ));
    }
    Ok(v)
}

/// Broadcasts two shapes of one rank (axes of size 1 stretch).
fn broadcast(i: usize, node: &Node, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.len() != b.len() {
        return Err(node_error(
            i,
            node,
            format!("inputs of shapes {a:?} and {b:?} have different ranks"),
        ));
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(node_error(
                i,
                node,
                format!("inputs of shapes {a:?} and {b:?} do not broadcast"),
            )),
        })
        .collect()
}

/// Output shape of node `i` from its inputs' shapes.
fn infer(i: usize, node: &Node, xs: &[&[usize]]) -> Result<Vec<usize>> {
    let arity = match node.op {
        Op::Add | Op::Mul => 2..=2,
        Op::Concat => 2..=MAX_INPUTS,
        _ => 1..=1,
    };
    if !arity.contains(&xs.len()) {
        return Err(node_error(
            i,
            node,
            format!(
                "reads {} tensors, {} takes {}",
                xs.len(),
                node.op.kind(),
                if arity.start() == arity.end() {
                    arity.start().to_string()
                } else {
                    format!("{} to {}", arity.start(), arity.end())
                }
            ),
        ));
    }
    let x = xs[0];
    Ok(match node.op {
        Op::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            ..
        } => {
            let [c, _, _] = map(i, node, x)?;
            width(i, node, "out_channels", out_channels)?;
            if groups == 0 || c % groups != 0 || out_channels % groups != 0 {
                return Err(node_error(
                    i,
                    node,
                    format!(
                        "groups {groups} must divide both its {c} input and {out_channels} \
                         output channels"
                    ),
                ));
            }
            let [h, w] = check_window(i, node, x, kernel, stride, padding, dilation)?;
            vec![out_channels, h, w]
        }
        Op::Linear { out_features, .. } => {
            if x.len() != 1 {
                return Err(node_error(
                    i,
                    node,
                    format!("needs [features] (flatten a map first), got shape {x:?}"),
                ));
            }
            vec![width(i, node, "out_features", out_features)?]
        }
        Op::BatchNorm { eps, momentum } => {
            if !(eps > 0.0 && eps.is_finite()) {
                return Err(node_error(i, node, format!("eps = {eps} must be positive")));
            }
            if !(momentum > 0.0 && momentum <= 1.0) {
                return Err(node_error(
                    i,
                    node,
                    format!("momentum = {momentum} must be in (0, 1]"),
                ));
            }
            if x.is_empty() || x.len() > 3 {
                return Err(node_error(i, node, format!("cannot normalize shape {x:?}")));
            }
            x.to_vec()
        }
        Op::Relu | Op::Relu6 | Op::HardSwish | Op::HardSigmoid | Op::Sigmoid | Op::Silu => {
            x.to_vec()
        }
        Op::Dropout { p } | Op::StochasticDepth { p } => {
            check_rate(i, node, p)?;
            x.to_vec()
        }
        Op::MaxPool {
            kernel,
            stride,
            padding,
        } => {
            // A window made only of padding would have no input value.
            if padding[0].max(padding[2]) >= kernel[0] || padding[1].max(padding[3]) >= kernel[1] {
                return Err(node_error(
                    i,
                    node,
                    format!("padding {padding:?} must be smaller than the kernel {kernel:?}"),
                ));
            }
            let [c, _, _] = map(i, node, x)?;
            let [h, w] = check_window(i, node, x, kernel, stride, padding, [1, 1])?;
            vec![c, h, w]
        }
        Op::AvgPool {
            kernel,
            stride,
            padding,
            ..
        } => {
            let [c, _, _] = map(i, node, x)?;
            let [h, w] = check_window(i, node, x, kernel, stride, padding, [1, 1])?;
            vec![c, h, w]
        }
        Op::GlobalAvgPool => {
            let [c, _, _] = map(i, node, x)?;
            vec![c, 1, 1]
        }
        Op::Add | Op::Mul => broadcast(i, node, x, xs[1])?,
        Op::Concat => {
            let [_, h, w] = map(i, node, x)?;
            let mut channels = 0usize;
            for y in xs {
                let [c, yh, yw] = map(i, node, y)?;
                if (yh, yw) != (h, w) {
                    return Err(node_error(
                        i,
                        node,
                        format!("concatenates maps of different sizes: {x:?} and {y:?}"),
                    ));
                }
                channels = channels.saturating_add(c);
            }
            vec![width(i, node, "concatenated channels", channels)?, h, w]
        }
        Op::Flatten => vec![x.iter().product()],
    })
}

impl Graph {
    /// Every node's output shape (per image, in node order), after checking the whole graph:
    /// names are unique and not [`INPUT`], every input is the image or an earlier node (a
    /// reference to a later node is a cycle or an ordering error, one to no node a dangling
    /// tensor), each operation's arity, attributes and input shapes fit, and the output
    /// exists and is `[features]`.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        let InputShape {
            channels,
            height,
            width,
        } = self.input;
        if channels == 0 || channels > MAX_INPUT_CHANNELS {
            return Err(CoreError::invalid(
                "graph.input.channels",
                channels,
                format!("must be between 1 and {MAX_INPUT_CHANNELS}"),
            ));
        }
        for (key, v) in [("graph.input.height", height), ("graph.input.width", width)] {
            if v == 0 || v > MAX_SIDE {
                return Err(CoreError::invalid(
                    key,
                    v,
                    format!("must be between 1 and {MAX_SIDE}"),
                ));
            }
        }
        if self.nodes.is_empty() || self.nodes.len() > MAX_NODES {
            return Err(CoreError::invalid(
                "graph.nodes",
                format!("{} nodes", self.nodes.len()),
                format!("a graph needs between 1 and {MAX_NODES} nodes"),
            ));
        }
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            if n.name == INPUT || n.name.is_empty() {
                return Err(node_error(
                    i,
                    n,
                    format!("a node may not be named `{}`; rename it", n.name),
                ));
            }
            if let Some(first) = index.insert(&n.name, i) {
                return Err(node_error(
                    i,
                    n,
                    format!("the name is already used by node {first}; names must be unique"),
                ));
            }
        }
        let input = vec![channels, height, width];
        let mut shapes: Vec<Vec<usize>> = Vec::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            if n.inputs.len() > MAX_INPUTS {
                return Err(node_error(
                    i,
                    n,
                    format!("reads {} tensors, at most {MAX_INPUTS}", n.inputs.len()),
                ));
            }
            let mut xs: Vec<&[usize]> = Vec::with_capacity(n.inputs.len());
            for t in &n.inputs {
                if t == INPUT {
                    xs.push(&input);
                    continue;
                }
                match index.get(t.as_str()) {
                    Some(&j) if j < i => xs.push(&shapes[j]),
                    Some(&j) => {
                        return Err(node_error(
                            i,
                            n,
                            format!(
                                "reads `{t}`, which node {j} computes later: the graph has a \
                                 cycle or its nodes are not in execution order"
                            ),
                        ));
                    }
                    None => {
                        return Err(node_error(
                            i,
                            n,
                            format!("reads `{t}`, which no node computes (a dangling tensor)"),
                        ));
                    }
                }
            }
            let shape = infer(i, n, &xs)?;
            shapes.push(shape);
        }
        match index.get(self.output.as_str()) {
            Some(&j) if shapes[j].len() == 1 => Ok(shapes),
            Some(&j) => Err(CoreError::invalid(
                "graph.output",
                &self.output,
                format!(
                    "the output must be [classes] logits, node {j} computes shape {:?}; flatten \
                     and add a linear layer",
                    shapes[j]
                ),
            )),
            None => Err(CoreError::invalid(
                "graph.output",
                &self.output,
                "no node computes it; name the last node",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::graph::tests::small;
    use crate::test_util::MNIST;

    fn error(g: &Graph) -> String {
        g.shapes().unwrap_err().to_string()
    }

    #[test]
    fn shapes_follow_the_operations() {
        let shapes = small().shapes().unwrap();
        assert_eq!(shapes[0], vec![4, 14, 14]);
        assert_eq!(shapes[2], vec![4, 1, 1]);
        assert_eq!(shapes[4], vec![10]);
        // Rectangular kernel, dilation and asymmetric padding, as ONNX computes them.
        let mut g = small();
        g.nodes[0].op = Op::Conv2d {
            out_channels: 4,
            kernel: [3, 1],
            stride: [1, 2],
            padding: [2, 0, 1, 0],
            dilation: [2, 1],
            groups: 1,
            bias: false,
        };
        // h: 28 + 3 - (2*2 + 1) + 1 = 27; w: (28 - 1) / 2 + 1 = 14.
        assert_eq!(g.shapes().unwrap()[0], vec![4, 27, 14]);
    }

    #[test]
    fn bad_graphs_name_the_node() {
        let mut g = small();
        g.nodes[1].inputs = vec!["pool".into()];
        let e = error(&g);
        assert!(e.contains("nodes[1] (relu)") && e.contains("cycle"), "{e}");
        let mut g = small();
        g.nodes[1].inputs = vec!["nowhere".into()];
        assert!(error(&g).contains("dangling"), "{}", error(&g));
        let mut g = small();
        g.nodes[2].name = "conv".into();
        assert!(error(&g).contains("unique"), "{}", error(&g));
        let mut g = small();
        g.nodes[4].inputs = vec!["pool".into()];
        let e = error(&g);
        assert!(e.contains("(fc)") && e.contains("flatten"), "{e}");
        let mut g = small();
        g.nodes[0].op = Op::conv(4, 3, 1, 3, false);
        assert!(error(&g).contains("groups 3"), "{}", error(&g));
        let mut g = small();
        g.nodes[0].op = Op::conv(4, 64, 1, 1, false).unpadded();
        assert!(error(&g).contains("does not fit"), "{}", error(&g));
        let mut g = small();
        g.nodes[1].op = Op::Add;
        assert!(error(&g).contains("takes 2"), "{}", error(&g));
        let mut g = small();
        g.output = "pool".into();
        assert!(error(&g).contains("logits"), "{}", error(&g));
        let mut g = small();
        g.output = "gone".into();
        assert!(error(&g).contains("no node computes"), "{}", error(&g));
    }

    #[test]
    fn broadcasting_and_concatenation() {
        let mut g = GraphBuilder::new(MNIST);
        g.then("a", Op::conv(4, 3, 1, 1, false));
        g.then("gate", Op::GlobalAvgPool);
        g.node("scaled", Op::Mul, &["a", "gate"]);
        g.node("both", Op::Concat, &["a", "scaled"]);
        g.node("sum", Op::Add, &["both", "both"]);
        g.then("pool", Op::GlobalAvgPool);
        g.then("flat", Op::Flatten);
        let shapes = g.finish().shapes().unwrap();
        assert_eq!(shapes[2], vec![4, 28, 28]);
        assert_eq!(shapes[3], vec![8, 28, 28]);
        assert_eq!(shapes[6], vec![8]);
        let mut g = GraphBuilder::new(MNIST);
        g.then("a", Op::conv(4, 3, 1, 1, false));
        g.then("b", Op::conv(3, 3, 2, 1, false));
        g.node("sum", Op::Add, &["a", "b"]);
        let e = g.finish().shapes().unwrap_err().to_string();
        assert!(e.contains("do not broadcast"), "{e}");
    }
}
