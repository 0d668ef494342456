//! opt-cli: the pipeline engine behind the `optkit` binary, usable as a library.
//!
//! [`main_entry`] is the whole program: the binary only turns its return value into an exit
//! code, so tests call it in-process and see exactly what a user sees.
//!
//! ```no_run
//! let mut stderr = Vec::new();
//! let code = opt_cli::main_entry(["optkit", "pipeline", "--config", "configs/quickstart.toml"], &mut stderr);
//! assert_eq!(code, 0);
//! ```

pub mod backend;
pub mod bench;
pub mod cli;
pub mod config;
pub mod config_sections;
pub mod distill_cmd;
pub mod evaluate;
pub mod export_cmd;
pub mod fuzzing;
pub mod gemm_bench;
pub mod inspect;
pub mod pipeline;
pub mod prune_cmd;
pub mod quant_stage;
pub mod quantize_cmd;
pub mod report_html;
pub mod resume;
pub mod sampler_bench;
pub mod stage_graph;
pub mod stage_run;
pub mod tune_cmd;
pub mod tune_keys;
pub mod tune_report;
pub mod tune_stage;
pub mod tune_study;

use std::ffi::OsString;
use std::io::Write;

use anyhow::Result;
use clap::Parser;

use crate::backend::{BackendKind, dispatch};
use crate::cli::{Cli, Command};

/// Exit code of a usage or input error.
pub const EXIT_INPUT: u8 = 2;

/// Exit code of a pipeline that ran to the end but where no candidate met `[constraints]`
/// (everything it wrote is kept; report.json names the baseline as the fallback).
pub const EXIT_UNMET: u8 = 1;

/// A finished run whose candidates all miss the constraints.
#[derive(Debug)]
pub struct ConstraintsUnmet(pub String);

impl std::fmt::Display for ConstraintsUnmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for ConstraintsUnmet {}

/// Runs optkit with `args` (the first is the program name); errors go to `stderr`.
/// Returns the exit code: 0 on success, 1 when a pipeline finished but no candidate met its
/// `[constraints]`, 2 on a usage or input error.
pub fn main_entry<I, T>(args: I, stderr: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    init_logging();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let _ = writeln!(stderr, "{}", one_line_usage_error(&e.to_string()));
            return EXIT_INPUT;
        }
        Err(e) => {
            let _ = e.print();
            return 0;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) if e.downcast_ref::<ConstraintsUnmet>().is_some() => {
            let _ = writeln!(stderr, "constraints not met: {e}");
            EXIT_UNMET
        }
        Err(e) => {
            let _ = writeln!(stderr, "error: {e:#}");
            EXIT_INPUT
        }
    }
}

/// clap's usage error on one line: its message lines joined, the usage block and the
/// "For more information" hint replaced by a pointer to `--help`.
fn one_line_usage_error(text: &str) -> String {
    let mut parts = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line);
        }
    }
    format!("{} (see optkit --help)", parts.join(" "))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wgpu_core=warn,wgpu_hal=warn,cubecl=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn pick_backend(name: Option<&str>) -> Result<BackendKind> {
    match name {
        Some(n) => n.parse(),
        None => BackendKind::default_compiled(),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Pipeline {
            config,
            out,
            backend,
            data_dir,
            seed,
            force,
        } => {
            let overrides = config::Overrides {
                out,
                backend,
                data_dir,
                seed,
                force,
            };
            let p = config::load(&config, overrides)?;
            let kind = pick_backend(p.backend.as_deref())?;
            pipeline::prepare_out_dir(&p.out)?;
            let out = p.out.clone();
            let report = dispatch(kind, pipeline::RunPipeline(p))?;
            for c in &report.candidates {
                println!(
                    "{}: accuracy {:.4}, params {}, MACs {}, size {} B, latency b1 p50 {:.3} ms, throughput {:.0} img/s ({})",
                    c.name,
                    c.eval.accuracy,
                    c.eval.params,
                    c.eval.macs,
                    c.eval.size_bytes,
                    c.eval.latency_b1_ms_p50,
                    c.eval.throughput_per_s,
                    c.eval.backend
                );
            }
            println!(
                "report: {} and {}",
                out.join("report.md").display(),
                out.join("report.json").display()
            );
            match &report.selection {
                Some(sel) if !sel.met => Err(ConstraintsUnmet(sel.explanation.clone()).into()),
                Some(sel) => {
                    println!("best: {} ({})", sel.best, sel.explanation);
                    Ok(())
                }
                None => Ok(()),
            }
        }
        Command::Export {
            model,
            format,
            out,
            name,
        } => {
            let formats = export_cmd::parse_formats(&format)?;
            let name = name.unwrap_or_else(|| export_cmd::model_name(&model));
            let manifest = dispatch(
                BackendKind::default_compiled()?,
                export_cmd::ExportTask {
                    model,
                    out: out.clone(),
                    formats,
                    name,
                },
            )?;
            println!("{}", export_cmd::describe(&manifest, &out));
            Ok(())
        }
        Command::Eval {
            model,
            backend,
            data_dir,
        } => {
            let kind = pick_backend(backend.as_deref())?;
            let out = dispatch(
                kind,
                evaluate::EvalModel {
                    dir: model,
                    data_dir,
                    measure: Default::default(),
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            if let Some(r) = out.recorded_accuracy {
                let same = if r == out.eval.accuracy {
                    "identical"
                } else {
                    "DIFFERENT"
                };
                eprintln!(
                    "accuracy {:.6}, recorded {:.6}: {same}",
                    out.eval.accuracy, r
                );
            }
            Ok(())
        }
        Command::Prune {
            model,
            config,
            out,
            backend,
            data_dir,
        } => {
            let kind = pick_backend(backend.as_deref())?;
            prune_cmd::load_settings(&config)?;
            let r = dispatch(
                kind,
                prune_cmd::PruneSaved {
                    model,
                    config,
                    out,
                    data_dir,
                    measure: Default::default(),
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            let (b, a) = (&r.before, &r.after);
            eprintln!(
                "accuracy {:.4} -> {:.4}, params {} -> {}, non-zero {} -> {}, MACs {} -> {}, size {} -> {} B, latency b1 p50 {:.3} -> {:.3} ms ({})",
                b.accuracy,
                a.accuracy,
                b.params,
                a.params,
                b.nonzero_params,
                a.nonzero_params,
                b.macs,
                a.macs,
                b.size_bytes,
                a.size_bytes,
                b.latency_b1_ms_p50,
                a.latency_b1_ms_p50,
                r.out
            );
            Ok(())
        }
        Command::Distill {
            student,
            teacher,
            config,
            out,
            backend,
            data_dir,
        } => {
            let kind = pick_backend(backend.as_deref())?;
            let settings = distill_cmd::load_settings(config.as_deref())?;
            let r = dispatch(
                kind,
                distill_cmd::DistillSaved {
                    student,
                    teacher,
                    settings,
                    out,
                    data_dir,
                    measure: Default::default(),
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            let (b, t, a) = (&r.student, &r.teacher, &r.distilled);
            eprintln!(
                "accuracy: student {:.4} -> distilled {:.4} (teacher {:.4}); MACs student {} teacher {}; {:.0} training samples/s ({})",
                b.accuracy,
                a.accuracy,
                t.accuracy,
                a.macs,
                t.macs,
                r.distill.train.samples_per_s,
                r.out
            );
            Ok(())
        }
        Command::Quantize {
            model,
            out,
            backend,
            data_dir,
            flags,
        } => {
            let kind = pick_backend(backend.as_deref())?;
            let config = quantize_cmd::settings(&flags)?;
            let r = dispatch(
                kind,
                quantize_cmd::QuantizeSaved {
                    model,
                    out,
                    data_dir,
                    config,
                    measure: Default::default(),
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            let (f, q) = (&r.float, &r.quantized);
            eprintln!(
                "accuracy {:.4} -> {:.4} ({:+.2} pts), size {} -> {} B ({:.2}x), latency b1 p50 {:.3} -> {:.3} ms ({:.2}x), throughput {:.0} -> {:.0} img/s ({:.2}x); {} vs {}",
                f.accuracy,
                q.accuracy,
                r.accuracy_delta_points,
                f.size_bytes,
                q.size_bytes,
                r.size_ratio,
                f.latency_b1_ms_p50,
                q.latency_b1_ms_p50,
                r.latency_b1_speedup,
                f.throughput_per_s,
                q.throughput_per_s,
                r.throughput_speedup,
                f.backend,
                q.backend
            );
            Ok(())
        }
        Command::BenchGemm {
            backend,
            threads,
            ms,
        } => {
            let kind: BackendKind = backend.parse()?;
            let threads = threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let results = dispatch(
                kind,
                gemm_bench::GemmBenchTask {
                    threads,
                    budget: std::time::Duration::from_millis(ms),
                },
            )?;
            print!("{}", gemm_bench::table(&results, &backend));
            println!("{}", serde_json::to_string(&results)?);
            Ok(())
        }
        Command::BenchSamplers(args) => sampler_bench::run(&args),
        Command::Tune(args) => {
            let p = tune_cmd::prepare(&args)?;
            let kind = pick_backend(p.backend.as_deref())?;
            pipeline::prepare_out_dir(&p.out)?;
            let out = p.out.clone();
            let report = dispatch(kind, pipeline::RunPipeline(p))?;
            for c in &report.candidates {
                for line in &c.summary {
                    println!("{line}");
                }
                println!(
                    "candidate {}: test accuracy {:.4}, latency b1 p50 {:.3} ms",
                    c.name, c.eval.accuracy, c.eval.latency_b1_ms_p50
                );
            }
            println!("report: {}", out.join("report.json").display());
            Ok(())
        }
        Command::Inspect(req) => {
            let report = inspect::inspect(&req)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Bench {
            arch,
            batch_size,
            steps,
            backends,
            reference,
        } => {
            let kinds: Vec<BackendKind> = if backends.is_empty() {
                BackendKind::compiled_in()
            } else {
                backends.iter().map(|b| b.parse()).collect::<Result<_>>()?
            };
            let modes: &[bool] = if reference { &[true, false] } else { &[true] };
            let mut results: Vec<bench::BenchResult> = Vec::new();
            for kind in kinds {
                for &fast in modes {
                    opt_core::ops::set_fast_paths(fast);
                    let r = dispatch(
                        kind,
                        bench::BenchTrain {
                            arch: arch.clone(),
                            batch_size,
                            steps,
                        },
                    )?;
                    println!(
                        "{:>8} ({}): train {:>9.1} samples/s, forward {:>9.1} samples/s, \
                         batch-1 latency {:.2} ms  ({})",
                        r.backend,
                        if fast { "optkit paths" } else { "burn paths" },
                        r.samples_per_s,
                        r.infer_samples_per_s,
                        r.latency_ms,
                        r.device
                    );
                    results.push(r);
                }
            }
            opt_core::ops::set_fast_paths(true);
            let fast: Vec<&bench::BenchResult> = results.iter().filter(|r| r.fast_paths).collect();
            for r in &results {
                if let Some(f) = fast
                    .iter()
                    .find(|f| f.backend == r.backend && !r.fast_paths)
                {
                    println!(
                        "speedup of optkit paths on {}: train {:.2}x, forward {:.2}x, batch-1 {:.2}x",
                        r.backend,
                        f.samples_per_s / r.samples_per_s,
                        f.infer_samples_per_s / r.infer_samples_per_s,
                        r.latency_ms / f.latency_ms
                    );
                }
            }
            if let Some(first) = fast.first() {
                for r in &fast[1..] {
                    println!(
                        "ratio {}/{}: train {:.2}x, forward {:.2}x",
                        first.backend,
                        r.backend,
                        first.samples_per_s / r.samples_per_s,
                        first.infer_samples_per_s / r.infer_samples_per_s
                    );
                }
            }
            println!("{}", serde_json::to_string(&results)?);
            Ok(())
        }
    }
}
