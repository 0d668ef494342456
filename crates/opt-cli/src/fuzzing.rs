//! The body of optkit's fuzz target for pipeline files (see `fuzz/` and opt-core's
//! `fuzzing`): parsed, validated, and every stage's model spec checked for 28x28 images, as
//! `optkit pipeline` does before anything trains.

use std::path::Path;

use opt_core::model::InputShape;

use crate::config::{Overrides, from_text};

/// A pipeline TOML file.
pub fn pipeline_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = from_text(text, Path::new("fuzz/pipeline.toml"), Overrides::default()) else {
        return;
    };
    let input = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    let _ = p.stage_specs(input);
}
