//! Property tests of the model graph: any graph, however wrong, is checked without panicking
//! and an error names a node; every graph that checks gives costs, parameter tensors and
//! channel groups, and the groups are consistent with the tensors (each slice names an
//! existing tensor whose axis holds `channels * block` entries, no axis is claimed twice,
//! each group has a producer).

use std::collections::HashMap;

use opt_core::graph::{Graph, INPUT, Node, Op};
use opt_core::model::{InputShape, SliceRole};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let side = 0usize..5;
    prop_oneof![
        (
            0usize..9,
            side.clone(),
            0usize..3,
            0usize..3,
            0usize..4,
            any::<bool>()
        )
            .prop_map(|(out, k, s, p, g, bias)| Op::Conv2d {
                out_channels: out,
                kernel: [k, k.max(1)],
                stride: [s, 1],
                padding: [p, 0, p, 1],
                dilation: [1, s.max(1)],
                groups: g,
                bias,
            }),
        (0usize..12, any::<bool>()).prop_map(|(o, bias)| Op::Linear {
            out_features: o,
            bias
        }),
        (-1.0f64..1.0, 0.0f64..1.5).prop_map(|(eps, momentum)| Op::BatchNorm { eps, momentum }),
        Just(Op::Relu),
        Just(Op::Relu6),
        Just(Op::HardSwish),
        Just(Op::HardSigmoid),
        Just(Op::Sigmoid),
        Just(Op::Silu),
        (side.clone(), 0usize..3, 0usize..3).prop_map(|(k, s, p)| Op::MaxPool {
            kernel: [k, k],
            stride: [s, s],
            padding: [p; 4],
        }),
        (side, 0usize..3, 0usize..3, any::<bool>()).prop_map(|(k, s, p, c)| Op::AvgPool {
            kernel: [k, k],
            stride: [s, s],
            padding: [p, 0, 0, p],
            count_include_pad: c,
        }),
        Just(Op::GlobalAvgPool),
        Just(Op::Add),
        Just(Op::Mul),
        Just(Op::Concat),
        Just(Op::Flatten),
        (-0.5f64..1.5).prop_map(|p| Op::Dropout { p }),
        (-0.5f64..1.5).prop_map(|p| Op::StochasticDepth { p }),
    ]
}

/// Any list of nodes reading any names (earlier, later, missing, the input).
fn hostile() -> impl Strategy<Value = Graph> {
    (
        (0usize..4, 0usize..12, 0usize..12),
        prop::collection::vec((op(), prop::collection::vec(0usize..14, 0..4)), 0..14),
        0usize..15,
    )
        .prop_map(|((c, h, w), nodes, output)| {
            let name = |i: usize| match i {
                0 => INPUT.to_string(),
                13 => "ghost".to_string(),
                i => format!("n{}", i - 1),
            };
            Graph {
                input: InputShape {
                    channels: c,
                    height: h,
                    width: w,
                },
                nodes: nodes
                    .into_iter()
                    .enumerate()
                    .map(|(i, (op, inputs))| Node {
                        name: format!("n{i}"),
                        op,
                        inputs: inputs.into_iter().map(name).collect(),
                        torch: None,
                        group: None,
                    })
                    .collect(),
                output: name(output),
            }
        })
}

/// A network that checks ([`valid`]), then damaged: a node reads another tensor (maybe a
/// later one: a cycle), is removed, trades places with another, gets another operation, or
/// becomes the output.
fn mutated() -> impl Strategy<Value = Graph> {
    (
        steps(),
        head(),
        prop::collection::vec(
            (
                0u8..5,
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                op(),
            ),
            0..3,
        ),
    )
        .prop_map(|(steps, head, mutations)| {
            let mut g = valid(&steps, head);
            for (kind, a, b, op) in mutations {
                let n = g.nodes.len();
                if n < 2 {
                    break;
                }
                let (i, j) = (a.index(n), b.index(n));
                match kind {
                    0 => {
                        let other = g.nodes[j].name.clone();
                        if let Some(x) = g.nodes[i].inputs.first_mut() {
                            *x = other;
                        }
                    }
                    1 => {
                        g.nodes.remove(i);
                    }
                    2 => g.nodes.swap(i, j),
                    3 => g.nodes[i].op = op,
                    _ => g.output = g.nodes[i].name.clone(),
                }
            }
            g
        })
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((any::<u8>(), 0usize..64, 0usize..64), 0..24)
}

fn head() -> impl Strategy<Value = (bool, usize, bool)> {
    (any::<bool>(), 0usize..8, any::<bool>())
}

/// One step of a network that checks: `kind` picks the operation, `a`, `b` its sizes and
/// which earlier tensor it combines with.
type Step = (u8, usize, usize);

/// A graph built from steps that keep it valid: convolutions (dense, depthwise, grouped),
/// batch norms, activations, pooling, residual adds with an earlier map of the same shape,
/// squeeze-excitation gates, concatenations, then a head (global pooling or a flatten, linear
/// layers, an optional batch norm over features).
fn valid(steps: &[Step], head: (bool, usize, bool)) -> Graph {
    let mut nodes: Vec<Node> = Vec::new();
    let mut shapes: Vec<(String, [usize; 3])> = vec![(INPUT.into(), [3, 12, 12])];
    let mut cur = 0usize;
    let push = |nodes: &mut Vec<Node>, op: Op, inputs: Vec<String>| {
        let name = format!("n{}", nodes.len());
        nodes.push(Node {
            name: name.clone(),
            op,
            inputs,
            torch: None,
            group: None,
        });
        name
    };
    for &(kind, a, b) in steps {
        let (x, [c, h, w]) = shapes[cur].clone();
        let out = match kind % 8 {
            0 => {
                let k = [1, 3][a % 2];
                let s = if h >= 4 && b % 3 == 0 { 2 } else { 1 };
                let out = 2 + a % 6;
                let op = Op::conv(out, k, s, 1, b % 2 == 0);
                let (oh, ow) = ((h - 1) / s + 1, (w - 1) / s + 1);
                (push(&mut nodes, op, vec![x]), [out, oh, ow])
            }
            1 => {
                // Depthwise, or grouped when the channels allow.
                let g = if c % 2 == 0 && a % 2 == 0 { 2 } else { c };
                let out = if g == c { c } else { c * (1 + b % 2) };
                let op = Op::conv(out, 3, 1, g, false);
                (push(&mut nodes, op, vec![x]), [out, h, w])
            }
            2 => {
                let op = Op::BatchNorm {
                    eps: 1e-5,
                    momentum: 0.1,
                };
                (push(&mut nodes, op, vec![x]), [c, h, w])
            }
            3 => {
                let op = [Op::Relu, Op::Relu6, Op::HardSwish, Op::Silu][a % 4].clone();
                (push(&mut nodes, op, vec![x]), [c, h, w])
            }
            4 => {
                // Residual add with an earlier map of the same shape (or itself).
                let same: Vec<String> = shapes
                    .iter()
                    .filter(|(_, s)| *s == [c, h, w])
                    .map(|(n, _)| n.clone())
                    .collect();
                let y = same[a % same.len()].clone();
                (push(&mut nodes, Op::Add, vec![x, y]), [c, h, w])
            }
            5 => {
                let p = push(&mut nodes, Op::GlobalAvgPool, vec![x.clone()]);
                let f1 = push(&mut nodes, Op::conv(1 + a % 4, 1, 1, 1, true), vec![p]);
                let f2 = push(&mut nodes, Op::conv(c, 1, 1, 1, true), vec![f1]);
                let s = push(&mut nodes, Op::Sigmoid, vec![f2]);
                let inputs = if b % 2 == 0 { vec![x, s] } else { vec![s, x] };
                (push(&mut nodes, Op::Mul, inputs), [c, h, w])
            }
            6 => {
                let same: Vec<(String, usize)> = shapes
                    .iter()
                    .filter(|(_, s)| s[1..] == [h, w])
                    .map(|(n, s)| (n.clone(), s[0]))
                    .collect();
                let (y, cy) = same[a % same.len()].clone();
                if c + cy > 256 {
                    continue;
                }
                (push(&mut nodes, Op::Concat, vec![x, y]), [c + cy, h, w])
            }
            _ if h >= 2 && w >= 2 => (
                push(&mut nodes, Op::max_pool(2), vec![x]),
                [c, h / 2, w / 2],
            ),
            _ => continue,
        };
        shapes.push(out);
        cur = shapes.len() - 1;
    }
    let (mut x, _) = shapes[cur].clone();
    let (pool, hidden, bn) = head;
    if pool {
        x = push(&mut nodes, Op::GlobalAvgPool, vec![x]);
    }
    x = push(&mut nodes, Op::Flatten, vec![x]);
    if bn {
        x = push(
            &mut nodes,
            Op::BatchNorm {
                eps: 1e-5,
                momentum: 0.1,
            },
            vec![x],
        );
    }
    if hidden > 0 {
        x = push(
            &mut nodes,
            Op::Linear {
                out_features: hidden,
                bias: true,
            },
            vec![x],
        );
        x = push(&mut nodes, Op::Relu, vec![x]);
    }
    let out = push(
        &mut nodes,
        Op::Linear {
            out_features: 5,
            bias: false,
        },
        vec![x],
    );
    Graph {
        input: InputShape {
            channels: 3,
            height: 12,
            width: 12,
        },
        nodes,
        output: out,
    }
}

/// Every group slice names a tensor of the graph whose axis holds `channels * block`
/// entries, no tensor axis is in two groups, and every group has a producer.
fn groups_are_consistent(g: &Graph) -> Result<(), String> {
    let params: HashMap<String, Vec<usize>> = g
        .params()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| (p.path, p.shape))
        .collect();
    let mut claimed = HashMap::new();
    for group in g.channel_groups().map_err(|e| e.to_string())? {
        if !group.slices.iter().any(|s| s.role == SliceRole::Producer) {
            return Err(format!("group {} has no producer", group.name));
        }
        for s in &group.slices {
            let shape = params
                .get(&s.path)
                .ok_or_else(|| format!("group {} names missing {}", group.name, s.path))?;
            if shape.get(s.axis) != Some(&(group.channels * s.block)) {
                return Err(format!(
                    "group {} ({} channels) slice {} axis {} block {} vs shape {shape:?}",
                    group.name, group.channels, s.path, s.axis, s.block
                ));
            }
            if let Some(other) = claimed.insert((s.path.clone(), s.axis), group.name.clone()) {
                return Err(format!(
                    "{} axis {} in {other} and {}",
                    s.path, s.axis, group.name
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_graph_is_checked_without_panicking(g in prop_oneof![hostile(), mutated()]) {
        match g.shapes() {
            Ok(shapes) => {
                prop_assert_eq!(shapes.len(), g.nodes.len());
                prop_assert!(g.layers().is_ok());
                prop_assert!(groups_are_consistent(&g).is_ok(), "{:?}", groups_are_consistent(&g));
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.starts_with("graph."), "{}", e);
                prop_assert!(g.layers().is_err() && g.channel_groups().is_err());
            }
        }
        let json = serde_json::to_string(&g).unwrap();
        prop_assert_eq!(serde_json::from_str::<Graph>(&json).unwrap(), g);
    }

    #[test]
    fn valid_graphs_give_consistent_groups(steps in steps(), head in head()) {
        let g = valid(&steps, head);
        let shapes = g.shapes();
        prop_assert!(shapes.is_ok(), "{:?}", shapes);
        let layers = g.layers().unwrap();
        let weights = g.params().unwrap();
        // Every parameterized layer's figure equals its tensors' sizes.
        let trainable: u64 = weights
            .iter()
            .filter(|p| !p.running_stat)
            .map(|p| p.shape.iter().product::<usize>() as u64)
            .sum();
        prop_assert_eq!(layers.iter().map(|l| l.params).sum::<u64>(), trainable);
        prop_assert!(groups_are_consistent(&g).is_ok(), "{:?}", groups_are_consistent(&g));
    }
}

/// The generators are not vacuous: hostile graphs sometimes check, and valid ones give
/// groups with gates, residual partners and flatten blocks.
#[test]
fn generated_graphs_cover_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut checked, mut refused) = (0, 0);
    for _ in 0..2000 {
        let g = mutated().new_tree(&mut runner).unwrap().current();
        match g.shapes() {
            Ok(_) => checked += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        checked > 200 && refused > 200,
        "{checked} checked, {refused} refused"
    );
    let strategy = (steps(), head());
    let (mut gates, mut blocks, mut groups) = (0, 0, 0);
    for _ in 0..500 {
        let (steps, head) = strategy.new_tree(&mut runner).unwrap().current();
        for group in valid(&steps, head).channel_groups().unwrap() {
            groups += 1;
            gates += usize::from(group.slices.iter().any(|s| s.role == SliceRole::Gate));
            blocks += usize::from(group.slices.iter().any(|s| s.block > 1));
        }
    }
    assert!(
        groups > 500 && gates > 50 && blocks > 20,
        "{groups} {gates} {blocks}"
    );
}
