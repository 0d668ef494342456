//! A bundle loaded for inference: its manifest checked, its optkit model loaded (float on a
//! burn backend, or int8 on the integer path), and images classified from raw 8-bit pixels.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use opt_arch::ZooModel;
use opt_core::model::Classifier;

use crate::bundle::{Manifest, open_bundle};
use crate::error::Result;
use crate::source::SourceModel;

/// One image's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Class index.
    pub class: usize,
    /// Its name from the manifest.
    pub name: String,
    /// Its softmax probability.
    pub probability: f32,
}

/// A bundle ready to classify.
pub struct Deployed<B: Backend> {
    /// The checked manifest.
    pub manifest: Manifest,
    model: SourceModel<B>,
    device: B::Device,
}

impl<B: Backend> Deployed<B> {
    /// Opens the bundle `dir` (every file checked against the manifest) and loads its model.
    ///
    /// # Errors
    /// A manifest mismatch, or the loaders' errors.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let manifest = open_bundle(dir)?;
        let model = SourceModel::load(dir, device)?;
        Ok(Self {
            manifest,
            model,
            device: device.clone(),
        })
    }

    /// Logits `[n, classes]` of `n` images given as raw 8-bit pixels `[n, c, h, w]`.
    ///
    /// # Panics
    /// When `pixels` does not hold `n` images of the manifest's input shape.
    pub fn logits(&self, pixels: &[u8], n: usize) -> Vec<f32> {
        let [c, h, w] = self.manifest.input.shape;
        assert_eq!(pixels.len(), n * c * h * w, "pixels must hold n images");
        match &self.model {
            SourceModel::Int8 { model, .. } => model.forward(pixels, n, 1),
            SourceModel::Float { model, .. } => {
                let norm = &self.manifest.input.normalization;
                let (scale, shift) = (1.0 / (255.0 * norm.std), norm.mean / norm.std);
                let values: Vec<f32> = pixels.iter().map(|&p| p as f32 * scale - shift).collect();
                let x =
                    Tensor::<B, 4>::from_data(TensorData::new(values, [n, c, h, w]), &self.device);
                let y = <ZooModel<B> as Classifier<B>>::forward(&**model, x);
                y.into_data()
                    .convert::<f32>()
                    .into_vec::<f32>()
                    .expect("logits convert to f32")
            }
        }
    }

    /// The most likely class of each of `n` images (raw 8-bit pixels).
    pub fn classify(&self, pixels: &[u8], n: usize) -> Vec<Prediction> {
        let classes = self.manifest.output.classes;
        self.logits(pixels, n)
            .chunks(classes)
            .map(|row| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
                let total: f32 = exp.iter().sum();
                let (class, e) = exp
                    .iter()
                    .enumerate()
                    .fold((0, 0.0f32), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
                Prediction {
                    class,
                    name: self
                        .manifest
                        .class_names
                        .get(class)
                        .cloned()
                        .unwrap_or_else(|| class.to_string()),
                    probability: e / total,
                }
            })
            .collect()
    }
}
