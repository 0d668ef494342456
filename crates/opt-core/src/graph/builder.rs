//! [`GraphBuilder`]: how families write their topology once, node by node.

use super::{Graph, INPUT, Node, Op};
use crate::model::InputShape;

/// Appends nodes to a graph; [`then`](Self::then) reads the last node's output.
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: Graph,
}

impl GraphBuilder {
    /// An empty graph over `input`.
    pub fn new(input: InputShape) -> Self {
        Self {
            graph: Graph {
                input,
                nodes: Vec::new(),
                output: INPUT.into(),
            },
        }
    }

    /// The tensor the last node computes ([`INPUT`] before the first).
    pub fn last(&self) -> String {
        self.graph.output.clone()
    }

    /// Appends `name = op(inputs)`; returns the name.
    pub fn node(&mut self, name: impl Into<String>, op: Op, inputs: &[&str]) -> String {
        let name = name.into();
        self.graph.nodes.push(Node {
            name: name.clone(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            torch: None,
            group: None,
        });
        self.graph.output = name.clone();
        name
    }

    /// Appends `name = op(last)`; returns the name.
    pub fn then(&mut self, name: impl Into<String>, op: Op) -> String {
        let last = self.last();
        self.node(name, op, &[&last])
    }

    /// Gives the last node its PyTorch module path.
    pub fn torch(&mut self, path: impl Into<String>) -> &mut Self {
        if let Some(n) = self.graph.nodes.last_mut() {
            n.torch = Some(path.into());
        }
        self
    }

    /// Names the channel group the last node starts.
    pub fn group(&mut self, name: impl Into<String>) -> &mut Self {
        if let Some(n) = self.graph.nodes.last_mut() {
            n.group = Some(name.into());
        }
        self
    }

    /// The graph; its output is the last node.
    pub fn finish(self) -> Graph {
        self.graph
    }
}
