//! The one place that names concrete backends. `--backend` picks one of those compiled in.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;

/// A backend optkit can be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// burn-flex: pure-Rust CPU backend (gemm + rayon, SIMD). The default CPU backend.
    Flex,
    /// burn-ndarray: CPU backend (SIMD, multi-threaded).
    Ndarray,
    /// burn-wgpu: GPU through Vulkan/Metal/DX12 (Mesa's llvmpipe on a machine without a GPU).
    Wgpu,
}

impl BackendKind {
    /// Every backend, compiled in or not.
    pub const ALL: [BackendKind; 3] = [BackendKind::Flex, BackendKind::Ndarray, BackendKind::Wgpu];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
        }
    }

    /// Whether this binary was built with the backend's cargo feature.
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Ndarray => cfg!(feature = "ndarray"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    /// The backends compiled into this binary.
    pub fn compiled_in() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|b| b.compiled()).collect()
    }

    /// The default: flex (measured fastest on the CPU, see README), else the first compiled in.
    pub fn default_compiled() -> Result<BackendKind> {
        match Self::compiled_in().first() {
            Some(b) => Ok(*b),
            None => {
                bail!("this optkit was built without any backend; rebuild with --features flex")
            }
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let kind = Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                anyhow::anyhow!("unknown backend '{s}'; use one of flex, ndarray, wgpu")
            })?;
        if !kind.compiled() {
            let have: Vec<&str> = Self::compiled_in().iter().map(|b| b.name()).collect();
            bail!(
                "backend '{s}' is not compiled into this optkit (compiled in: {}); rebuild with \
                 `cargo build --release -p opt-cli --features {s}`",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            );
        }
        Ok(kind)
    }
}

/// Work that runs on whichever backend was chosen: a generic function made object-like.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Runs on autodiff backend `B`; `device_name` describes the device for reports.
    fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        backend: BackendKind,
        device_name: String,
    ) -> Result<Self::Output>;
}

/// Runs `task` on `kind`.
pub fn dispatch<T: BackendTask>(kind: BackendKind, task: T) -> Result<T::Output> {
    // Seeded runs draw from the backends' process-global generators: one task at a time per
    // process does, so a run's weights never depend on what else runs beside it.
    let _rng = opt_core::train::rng_session();
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => {
            let device = burn_flex::FlexDevice;
            let name = format!(
                "cpu ({} threads)",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            );
            task.run::<burn::backend::Autodiff<burn_flex::Flex>>(device, kind, name)
        }
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => {
            let device = burn_ndarray::NdArrayDevice::Cpu;
            let name = format!(
                "cpu ({} threads)",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            );
            task.run::<burn::backend::Autodiff<burn_ndarray::NdArray<f32>>>(device, kind, name)
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            let device = burn_wgpu::WgpuDevice::default();
            let name = wgpu_adapter(&device)?;
            task.run::<burn::backend::Autodiff<burn_wgpu::Wgpu>>(device, kind, name)
        }
        #[allow(unreachable_patterns)]
        other => bail!(
            "backend '{other}' is not compiled into this optkit; rebuild with --features {other}"
        ),
    }
}

/// Whether this machine has a wgpu adapter (a GPU driver, or Mesa's software Vulkan driver):
/// its name, or the error that says what to install. Tests that need one ask first.
pub fn wgpu_adapter_name() -> Result<String> {
    #[cfg(feature = "wgpu")]
    {
        wgpu_adapter(&burn_wgpu::WgpuDevice::default())
    }
    #[cfg(not(feature = "wgpu"))]
    bail!("this optkit was built without the wgpu backend (--features wgpu)")
}

/// Sets up the wgpu device once per process and names its adapter; a machine with no Vulkan
/// driver gets an error that says what to install instead of burn's panic. The answer is
/// remembered: burn's runtime refuses a second set-up of a device (a test that asked whether
/// there is an adapter and then runs the pipeline in the same process).
#[cfg(feature = "wgpu")]
fn wgpu_adapter(device: &burn_wgpu::WgpuDevice) -> Result<String> {
    use burn_wgpu::graphics::AutoGraphicsApi;
    type Known = Vec<(burn_wgpu::WgpuDevice, std::result::Result<String, String>)>;
    static KNOWN: std::sync::Mutex<Known> = std::sync::Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, answer)) = known.iter().find(|(d, _)| d == device) {
        return answer.clone().map_err(|e| anyhow::anyhow!(e));
    }
    let setup = std::panic::catch_unwind(|| {
        burn_wgpu::init_setup::<AutoGraphicsApi>(device, burn_wgpu::RuntimeOptions::default())
    });
    let answer = match setup {
        Ok(setup) => {
            let info = setup.adapter.get_info();
            tracing::info!(adapter = %info.name, kind = ?info.device_type, api = ?info.backend, "wgpu adapter");
            Ok(format!(
                "{} ({:?}, {:?})",
                info.name, info.device_type, info.backend
            ))
        }
        Err(_) => Err(
            "no wgpu adapter found; install a GPU driver, or Mesa's software Vulkan \
             driver (`apt-get install mesa-vulkan-drivers libvulkan1`), or use --backend flex"
                .to_string(),
        ),
    };
    known.push((device.clone(), answer.clone()));
    answer.map_err(|e| anyhow::anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compiled_backends_and_explains_others() {
        for b in BackendKind::compiled_in() {
            assert_eq!(b.name().parse::<BackendKind>().unwrap(), b);
        }
        let e = "cuda".parse::<BackendKind>().unwrap_err().to_string();
        assert!(e.contains("flex, ndarray, wgpu"), "{e}");
    }
}
