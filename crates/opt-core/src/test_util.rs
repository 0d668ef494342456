//! The backend unit tests run on: flex by default, wgpu (llvmpipe or a real GPU) with the
//! `test-wgpu` feature.

#[cfg(not(feature = "test-wgpu"))]
pub type TestBackend = burn_flex::Flex;
#[cfg(feature = "test-wgpu")]
pub type TestBackend = burn_wgpu::Wgpu;

/// Autodiff over [`TestBackend`].
pub type TestAutodiff = burn::backend::Autodiff<TestBackend>;

/// The default device of [`TestBackend`].
pub fn device() -> burn::tensor::Device<TestBackend> {
    Default::default()
}

/// Backends seed a process-global generator (`B::seed`), so tests that check seeded
/// reproducibility must not interleave their draws with other tests: hold this session (the
/// one every optkit command holds, see [`crate::train::rng_session`]) for the rest of a test.
pub fn rng_lock() -> crate::train::RngSession {
    crate::train::rng_session()
}

/// The input of MNIST-style images: 1 channel, 28x28.
pub const MNIST: crate::model::InputShape = crate::model::InputShape {
    channels: 1,
    height: 28,
    width: 28,
};
