//! Noise schedules (α_t, σ_t of a variance-preserving process or of rectified flow), time grids and
//! step rules.
//!
//! Everything here runs once on the host in f64 and produces the per-step coefficient tables that the
//! samplers and backends consume. The maths is in `docs/algorithms.md` §1–2.

mod grid;
mod multistep;
mod rule;

pub use grid::{discrete_timesteps, FlowShift, Grid, GridPoint, Process, Spacing};
pub use multistep::{dpm_step_order, MultistepTable};
pub use rule::{ClipKeep, ClipSample, ClipTable, ModelOutput, StepRule, StepTable};

use crate::error::{Error, Result};
use crate::Field;

/// Default number of training timesteps of the discrete schedules (diffusers' default).
pub const DEFAULT_TRAIN_STEPS: usize = 1000;
/// The most training timesteps of a discrete schedule (its table holds one f64 per step).
pub const MAX_TRAIN_STEPS: usize = 10_000_000;

/// A noise schedule `x_t = α_t x_0 + σ_t ε`: variance preserving (`α_t² + σ_t² = 1`) except
/// [`Schedule::Flow`] (`α_t + σ_t = 1`).
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// A discrete schedule given by its cumulative products `ᾱ_i`, i = 0..N_train (model time = the
    /// integer timestep i).
    Discrete {
        /// The schedule's name (`ddpm-linear`, `scaled-linear`, `cosine`).
        name: String,
        /// `ᾱ_i = Π_{j≤i} (1 − β_j)`.
        alphas_cumprod: Vec<f64>,
    },
    /// The seed paper's Ornstein–Uhlenbeck process `dx = −½ x dt + dB`: `α_t = e^{−t/2}`.
    Ou,
    /// Song et al.'s continuous VP-SDE with `β(t) = β_min + t (β_max − β_min)` on [0, 1].
    VpLinear {
        /// β at t = 0 (default 0.1).
        beta_min: f64,
        /// β at t = 1 (default 20).
        beta_max: f64,
    },
    /// Rectified flow / flow matching (`docs/algorithms.md` §8): `x_σ = (1 − σ) x_0 + σ ε`, σ ∈ [0, 1],
    /// NOT variance preserving. The model time is `σ · train_steps` (diffusers'
    /// `FlowMatchEulerDiscreteScheduler` timestep with `num_train_timesteps = train_steps`).
    Flow {
        /// diffusers' `num_train_timesteps` (default 1000; 1 passes σ itself as pi0 does).
        train_steps: usize,
    },
}

/// diffusers' default `beta_start` of the linear schedules.
pub const DEFAULT_BETA_START: f64 = 1e-4;
/// diffusers' default `beta_end` of the linear schedules.
pub const DEFAULT_BETA_END: f64 = 0.02;

/// The β sequences of the discrete schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Betas {
    /// `linspace(β_start, β_end, N)`.
    Linear,
    /// `linspace(sqrt β_start, sqrt β_end, N)²`.
    ScaledLinear,
    /// Nichol & Dhariwal's cosine (diffusers' `squaredcos_cap_v2`).
    Cosine,
}

/// Names accepted by [`Schedule::from_name`].
pub const SCHEDULE_NAMES: &[&str] = &[
    "ddpm-linear",
    "scaled-linear",
    "cosine",
    "ou",
    "vp-linear",
    "flow",
];

impl Schedule {
    /// Builds a schedule by name with the defaults of `docs/algorithms.md` §1: discrete schedules
    /// with `n_train` steps and β from 1e-4 to 0.02 (diffusers' DDPM defaults), `vp-linear` with
    /// β_min = 0.1, β_max = 20 (Song et al.), `flow` with model time `σ · n_train` (n_train ≥ 1).
    pub fn from_name(name: &str, n_train: usize) -> Result<Self> {
        let betas = match name {
            "flow" => {
                if n_train == 0 || n_train > MAX_TRAIN_STEPS {
                    return Err(Error::config(
                        Field::TrainSteps,
                        format!("must be in 1..={MAX_TRAIN_STEPS} for flow, got {n_train}"),
                    ));
                }
                return Ok(Schedule::Flow {
                    train_steps: n_train,
                });
            }
            "ddpm-linear" => Betas::Linear,
            "scaled-linear" => Betas::ScaledLinear,
            "cosine" => Betas::Cosine,
            "ou" => return Ok(Schedule::Ou),
            "vp-linear" => {
                return Ok(Schedule::VpLinear {
                    beta_min: 0.1,
                    beta_max: 20.0,
                })
            }
            other => {
                return Err(Error::config(
                    Field::Schedule,
                    format!(
                        "unknown schedule `{other}` (expected one of {})",
                        SCHEDULE_NAMES.join(", ")
                    ),
                ))
            }
        };
        Self::discrete(name, betas, n_train, DEFAULT_BETA_START, DEFAULT_BETA_END)
    }

    /// A discrete schedule named as diffusers names its `beta_schedule` (`linear`,
    /// `scaled_linear`, `squaredcos_cap_v2`), with `beta_start`/`beta_end` (unused by the cosine
    /// schedule), as a LeRobot or diffusers config gives it.
    pub fn diffusers(
        beta_schedule: &str,
        n_train: usize,
        beta_start: f64,
        beta_end: f64,
    ) -> Result<Self> {
        let (name, betas) = match beta_schedule {
            "linear" => ("ddpm-linear", Betas::Linear),
            "scaled_linear" => ("scaled-linear", Betas::ScaledLinear),
            "squaredcos_cap_v2" => ("cosine", Betas::Cosine),
            other => {
                return Err(Error::config(
                    Field::ModelConfig("beta_schedule"),
                    format!(
                        "unsupported beta_schedule `{other}` (expected linear, scaled_linear or squaredcos_cap_v2)"
                    ),
                ))
            }
        };
        let ok = |b: f64| b > 0.0 && b < 1.0;
        if betas != Betas::Cosine && !(ok(beta_start) && ok(beta_end) && beta_start <= beta_end) {
            return Err(Error::config(
                Field::ModelConfig("beta_start"),
                format!("beta_start {beta_start} and beta_end {beta_end} must satisfy 0 < start <= end < 1"),
            ));
        }
        Self::discrete(name, betas, n_train, beta_start, beta_end)
    }

    fn discrete(name: &str, betas: Betas, n_train: usize, b0: f64, b1: f64) -> Result<Self> {
        if n_train < 2 {
            return Err(Error::config(
                Field::TrainSteps,
                format!("must be at least 2, got {n_train}"),
            ));
        }
        if n_train > MAX_TRAIN_STEPS {
            return Err(Error::config(
                Field::TrainSteps,
                format!("must be at most {MAX_TRAIN_STEPS}, got {n_train}"),
            ));
        }
        let lin = |lo: f64, hi: f64| -> Vec<f64> {
            (0..n_train)
                .map(|i| lo + (hi - lo) * i as f64 / (n_train - 1) as f64)
                .collect()
        };
        let betas = match betas {
            Betas::Linear => lin(b0, b1),
            Betas::ScaledLinear => lin(b0.sqrt(), b1.sqrt())
                .into_iter()
                .map(|b| b * b)
                .collect(),
            Betas::Cosine => cosine_betas(n_train),
        };
        let mut prod = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                prod *= 1.0 - b;
                prod
            })
            .collect();
        Ok(Schedule::Discrete {
            name: name.to_string(),
            alphas_cumprod,
        })
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        match self {
            Schedule::Discrete { name, .. } => name,
            Schedule::Ou => "ou",
            Schedule::VpLinear { .. } => "vp-linear",
            Schedule::Flow { .. } => "flow",
        }
    }

    /// True for the rectified-flow schedule (α = 1 − σ, not variance preserving).
    pub fn is_flow(&self) -> bool {
        matches!(self, Schedule::Flow { .. })
    }

    /// True for the discrete (table) schedules.
    pub fn is_discrete(&self) -> bool {
        matches!(self, Schedule::Discrete { .. })
    }

    /// `(α_t, σ_t)` at time `t`. For discrete schedules `t` is a timestep index (rounded to the
    /// nearest integer and clamped to the table); t < 0 is the clean-data end (α = 1, σ = 0). For
    /// `flow`, `σ = t / train_steps` clamped to [0, 1] and `α = 1 − σ`.
    pub fn alpha_sigma(&self, t: f64) -> (f64, f64) {
        let log_alpha = match self {
            Schedule::Flow { train_steps } => {
                let sigma = (t / *train_steps as f64).clamp(0.0, 1.0);
                // NaN stays NaN through clamp; the model sees it as a non-finite output.
                return (1.0 - sigma, sigma);
            }
            Schedule::Discrete { alphas_cumprod, .. } => {
                if t < -0.5 {
                    return (1.0, 0.0);
                }
                let i = (t.round() as usize).min(alphas_cumprod.len() - 1);
                let ab = alphas_cumprod[i];
                return (ab.sqrt(), (1.0 - ab).sqrt());
            }
            Schedule::Ou => -0.5 * t,
            Schedule::VpLinear { beta_min, beta_max } => {
                -0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min
            }
        };
        let alpha = log_alpha.exp();
        // σ² = 1 − α² = −expm1(2 log α), accurate for small t.
        (alpha, (-(2.0 * log_alpha).exp_m1()).max(0.0).sqrt())
    }
}

/// Nichol & Dhariwal's cosine betas: `β_i = min(1 − ᾱ((i+1)/N)/ᾱ(i/N), 0.999)` with
/// `ᾱ(u) = cos²((u + s)/(1 + s) · π/2)`, s = 0.008 (float division throughout; candle and
/// diffusers-rs get this wrong with an integer division).
fn cosine_betas(n: usize) -> Vec<f64> {
    let s = 0.008;
    let abar = |u: f64| {
        ((u + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2)
            .cos()
            .powi(2)
    };
    (0..n)
        .map(|i| (1.0 - abar((i + 1) as f64 / n as f64) / abar(i as f64 / n as f64)).min(0.999))
        .collect()
}
