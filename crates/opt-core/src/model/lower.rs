//! opt-core's families as model graphs: the one place their topology is written.

use super::spec::{Arch, InputShape};
use crate::graph::{Graph, GraphBuilder, Op};

impl Arch {
    /// The graph of this architecture (see [`Architecture::graph`](super::Architecture::graph)).
    pub fn lower(&self, input: InputShape, classes: usize) -> Graph {
        let mut g = GraphBuilder::new(input);
        match self {
            Arch::Mlp { hidden } => {
                g.then("flatten", Op::Flatten);
                for (i, &h) in hidden.iter().enumerate() {
                    g.then(format!("layers.{i}"), Op::linear(h));
                    g.then(format!("layers.{i}.relu"), Op::Relu);
                }
                g.then(format!("layers.{}", hidden.len()), Op::linear(classes));
            }
            Arch::Lenet5 { conv1, conv2, fc1 } => {
                g.then("conv1", Op::conv(*conv1, 5, 1, 1, true).unpadded());
                g.then("pool1", Op::max_pool(2));
                g.then("conv2", Op::conv(*conv2, 5, 1, 1, true).unpadded());
                g.then("pool2", Op::max_pool(2));
                g.then("flatten", Op::Flatten);
                g.then("fc1", Op::linear(*fc1));
                g.then("fc1.relu", Op::Relu);
                g.then("fc2", Op::linear(classes));
            }
            Arch::Cnn { blocks, fc } => {
                for (i, &b) in blocks.iter().enumerate() {
                    g.then(format!("blocks.{i}.conv"), Op::conv(b, 3, 1, 1, false));
                    g.then(
                        format!("blocks.{i}.bn"),
                        Op::BatchNorm {
                            eps: 1e-5,
                            momentum: 0.1,
                        },
                    );
                    g.then(format!("blocks.{i}.relu"), Op::Relu);
                    g.then(format!("blocks.{i}.pool"), Op::max_pool(2));
                }
                g.then("flatten", Op::Flatten);
                g.then("fc", Op::linear(*fc));
                g.then("fc.relu", Op::Relu);
                g.then("head", Op::linear(classes));
            }
        }
        g.finish()
    }
}
