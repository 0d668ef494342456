//! Building ONNX graphs: initializers, nodes with attributes, and the model around a graph
//! (opset 17, IR version 8). The layers both exporters emit (convolution, max-pooling, fully
//! connected, each with its ReLU) are written here once; they differ only in where a layer's
//! weight comes from (a float initializer, or int8 codes through `DequantizeLinear`).

use crate::onnx_proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto,
    ValueInfoProto, attribute_type, data_type,
};

/// The default-domain operator set the files declare.
pub const OPSET: i64 = 17;
/// The IR version that goes with opset 17.
pub const IR_VERSION: i64 = 8;

/// Name of the graph input (normalized images, `[batch, channels, height, width]`, float32).
pub const INPUT: &str = "input";
/// Name of the graph output (logits, `[batch, classes]`, float32).
pub const OUTPUT: &str = "logits";

/// The shape and geometry of a layer with weights.
#[derive(Debug, Clone, Copy)]
pub enum Geometry {
    /// A square convolution.
    Conv {
        /// Output channels.
        out_channels: usize,
        /// Input channels.
        in_channels: usize,
        /// Kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on every side.
        padding: usize,
    },
    /// A fully connected layer on the flattened input.
    Linear {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
    },
}

impl Geometry {
    /// The weight's ONNX shape: `[out, in, k, k]` or `[out, in]` (Gemm with `transB = 1`).
    pub fn weight_dims(&self) -> Vec<i64> {
        match *self {
            Geometry::Conv {
                out_channels,
                in_channels,
                kernel,
                ..
            } => [out_channels, in_channels, kernel, kernel]
                .map(|d| d as i64)
                .to_vec(),
            Geometry::Linear { inputs, outputs } => vec![outputs as i64, inputs as i64],
        }
    }

    /// Outputs (the bias length).
    pub fn outputs(&self) -> usize {
        match *self {
            Geometry::Conv { out_channels, .. } => out_channels,
            Geometry::Linear { outputs, .. } => outputs,
        }
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: attribute_type::INT,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: ints.to_vec(),
        r#type: attribute_type::INTS,
        ..Default::default()
    }
}

/// A graph under construction.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl GraphBuilder {
    /// Adds an initializer named `name` and returns the name.
    pub fn initializer(&mut self, name: &str, dtype: i32, dims: &[i64], raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: dtype,
            name: name.into(),
            raw_data: raw,
        });
        name.into()
    }

    /// A float32 initializer.
    pub fn floats(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, data_type::FLOAT, dims, raw)
    }

    /// Adds a node with output `out` and returns `out`.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        out: &str,
        attribute: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            name: out.into(),
            op_type: op.into(),
            attribute,
        });
        out.into()
    }

    /// `x → Conv` or `x → Flatten → Gemm`, then `Relu` when `relu`: the layer `name` with
    /// weight value `weight` and float bias `bias`. Returns the output value.
    pub fn layer(
        &mut self,
        name: &str,
        x: &str,
        geometry: Geometry,
        weight: &str,
        bias: &[f32],
        relu: bool,
    ) -> String {
        let b = self.floats(&format!("{name}.bias"), &[bias.len() as i64], bias);
        let y = match geometry {
            Geometry::Conv {
                kernel,
                stride,
                padding,
                ..
            } => {
                let (k, s, p) = (kernel as i64, stride as i64, padding as i64);
                self.node(
                    "Conv",
                    &[x, weight, &b],
                    &format!("{name}.conv"),
                    vec![
                        attr_ints("kernel_shape", &[k, k]),
                        attr_ints("strides", &[s, s]),
                        attr_ints("pads", &[p, p, p, p]),
                        attr_ints("dilations", &[1, 1]),
                        attr_int("group", 1),
                    ],
                )
            }
            Geometry::Linear { .. } => {
                let flat = self.node(
                    "Flatten",
                    &[x],
                    &format!("{name}.flatten"),
                    vec![attr_int("axis", 1)],
                );
                self.node(
                    "Gemm",
                    &[&flat, weight, &b],
                    &format!("{name}.gemm"),
                    vec![attr_int("transB", 1)],
                )
            }
        };
        if relu {
            self.node("Relu", &[&y], &format!("{name}.relu"), vec![])
        } else {
            y
        }
    }

    /// Max-pooling with a square window and stride `size`.
    pub fn max_pool(&mut self, x: &str, index: usize, size: usize) -> String {
        let s = size as i64;
        self.node(
            "MaxPool",
            &[x],
            &format!("pool{index}"),
            vec![
                attr_ints("kernel_shape", &[s, s]),
                attr_ints("strides", &[s, s]),
            ],
        )
    }

    /// Renames the last node's output to `out` (the graph output's name).
    pub fn finish_as(&mut self, out: &str) {
        if let Some(last) = self.nodes.last_mut() {
            last.output = vec![out.into()];
        }
    }

    /// The graph with input [`INPUT`] (`[batch, c, h, w]`) and output [`OUTPUT`]
    /// (`[batch, classes]`), both float32.
    pub fn build(self, name: &str, input: [usize; 3], classes: usize) -> GraphProto {
        let batch = || Dimension {
            dim_value: None,
            dim_param: Some("batch".into()),
        };
        let fixed = |d: usize| Dimension {
            dim_value: Some(d as i64),
            dim_param: None,
        };
        let value = |name: &str, dim: Vec<Dimension>| ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto {
                    elem_type: data_type::FLOAT,
                    shape: Some(TensorShapeProto { dim }),
                }),
            }),
        };
        let mut in_dims = vec![batch()];
        in_dims.extend(input.map(fixed));
        GraphProto {
            node: self.nodes,
            name: name.into(),
            initializer: self.initializers,
            doc_string: String::new(),
            input: vec![value(INPUT, in_dims)],
            output: vec![value(OUTPUT, vec![batch(), fixed(classes)])],
        }
    }
}

/// The model around `graph`: opset 17, producer optkit, `metadata` as metadata properties.
pub fn model(graph: GraphProto, doc: &str, metadata: &[(&str, String)]) -> ModelProto {
    ModelProto {
        ir_version: IR_VERSION,
        producer_name: "optkit".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: String::new(),
        model_version: 1,
        doc_string: doc.into(),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        metadata_props: metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: (*k).into(),
                value: v.clone(),
            })
            .collect(),
    }
}
