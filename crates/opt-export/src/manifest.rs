//! A bundle's `manifest.json`: what the bundle holds (input shape and type, normalization,
//! class names, output, and every file's size and SHA-256), and [`open_bundle`], which trusts
//! none of it until checked: file names are plain names inside the bundle (never paths),
//! every file the loader reads is listed and matches, and the shapes and classes agree with
//! the model the bundle holds.

use std::collections::BTreeSet;
use std::path::Path;

use opt_arch::ZooArch;
use opt_core::artifact::{MODEL_FILE, ModelMeta};
use opt_core::fsutil::{read_capped, read_json};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ExportError, Result};

/// File name of the manifest in a bundle.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Version of the manifest this optkit writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// The model's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input name in the exported graphs.
    pub name: String,
    /// Element type the exported graphs take.
    pub dtype: String,
    /// Shape of one image, `[channels, height, width]`; the batch dimension comes first and
    /// may have any size.
    pub shape: [usize; 3],
    /// Layout of a batch.
    pub layout: String,
    /// How raw 8-bit pixels become the input values.
    pub normalization: NormalizationSpec,
}

/// The input normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizationSpec {
    /// Mean of the training pixels scaled to [0, 1].
    pub mean: f32,
    /// Their standard deviation.
    pub std: f32,
    /// The formula.
    pub formula: String,
}

/// The model's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output name in the exported graphs.
    pub name: String,
    /// What it holds.
    pub meaning: String,
    /// Number of classes.
    pub classes: usize,
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the bundle.
    pub path: String,
    /// What the file is.
    pub role: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of its contents, lowercase hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub format_version: u32,
    /// Tool and version that wrote it.
    pub producer: String,
    /// Model name (the pipeline candidate).
    pub name: String,
    /// `float32` or `int8`.
    pub kind: String,
    /// The architecture in words.
    pub architecture: String,
    /// The input.
    pub input: InputSpec,
    /// The output.
    pub output: OutputSpec,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Every file but the manifest.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Checks what the manifest says without reading any file: the version, plain and unique
    /// file names (`model.json` among them), a positive input shape and standard deviation,
    /// and at least two classes, one name each.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.format_version != MANIFEST_VERSION {
            return Err(format!(
                "manifest format_version {} (this optkit reads {MANIFEST_VERSION})",
                self.format_version
            ));
        }
        let mut seen = BTreeSet::new();
        for f in &self.files {
            if !is_plain_file_name(&f.path) || f.path == MANIFEST_FILE {
                return Err(format!(
                    "the manifest lists {:?}; a bundle lists plain file names inside its folder \
                     (no paths, no hidden files, not the manifest itself)",
                    f.path
                ));
            }
            if !seen.insert(f.path.as_str()) {
                return Err(format!("the manifest lists {:?} twice", f.path));
            }
        }
        if !seen.contains(MODEL_FILE) {
            return Err(format!(
                "the manifest does not list {MODEL_FILE}, which every bundle holds; export the \
                 bundle again"
            ));
        }
        if self.input.shape.contains(&0) {
            return Err(format!(
                "input.shape {:?} has a zero dimension",
                self.input.shape
            ));
        }
        let n = &self.input.normalization;
        if !(n.std.is_finite() && n.std > 0.0 && n.mean.is_finite()) {
            return Err(format!(
                "input.normalization has mean {} and std {}; the std must be a positive number",
                n.mean, n.std
            ));
        }
        if self.output.classes < 2 || self.class_names.len() != self.output.classes {
            return Err(format!(
                "output.classes = {} with {} class names; a classifier has at least 2 classes, \
                 one name each",
                self.output.classes,
                self.class_names.len()
            ));
        }
        Ok(())
    }
}

/// Whether `name` is a plain file name: not empty, no path separator, not `.` or `..`, not
/// hidden, no NUL.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).file_name().and_then(|n| n.to_str()) == Some(name)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a bundle's manifest, checks it (see [`Manifest::check`]) and every file it lists
/// (present, a regular file, same size, same SHA-256), and checks that the files the loader
/// reads are listed: `model.json` and the weights file it names, whose model must have the
/// manifest's input shape and classes.
///
/// # Errors
/// [`ExportError::Bundle`] naming the first problem.
pub fn open_bundle(dir: &Path) -> Result<Manifest> {
    let bad = |problem: String| ExportError::Bundle {
        path: dir.to_path_buf(),
        problem,
    };
    if !dir.join(MANIFEST_FILE).is_file() {
        return Err(bad(format!(
            "no {MANIFEST_FILE}: not a bundle (write one with `optkit export` or a pipeline's \
             [deploy] section)"
        )));
    }
    let manifest: Manifest = read_json(&dir.join(MANIFEST_FILE))?;
    manifest.check().map_err(bad)?;
    for f in &manifest.files {
        let bytes = read_capped(&dir.join(&f.path), f.bytes, "the manifest's size")
            .map_err(|e| bad(format!("{} listed in the manifest: {e}", f.path)))?;
        let sum = sha256_hex(&bytes);
        if bytes.len() as u64 != f.bytes || sum != f.sha256 {
            return Err(bad(format!(
                "{} does not match the manifest ({} bytes, sha256 {sum}; manifest: {} bytes, \
                 sha256 {}): the file was changed or damaged, export the bundle again",
                f.path,
                bytes.len(),
                f.bytes,
                f.sha256
            )));
        }
    }
    // model.json is listed and matched; the weights file it names must be listed too, and
    // the model must be the one the manifest describes.
    let meta: ModelMeta<ZooArch> = read_json(&dir.join(MODEL_FILE))?;
    meta.check(dir)?;
    if !manifest.files.iter().any(|f| f.path == meta.weights) {
        return Err(bad(format!(
            "{MODEL_FILE} names the weights file {}, which the manifest does not list; export \
             the bundle again",
            meta.weights
        )));
    }
    let spec = &meta.spec;
    let shape = [spec.input.channels, spec.input.height, spec.input.width];
    if manifest.input.shape != shape || manifest.output.classes != spec.classes {
        return Err(bad(format!(
            "the manifest describes {:?} images into {} classes but {MODEL_FILE} a model of \
             {shape:?} into {}; export the bundle again",
            manifest.input.shape, manifest.output.classes, spec.classes
        )));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file() -> impl Strategy<Value = FileEntry> {
        (
            "[a-zA-Z0-9][a-zA-Z0-9_. -]{0,20}",
            ".{0,20}",
            any::<u64>(),
            "[0-9a-f]{64}",
        )
            .prop_map(|(path, role, bytes, sha256)| FileEntry {
                path,
                role,
                bytes,
                sha256,
            })
    }

    fn manifest() -> impl Strategy<Value = Manifest> {
        (
            prop::collection::vec(file(), 0..5),
            [1usize..8, 1usize..64, 1usize..64],
            (0.0f32..1.0, 0.001f32..1.0),
            2usize..20,
            ".{0,12}",
        )
            .prop_map(|(mut files, shape, (mean, std), classes, name)| {
                files.push(FileEntry {
                    path: MODEL_FILE.into(),
                    role: "spec".into(),
                    bytes: 10,
                    sha256: "0".repeat(64),
                });
                files.sort_by(|a, b| a.path.cmp(&b.path));
                files.dedup_by(|a, b| a.path == b.path);
                Manifest {
                    format_version: MANIFEST_VERSION,
                    producer: "optkit".into(),
                    name,
                    kind: "float32".into(),
                    architecture: "cnn".into(),
                    input: InputSpec {
                        name: "input".into(),
                        dtype: "float32".into(),
                        shape,
                        layout: "NCHW".into(),
                        normalization: NormalizationSpec {
                            mean,
                            std,
                            formula: "(pixel / 255 - mean) / std".into(),
                        },
                    },
                    output: OutputSpec {
                        name: "logits".into(),
                        meaning: "logits".into(),
                        classes,
                    },
                    class_names: (0..classes).map(|i| format!("c{i}")).collect(),
                    files,
                }
            })
    }

    proptest! {
        /// A manifest optkit writes reads back the same and passes its own check; one that
        /// lists a path instead of a file name does not.
        #[test]
        fn manifests_round_trip_and_paths_are_refused(m in manifest(), bad in "(\\.\\./|/)[a-z]{1,8}") {
            let text = serde_json::to_string_pretty(&m).unwrap();
            let back: Manifest = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &m);
            prop_assert!(back.check().is_ok(), "{:?}", back.check());
            let mut hostile = m.clone();
            hostile.files[0].path = bad;
            prop_assert!(hostile.check().is_err());
        }
    }
}
