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
/// reproducibility must not interleave their draws with other tests: hold this lock.
pub static SEED_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`SEED_LOCK`] for the rest of a test that draws from the backend's generator.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    SEED_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
