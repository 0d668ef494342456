//! Moving models between inference and training without shared state: a trainable copy of an
//! inference model, and a true copy (burn's `Clone` of a module shares batch-norm running
//! statistics through an `Arc`).

use burn::module::{AutodiffModule, HasAutodiffModule, Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

/// Marks every float parameter as trainable.
struct RequireGrad;

impl<B: AutodiffBackend> ModuleMapper<B> for RequireGrad {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.map(|t| t.require_grad())
    }
}

/// The training-mode copy of an inference-mode model, every parameter trainable.
///
/// `from_inner` keeps each parameter's require-grad flag, which a model built or loaded on the
/// inner backend does not set; without this, its parameters would get no gradients.
pub fn trainable<B: AutodiffBackend, M: AutodiffModule<B>>(inner: M::InnerModule) -> M {
    M::from_inner(inner).map(&mut RequireGrad)
}

/// A copy of `model` that shares no mutable state with it: its batch-norm running statistics
/// are new cells (parameters are immutable tensors, so sharing them is safe).
pub fn deep_copy<B, M>(model: &M) -> M
where
    B: AutodiffBackend,
    M: Module<B::InnerBackend> + HasAutodiffModule<B>,
{
    <M::TrainModule as AutodiffModule<B>>::from_inner(model.clone()).valid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, InputShape, Model, ModelSpec};
    use crate::test_util::{TestAutodiff, TestBackend, device, rng_lock};

    fn cnn() -> Model<TestBackend> {
        let spec = ModelSpec {
            input: InputShape {
                channels: 1,
                height: 8,
                width: 8,
            },
            classes: 3,
            arch: Arch::Cnn {
                blocks: vec![2],
                fc: 4,
            },
        };
        spec.init::<TestBackend>(&device())
    }

    fn running_mean(m: &Model<TestBackend>) -> Vec<f32> {
        match m {
            Model::Cnn(c) => c.blocks[0]
                .bn
                .running_mean
                .value_sync()
                .to_data()
                .to_vec()
                .unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_clone_shares_running_statistics_a_deep_copy_does_not() {
        let _g = rng_lock();
        let original = cnn();
        let shared = original.clone();
        let copy = deep_copy::<TestAutodiff, _>(&original);
        let before = running_mean(&original);
        if let Model::Cnn(c) = &original {
            let v = c.blocks[0].bn.running_mean.value();
            c.blocks[0].bn.running_mean.update(v.add_scalar(1.0));
        }
        // burn's clone sees the update (the reason for deep_copy), the deep copy does not.
        assert_ne!(running_mean(&shared), before);
        assert_eq!(running_mean(&copy), before);
    }

    #[test]
    fn trainable_models_get_gradients() {
        let _g = rng_lock();
        let m: Model<TestAutodiff> = trainable::<TestAutodiff, Model<TestAutodiff>>(cnn());
        let x = Tensor::<TestAutodiff, 4>::ones([2, 1, 8, 8], &device());
        let grads = crate::model::Classifier::forward(&m, x).sum().backward();
        if let Model::Cnn(c) = &m {
            assert!(c.head.weight.val().grad(&grads).is_some());
        }
    }
}
