//! Walking a module's parameters by path: shapes, counts and non-zero counts.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Tensor, backend::Backend};

/// One float parameter tensor of a module.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamEntry {
    /// Dotted path (`blocks.0.conv.weight`); enum variant names are left out.
    pub path: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Whether it is batch-norm running statistics (not a trainable parameter).
    pub running_stat: bool,
    /// Number of non-zero values (only filled by [`param_entries`] with `count_nonzero`).
    pub nonzero: usize,
}

impl ParamEntry {
    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The dotted parameter path of a module walk (`blocks.0.conv.weight`): feed it a visitor's or
/// mapper's `enter_module`/`exit_module` calls. Enum variants (`Model::Cnn`) are not part of
/// the path, as in saved weights.
#[derive(Debug, Default, Clone)]
pub struct PathStack(Vec<String>);

impl PathStack {
    /// Call from `enter_module`.
    pub fn enter(&mut self, name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.0.push(name.to_string());
        }
    }

    /// Call from `exit_module`.
    pub fn exit(&mut self, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.0.pop();
        }
    }

    /// The current path.
    pub fn path(&self) -> String {
        self.0.join(".")
    }
}

struct Collector {
    stack: PathStack,
    entries: Vec<ParamEntry>,
    count_nonzero: bool,
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.stack.exit(container_type);
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let path = self.stack.path();
        let running_stat = path.ends_with("running_mean") || path.ends_with("running_var");
        let tensor = param.val();
        let nonzero = if self.count_nonzero {
            let values = tensor.clone().into_data().convert::<f32>();
            values
                .as_slice::<f32>()
                .map(|v| v.iter().filter(|x| **x != 0.0).count())
                .unwrap_or(0)
        } else {
            0
        };
        self.entries.push(ParamEntry {
            path,
            shape: tensor.dims().to_vec(),
            running_stat,
            nonzero,
        });
    }
}

/// Every float parameter of `module` in visiting order. Counting non-zeros reads every
/// tensor back to the host.
pub fn param_entries<B: Backend, M: Module<B>>(module: &M, count_nonzero: bool) -> Vec<ParamEntry> {
    let mut c = Collector {
        stack: PathStack::default(),
        entries: Vec::new(),
        count_nonzero,
    };
    module.visit(&mut c);
    c.entries
}

/// Parameter and non-zero parameter counts in the PyTorch convention (batch-norm running
/// statistics excluded; burn's `num_params` includes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCounts {
    /// Trainable values.
    pub params: u64,
    /// Trainable values that are not exactly zero.
    pub nonzero: u64,
}

/// Counts the parameters and the non-zero parameters of a module.
pub fn count_params<B: Backend, M: Module<B>>(module: &M) -> ParamCounts {
    let entries = param_entries(module, true);
    let trainable = entries.iter().filter(|e| !e.running_stat);
    ParamCounts {
        params: trainable.clone().map(|e| e.numel() as u64).sum(),
        nonzero: trainable.map(|e| e.nonzero as u64).sum(),
    }
}

/// Layer names and output shapes (without the batch dimension) seen in a forward pass.
pub type ObservedLayers = Vec<(String, Vec<usize>)>;

/// Runs one forward pass on `images` and returns the MACs per image that the shapes seen in it
/// imply (convolution weight `[out, in/groups, kh, kw]` times its output area, linear weight
/// `[in, out]`), with every observed layer's name and output shape. Tests compare this with a
/// spec's analytic [`LayerCost`](super::LayerCost)s. An observed layer without a `weight` or
/// `gamma` parameter is an error.
pub fn observed_macs<B: Backend, M: Module<B> + super::Classifier<B>>(
    model: &M,
    images: Tensor<B, 4>,
) -> Result<(u64, ObservedLayers), String> {
    let shapes: std::collections::HashMap<String, Vec<usize>> = param_entries(model, false)
        .into_iter()
        .map(|e| (e.path, e.shape))
        .collect();
    let mut observed = Vec::new();
    model.forward_observed(images, &mut |name, out| {
        observed.push((name.to_string(), out.shape()))
    });
    let mut macs = 0u64;
    for (name, out) in &observed {
        let w = shapes
            .get(&format!("{name}.weight"))
            .or_else(|| shapes.get(&format!("{name}.gamma")))
            .ok_or_else(|| format!("observed layer {name} has no weight or gamma parameter"))?;
        macs += match w.len() {
            4 => (out[1] * out[2] * w[0] * w[1] * w[2] * w[3]) as u64,
            2 => (w[0] * w[1]) as u64,
            _ => 0, // batch norm
        };
    }
    Ok((macs, observed))
}
