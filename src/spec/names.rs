//! The named choices of a run (schedule, rule, grid, spacing, sampler, Picard form, dtype, device):
//! each is an enum with one spelling per variant, parsed by `FromStr`, printed by `Display`, and
//! (de)serialised as that string, so the CLI, the C ABI, Python and config files accept the same
//! words and an unknown word is the same error everywhere (`Error::Config` naming the field and
//! listing the choices).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backend::PicardForm;
use crate::error::{Error, Result};
use crate::model::WeightDtype;
use crate::schedule::Spacing;
use crate::Field;

/// A choice given by name: its spellings, and the field it is a value of.
pub trait Named: Sized + Copy + 'static {
    /// The spec field this choice is a value of (for error messages).
    const FIELD: Field;
    /// What one value is called in messages (`unknown {WHAT} ...`).
    const WHAT: &'static str;
    /// Every variant with its name, in the order the help lists them.
    const ALL: &'static [(Self, &'static str)];

    /// The variant's name.
    fn name(self) -> &'static str;

    /// Every name, comma-separated (`a, b or c`).
    fn choices() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|(_, n)| *n).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }

    /// Parses a name (the `FromStr` of every choice).
    fn parse_name(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(v, _)| *v)
            .ok_or_else(|| {
                Error::config(
                    Self::FIELD,
                    format!(
                        "unknown {} `{s}` (expected {})",
                        Self::WHAT,
                        Self::choices()
                    ),
                )
            })
    }
}

/// Implements [`Named`], `FromStr`, `Display`, `Serialize` and `Deserialize` for an enum of unit
/// variants.
macro_rules! named {
    ($ty:ty, $field:expr, $what:literal, [$($var:ident = $name:literal),+ $(,)?]) => {
        impl Named for $ty {
            const FIELD: Field = $field;
            const WHAT: &'static str = $what;
            const ALL: &'static [(Self, &'static str)] = &[$((<$ty>::$var, $name)),+];
            fn name(self) -> &'static str {
                match self {
                    $(<$ty>::$var => $name),+
                }
            }
        }
        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                <$ty as Named>::parse_name(s)
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(Named::name(*self))
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(Named::name(*self))
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|e| match e {
                    Error::Config { msg, .. } => serde::de::Error::custom(msg),
                    e => serde::de::Error::custom(e),
                })
            }
        }
    };
}

/// A noise schedule by name ([`crate::schedule::Schedule::from_name`] builds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleName {
    /// Discrete, linear β from 1e-4 to 0.02 (DDPM).
    DdpmLinear,
    /// Discrete, `linspace(√β_start, √β_end)²` (Stable Diffusion).
    ScaledLinear,
    /// Discrete, Nichol & Dhariwal's cosine.
    Cosine,
    /// Continuous Ornstein–Uhlenbeck (the seed paper's).
    Ou,
    /// Continuous VP with linear β(t) (Song et al.).
    VpLinear,
    /// Rectified flow, α = 1 − σ (velocity models).
    Flow,
}
named!(
    ScheduleName,
    Field::Schedule,
    "schedule",
    [
        DdpmLinear = "ddpm-linear",
        ScaledLinear = "scaled-linear",
        Cosine = "cosine",
        Ou = "ou",
        VpLinear = "vp-linear",
        Flow = "flow",
    ]
);

impl ScheduleName {
    /// True for the schedules with integer timesteps.
    pub fn is_discrete(self) -> bool {
        matches!(self, Self::DdpmLinear | Self::ScaledLinear | Self::Cosine)
    }
}

/// A step rule by name ([`crate::schedule::StepRule::from_name`] builds it with η).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleName {
    /// DDIM with η = 1 (ancestral DDPM) unless η is given.
    Ddpm,
    /// DDIM with η = 0 unless η is given.
    Ddim,
    /// The exponential integrator of the reverse SDE.
    ExpSde,
    /// The exponential integrator of the probability-flow ODE.
    ExpOde,
    /// Euler on the flow ODE (flow schedule).
    Euler,
    /// DPM-Solver++ multistep, second order (VP schedules; `docs/algorithms.md` §9).
    DpmPp2m,
    /// DPM-Solver++ multistep, third order.
    DpmPp3m,
}
named!(
    RuleName,
    Field::Rule,
    "rule",
    [
        Ddpm = "ddpm",
        Ddim = "ddim",
        ExpSde = "exp-sde",
        ExpOde = "exp-ode",
        Euler = "euler",
        DpmPp2m = "dpmpp-2m",
        DpmPp3m = "dpmpp-3m",
    ]
);

/// A time grid by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridName {
    /// Continuous: `steps` equal steps. Flow: pi0's σ = 1 − k/N.
    Uniform,
    /// Continuous: the seed paper's grid (step κ while t ≥ 1, then geometric).
    Paper,
    /// Flow: diffusers' `FlowMatchEulerDiscreteScheduler` grid (shift s or μ).
    Diffusers,
}
named!(
    GridName,
    Field::Grid,
    "grid",
    [
        Uniform = "uniform",
        Paper = "paper",
        Diffusers = "diffusers",
    ]
);

/// A sampler by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerName {
    /// One model call per step.
    Sequential,
    /// ParaDiGMS' sliding Picard window.
    Picard,
    /// The seed paper's blocks of Picard iterations (PIADM).
    Blocks,
    /// Sequential or picard, whichever a calibrated cost model says is faster for the model,
    /// backend and batch ([`crate::sampler::auto`]).
    Auto,
}
named!(
    SamplerName,
    Field::Sampler,
    "sampler",
    [
        Sequential = "sequential",
        Picard = "picard",
        Blocks = "blocks",
        Auto = "auto",
    ]
);

/// A backend by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    /// The pure-Rust CPU backend.
    Cpu,
    /// The CUDA backend on GPU 0 (feature `cuda`).
    Cuda,
    /// CUDA when built with it and a GPU opens, else the CPU.
    Auto,
}
named!(
    DeviceName,
    Field::Device,
    "device",
    [Cpu = "cpu", Cuda = "cuda", Auto = "auto",]
);

named!(
    PicardForm,
    Field::PicardForm,
    "form",
    [Scan = "scan", Drift = "drift"]
);
named!(
    Spacing,
    Field::Spacing,
    "spacing",
    [
        Leading = "leading",
        Trailing = "trailing",
        Linspace = "linspace",
        DpmLinspace = "dpm-linspace",
    ]
);
named!(
    WeightDtype,
    Field::Dtype,
    "dtype",
    [F32 = "f32", Bf16 = "bf16", F16 = "f16"]
);
