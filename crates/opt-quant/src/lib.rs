//! opt-quant: quantization that makes models really smaller and faster on the CPU.
//!
//! This first layer holds the integer kernels ([`kernels`]): `C = A · Bᵀ` with int8 operands
//! and 32-bit accumulation, a plain reference implementation and an AVX2 one chosen at run
//! time, checked against each other on many random shapes. Calibration, post-training
//! quantization, quantization-aware training and the int8 model built on these kernels come
//! next (issue 5).
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
pub mod kernels;
