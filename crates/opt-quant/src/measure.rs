//! The int8 model on opt-core's measurement protocol (`opt_core::eval::measure_model`, the
//! same function that measures float models), so the reports compare: raw 8-bit pixels in,
//! logits out, scored by opt-core's `Tally`.

use opt_core::data::ImageDataset;
use opt_core::eval::{AccuracyReport, Measurable, Tally};
use opt_core::model::ParamCounts;

use crate::qmodel::QuantModel;

/// The pixels of items `indices` of `ds`, concatenated (what the integer path reads).
fn pixels(ds: &ImageDataset, indices: impl Iterator<Item = usize>) -> Vec<u8> {
    indices.flat_map(|i| ds.image(i).iter().copied()).collect()
}

/// An int8 model run on `threads` threads, as [`Measurable`].
#[derive(Debug, Clone, Copy)]
pub struct Int8Run<'a> {
    /// The model.
    pub model: &'a QuantModel,
    /// Worker threads of its forward pass.
    pub threads: usize,
}

impl Measurable for Int8Run<'_> {
    /// Raw pixels and the number of images.
    type Input = (Vec<u8>, usize);

    fn input(&self, test: &ImageDataset, indices: &[usize]) -> (Vec<u8>, usize) {
        (pixels(test, indices.iter().copied()), indices.len())
    }

    fn run(&self, (pixels, n): &(Vec<u8>, usize)) {
        let _ = self.model.forward(pixels, *n, self.threads);
    }

    fn logits(&self, (pixels, n): &(Vec<u8>, usize)) -> (Vec<f32>, usize) {
        (
            self.model.forward(pixels, *n, self.threads),
            self.model.classes(),
        )
    }

    fn counts(&self) -> ParamCounts {
        ParamCounts {
            params: self.model.params() as u64,
            nonzero: self.model.nonzero_params() as u64,
        }
    }

    fn platform(&self) -> (String, String) {
        (
            format!("int8-{}", self.model.isa.name()),
            format!("CPU, {} threads", self.threads),
        )
    }
}

/// Accuracy, per-class accuracy and mean cross-entropy of the int8 model on `ds`, in batches
/// of `batch` (the accuracy-aware fallback's check on the validation split).
pub fn accuracy(
    model: &QuantModel,
    ds: &ImageDataset,
    batch: usize,
    threads: usize,
) -> AccuracyReport {
    let run = Int8Run { model, threads };
    let order: Vec<usize> = (0..ds.len()).collect();
    let mut tally = Tally::new(ds.num_classes);
    for chunk in order.chunks(batch.max(1)) {
        let (logits, classes) = run.logits(&run.input(ds, chunk));
        tally.add_rows(
            &logits,
            classes,
            chunk.iter().map(|&i| ds.labels[i] as usize),
        );
    }
    tally.report()
}

/// The worker threads the int8 path uses by default (rayon's pool size).
pub fn default_threads() -> usize {
    rayon::current_num_threads()
}
