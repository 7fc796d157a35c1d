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

use clap::{Args, CommandFactory, Parser, Subcommand};

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

/// Options shared by `sample` and `compare`: the files of a run, and its run specification.
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
    /// A run specification file, TOML (or JSON if it ends in .json), with the options below as
    /// keys in snake_case (e.g. `sampler = "picard"`, `window = 64`); options given on the command
    /// line override it.
    #[arg(long, value_name = "FILE", help_heading = "Problem")]
    pub config: Option<PathBuf>,
    /// The run specification (picardiff::spec::RunSpec).
    #[command(flatten)]
    pub spec: picardiff::spec::RunSpec,
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
    #[arg(long, value_name = "DEVICE", default_value_t = picardiff::defaults::DEVICE)]
    pub device: picardiff::spec::DeviceName,
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

impl From<picardiff::Error> for CliError {
    fn from(e: picardiff::Error) -> Self {
        match e {
            picardiff::Error::Config { field, msg } if field.is_spec() => {
                // "required ..." reads as "--steps is required ...".
                match msg.strip_prefix("required") {
                    Some(rest) => CliError(format!("{} is required{rest}", flag(field.name()))),
                    None => CliError(format!("{}: {msg}", flag(field.name()))),
                }
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

/// The command-line spelling of a spec field (`block_len` → `--block-len`).
fn flag(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

/// A warning about a spec field or input, `warning: --field msg`.
fn warn_field(field: &str, msg: &str) {
    warn(&format!("{} {msg}", flag(field)));
}

/// The command with the run spec's defaults appended to its options' help (`[default: …]`,
/// worded by `RunSpec::default_help` from `picardiff::defaults`, never typed here).
pub fn command() -> clap::Command {
    fn with_defaults(mut c: clap::Command) -> clap::Command {
        for field in picardiff::spec::RunSpec::FIELDS {
            let Some(text) = picardiff::spec::RunSpec::default_help(field) else {
                continue;
            };
            c = c.mut_arg(*field, |a| {
                let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                a.help(format!("{help} [default: {text}]"))
            });
        }
        c
    }
    Cli::command()
        .mut_subcommand("sample", with_defaults)
        .mut_subcommand("compare", with_defaults)
}

/// A named choice the library refused (`--sampler nope`) as one `error:` line with the library's
/// message, as for every other picardiff error; any other clap error (help, version, syntax, a
/// malformed number) exits as clap does (status 2).
fn value_error(e: clap::Error) -> CliError {
    use clap::error::{ContextKind, ContextValue};
    let msg = match std::error::Error::source(&e).and_then(|s| s.downcast_ref::<picardiff::Error>())
    {
        Some(picardiff::Error::Config { msg, .. }) => msg.clone(),
        Some(other) => other.to_string(),
        None => e.exit(),
    };
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.split(' ').next().unwrap_or_default().to_string(),
        _ => String::from("option"),
    };
    CliError(format!("{arg}: {msg}"))
}

/// Parses the command line and runs the command.
pub fn main() -> CliResult<()> {
    use clap::FromArgMatches;
    let matches = command().try_get_matches().map_err(value_error)?;
    let cli = Cli::from_arg_matches(&matches).map_err(value_error)?;
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
