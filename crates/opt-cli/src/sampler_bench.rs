//! `optkit bench-samplers`: opt-tune's samplers (and, with `--optuna`, Optuna's TPE through
//! `scripts/optuna_samplers.py`) on Branin, Hartmann-6 and a noisy quadratic, scored by the
//! trials each needs to reach random search's best of 100 trials with the same seed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use opt_tune::bench::{self, Run, SamplerScore, functions};

/// Flags of `optkit bench-samplers`.
#[derive(Debug, Clone, clap::Args)]
pub struct SamplerBenchArgs {
    /// Seeds per function and sampler.
    #[arg(long, default_value_t = 20)]
    pub seeds: u64,
    /// Trials per run (random search's best over these trials is the target).
    #[arg(long, default_value_t = 100)]
    pub trials: usize,
    /// Also run Optuna's TPE (needs `pip install optuna`) and print the ratios.
    #[arg(long)]
    pub optuna: bool,
    /// The Python interpreter for --optuna.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The Optuna script (default: scripts/optuna_samplers.py of the source tree).
    #[arg(long)]
    pub script: Option<PathBuf>,
}

/// Runs the benchmark, prints the Markdown tables and one JSON line.
pub fn run(args: &SamplerBenchArgs) -> Result<()> {
    if args.seeds == 0 || args.trials < 50 {
        bail!(
            "--seeds must be at least 1 and --trials at least 50 (the table reports the best at 50 trials)"
        );
    }
    let optuna = if args.optuna {
        Some(optuna_runs(args)?)
    } else {
        None
    };
    let mut scores: Vec<SamplerScore> = Vec::new();
    for f in functions::all() {
        let mut runs: BTreeMap<String, Vec<Run>> = BTreeMap::new();
        let mut order = Vec::new();
        for seed in 0..args.seeds {
            for (label, cfg) in bench::samplers(seed) {
                if seed == 0 {
                    order.push(label.to_string());
                }
                runs.entry(label.into())
                    .or_default()
                    .push(bench::run(&f, &cfg, args.trials));
            }
        }
        let targets: Vec<f64> = runs["random"]
            .iter()
            .map(|r| r.iter().copied().fold(f64::INFINITY, f64::min))
            .collect();
        if let Some((_, o)) = &optuna {
            for (label, r) in o.get(f.name).into_iter().flatten() {
                order.push(label.clone());
                runs.insert(label.clone(), r.clone());
            }
        }
        for label in order {
            scores.push(bench::score(&f, &label, &runs[&label], &targets));
        }
    }
    print!("{}", table(&scores, args));
    if let Some((version, _)) = &optuna {
        print!("{}", ratios(&scores, version));
    }
    println!("{}", serde_json::to_string(&scores)?);
    Ok(())
}

type OptunaRuns = BTreeMap<String, BTreeMap<String, Vec<Run>>>;

fn optuna_runs(args: &SamplerBenchArgs) -> Result<(String, OptunaRuns)> {
    let script = args.script.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/optuna_samplers.py")
    });
    eprintln!(
        "optkit: running Optuna ({} seeds x {} trials per function and sampler) ...",
        args.seeds, args.trials
    );
    let out = std::process::Command::new(&args.python)
        .arg(&script)
        .args([
            "--seeds",
            &args.seeds.to_string(),
            "--trials",
            &args.trials.to_string(),
        ])
        .output()
        .with_context(|| format!("could not start {} {}", args.python, script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({}): {}\ninstall Optuna with `pip install optuna`, or run without --optuna",
            args.python,
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        );
    }
    #[derive(serde::Deserialize)]
    struct Output {
        optuna: String,
        runs: OptunaRuns,
    }
    let o: Output =
        serde_json::from_slice(&out.stdout).context("the Optuna script printed no valid JSON")?;
    Ok((o.optuna, o.runs))
}

fn fmt_trials(s: &SamplerScore, budget: usize) -> String {
    match s.median_trials_to_random_best {
        Some(m) => format!("{m:.1}"),
        None => format!("> {budget}"),
    }
}

/// The per-sampler table.
pub fn table(scores: &[SamplerScore], args: &SamplerBenchArgs) -> String {
    let mut s = format!(
        "\nSamplers on test functions: {} seeds x {} trials; target = random search's best of {} trials \
         with the same seed (noise-free values)\n\n| function | sampler | median trials to target | seeds reaching it \
         | median best @50 | median best @{} | known minimum |\n|---|---|---|---|---|---|---|\n",
        args.seeds, args.trials, args.trials, args.trials
    );
    for r in scores {
        s.push_str(&format!(
            "| {} | {} | {} | {}/{} | {:.4} | {:.4} | {:.4} |\n",
            r.function,
            r.sampler,
            fmt_trials(r, args.trials),
            r.reached,
            r.seeds,
            r.median_best_at_50,
            r.median_best_at_budget,
            r.minimum
        ));
    }
    s
}

/// optkit's TPE against Optuna's: ratios of the median trials to target (below 1: optkit
/// needs fewer) and of the best-value gaps to the minimum after 50 trials.
pub fn ratios(scores: &[SamplerScore], optuna_version: &str) -> String {
    let mut s = format!(
        "\noptkit TPE / Optuna {optuna_version} TPE (below 1: optkit better)\n\n| function | variant | trials to target, \
         ratio | gap to minimum @50, ratio | gap @budget, ratio |\n|---|---|---|---|---|\n"
    );
    for f in functions::all() {
        for variant in ["independent", "multivariate"] {
            let find = |label: String| {
                scores
                    .iter()
                    .find(|r| r.function == f.name && r.sampler == label)
            };
            let (Some(ours), Some(theirs)) = (
                find(format!("tpe ({variant})")),
                find(format!("optuna tpe ({variant})")),
            ) else {
                continue;
            };
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "n/a".into(),
            };
            let gap = |x: f64| Some(x - f.minimum);
            s.push_str(&format!(
                "| {} | {variant} | {} | {} | {} |\n",
                f.name,
                ratio(
                    ours.median_trials_to_random_best,
                    theirs.median_trials_to_random_best
                ),
                ratio(gap(ours.median_best_at_50), gap(theirs.median_best_at_50)),
                ratio(
                    gap(ours.median_best_at_budget),
                    gap(theirs.median_best_at_budget)
                ),
            ));
        }
    }
    s
}
