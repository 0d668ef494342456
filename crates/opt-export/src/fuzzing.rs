//! The body of optkit's fuzz target for bundle manifests (see `fuzz/` and opt-core's
//! `fuzzing`): parsed and checked as `open_bundle` does before it reads any file.

use crate::manifest::Manifest;

/// A `manifest.json`.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let _ = m.check();
    }
}
