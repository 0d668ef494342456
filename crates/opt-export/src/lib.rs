//! optkit's deployment export.
//!
//! - [`format::export_bytes`]: a saved model as ONNX (opset 17; float graphs, and int8 models
//!   in QDQ form, see [`onnx_export`]), safetensors with PyTorch names, or burn's Burnpack.
//! - [`bundle::write_bundle`]: a deployment folder with the model, its spec, the exports and a
//!   manifest (input shape, normalization, class names, SHA-256 of every file);
//!   [`bundle::open_bundle`] checks one, [`deployed::Deployed`] loads one and classifies
//!   raw 8-bit images.
//!
//! ```no_run
//! use burn::tensor::backend::Backend;
//! use opt_export::{ExportFormat, write_bundle};
//!
//! fn deploy<B: Backend>(device: &B::Device) -> Result<(), opt_export::ExportError> {
//!     let manifest = write_bundle::<B>(
//!         "runs/quickstart/baseline".as_ref(),
//!         "deploy/quickstart".as_ref(),
//!         &[ExportFormat::Onnx],
//!         "baseline",
//!         device,
//!     )?;
//!     println!("{} files", manifest.files.len());
//!     Ok(())
//! }
//! ```

pub mod bundle;
pub mod deployed;
pub mod error;
pub mod format;
pub mod fuzzing;
pub mod manifest;
pub mod onnx_export;
pub mod onnx_graph;
pub mod onnx_proto;
pub mod source;

pub use bundle::{Manifest, open_bundle, write_bundle};
pub use deployed::{Deployed, Prediction};
pub use error::{ExportError, Result};
pub use format::{ExportFormat, export_bytes};
