//! opt-quant: quantization that makes models really smaller and faster on the CPU.
//!
//! - [`kernels`]: `C = A · Bᵀ` with 8-bit operands and 32-bit accumulation, a plain reference
//!   implementation and an AVX2 one chosen at run time, checked against each other on many
//!   random shapes;
//! - [`graph`]: an opt-core model (MLP, LeNet-5, the quickstart CNN) read out into float layers,
//!   batch norms folded;
//! - [`observer`] and [`calibrate`]: activation ranges from calibration images (min-max,
//!   percentile, MSE, entropy);
//! - [`qmodel`]: the int8 model (int8 weights per channel or per tensor, uint8 activations,
//!   requantization with fused ReLU) that really runs in integers; [`qformat`] saves it in its
//!   integer form; [`measure`] measures it like a float model;
//! - [`quantize_ptq`]: all of it as one post-training quantization call.
//!
//! Quantization-aware training, weight-only int4 and the pipeline stage come next (issue 5).
//!
//! ```
//! use opt_quant::kernels::{Isa, Lhs, Rhs, gemm};
//!
//! // Two rows of activations times the three output rows of a linear layer's weights,
//! // reduction length 4.
//! let a = Lhs::new(2, 4, &[1i8, 2, 3, 4, -1, 0, 1, 0]);
//! let w = Rhs::new(3, 4, &[1i8, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1]);
//! let mut c = vec![0i32; 6];
//! gemm(Isa::detect(), &a, &w, &mut c);
//! assert_eq!(c, [1, 2, 10, -1, 0, 0]);
//! ```

pub mod bench;
pub mod calibrate;
pub mod config;
pub mod error;
pub mod graph;
pub mod kernels;
pub mod measure;
pub mod observer;
pub mod qformat;
pub mod qmodel;

pub use config::{CalibrationConfig, QuantConfig, quantize_ptq};
pub use error::{QuantError, Result};
pub use qmodel::QuantModel;
