//! The `picardiff` command line: argument definitions (clap derive) and the entry point.
//!
//! Layout: `config` turns the arguments into a validated problem (model, grid, rule, inputs) and a
//! sampler; `device` picks a backend and runs a sampler on it (generic over `Backend`, so a CUDA
//! backend plugs in behind `#[cfg(feature = "cuda")]`); `commands` implements `sample` and
//! `compare`; `demo` the self-contained demo; `npy` reads and writes float32 `.npy` files;
//! `progress` draws a progress line for long runs when stderr is a terminal.

mod bench;
mod bench_policy;
// Public (within the binary) for the `cli_args` fuzz target, which includes this module by path
// and validates parsed command lines with `commands::setup`.
pub mod commands;
mod config;
mod demo;
mod device;
mod npy;
mod output;
mod policy;
mod progress;

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Parallel-in-time diffusion sampling with Picard iterations.
#[derive(Parser, Debug)]
#[command(
    name = "picardiff",
    version,
    about = "Parallel-in-time diffusion sampling with Picard iterations (ParaDiGMS windows, PIADM blocks)",
    long_about = "Parallel-in-time diffusion sampling with Picard iterations.\n\n\
        A diffusion sampler is a chain of N dependent steps. Picard iteration refines a whole window \
        of steps per batched model call until it reproduces the sequential result, so far fewer \
        sequential model calls (\"rounds\") are needed. Models are Gaussian mixtures with an exact \
        score, given as JSON {\"weights\": [...], \"means\": [[...], ...], \"stds\": [...]}.\n\n\
        Start with `picardiff demo`."
)]
pub struct Cli {
    // (A plain comment: a doc comment here would reach clap's help text.)
    #[command(subcommand)]
    pub command: Command,
}

// The subcommands (public for the `cli_args` fuzz target).
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one sampler and write its samples (.npy) and statistics (JSON).
    Sample(RunArgs),
    /// Run the sequential sampler and a parallel one on the same noise and compare them.
    Compare(RunArgs),
    /// Compare all samplers on a built-in mixture; needs no files.
    Demo(DemoArgs),
    /// Time samplers × models × batch × steps against sequential sampling (the latency matrix).
    Bench(bench::BenchArgs),
    /// Print a model's architecture and parameter count.
    Info {
        /// A mixture JSON, an MLP .safetensors file or a LeRobot policy directory.
        file: Option<PathBuf>,
        /// The same, as an option (like `sample --model`).
        #[arg(long, value_name = "PATH", conflicts_with = "file")]
        model: Option<PathBuf>,
    },
}

/// Options shared by `sample` and `compare`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Model: a mixture JSON {"weights": [...], "means": [[...], ...], "stds": [...]}, a trained
    /// MLP .safetensors file, or a LeRobot Diffusion Policy directory (config.json +
    /// model.safetensors, as save_pretrained writes it); see `picardiff info`.
    #[arg(long, value_name = "PATH", help_heading = "Problem")]
    pub model: PathBuf,
    /// Diffusion Policy: per-sample global conditioning, float32 .npy [batch, global_cond_dim]
    /// (the normalised observation features of n_obs_steps frames, concatenated); gives the batch.
    #[arg(long, value_name = "FILE", help_heading = "Problem")]
    pub cond: Option<PathBuf>,
    /// Diffusion Policy: replace a field of the policy's config.json before loading, VALUE as JSON
    /// (e.g. --set num_inference_steps=10 --set noise_scheduler_type=DDIM --set clip_sample=false);
    /// repeatable.
    #[arg(long, value_name = "KEY=VALUE", help_heading = "Problem")]
    pub set: Vec<String>,
    /// Noise schedule: ddpm-linear, scaled-linear, cosine (discrete), ou, vp-linear (continuous) or
    /// flow (rectified flow, α = 1 − σ). Required for a mixture; an MLP file names its own.
    #[arg(long, value_name = "NAME", help_heading = "Problem")]
    pub schedule: Option<String>,
    /// MLP weight/GEMM dtype on the GPU: f32, bf16 or f16 (the CPU computes in f32) [default: f32].
    #[arg(long, value_name = "DTYPE", help_heading = "Problem")]
    pub dtype: Option<String>,
    /// Number of sampling steps (required, except with --grid paper where it is ignored).
    #[arg(long, value_name = "N", help_heading = "Problem")]
    pub steps: Option<usize>,
    /// Step rule: ddpm (= ddim with eta 1), ddim (eta 0 unless --eta), exp-sde, exp-ode (VP
    /// schedules) or euler (flow). Required, except for a Diffusion Policy directory, whose
    /// scheduler gives it (ddpm or ddim override it).
    #[arg(long, value_name = "RULE", help_heading = "Problem")]
    pub rule: Option<String>,
    /// DDIM's stochasticity η of the ddpm/ddim rules (ddpm: 1, ddim: 0); not the early-stopping
    /// time of --t-end.
    #[arg(
        long,
        value_name = "E",
        allow_negative_numbers = true,
        help_heading = "Problem"
    )]
    pub eta: Option<f64>,

    /// Horizon T, the noise end [default: 10 for ou, 1 for vp-linear].
    #[arg(
        long,
        value_name = "T",
        allow_negative_numbers = true,
        help_heading = "Continuous schedules (ou, vp-linear)"
    )]
    pub horizon: Option<f64>,
    /// Early-stopping time δ > 0: sampling ends at t = δ [default: 1e-3] (not --eta, DDIM's η).
    #[arg(
        long,
        value_name = "DELTA",
        allow_negative_numbers = true,
        help_heading = "Continuous schedules (ou, vp-linear)"
    )]
    pub t_end: Option<f64>,
    /// Time grid: uniform (--steps steps) or paper (step κ while t ≥ 1, then geometric; --steps is
    /// ignored) [default: uniform]. Flow: diffusers (FlowMatchEulerDiscreteScheduler, --shift/--mu)
    /// or uniform (pi0's σ = 1 − k/N) [default: diffusers].
    #[arg(
        long,
        value_name = "GRID",
        help_heading = "Continuous schedules (ou, vp-linear)"
    )]
    pub grid: Option<String>,
    /// Step scale κ of the paper grid [default: 0.05].
    #[arg(
        long,
        value_name = "KAPPA",
        allow_negative_numbers = true,
        help_heading = "Continuous schedules (ou, vp-linear)"
    )]
    pub kappa: Option<f64>,

    /// Timestep spacing (diffusers): leading, trailing or linspace [default: leading].
    #[arg(
        long,
        value_name = "SPACING",
        help_heading = "Discrete schedules (ddpm-linear, scaled-linear, cosine)"
    )]
    pub spacing: Option<String>,
    /// Training timesteps of the schedule [default: 1000]. Flow: diffusers' num_train_timesteps,
    /// the model time is σ·N (1 passes σ itself).
    #[arg(
        long,
        value_name = "N",
        help_heading = "Discrete schedules (ddpm-linear, scaled-linear, cosine)"
    )]
    pub train_steps: Option<usize>,

    /// Shift s of diffusers' flow grid: σ' = sσ/(1 + (s − 1)σ) [default: 1].
    #[arg(
        long,
        value_name = "S",
        allow_negative_numbers = true,
        help_heading = "Flow schedule (flow)"
    )]
    pub shift: Option<f64>,
    /// diffusers' dynamic shifting (use_dynamic_shifting) with mu: σ' = e^μ/(e^μ + 1/σ − 1);
    /// replaces --shift.
    #[arg(
        long,
        value_name = "MU",
        allow_negative_numbers = true,
        help_heading = "Flow schedule (flow)"
    )]
    pub mu: Option<f64>,

    /// Sampler: sequential, picard (sliding window) or blocks (PIADM) [default: picard].
    #[arg(long, value_name = "NAME", help_heading = "Sampler")]
    pub sampler: Option<String>,
    /// Picard window length p [default: 256, at most the steps].
    #[arg(long, value_name = "P", help_heading = "Sampler")]
    pub window: Option<usize>,
    /// Tolerance τ of the convergence test (picard, blocks) [default: 0.1 for stochastic rules,
    /// 1e-3 for deterministic ones]; with blocks, 0 runs exactly --iters iterations per block.
    #[arg(
        long,
        value_name = "T",
        allow_negative_numbers = true,
        help_heading = "Sampler"
    )]
    pub tol: Option<f64>,
    /// Iteration cap of the picard sampler (an error if reached) [default: the number of steps,
    /// which always suffices].
    #[arg(long, value_name = "K", help_heading = "Sampler")]
    pub max_iters: Option<usize>,
    /// Block length of the blocks sampler in the schedule's time [default: 1 for continuous
    /// schedules, 100 timesteps for discrete ones].
    #[arg(
        long,
        value_name = "H",
        allow_negative_numbers = true,
        help_heading = "Sampler"
    )]
    pub block_len: Option<f64>,
    /// Picard iterations per block K of the blocks sampler: fewer if a block converges within
    /// --tol, and an error if a block is still above --tol after K (--tol 0: exactly K, the
    /// paper's fixed-K mode) [default: the longest block's length, which always suffices].
    #[arg(long, value_name = "K", help_heading = "Sampler")]
    pub iters: Option<usize>,
    /// Blocks sampler: run PIADM-ODE's underdamped Langevin corrector after each block.
    #[arg(long, help_heading = "Sampler")]
    pub corrector: bool,
    /// Corrector friction γ [default: 2].
    #[arg(
        long,
        value_name = "G",
        allow_negative_numbers = true,
        help_heading = "Sampler"
    )]
    pub corrector_gamma: Option<f64>,
    /// Corrector duration in Langevin time [default: 1].
    #[arg(
        long,
        value_name = "U",
        allow_negative_numbers = true,
        help_heading = "Sampler"
    )]
    pub corrector_time: Option<f64>,
    /// Corrector discretisation steps M [default: 16].
    #[arg(long, value_name = "M", help_heading = "Sampler")]
    pub corrector_steps: Option<usize>,
    /// Corrector Picard iterations (>= --corrector-steps is exact) [default: 16].
    #[arg(long, value_name = "K", help_heading = "Sampler")]
    pub corrector_iters: Option<usize>,
    /// Picard update: scan (exact affine recurrence) or drift (ParaDiGMS' sum of drifts)
    /// [default: scan].
    #[arg(long, value_name = "FORM", help_heading = "Sampler")]
    pub picard_form: Option<String>,

    /// Samples in the batch [default: the first dimension of --init, else the second of --noise,
    /// else 1].
    #[arg(long, value_name = "B", help_heading = "Run")]
    pub batch: Option<usize>,
    /// Seed of the counter-based (Philox) noise.
    #[arg(long, value_name = "S", default_value_t = 0, help_heading = "Run")]
    pub seed: u64,
    /// Backend: cpu, cuda or auto (CUDA when built with it and a GPU is present, else CPU).
    #[arg(
        long,
        value_name = "DEVICE",
        default_value = "auto",
        help_heading = "Run"
    )]
    pub device: String,
    /// Initial state x_T: float32 .npy of shape [batch, dim] (replaces the generated noise).
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    pub init: Option<PathBuf>,
    /// Step noise z: float32 .npy of shape [steps, batch, dim] (replaces the generated noise).
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    pub noise: Option<PathBuf>,

    /// Write the final samples as float32 .npy of shape [batch, dim] (compare: the parallel
    /// sampler's samples).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Write run statistics as JSON.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub stats: Option<PathBuf>,
}

/// Options of `demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Built-in mixture: 64d (8 components in 64 dimensions) or 2d (2 components).
    #[arg(long, value_name = "NAME", default_value = "64d")]
    pub mixture: String,
    /// Samples in the batch.
    #[arg(long, value_name = "B", default_value_t = 16)]
    pub batch: usize,
    /// Steps of the DDPM run (out of 1000 training steps, leading spacing).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub steps: usize,
    /// Seed of the noise.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Backend: cpu, cuda or auto.
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: String,
}

/// An error of the command line: one line for the user, printed as `error: ...`.
#[derive(Debug)]
pub struct CliError(String);

impl CliError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        CliError(msg.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always one line, whatever the underlying message holds.
        let one_line: Vec<&str> = self.0.split_whitespace().collect();
        f.write_str(&one_line.join(" "))
    }
}

/// Options whose names equal the library's `Error::Config` field names.
const OPTION_FIELDS: &[&str] = &[
    "schedule",
    "steps",
    "rule",
    "eta",
    "horizon",
    "t-end",
    "kappa",
    "spacing",
    "train-steps",
    "shift",
    "mu",
    "window",
    "tol",
    "max-iters",
    "block-len",
    "iters",
    "batch",
    "corrector-gamma",
    "corrector-time",
    "corrector-steps",
    "corrector-iters",
    "dtype",
];

impl From<picardiff::Error> for CliError {
    fn from(e: picardiff::Error) -> Self {
        match e {
            picardiff::Error::Config { field, msg } if OPTION_FIELDS.contains(&field.as_str()) => {
                CliError(format!("--{field}: {msg}"))
            }
            e => CliError(e.to_string()),
        }
    }
}

/// Result of the command-line layer.
pub type CliResult<T> = Result<T, CliError>;

/// Writes `text` to stdout (an error, not a panic, on a closed pipe).
fn emit(text: &str) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| CliError::new(format!("writing to stdout: {e}")))
}

/// A warning line on stderr.
fn warn(msg: &str) {
    eprintln!("warning: {msg}");
}

/// Parses the command line and runs the command.
pub fn main() -> CliResult<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sample(args) => commands::sample(&args),
        Command::Compare(args) => commands::compare(&args),
        Command::Demo(args) => demo::demo(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Info { file, model } => {
            let path = file
                .or(model)
                .ok_or_else(|| CliError::new("info: give a model path (or --model PATH)"))?;
            let model = picardiff::model::load_model(&path)?;
            emit(&format!("{}\n", model.summary()))
        }
    }
}
