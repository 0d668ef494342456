//! Every shipped recipe in `configs/` parses and passes the checks that run before training
//! (settings, model specs, pruning settings against each stage's source model), so a recipe
//! named in the README cannot rot unnoticed.

use opt_cli::config::{Overrides, load};
use opt_core::model::InputShape;

#[test]
fn every_shipped_recipe_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let p = load(&path, Overrides::default())
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let specs = p
            .stage_specs(input)
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert_eq!(specs.len(), p.file.stages.len());
        checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    checked.sort();
    for recipe in [
        "quickstart.toml",
        "fashion-lenet5-prune-unstructured.toml",
        "fashion-lenet5-prune-structured.toml",
        "fashion-lenet5-prune-sensitivity.toml",
        "fashion-mobilenetv2-prune-structured.toml",
    ] {
        assert!(checked.iter().any(|c| c == recipe), "{recipe}: {checked:?}");
    }
}
