//! Top-1 accuracy, per-class accuracy and mean cross-entropy of a model on a dataset.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{ElementConversion, backend::Backend};
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

/// Evaluates `model` (an inference-mode module: call `valid()` on an autodiff model first).
pub fn evaluate_accuracy<B: Backend, M: Classifier<B>>(
    model: &M,
    ds: &ImageDataset,
    batcher: &Batcher,
    batch_size: usize,
    device: &B::Device,
) -> AccuracyReport {
    let order: Vec<usize> = (0..ds.len()).collect();
    let ce = CrossEntropyLossConfig::new().init(device);
    let mut hits = vec![0usize; ds.num_classes];
    let mut seen = vec![0usize; ds.num_classes];
    let mut loss_sum = 0.0f64;
    for (chunk, batch) in order
        .chunks(batch_size.max(1))
        .zip(batcher.batches::<B>(ds, &order, batch_size, device))
    {
        let logits = model.forward(batch.images);
        let loss: f64 = ce
            .forward(logits.clone(), batch.targets)
            .into_scalar()
            .elem::<f64>();
        loss_sum += loss * chunk.len() as f64;
        let pred = logits.argmax(1).into_data().convert::<i64>();
        let pred = pred
            .as_slice::<i64>()
            .expect("argmax data converted to i64");
        for (&i, &p) in chunk.iter().zip(pred) {
            let label = ds.labels[i] as usize;
            seen[label] += 1;
            if p as usize == label {
                hits[label] += 1;
            }
        }
    }
    let correct: usize = hits.iter().sum();
    let total = ds.len();
    AccuracyReport {
        accuracy: correct as f64 / total.max(1) as f64,
        loss: loss_sum / total.max(1) as f64,
        per_class: hits
            .iter()
            .zip(&seen)
            .map(|(&h, &s)| if s == 0 { 0.0 } else { h as f64 / s as f64 })
            .collect(),
        correct,
        total,
    }
}
