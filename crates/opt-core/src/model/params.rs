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

struct Collector {
    stack: Vec<String>,
    entries: Vec<ParamEntry>,
    count_nonzero: bool,
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        // Enum variants (Model::Cnn) are not part of the weight path.
        if !container_type.starts_with("Enum:") {
            self.stack.push(name.to_string());
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.stack.pop();
        }
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let path = self.stack.join(".");
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
        stack: Vec::new(),
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
