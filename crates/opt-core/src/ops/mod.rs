//! Tensor operations with faster CPU paths than burn's defaults, generic over `Backend`.
//!
//! The fast paths (here and in [`crate::model::batch_norm`]) compute the same values as burn's
//! operations and are on by default. [`set_fast_paths`] turns them off process-wide, so a
//! benchmark can time burn's own paths against them in one run (`optkit bench --reference`).

use std::sync::atomic::{AtomicBool, Ordering};

pub mod conv;
pub mod depthwise;

pub use conv::{conv2d, conv2d_module};

static FAST_PATHS: AtomicBool = AtomicBool::new(true);

/// Turns optkit's fast CPU paths on (the default) or off for the whole process.
pub fn set_fast_paths(enabled: bool) {
    FAST_PATHS.store(enabled, Ordering::Relaxed);
}

/// Whether optkit's fast CPU paths are on.
pub fn fast_paths() -> bool {
    FAST_PATHS.load(Ordering::Relaxed)
}
