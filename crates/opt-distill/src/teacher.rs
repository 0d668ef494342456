//! The teacher: a true copy of a trained model, run in inference mode only (inner backend: no
//! gradients, batch norm on its running statistics, dropout off), fed images normalized its own
//! way, with its logits optionally computed once for the whole training split.

use burn::module::{HasAutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use opt_core::data::{Batcher, ImageDataset, Normalization};
use opt_core::model::Classifier;
use opt_core::train::deep_copy;

use crate::hint::{HintPair, forward_capturing};

/// A teacher on the inner backend `B`.
pub struct Teacher<B: Backend, T> {
    model: T,
    /// `x_teacher = x_student * scale + shift` when teacher and student data are normalized
    /// differently.
    affine: Option<(f64, f64)>,
    batcher: Batcher,
    cache: Option<Tensor<B, 2>>,
}

impl<B: Backend, T: Module<B> + Classifier<B>> Teacher<B, T> {
    /// A true copy of `model` (burn's `clone` would share its batch-norm running statistics),
    /// trained on images normalized with `teacher_norm`; the student's batches use
    /// `student_norm`.
    pub fn new<AB>(model: &T, teacher_norm: Normalization, student_norm: Normalization) -> Self
    where
        AB: AutodiffBackend<InnerBackend = B>,
        T: HasAutodiffModule<AB>,
    {
        let affine = (teacher_norm != student_norm).then(|| {
            let scale = student_norm.std as f64 / teacher_norm.std as f64;
            let shift =
                (student_norm.mean as f64 - teacher_norm.mean as f64) / teacher_norm.std as f64;
            (scale, shift)
        });
        Self {
            model: deep_copy::<AB, T>(model),
            affine,
            batcher: Batcher { norm: teacher_norm },
            cache: None,
        }
    }

    /// The model (for evaluation).
    pub fn model(&self) -> &T {
        &self.model
    }

    /// Batching with the teacher's normalization.
    pub fn batcher(&self) -> Batcher {
        self.batcher
    }

    fn input(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.affine {
            Some((scale, shift)) => images.mul_scalar(scale).add_scalar(shift),
            None => images,
        }
    }

    /// Logits for a batch normalized the student's way.
    pub fn logits(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.model.forward(self.input(images))
    }

    /// Logits and the outputs of the teacher layers of `pairs`, in their order.
    pub fn logits_and_features(
        &self,
        images: Tensor<B, 4>,
        pairs: &[HintPair],
    ) -> (Tensor<B, 2>, Vec<Tensor<B, 4>>) {
        let layers: Vec<&str> = pairs.iter().map(|p| p.teacher.as_str()).collect();
        forward_capturing(&self.model, self.input(images), &layers)
    }

    /// Computes the logits of every item of `ds` once (batches of 256, in dataset order), so
    /// [`Teacher::cached`] can serve them every epoch.
    pub fn cache_logits(&mut self, ds: &ImageDataset, device: &B::Device) {
        let order: Vec<usize> = (0..ds.len()).collect();
        let parts: Vec<Tensor<B, 2>> = self
            .batcher
            .batches::<B>(ds, &order, 256, device)
            .map(|b| self.model.forward(b.images))
            .collect();
        self.cache = Some(Tensor::cat(parts, 0));
    }

    /// The cached logits of the dataset items `indices`, if [`Teacher::cache_logits`] ran.
    pub fn cached(&self, indices: &[usize], device: &B::Device) -> Option<Tensor<B, 2>> {
        let cache = self.cache.as_ref()?;
        let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [indices.len()]), device);
        Some(cache.clone().select(0, idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opt_core::data::DataSource;
    use opt_core::model::{InputShape, ModelSpec};
    use opt_core::test_util::{TestAutodiff, TestBackend, device, rng_lock};

    #[test]
    fn cached_logits_equal_live_ones_and_renormalization_is_exact() {
        let _g = rng_lock();
        let ds = DataSource::Embedded.load(10).unwrap().test.take(40);
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let spec = ModelSpec::preset("lenet5", input, 10).unwrap();
        let m = spec.init::<TestBackend>(&device());
        let tn = Normalization {
            mean: 0.3,
            std: 0.4,
        };
        let sn = Normalization::of(&ds);
        let mut t = Teacher::new::<TestAutodiff>(&m, tn, sn);
        t.cache_logits(&ds, &device());
        let idx = [7usize, 3, 39];
        let student_batch = Batcher { norm: sn }.batch::<TestBackend>(&ds, &idx, &device());
        let live = t.logits(student_batch.images);
        let cached = t.cached(&idx, &device()).unwrap();
        let direct = m.forward(
            Batcher { norm: tn }
                .batch::<TestBackend>(&ds, &idx, &device())
                .images,
        );
        live.clone()
            .into_data()
            .assert_approx_eq::<f32>(&cached.into_data(), burn::tensor::Tolerance::absolute(1e-4));
        live.into_data()
            .assert_approx_eq::<f32>(&direct.into_data(), burn::tensor::Tolerance::absolute(1e-4));
    }
}
