//! The bounds every model spec is checked against before anything is computed or allocated
//! from it (a spec may come from a hostile `model.json`), and the check of a dataset against
//! the model it meets.

use super::arch::Architecture;
use super::spec::{LayerCost, ModelSpec};
use crate::error::{CoreError, Result};

/// The largest width (channels, units, classes) of any layer optkit builds.
pub const MAX_WIDTH: usize = 1 << 16;
/// The largest image side in pixels.
pub const MAX_SIDE: usize = 4096;
/// The most channels an input image may have.
pub const MAX_INPUT_CHANNELS: usize = 1024;
/// The most layers with parameters a model may have.
pub const MAX_LAYERS: usize = 4096;
/// The most parameters a model may have (268M, 1 GiB of float32 weights; EfficientNet-B7 has
/// 66M): a model.json may not make optkit allocate more.
pub const MAX_PARAMS: u64 = 1 << 28;
/// The most multiply-accumulates per image a model may have (EfficientNet-B7 at 600 pixels
/// has 37B).
pub const MAX_MACS: u64 = 1 << 40;

/// `Err` naming `model.<key>` when `v` is 0 or above [`MAX_WIDTH`]. Every family checks its
/// widths with it before computing anything from them.
pub fn positive(key: &str, v: usize) -> Result<()> {
    if v == 0 || v > MAX_WIDTH {
        Err(CoreError::invalid(
            format!("model.{key}"),
            v,
            format!("must be between 1 and {MAX_WIDTH}"),
        ))
    } else {
        Ok(())
    }
}

/// `Err` naming `model.<key>` when a list of blocks or layers is longer than `max`.
pub fn at_most(key: &str, len: usize, max: usize) -> Result<()> {
    if len > max {
        Err(CoreError::invalid(
            format!("model.{key}"),
            format!("{len} entries"),
            format!("at most {max} are supported"),
        ))
    } else {
        Ok(())
    }
}

impl<A: Architecture> ModelSpec<A> {
    /// Checks the input and the number of classes, then the architecture's widths.
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("input.channels", self.input.channels),
            ("input.height", self.input.height),
            ("input.width", self.input.width),
        ] {
            if v == 0 || v > MAX_SIDE {
                return Err(CoreError::invalid(
                    key,
                    v,
                    format!("must be between 1 and {MAX_SIDE}"),
                ));
            }
        }
        if self.input.channels > MAX_INPUT_CHANNELS {
            return Err(CoreError::invalid(
                "input.channels",
                self.input.channels,
                format!("must be at most {MAX_INPUT_CHANNELS}"),
            ));
        }
        if self.classes < 2 || self.classes > MAX_WIDTH {
            return Err(CoreError::invalid(
                "data.classes",
                self.classes,
                format!("a classifier needs between 2 and {MAX_WIDTH} classes"),
            ));
        }
        self.arch.validate(self.input, self.classes)?;
        // The graph's shapes check (a family's own checks should already have caught a
        // network too deep for its input; this catches what they missed). Widths, counts and
        // the input are bounded, so no single layer's figures overflow; the totals are summed
        // with checks and bounded too, so every later size computed from this spec
        // (allocations included) fits.
        let layers = self.graph().layers()?;
        if layers.len() > MAX_LAYERS {
            return Err(CoreError::invalid(
                "model",
                self.describe(),
                format!(
                    "{} layers; optkit builds at most {MAX_LAYERS}",
                    layers.len()
                ),
            ));
        }
        let total = |f: fn(&LayerCost) -> u64| {
            layers
                .iter()
                .try_fold(0u64, |a, l| a.checked_add(f(l)))
                .unwrap_or(u64::MAX)
        };
        let (params, macs) = (total(|l| l.params), total(|l| l.macs));
        if params > MAX_PARAMS {
            return Err(CoreError::invalid(
                "model",
                self.describe(),
                format!(
                    "{params} parameters; optkit builds models of at most {MAX_PARAMS} \
                     (use smaller widths)"
                ),
            ));
        }
        if macs > MAX_MACS {
            return Err(CoreError::invalid(
                "model",
                self.describe(),
                format!(
                    "{macs} multiply-accumulates per image; optkit builds models of at most \
                     {MAX_MACS} (use smaller widths or images)"
                ),
            ));
        }
        Ok(())
    }

    /// Checks that the dataset `ds` can be fed to this model: it holds at least one item, its
    /// images have the model's input shape, and its labels are below the model's classes. Run
    /// wherever data meets a model, before any training or measuring.
    pub fn check_data(&self, ds: &crate::data::ImageDataset) -> Result<()> {
        let err = |problem: String| CoreError::Dataset {
            name: ds.name.clone(),
            problem,
        };
        if ds.is_empty() {
            return Err(err(
                "holds no images; give data with at least one image in each split (check \
                 data.test_limit / data.train_limit and the IDX files)"
                    .into(),
            ));
        }
        let i = self.input;
        if (ds.channels, ds.height, ds.width) != (i.channels, i.height, i.width) {
            return Err(err(format!(
                "images are {}x{} with {} channel(s), the model takes {}x{} with {}; use data \
                 of the model's size (or a model made for this data)",
                ds.height, ds.width, ds.channels, i.height, i.width, i.channels
            )));
        }
        if let Some((at, &l)) = ds
            .labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= self.classes)
        {
            return Err(err(format!(
                "label {l} at item {at} is not below the model's {} classes; use data with the \
                 model's classes",
                self.classes
            )));
        }
        Ok(())
    }
}
