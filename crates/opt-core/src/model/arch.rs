//! The [`Architecture`] trait: what a family of models provides so that the rest of optkit
//! (training, measurement, artifacts, weights interchange) can handle it without knowing it.
//!
//! opt-core implements it for its own families ([`crate::model::Arch`]: mlp, lenet5, cnn);
//! opt-arch implements it for MobileNet and EfficientNet, and a user can implement it for
//! their own models.

use std::fmt::Debug;

use burn::module::Module;
use burn::tensor::backend::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::groups::ChannelGroup;
use super::nets::Classifier;
use super::spec::{InputShape, LayerCost};
use crate::error::{CoreError, Result};

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

    /// Every layer with parameters, in forward order, with its output shape and cost. The
    /// names are the module paths the forward pass reports to a
    /// [`LayerObserver`](super::nets::LayerObserver).
    fn layers(&self, input: InputShape, classes: usize) -> Vec<LayerCost>;

    /// Builds the module with freshly initialized (possibly lazy) parameters.
    fn build<B: Backend>(
        &self,
        input: InputShape,
        classes: usize,
        device: &B::Device,
    ) -> Self::Model<B>;

    /// PyTorch module names for our module paths (`stem.conv` -> `features.0.0`), used to read
    /// and write PyTorch-named safetensors files. `None` keeps our names.
    fn torch_modules(&self, _input: InputShape, _classes: usize) -> Option<Vec<(String, String)>> {
        None
    }

    /// The channel groups structured pruning may shrink, in a fixed order (see
    /// [`ChannelGroup`]). `None` (the default) means the family does not describe them, and
    /// structured pruning refuses it with an error.
    fn channel_groups(&self, _input: InputShape, _classes: usize) -> Option<Vec<ChannelGroup>> {
        None
    }

    /// The same architecture with group `i` of [`channel_groups`](Self::channel_groups)
    /// narrowed to `widths[i]` channels (every other width unchanged).
    fn with_group_widths(
        &self,
        _input: InputShape,
        _classes: usize,
        _widths: &[usize],
    ) -> Result<Self> {
        Err(CoreError::invalid(
            "model.arch",
            self.family(),
            "this family does not describe its channel groups, so it cannot be pruned \
             structurally; implement Architecture::channel_groups and with_group_widths, or use \
             unstructured pruning",
        ))
    }
}
