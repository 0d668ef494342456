//! Top-1 accuracy, per-class accuracy and mean cross-entropy of a model on a dataset.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::data::{Batcher, ImageDataset};
use crate::model::Classifier;

/// How well a model classifies a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyReport {
    /// Fraction of items whose arg-max logit is the label.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy on the items of each class (NaN-free: 0 for a class with no items).
    pub per_class: Vec<f64>,
    /// Correctly classified items.
    pub correct: usize,
    /// Items seen.
    pub total: usize,
}

/// Running top-1 hits, per-class counts and summed cross-entropy over rows of logits: the
/// one place a model's answers are scored, for burn models and the integer path alike.
#[derive(Debug, Clone)]
pub struct Tally {
    hits: Vec<usize>,
    seen: Vec<usize>,
    loss_sum: f64,
    total: usize,
}

impl Tally {
    /// An empty tally over `classes` labels.
    pub fn new(classes: usize) -> Self {
        Self {
            hits: vec![0; classes],
            seen: vec![0; classes],
            loss_sum: 0.0,
            total: 0,
        }
    }

    /// Scores one row of logits against its label: top-1 (the first largest logit wins a
    /// tie) and `logsumexp(row) - row[label]` in f64. A label outside the row counts as a
    /// miss with no loss (datasets are checked against the model before measuring).
    pub fn add(&mut self, row: &[f32], label: usize) {
        let (pred, max) =
            row.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |b, (k, &v)| if v > b.1 { (k, v) } else { b },
            );
        self.total += 1;
        if label < self.seen.len() {
            self.seen[label] += 1;
            self.hits[label] += usize::from(pred == label);
        }
        if let Some(&target) = row.get(label) {
            let lse = max as f64
                + row
                    .iter()
                    .map(|&v| ((v - max) as f64).exp())
                    .sum::<f64>()
                    .ln();
            self.loss_sum += lse - target as f64;
        }
    }

    /// Scores `rows` (row-major, `classes` logits each) against `labels`.
    pub fn add_rows(
        &mut self,
        logits: &[f32],
        classes: usize,
        labels: impl IntoIterator<Item = usize>,
    ) {
        for (row, label) in logits.chunks(classes.max(1)).zip(labels) {
            self.add(row, label);
        }
    }

    /// The report.
    pub fn report(&self) -> AccuracyReport {
        let correct: usize = self.hits.iter().sum();
        let total = self.total;
        AccuracyReport {
            accuracy: correct as f64 / total.max(1) as f64,
            loss: self.loss_sum / total.max(1) as f64,
            per_class: self
                .hits
                .iter()
                .zip(&self.seen)
                .map(|(&h, &s)| if s == 0 { 0.0 } else { h as f64 / s as f64 })
                .collect(),
            correct,
            total,
        }
    }
}

/// Top-1 accuracy, per-class accuracy and mean cross-entropy of `model` on `ds`, in batches
/// of `batch_size` (logits read back and scored by [`Tally`]).
pub fn evaluate_accuracy<B: Backend, M: Classifier<B>>(
    model: &M,
    ds: &ImageDataset,
    batcher: &Batcher,
    batch_size: usize,
    device: &B::Device,
) -> AccuracyReport {
    let order: Vec<usize> = (0..ds.len()).collect();
    let mut tally = Tally::new(ds.num_classes);
    for (chunk, batch) in order
        .chunks(batch_size.max(1))
        .zip(batcher.batches::<B>(ds, &order, batch_size, device))
    {
        let logits = model.forward(batch.images);
        let classes = logits.dims()[1];
        tally.add_rows(
            &host_values(logits),
            classes,
            chunk.iter().map(|&i| ds.labels[i] as usize),
        );
    }
    tally.report()
}

/// A tensor's values on the host as f32.
pub(crate) fn host_values<B: Backend, const D: usize>(t: burn::tensor::Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("data converted to f32 reads as f32")
}
