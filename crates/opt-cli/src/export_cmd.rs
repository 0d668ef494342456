//! `optkit export` and a pipeline's `[deploy]` section: a deployment bundle (see
//! opt_export::bundle) of a saved model folder, on whichever backend loads float models.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use opt_export::{ExportFormat, Manifest, write_bundle};
use serde::{Deserialize, Serialize};

use crate::backend::{BackendKind, BackendTask};

/// A pipeline's `[deploy]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// The candidate to deploy: `best` (the one `[constraints]` chose) or a stage name.
    pub candidate: String,
    /// Formats exported beside the optkit model files.
    pub formats: Vec<ExportFormat>,
    /// Bundle folder, relative to the run's output folder and inside it.
    pub path: PathBuf,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            candidate: "best".into(),
            formats: vec![ExportFormat::Onnx],
            path: PathBuf::from("deploy"),
        }
    }
}

impl DeployConfig {
    /// Checks the settings against the stage names.
    ///
    /// # Errors
    /// A path that is absolute or leaves the output folder, an unknown candidate, no formats
    /// listed twice.
    pub fn validate(&self, stages: &[String]) -> Result<()> {
        check_inside(&self.path)?;
        // The bundle's top folder must not be a stage's folder or a file the run writes.
        let first = self
            .path
            .components()
            .find_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .unwrap_or_default();
        let reserved = ["report.json", "report.md", "report.html", "tune.db"];
        if stages.contains(&first)
            || reserved.contains(&first.as_str())
            || first.starts_with("tune.db")
        {
            bail!(
                "deploy.path = \"{}\": {first} is {} in the run's output folder; choose another \
                 folder, such as \"deploy\"",
                self.path.display(),
                if stages.contains(&first) {
                    "a stage's folder"
                } else {
                    "a file the run writes"
                }
            );
        }
        if self.candidate != "best" && !stages.contains(&self.candidate) {
            bail!(
                "deploy.candidate = \"{}\": no stage has that name; use \"best\" or one of: {}",
                self.candidate,
                stages.join(", ")
            );
        }
        for (i, f) in self.formats.iter().enumerate() {
            if self.formats[..i].contains(f) {
                bail!("deploy.formats lists \"{f}\" twice; list each format once");
            }
        }
        Ok(())
    }
}

/// Refuses a deploy path that could leave the run's output folder.
fn check_inside(path: &Path) -> Result<()> {
    let escapes = path.is_absolute()
        || path.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::RootDir | Component::Prefix(_)
            )
        });
    if escapes || path.as_os_str().is_empty() || path == Path::new(".") {
        bail!(
            "deploy.path = \"{}\": the bundle must go into a folder inside the run's output \
             folder (a relative path without `..`, such as \"deploy\"); refusing to write \
             outside it",
            path.display()
        );
    }
    Ok(())
}

/// Writing one bundle as a backend task.
pub struct ExportTask {
    /// The model folder.
    pub model: PathBuf,
    /// The bundle folder.
    pub out: PathBuf,
    /// Formats exported beside the optkit files.
    pub formats: Vec<ExportFormat>,
    /// Model name in the manifest.
    pub name: String,
}

impl BackendTask for ExportTask {
    type Output = Manifest;

    fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        _backend: BackendKind,
        _device_name: String,
    ) -> Result<Manifest> {
        write_bundle::<B::InnerBackend>(&self.model, &self.out, &self.formats, &self.name, &device)
            .with_context(|| format!("exporting {}", self.model.display()))
    }
}

/// Parses `--format onnx,safetensors` (repeatable).
pub fn parse_formats(values: &[String]) -> Result<Vec<ExportFormat>> {
    let mut out = Vec::new();
    for v in values.iter().flat_map(|v| v.split(',')) {
        let f: ExportFormat = v.trim().parse()?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    if out.is_empty() {
        bail!("--format is empty: give onnx, safetensors or burn");
    }
    Ok(out)
}

/// The name a model folder goes by in its manifest: its folder name.
pub fn model_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// One line per file of a written bundle.
pub fn describe(manifest: &Manifest, out: &Path) -> String {
    let mut s = format!(
        "bundle {} ({} model '{}', {} classes):",
        out.display(),
        manifest.kind,
        manifest.name,
        manifest.output.classes
    );
    for f in &manifest.files {
        s.push_str(&format!(
            "\n  {:<20} {:>10} B  sha256 {}",
            f.path, f.bytes, f.sha256
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_paths_outside_the_run_are_refused() {
        for bad in ["/tmp/x", "../x", "a/../../x", "", "."] {
            let err = check_inside(Path::new(bad)).unwrap_err().to_string();
            assert!(
                err.contains("inside the run's output folder"),
                "{bad}: {err}"
            );
        }
        for good in ["deploy", "bundles/best", "./deploy"] {
            check_inside(Path::new(good)).unwrap();
        }
    }

    #[test]
    fn deploy_paths_may_not_collide_with_stages_or_reports() {
        let stages = vec!["baseline".to_string(), "int8".to_string()];
        for bad in ["baseline", "./int8/bundle", "report.json", "tune.db"] {
            let d = DeployConfig {
                path: bad.into(),
                ..DeployConfig::default()
            };
            let err = d.validate(&stages).unwrap_err().to_string();
            assert!(err.contains("choose another folder"), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_parse_and_unknown_ones_are_named() {
        let f = parse_formats(&["onnx,burn".into(), "onnx".into()]).unwrap();
        assert_eq!(f, [ExportFormat::Onnx, ExportFormat::Burn]);
        let err = parse_formats(&["tflite".into()]).unwrap_err().to_string();
        assert!(
            err.contains("'tflite'") && err.contains("onnx, safetensors or burn"),
            "{err}"
        );
    }

    #[test]
    fn deploy_candidates_must_exist() {
        let stages = vec!["baseline".to_string(), "int8".to_string()];
        let mut d = DeployConfig::default();
        d.validate(&stages).unwrap();
        d.candidate = "int9".into();
        let err = d.validate(&stages).unwrap_err().to_string();
        assert!(
            err.contains("\"int9\"") && err.contains("baseline, int8"),
            "{err}"
        );
        d.candidate = "int8".into();
        d.formats = vec![ExportFormat::Onnx, ExportFormat::Onnx];
        assert!(
            d.validate(&stages)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
