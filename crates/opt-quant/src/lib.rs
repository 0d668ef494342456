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
//! - [`quantize_ptq`]: all of it as one post-training quantization call;
//! - [`qat`]: quantization-aware training (fake quantization with straight-through gradients
//!   in opt-core's training loop) and conversion, [`quantize_qat`];
//! - [`weight_only`]: 8- or 4-bit weight codes per tensor, channel or block, stored by
//!   [`opt_core::qweights`] and dequantized on load;
//! - [`fallback`]: accuracy-aware quantization, the most sensitive layers kept in float until
//!   the validation accuracy drop is within a tolerance.
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
pub mod fallback;
#[cfg(test)]
mod fixture;
pub mod float_layer;
pub mod fuzzing;
pub mod graph;
pub mod kernels;
pub mod measure;
pub mod observer;
pub mod qat;
pub mod qformat;
pub mod qmodel;
pub mod weight_only;

pub use config::{
    Calibrated, CalibrationConfig, Method, QuantConfig, calibrate_model, quantize_ptq,
};
pub use error::{QuantError, Result};
pub use qat::{QatConfig, QatModel, quantize_qat};
pub use qmodel::QuantModel;
