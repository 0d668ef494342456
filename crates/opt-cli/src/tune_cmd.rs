//! `optkit tune`: runs, joins or resumes the study of a pipeline's tune stage. Several
//! processes given the same config, study and storage share the study (each takes the next
//! trial from the storage); `--resume` continues a study that must already exist.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::config::{self, Overrides, StageSection, stage_name};

/// Flags of `optkit tune`.
#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    /// The pipeline TOML file with a `kind = "tune"` stage.
    #[arg(long)]
    pub config: PathBuf,
    /// The study's name (default: the stage's `study`, else its name).
    #[arg(long)]
    pub study: Option<String>,
    /// Where the study lives: sqlite://<file> (relative to the working directory) or memory.
    #[arg(long)]
    pub storage: Option<String>,
    /// Continue a study that already exists (an error if it does not).
    #[arg(long)]
    pub resume: bool,
    /// Trials the study should hold (overrides the stage's `trials`).
    #[arg(long)]
    pub trials: Option<u64>,
    /// Which tune stage, by name, when the file has several.
    #[arg(long)]
    pub stage: Option<String>,
    /// Run directory (overrides report.out); trial models go to <out>/<stage>/trials/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Backend: flex, ndarray or wgpu.
    #[arg(long)]
    pub backend: Option<String>,
    /// Directory with the four IDX files (overrides [data]).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Seed of weight initialization, data order and validation split (overrides train.seed).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// The pipeline reduced to the chosen tune stage, with the flags applied.
pub fn prepare(args: &TuneArgs) -> Result<config::Pipeline> {
    let overrides = Overrides {
        out: args.out.clone(),
        backend: args.backend.clone(),
        data_dir: args.data_dir.clone(),
        seed: args.seed,
        force: Vec::new(),
    };
    let mut p = config::load(&args.config, overrides)?;
    let tunes: Vec<usize> = (0..p.file.stages.len())
        .filter(|&i| matches!(p.file.stages[i], StageSection::Tune { .. }))
        .filter(|&i| {
            args.stage
                .as_deref()
                .is_none_or(|s| s == stage_name(&p.file.stages[i]))
        })
        .collect();
    let index = match (tunes.as_slice(), &args.stage) {
        ([i], _) => *i,
        ([], Some(s)) => bail!("{}: no tune stage named {s:?}", args.config.display()),
        ([], None) => bail!(
            "{}: no tune stage; add one: [[stages]] with kind = \"tune\" and a \
             [stages.tune.space] such as \"train.learning_rate\" = {{ float = [1e-4, 1e-1], \
             log = true }}",
            args.config.display()
        ),
        (_, _) => bail!(
            "{}: several tune stages; pick one with --stage <name>",
            args.config.display()
        ),
    };
    let mut stage = p.file.stages[index].clone();
    let StageSection::Tune {
        name, tune, trial, ..
    } = &mut stage
    else {
        unreachable!("filtered")
    };
    if let Some(study) = &args.study {
        tune.study = Some(study.clone());
    }
    if let Some(n) = args.trials {
        tune.trials = n;
    }
    if let Some(url) = &args.storage {
        // A relative file on the command line is relative to where the command runs.
        let cwd = std::env::current_dir().context("reading the working directory")?;
        tune.storage = Some(crate::tune_study::sqlite_relative_to(url, &cwd));
    }
    tune.check(&format!("stages[{index}].tune"), p.file.train.epochs as u32)?;
    if args.resume {
        let url = crate::tune_study::storage_url(tune, &p.out);
        let study = tune
            .study
            .clone()
            .unwrap_or_else(|| name.clone().unwrap_or_else(|| "tune".into()));
        // The stored study is `<name>@<digest of what its trials depend on>`.
        let known = match url.strip_prefix("sqlite://") {
            Some(file) if !std::path::Path::new(file).is_file() => Vec::new(),
            _ => opt_tune::storage::open(&url)?.studies()?,
        };
        if !known
            .iter()
            .any(|s| crate::tune_study::StudyId::is_of(s, &study))
        {
            bail!(
                "--resume: no study named '{study}' in {} (studies there: {}); run without --resume to start it",
                opt_tune::storage::mask(&url),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    p.resume_study = args.resume;
    if trial.is_empty() {
        p.file.stages = vec![stage];
    } else {
        // Trials with steps start from an earlier stage's model: the stages before this one
        // run first (in every worker), then the study.
        tracing::info!(
            stages = index,
            "the trials start from an earlier stage's model; running the stages before it first"
        );
        p.file.stages.truncate(index);
        p.file.stages.push(stage);
    }
    Ok(p)
}
