//! Resuming a pipeline: every finished stage leaves a marker (`stage.done.json`, written last
//! and atomically) holding a content key of what it was made from (its settings, the training
//! settings, the data's bytes, the measurement settings, the backend, and the digests of the
//! models it started from) and the digest of the files it wrote. A restarted pipeline reuses a
//! stage whose key and files are unchanged and redoes the rest; a stage killed half-way has
//! no marker and runs again.

use std::path::Path;

use anyhow::{Context, Result};
use opt_core::data::ImageDataset;
use opt_core::fsutil::{read_json, write_json_atomic};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The marker's file name inside a stage's folder.
pub const MARKER: &str = "stage.done.json";

/// What a finished stage records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageMarker {
    /// The content key of the stage's inputs and settings.
    pub key: String,
    /// The digest of the files it wrote (see [`folder_digest`]).
    pub output: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a value's JSON form, as hex.
pub fn json_digest<T: Serialize>(value: &T) -> Result<String> {
    let bytes = serde_json::to_vec(value).context("serializing a stage's settings")?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// sha256 of the data the run trains, validates and tests on (pixels, labels and shapes of
/// the splits as loaded, after limits), as hex.
pub fn data_digest(splits: &[&ImageDataset]) -> String {
    let mut h = Sha256::new();
    for ds in splits {
        for n in [ds.len(), ds.channels, ds.height, ds.width, ds.num_classes] {
            h.update((n as u64).to_le_bytes());
        }
        h.update(&ds.pixels);
        h.update(&ds.labels);
    }
    hex(&h.finalize())
}

/// sha256 over a stage folder's files (name and bytes, sorted by name), as hex: the top-level
/// files except report.json and the marker (trial folders and other subfolders are the
/// stage's working files, not its model).
pub fn folder_digest(dir: &Path) -> Result<String> {
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let skip = name == MARKER || name == "report.json" || name.starts_with('.');
        if entry.file_type()?.is_file() && !skip {
            names.push(name);
        }
    }
    names.sort();
    let mut h = Sha256::new();
    for name in names {
        let bytes = std::fs::read(dir.join(&name))
            .with_context(|| format!("reading {}", dir.join(&name).display()))?;
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(hex(&h.finalize()))
}

/// The stage's marker, if it finished with this `key` and its files are unchanged since.
pub fn reusable(dir: &Path, key: &str) -> Option<StageMarker> {
    let marker: StageMarker = read_json(&dir.join(MARKER)).ok()?;
    if marker.key != key {
        tracing::info!(dir = %dir.display(), "settings or inputs changed since the last run");
        return None;
    }
    match folder_digest(dir) {
        Ok(d) if d == marker.output => Some(marker),
        _ => {
            tracing::warn!(dir = %dir.display(), "files changed since the stage finished; running it again");
            None
        }
    }
}

/// Records a finished stage (after everything else in its folder is written).
pub fn mark_done(dir: &Path, key: &str) -> Result<StageMarker> {
    let marker = StageMarker {
        key: key.to_string(),
        output: folder_digest(dir)?,
    };
    write_json_atomic(&dir.join(MARKER), &marker)?;
    Ok(marker)
}

/// Removes a stage's marker before it runs again, so a kill during the run never leaves an
/// old marker next to new files.
pub fn clear(dir: &Path) -> Result<()> {
    match std::fs::remove_file(dir.join(MARKER)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.join(MARKER).display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_holds_only_while_key_and_files_are_unchanged() {
        let dir = std::env::temp_dir().join(format!("optkit-resume-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("trials")).unwrap();
        std::fs::write(dir.join("model.json"), b"{}").unwrap();
        std::fs::write(dir.join("weights.safetensors"), b"abc").unwrap();
        assert!(reusable(&dir, "k1").is_none(), "no marker yet");
        let m = mark_done(&dir, "k1").unwrap();
        assert_eq!(reusable(&dir, "k1"), Some(m.clone()));
        assert!(reusable(&dir, "k2").is_none(), "another key");
        // Working files and the report do not count; the model's files do.
        std::fs::write(dir.join("trials/x"), b"1").unwrap();
        std::fs::write(dir.join("report.json"), b"{}").unwrap();
        assert_eq!(reusable(&dir, "k1"), Some(m));
        std::fs::write(dir.join("weights.safetensors"), b"abd").unwrap();
        assert!(reusable(&dir, "k1").is_none(), "weights changed");
        clear(&dir).unwrap();
        clear(&dir).unwrap();
        assert!(!dir.join(MARKER).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn digests_follow_content() {
        let a = json_digest(&("prune", 0.5)).unwrap();
        assert_eq!(a, json_digest(&("prune", 0.5)).unwrap());
        assert_ne!(a, json_digest(&("prune", 0.6)).unwrap());
        assert_eq!(a.len(), 64);
    }
}
