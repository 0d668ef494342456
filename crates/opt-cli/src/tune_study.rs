//! Where a tune stage's study lives and who writes its result: the storage URL (a relative
//! SQLite file inside the run folder), the study's identity (its name and a digest of what
//! its trials depend on), the checks made before any training, and the run's single writer
//! when several workers share the run folder.

use std::path::Path;

use anyhow::{Context, Result, bail};
use opt_tune::TuneConfig;

use crate::config::StageSection;

/// Which study a tune stage runs: the name given (`tune.study`, else the stage's) and a tag
/// made of the digest of what the trials depend on (see `Pipeline::trials_key`), plus a
/// run stamp when the stage was forced. The study is stored as `<name>@<tag>` and its trials'
/// folders are `<stage>/trials/<tag>/<number>`, so a study made from other settings, data or
/// models is never continued, and its trial folders are never read as this study's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyId {
    /// The name given.
    pub name: String,
    /// The tag.
    pub tag: String,
}

impl StudyId {
    /// The study of `name` whose trials depend on what `key` digests; `forced`: a new study
    /// for this run (`--force <stage>`), never one stored before.
    pub fn new(name: &str, key: &str, forced: bool) -> Self {
        let mut tag = key.chars().take(12).collect::<String>();
        if forced {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            tag = format!("{tag}-r{stamp}");
        }
        Self {
            name: name.to_string(),
            tag,
        }
    }

    /// The name the study is stored under.
    pub fn stored(&self) -> String {
        format!("{}@{}", self.name, self.tag)
    }

    /// Whether `stored` is a study of the name `name` (any tag).
    pub fn is_of(stored: &str, name: &str) -> bool {
        stored
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('@'))
    }
}

/// Where the study lives: a relative SQLite path is taken inside the run directory.
pub fn storage_url(tune: &TuneConfig, out: &Path) -> String {
    match tune.storage.as_deref() {
        None => format!("sqlite://{}", out.join("tune.db").display()),
        Some(url) => sqlite_relative_to(url, out),
    }
}

/// `url` with a relative SQLite file taken inside `base`; other URLs unchanged.
pub fn sqlite_relative_to(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(path) if !Path::new(path).is_absolute() => {
            format!("sqlite://{}", base.join(path).display())
        }
        _ => url.to_string(),
    }
}

/// Opens every tune stage's storage before any training: a wrong URL or a missing folder
/// fails now, and so does a stored study with another definition, for the stages whose study
/// is known before the run (trials that read no earlier stage's model; `data_digest` is the
/// run's data).
pub fn check_storages(p: &crate::config::Pipeline, data_digest: &str) -> Result<()> {
    for (i, stage) in p.file.stages.iter().enumerate() {
        let crate::config::StageSection::Tune { tune, .. } = stage else {
            continue;
        };
        let prefix = format!("stages[{i}].tune");
        let checked = tune.check(&prefix, p.file.train.epochs as u32)?;
        let url = storage_url(tune, &p.out);
        let stage_name = crate::config::stage_name(stage);
        let mut storage =
            opt_tune::storage::open(&url).with_context(|| format!("{prefix}.storage"))?;
        if p.reads(i)?.is_empty() && !p.force.iter().any(|f| f == stage_name) {
            let id = StudyId::new(
                tune.study.as_deref().unwrap_or(stage_name),
                &p.trials_key(i, data_digest, &[])?,
                false,
            );
            storage
                .open_study(&id.stored(), &checked.def)
                .with_context(|| format!("{prefix}.study"))?;
        }
    }
    Ok(())
}

/// The run's single writer. When a tune stage keeps its study where other processes can open
/// it (SQLite, PostgreSQL), several workers may share the run folder (`optkit tune` in each);
/// every write of a stage's result into the folder (its files, report.json and the resume
/// marker, and the run report) then happens under the lock `writer` of the run folder in that
/// storage, one worker at a time, so a result is never a mix of two workers' files.
pub struct RunWriter {
    url: String,
    scope: String,
    holder: String,
    stale_after_s: f64,
}

impl RunWriter {
    /// The writer of the run `p` (its folder exists), if one of its tune stages has a
    /// shared storage.
    pub fn of(p: &crate::config::Pipeline) -> Result<Option<Self>> {
        let Some(tune) = p.file.stages.iter().find_map(|s| match s {
            StageSection::Tune { tune, .. } => Some(tune),
            _ => None,
        }) else {
            return Ok(None);
        };
        let url = storage_url(tune, &p.out);
        if url.starts_with("memory") {
            return Ok(None);
        }
        let folder = p.out.canonicalize().unwrap_or_else(|_| p.out.clone());
        Ok(Some(Self {
            url,
            scope: format!("run:{}", folder.display()),
            holder: opt_tune::study::process_name(),
            stale_after_s: tune.stale_after_s,
        }))
    }

    /// Holds the lock until the returned lease is dropped (waiting for another worker that
    /// holds it).
    pub fn hold(&self) -> Result<opt_tune::lease::Lease> {
        let storage = opt_tune::storage::open(&self.url)?;
        let mut told = false;
        let lease = opt_tune::lease::Lease::acquire(
            storage,
            &self.scope,
            "writer",
            &self.holder,
            self.stale_after_s,
            |other| {
                if !told {
                    eprintln!(
                        "optkit: waiting for worker {other} to finish writing into the run folder"
                    );
                    told = true;
                }
            },
        )?;
        Ok(lease)
    }
}

/// `optkit tune --resume`: the study must exist with this very tag (its trials made from the
/// same settings, data and models); the error lists the tags stored under its name.
pub fn check_resumable(tune: &TuneConfig, study: &StudyId, out: &Path) -> Result<()> {
    let mut storage = opt_tune::storage::open(&storage_url(tune, out))?;
    let url = storage.url();
    if storage.study_def(&study.stored())?.is_some() {
        return Ok(());
    }
    let others: Vec<String> = storage
        .studies()?
        .into_iter()
        .filter(|s| StudyId::is_of(s, &study.name))
        .collect();
    bail!(
        "--resume: study '{}' in {url} was made from other settings, data or models ({}); \
         this config's trials would start a new study {}: run without --resume to start it",
        study.name,
        if others.is_empty() {
            "none stored".to_string()
        } else {
            others.join(", ")
        },
        study.stored()
    )
}
