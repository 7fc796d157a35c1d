//! The run specification: every setting of a run that is not a file or an array, in one typed
//! struct that every front end is thin over. The CLI flattens it into its arguments (feature
//! `cli`: the clap attributes below; the field docs are the option help), a config file
//! (`--config run.toml|json`) deserialises into it, the C ABI converts its
//! `picardiff_sampler_config` into it and Python its keyword arguments. [`RunSpec::plan`] turns
//! it, with what the model says about itself, into the library's schedule, grid, rule and
//! [`SamplerKind`](crate::sampler::SamplerKind), applying every default in one place.
//!
//! `None` (and `false`, and an empty list) means "not given": the default then applies, and it
//! can depend on other choices (τ on the rule, the horizon on the schedule), so
//! `RunSpec::default()` is "every setting at its default". The defaults are constants in
//! [`crate::defaults`]; [`RunSpec::default_help`] words them for help texts.
//!
//! Adding an option: a field here (with its doc and clap/serde attributes), its use in `plan.rs`,
//! its entry in [`RunSpec::FIELDS`] (a test checks the list against the struct), and its C ABI field
//! if C callers need it.

mod names;
mod plan;
mod sampler;

pub use names::{DeviceName, GridName, Named, RuleName, SamplerName, ScheduleName};
pub use plan::{ModelRun, Plan, MAX_STEPS};

use serde::{Deserialize, Serialize};

use crate::backend::PicardForm;
use crate::error::{Error, Result};
use crate::model::WeightDtype;
use crate::schedule::Spacing;
use crate::Field;

/// Every setting of a run but its files and arrays; `None` = the default ([`RunSpec::plan`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct RunSpec {
    /// Noise schedule: ddpm-linear, scaled-linear, cosine (discrete), ou, vp-linear (continuous) or
    /// flow (rectified flow, α = 1 − σ). Required for a mixture; an MLP file names its own.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "NAME", help_heading = "Problem")
    )]
    pub schedule: Option<ScheduleName>,
    /// MLP weight/GEMM dtype on the GPU: f32, bf16 or f16 (the CPU computes in f32).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "DTYPE", help_heading = "Problem")
    )]
    pub dtype: Option<WeightDtype>,
    /// Number of sampling steps (required, except with --grid paper where it is ignored, and for a
    /// Diffusion Policy, whose config gives it).
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", help_heading = "Problem"))]
    pub steps: Option<usize>,
    /// Step rule: ddpm (= ddim with eta 1), ddim (eta 0 unless --eta), exp-sde, exp-ode,
    /// dpmpp-2m, dpmpp-3m (DPM-Solver++ multistep) (VP schedules) or euler (flow).
    /// Required, except for a Diffusion Policy directory, whose scheduler gives it (ddpm or ddim
    /// override it).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "RULE", help_heading = "Problem")
    )]
    pub rule: Option<RuleName>,
    /// DDIM's stochasticity η of the ddpm/ddim rules (ddpm: 1, ddim: 0); not the early-stopping
    /// time of --t-end.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "E",
            allow_negative_numbers = true,
            help_heading = "Problem"
        )
    )]
    pub eta: Option<f64>,

    /// Horizon T, the noise end of a continuous schedule.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "T", allow_negative_numbers = true, help_heading = CONTINUOUS)
    )]
    pub horizon: Option<f64>,
    /// Early-stopping time δ > 0 of a continuous schedule: sampling ends at t = δ (not --eta,
    /// DDIM's η).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "DELTA", allow_negative_numbers = true, help_heading = CONTINUOUS)
    )]
    pub t_end: Option<f64>,
    /// Time grid: uniform (--steps steps) or paper (step κ while t ≥ 1, then geometric; --steps is
    /// ignored). Flow: diffusers (FlowMatchEulerDiscreteScheduler, --shift/--mu) or uniform (pi0's
    /// σ = 1 − k/N).
    #[cfg_attr(feature = "cli", arg(long, value_name = "GRID", help_heading = CONTINUOUS))]
    pub grid: Option<GridName>,
    /// Step scale κ of the paper grid.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "KAPPA", allow_negative_numbers = true, help_heading = CONTINUOUS)
    )]
    pub kappa: Option<f64>,

    /// Timestep spacing (diffusers): leading, trailing, linspace (DDIM's) or dpm-linspace
    /// (DPMSolverMultistepScheduler's linspace).
    #[cfg_attr(feature = "cli", arg(long, value_name = "SPACING", help_heading = DISCRETE))]
    pub spacing: Option<Spacing>,
    /// Training timesteps of the schedule. Flow: diffusers' num_train_timesteps, the model time is
    /// σ·N (1 passes σ itself).
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", help_heading = DISCRETE))]
    pub train_steps: Option<usize>,

    /// Shift s of diffusers' flow grid: σ' = sσ/(1 + (s − 1)σ).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "S", allow_negative_numbers = true, help_heading = FLOW)
    )]
    pub shift: Option<f64>,
    /// diffusers' dynamic shifting (use_dynamic_shifting) with mu: σ' = e^μ/(e^μ + 1/σ − 1);
    /// replaces --shift.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "MU", allow_negative_numbers = true, help_heading = FLOW)
    )]
    pub mu: Option<f64>,

    /// Sampler: auto (sequential or picard, whichever a cost model measured on the model, device
    /// and batch says is faster; compare: picard), sequential, picard (sliding window) or blocks
    /// (PIADM).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "NAME", help_heading = "Sampler")
    )]
    pub sampler: Option<SamplerName>,
    /// Picard window length p (at most the steps).
    #[cfg_attr(feature = "cli", arg(long, value_name = "P", help_heading = "Sampler"))]
    pub window: Option<usize>,
    /// Tolerance τ of the convergence test (picard, blocks); with blocks, 0 runs exactly --iters
    /// iterations per block.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "T",
            allow_negative_numbers = true,
            help_heading = "Sampler"
        )
    )]
    pub tol: Option<f64>,
    /// Iteration cap of the picard sampler (an error if reached).
    #[cfg_attr(feature = "cli", arg(long, value_name = "K", help_heading = "Sampler"))]
    pub max_iters: Option<usize>,
    /// Block length of the blocks sampler in the schedule's time.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "H",
            allow_negative_numbers = true,
            help_heading = "Sampler"
        )
    )]
    pub block_len: Option<f64>,
    /// Picard iterations per block K of the blocks sampler: fewer if a block converges within
    /// --tol, and an error if a block is still above --tol after K (--tol 0: exactly K, the
    /// paper's fixed-K mode).
    #[cfg_attr(feature = "cli", arg(long, value_name = "K", help_heading = "Sampler"))]
    pub iters: Option<usize>,
    /// Blocks sampler: run PIADM-ODE's underdamped Langevin corrector after each block.
    #[cfg_attr(feature = "cli", arg(long, help_heading = "Sampler"))]
    pub corrector: bool,
    /// Corrector friction γ.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "G",
            allow_negative_numbers = true,
            help_heading = "Sampler"
        )
    )]
    pub corrector_gamma: Option<f64>,
    /// Corrector duration in Langevin time.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "U",
            allow_negative_numbers = true,
            help_heading = "Sampler"
        )
    )]
    pub corrector_time: Option<f64>,
    /// Corrector discretisation steps M.
    #[cfg_attr(feature = "cli", arg(long, value_name = "M", help_heading = "Sampler"))]
    pub corrector_steps: Option<usize>,
    /// Corrector Picard iterations (>= --corrector-steps is exact).
    #[cfg_attr(feature = "cli", arg(long, value_name = "K", help_heading = "Sampler"))]
    pub corrector_iters: Option<usize>,
    /// Picard update: scan (exact affine recurrence) or drift (ParaDiGMS' sum of drifts).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "FORM", help_heading = "Sampler")
    )]
    pub picard_form: Option<PicardForm>,
    /// Anderson acceleration of the Picard iteration (picard, blocks; CPU only) with history M,
    /// 2 to 5: each point mixes its last M iterates by a least-squares fit of their residuals
    /// over itself and the window's earlier points (ParaTAA's triangular form).
    #[cfg_attr(feature = "cli", arg(long, value_name = "M", help_heading = "Sampler"))]
    pub anderson: Option<usize>,
    /// Picard and blocks: also stop once the final samples have settled, when the last point's
    /// RMS change per element in one iteration is at most TOL for every sample (in the samples'
    /// units; counted from the second iteration that reaches the last point). Fewer rounds than
    /// the per-step --tol test alone, at a deviation from sequential of about TOL
    /// (docs/algorithms.md §3).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "TOL", help_heading = "Sampler")
    )]
    pub final_tol: Option<f64>,

    /// Samples in the batch (a Diffusion Policy: the rows of --cond).
    #[cfg_attr(feature = "cli", arg(long, value_name = "B", help_heading = "Run"))]
    pub batch: Option<usize>,
    /// Seed of the counter-based (Philox) noise.
    #[cfg_attr(feature = "cli", arg(long, value_name = "S", help_heading = "Run"))]
    pub seed: Option<u64>,
    /// Global index of the batch's first sample: runs with sample0 0, batch 8 and sample0 8,
    /// batch 8 give the same samples as one run of batch 16.
    #[cfg_attr(feature = "cli", arg(long, value_name = "I", help_heading = "Run"))]
    pub sample0: Option<u32>,
    /// Backend: cpu, cuda or auto (CUDA when built with it and a GPU is present, else CPU).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "DEVICE", help_heading = "Run")
    )]
    pub device: Option<DeviceName>,

    /// Diffusion Policy: replace a field of the policy's config.json before loading, VALUE as JSON
    /// (e.g. --set num_inference_steps=10 --set noise_scheduler_type=DDIM --set clip_sample=false);
    /// repeatable.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "KEY=VALUE", help_heading = "Problem")
    )]
    pub set: Vec<ConfigOverride>,
}

#[cfg(feature = "cli")]
const CONTINUOUS: &str = "Continuous schedules (ou, vp-linear)";
#[cfg(feature = "cli")]
const DISCRETE: &str = "Discrete schedules (ddpm-linear, scaled-linear, cosine)";
#[cfg(feature = "cli")]
const FLOW: &str = "Flow schedule (flow)";

/// One `KEY=VALUE` replacement of a field of a Diffusion Policy's config.json (VALUE as JSON, else
/// as a string); serialised as that text.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigOverride {
    /// The config.json field.
    pub key: String,
    /// Its new value.
    pub value: serde_json::Value,
}

impl std::str::FromStr for ConfigOverride {
    type Err = Error;
    fn from_str(kv: &str) -> Result<Self> {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            Error::config(
                Field::Set,
                format!("`{kv}`: expected KEY=VALUE (e.g. num_inference_steps=10)"),
            )
        })?;
        let value =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
        Ok(ConfigOverride {
            key: k.to_string(),
            value,
        })
    }
}

impl std::fmt::Display for ConfigOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl Serialize for ConfigOverride {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigOverride {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl RunSpec {
    /// Every field's name, in declaration order: the names errors and warnings use (the CLI
    /// spells them `--kebab-case`, Python as keyword arguments, config files as keys).
    pub const FIELDS: &'static [&'static str] = Field::SPEC_NAMES;

    /// `self` with every setting `over` gives replaced by `over`'s (a config file overlaid by
    /// command-line flags); `set` lists are concatenated, `over`'s last.
    pub fn overlaid(&self, over: &RunSpec) -> RunSpec {
        macro_rules! pick {
            ($($f:ident),*) => {
                RunSpec {
                    $($f: over.$f.or(self.$f),)*
                    corrector: over.corrector || self.corrector,
                    set: self.set.iter().chain(&over.set).cloned().collect(),
                }
            };
        }
        pick!(
            schedule,
            dtype,
            steps,
            rule,
            eta,
            horizon,
            t_end,
            grid,
            kappa,
            spacing,
            train_steps,
            shift,
            mu,
            sampler,
            window,
            tol,
            max_iters,
            block_len,
            iters,
            corrector_gamma,
            corrector_time,
            corrector_steps,
            corrector_iters,
            picard_form,
            anderson,
            final_tol,
            batch,
            seed,
            sample0,
            device
        )
    }

    /// Reads a spec from a config file's text: TOML, or JSON when `json` is true. Unknown keys
    /// and ill-typed values are errors naming them.
    pub fn from_text(text: &str, json: bool) -> Result<RunSpec> {
        if json {
            serde_json::from_str(text).map_err(|e| Error::config(Field::Config, e.to_string()))
        } else {
            toml_spec(text)
        }
    }

    /// The default of `field` in words, from [`crate::defaults`] (for help texts), or `None`
    /// when the field has none (a required setting, a flag).
    pub fn default_help(field: &str) -> Option<String> {
        use crate::defaults as d;
        Some(match field {
            "dtype" => "f32".into(),
            "eta" => "1 for ddpm, 0 for ddim".into(),
            "horizon" => format!("{} for ou, {} for vp-linear", d::HORIZON_OU, d::HORIZON),
            "t_end" => d::T_END.to_string(),
            "grid" => "uniform; flow: diffusers".into(),
            "kappa" => d::KAPPA.to_string(),
            "spacing" => d::SPACING.to_string(),
            "train_steps" => crate::schedule::DEFAULT_TRAIN_STEPS.to_string(),
            "shift" => d::SHIFT.to_string(),
            "sampler" => d::SAMPLER.to_string(),
            "window" => d::WINDOW.to_string(),
            "tol" => format!(
                "0 with the final-sample stop when the window holds every step; else {} for \
                 stochastic rules, {} for deterministic ones",
                d::TOL_STOCHASTIC,
                d::TOL_DETERMINISTIC
            ),
            "max_iters" => "the number of steps, which always suffices".into(),
            "block_len" => format!(
                "{} for continuous schedules, {} timesteps for discrete ones",
                d::BLOCK_LEN_CONTINUOUS,
                d::BLOCK_LEN_DISCRETE
            ),
            "iters" => "the longest block's length, which always suffices".into(),
            "corrector_gamma" => crate::sampler::Corrector::default().gamma.to_string(),
            "corrector_time" => crate::sampler::Corrector::default().duration.to_string(),
            "corrector_steps" => crate::sampler::Corrector::default().steps.to_string(),
            "corrector_iters" => crate::sampler::Corrector::default().iters.to_string(),
            "picard_form" => format!(
                "{} with the final-sample stop, else {}",
                d::PICARD_FORM_FINAL_STOP,
                d::PICARD_FORM
            ),
            "anderson" => "off".into(),
            "final_tol" => format!(
                "{} when tol is not given and the window holds every step, else off",
                d::FINAL_TOL
            ),
            "batch" => "the first dimension of --init, else the second of --noise, else 1".into(),
            "seed" => d::SEED.to_string(),
            "sample0" => "0".into(),
            "device" => d::DEVICE.to_string(),
            _ => return None,
        })
    }
}

#[cfg(feature = "cli")]
fn toml_spec(text: &str) -> Result<RunSpec> {
    toml::from_str(text).map_err(|e| Error::config(Field::Config, e.to_string()))
}

#[cfg(not(feature = "cli"))]
fn toml_spec(_text: &str) -> Result<RunSpec> {
    Err(Error::config(
        Field::Config,
        "TOML config files need the `cli` feature (JSON works without it)",
    ))
}
