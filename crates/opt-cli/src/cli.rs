//! Command-line arguments of `optkit`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// optkit: train, measure and optimize neural networks on burn.
#[derive(Debug, Parser)]
#[command(name = "optkit", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline file: baseline training, stages, measurements and report.
    Pipeline {
        /// The pipeline TOML file.
        #[arg(long)]
        config: PathBuf,
        /// Run directory (overrides report.out).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Backend: flex, ndarray or wgpu (overrides the file's `backend`).
        #[arg(long)]
        backend: Option<String>,
        /// Directory with the four IDX files (overrides [data]).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Seed of weight initialization, data order and validation split (overrides
        /// train.seed), to repeat a recipe over several seeds.
        #[arg(long)]
        seed: Option<u64>,
        /// Run this stage again even if the run directory holds its result for the same
        /// settings and inputs (repeat the flag for several stages).
        #[arg(long, value_name = "STAGE")]
        force: Vec<String>,
    },
    /// Write a deployment bundle of a saved model: its optkit files, the model exported to the
    /// given formats (ONNX opset 17, float or int8 QDQ; safetensors with PyTorch names; burn's
    /// Burnpack) and manifest.json (input shape, normalization, class names, SHA-256 of every
    /// file).
    Export {
        /// Model folder (a stage folder of a run, such as runs/quickstart/baseline).
        #[arg(long)]
        model: PathBuf,
        /// onnx, safetensors or burn (comma-separated or repeated).
        #[arg(long, required = true)]
        format: Vec<String>,
        /// Bundle folder (created; an earlier bundle there is replaced, any other folder is
        /// refused).
        #[arg(long)]
        out: PathBuf,
        /// Model name in the manifest (default: the model folder's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Reload a saved model and measure it again on its test data.
    Eval {
        /// Model folder (a stage folder of a run, such as runs/quickstart/baseline).
        #[arg(long)]
        model: PathBuf,
        /// Backend: flex, ndarray or wgpu.
        #[arg(long)]
        backend: Option<String>,
        /// Directory with the IDX files to test on (default: the data the model was measured on).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Prune a saved model folder, fine-tune it, write the pruned folder and measure both.
    Prune {
        /// Model folder to prune (a stage folder of a run).
        #[arg(long)]
        model: PathBuf,
        /// TOML settings: `[prune]` (as a pipeline's `[stages.prune]`), optional `[train]`.
        #[arg(long)]
        config: PathBuf,
        /// Folder for the pruned model.
        #[arg(long)]
        out: PathBuf,
        /// Backend: flex, ndarray or wgpu.
        #[arg(long)]
        backend: Option<String>,
        /// Directory with the IDX files (default: the data the model was measured on).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Distill a saved teacher model into a saved student model (for example a pruned one),
    /// write the distilled student and measure student, teacher and result in one run.
    Distill {
        /// Student model folder (its architecture and weights are the starting point).
        #[arg(long)]
        student: PathBuf,
        /// Teacher model folder (same classes).
        #[arg(long)]
        teacher: PathBuf,
        /// TOML settings: `[distill]` (as a pipeline's `[stages.distill]`), optional `[train]`
        /// and `validation_split`; without the file the defaults are used.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Folder for the distilled student and `distill.json`.
        #[arg(long)]
        out: PathBuf,
        /// Backend: flex, ndarray or wgpu.
        #[arg(long)]
        backend: Option<String>,
        /// Directory with the IDX files (default: the data the student was measured on).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Quantize a saved model (int8 on the integer path, post-training or quantization-aware,
    /// or weight-only 8/4-bit) and measure the float and quantized models in one run.
    Quantize {
        /// Model folder to quantize (mlp, lenet5 or cnn).
        #[arg(long)]
        model: PathBuf,
        /// Folder for the quantized model and `quantize.json`.
        #[arg(long)]
        out: PathBuf,
        /// Backend of the float model's measurement and of calibration: flex, ndarray or wgpu.
        #[arg(long)]
        backend: Option<String>,
        /// Directory with the IDX files (default: the data the model was measured on).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Quantization settings.
        #[command(flatten)]
        flags: crate::quantize_cmd::QuantizeFlags,
    },
    /// Time the int8 GEMM (every available kernel) against the float product of the same
    /// shapes on a backend, and print the ratios.
    BenchGemm {
        /// Backend of the float product: flex, ndarray or wgpu.
        #[arg(long, default_value = "flex")]
        backend: String,
        /// Threads of the int8 kernel (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        /// Timing budget per kernel and shape, in milliseconds.
        #[arg(long, default_value_t = 300)]
        ms: u64,
    },
    /// Run the samplers of opt-tune on standard test functions (Branin, Hartmann-6, a noisy
    /// quadratic) over many seeds and print how fast each reaches random search's best of 100;
    /// with --optuna, also Optuna's TPE on the same functions and budgets, and the ratios.
    BenchSamplers(crate::sampler_bench::SamplerBenchArgs),
    /// Run, join (several processes on one storage) or resume (`--resume`) the study of a
    /// pipeline's tune stage, with a live table of trials; writes <out>/report.json.
    Tune(crate::tune_cmd::TuneArgs),
    /// Print an architecture's parameters and MACs as JSON (no weights are built).
    Inspect(crate::inspect::InspectRequest),
    /// Time training steps and forward passes of a model on each compiled backend and print the
    /// ratios.
    Bench {
        /// Model family: mlp, lenet5, cnn, or a MobileNet/EfficientNet family (small-input stem).
        #[arg(long, default_value = "lenet5")]
        arch: String,
        /// Batch size.
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// Timed training steps per backend (after 5 untimed ones).
        #[arg(long, default_value_t = 60)]
        steps: usize,
        /// Backends to compare (default: every compiled one).
        #[arg(long, value_delimiter = ',')]
        backends: Vec<String>,
        /// Also time each backend with optkit's fast CPU paths off (burn's own batch norm and
        /// convolution backward) and print the speedups.
        #[arg(long)]
        reference: bool,
    },
}
