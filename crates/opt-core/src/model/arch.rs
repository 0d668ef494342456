//! The [`Architecture`] trait: what a family of models provides so that the rest of optkit
//! (training, measurement, artifacts, weights interchange) can handle it without knowing it:
//! its spec, the model graph it lowers to (from which costs, channel groups and PyTorch names
//! are computed) and the burn module it builds.
//!
//! opt-core implements it for its own families ([`crate::model::Arch`]: mlp, lenet5, cnn);
//! opt-arch implements it for MobileNet and EfficientNet, and a user can implement it for
//! their own models.

use std::fmt::Debug;

use burn::module::Module;
use burn::tensor::backend::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::nets::Classifier;
use super::spec::InputShape;
use crate::error::{CoreError, Result};
use crate::graph::Graph;

/// A serializable architecture with every width explicit, and the burn module it builds.
pub trait Architecture:
    Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The burn module this architecture builds.
    type Model<B: Backend>: Module<B> + Classifier<B>;

    /// The family's name (`lenet5`, `mobilenet_v2`, `efficientnet_b0`).
    fn family(&self) -> String;

    /// A one-line description with the widths that matter.
    fn describe(&self) -> String;

    /// Checks every width and that `input` is large enough for the network.
    fn validate(&self, input: InputShape, classes: usize) -> Result<()>;

    /// The model graph: the one description of the network's topology (every node, in
    /// forward order, named by its module path). Layer costs, channel groups and PyTorch names
    /// are computed from it. A spec that [`validate`](Self::validate) accepts lowers to a graph
    /// whose shapes check.
    fn graph(&self, input: InputShape, classes: usize) -> Graph;

    /// Builds the module with freshly initialized (possibly lazy) parameters.
    fn build<B: Backend>(
        &self,
        input: InputShape,
        classes: usize,
        device: &B::Device,
    ) -> Self::Model<B>;

    /// The same architecture with group `i` of its graph's
    /// [`channel_groups`](crate::graph::Graph::channel_groups) narrowed to `widths[i]`
    /// channels (every other width unchanged). The default refuses: the family cannot say
    /// which of its widths a group is, so it cannot be pruned structurally.
    fn with_group_widths(
        &self,
        _input: InputShape,
        _classes: usize,
        _widths: &[usize],
    ) -> Result<Self> {
        Err(CoreError::invalid(
            "model.arch",
            self.family(),
            "this family cannot narrow its widths, so it cannot be pruned structurally; \
             implement Architecture::with_group_widths, or use unstructured pruning",
        ))
    }
}
