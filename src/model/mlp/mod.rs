//! A learned score network: a small MLP denoiser read from one safetensors file.
//!
//! # The network
//!
//! Rows are states `x` of `dim` (D) elements with one model time `t` per row (a timestep index for
//! the discrete schedules, t itself for continuous ones). Hidden width H, time-embedding width E,
//! optional conditioning width C, `layers` = N, activation `act` (SiLU `v·sigmoid(v)` or GELU with
//! the tanh approximation `0.5·v·(1 + tanh(√(2/π)·(v + 0.044715·v³)))`, PyTorch's
//! `gelu(approximate="tanh")`). `Linear(W, b)·u = W u + b` with `W` stored `[out, in]` (PyTorch's
//! layout).
//!
//! ```text
//! emb(t)  = [cos(s·t·f_0) … cos(s·t·f_{E/2−1}), sin(s·t·f_0) … sin(s·t·f_{E/2−1})],
//!           f_k = exp(−ln(max_period)·k/(E/2)),  s = time_scale,  max_period = 10000 by default
//!           (computed in f64, rounded to f32)
//! τ(t)    = time_fc2 · silu(time_fc1 · emb(t))              [+ cond_proj · cond, when C > 0]
//! h       = input · x + τ(t)
//! for each layer l = 0..N:
//!     u   = layers.l.norm(h)  if layernorm  else h         (LayerNorm with affine weight and bias)
//!     residual: h = h + layers.l.fc2 · act(layers.l.fc1 · u)
//!     else:     h = act(layers.l.fc1 · u)
//! out     = output · norm_out(h)  if residual and layernorm,  else output · h
//! ```
//!
//! `out` is ε, x̂0, v or the score, as `prediction` declares ([`ModelOutput`]); the samplers convert
//! it to ε̂. The conditioning vector `cond` (a robot observation, a class embedding, …) is either the
//! model's own, fixed for every run ([`MlpModel::set_cond`]), or one per sample of a run
//! (`RunInputs::cond`, `[batch][C]`; CPU backend): `cond_proj · cond_b` is then added per row, with
//! the same roundings as the model's own vector (`tests/mlp_cond.rs`). `τ(t)` does not depend on the state, so
//! [`ScoreModel::prepare_times`](crate::model::ScoreModel::prepare_times) tabulates it once per grid
//! point (see `cpu.rs`). `tools/mlp_reference.py` is the PyTorch twin of this forward, written to
//! match it operation for operation.
//!
//! # The file
//!
//! One safetensors file holds the weights and, in its `__metadata__`, the configuration: key
//! `"picardiff_mlp"`, whose value is a JSON object (as a string, safetensors metadata being
//! string → string):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `format_version` | 1 | this format |
//! | `dim` | int ≥ 1 | D, elements per state |
//! | `hidden` | int ≥ 1 | H |
//! | `layers` | int ≥ 0 | N hidden layers (or residual blocks) |
//! | `time_embed_dim` | even int ≥ 2 | E |
//! | `activation` | `"silu"` \| `"gelu_tanh"` (alias `"gelu"`) | act |
//! | `residual` | bool | residual blocks instead of plain layers |
//! | `layernorm` | bool | pre-norm LayerNorm in each layer (and `norm_out` when residual) |
//! | `layernorm_eps` | number > 0, default 1e-5 | LayerNorm ε |
//! | `cond_dim` | int ≥ 0, default 0 | C |
//! | `prediction` | `"epsilon"` \| `"sample"` (`"x0"`) \| `"v"` \| `"score"` | what `out` is |
//! | `schedule` | a [`Schedule`] name, e.g. `"ddpm-linear"` | the process the model was trained on |
//! | `train_steps` | int ≥ 2, default 1000 | training steps of a discrete schedule |
//! | `time_scale` | number > 0, default 1 | s in `emb` (e.g. 1000 for t ∈ [0, 1]) |
//! | `max_period` | number > 1, default 10000 | the embedding's longest period |
//! | `description` | string, optional | free text |
//! | `training` | any JSON, optional | provenance (data set, steps, loss), not read |
//!
//! Any other field is an error (a file meant for another format version should not load quietly).
//! Tensors (each `F32`, `BF16` or `F16`, little-endian, all Linear weights in one dtype):
//!
//! | name | shape | when |
//! |---|---|---|
//! | `time_fc1.weight`, `time_fc1.bias` | [H, E], [H] | always |
//! | `time_fc2.weight`, `time_fc2.bias` | [H, H], [H] | always |
//! | `cond_proj.weight`, `cond_proj.bias` | [H, C], [H] | C > 0 |
//! | `input.weight`, `input.bias` | [H, D], [H] | always |
//! | `layers.{l}.norm.weight`, `layers.{l}.norm.bias` | [H], [H] | layernorm |
//! | `layers.{l}.fc1.weight`, `layers.{l}.fc1.bias` | [H, H], [H] | always |
//! | `layers.{l}.fc2.weight`, `layers.{l}.fc2.bias` | [H, H], [H] | residual |
//! | `norm_out.weight`, `norm_out.bias` | [H], [H] | residual and layernorm |
//! | `output.weight`, `output.bias` | [D, H], [D] | always |
//!
//! A tensor the configuration does not call for is an error, as is a missing one, a wrong shape or
//! dtype, or a NaN/infinite value; every such error is an [`Error::Model`] naming the tensor or the
//! field. Files are size-checked before they are read ([`MAX_FILE_BYTES`]) and the safetensors crate
//! checks that the header's offsets tile the data exactly, so no allocation is sized by an unchecked
//! header. `tools/train_mlp.py` writes this format; `examples/models/` holds two trained models.
//!
//! # Dtypes
//!
//! On the CPU every weight is converted to f32 on load and computed in f32 (bf16 and f16 widen
//! exactly). The file's dtype is kept ([`MlpModel::file_dtype`]) and the [`Linear`] helpers give the
//! weights back as bf16/f16 bit-exactly when the file stored them so. The CLI's `--dtype f32|bf16|f16`
//! ([`WeightDtype::from_name`], stored with [`MlpModel::set_compute_dtype`]) is the weight and
//! GEMM-input dtype on the GPU (accumulation in f32 always); on the CPU computation stays f32
//! whatever `--dtype` says. [`MlpModel::time_table`] is the `τ(t)` table a device backend uploads.

mod cache;
mod cpu;
mod cpu_math;
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(feature = "cuda")]
mod cuda_weights;
mod load;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub use cpu::MlpWorkspace;
pub(crate) use load::sniff_safetensors;
pub use load::MAX_FILE_BYTES;

use crate::error::{Error, Result};
use crate::schedule::{ModelOutput, Schedule};
pub use crate::types::{Activation, WeightDtype};
use crate::Field;

/// The metadata key holding the configuration JSON.
pub const MLP_METADATA_KEY: &str = "picardiff_mlp";
/// The format version this crate reads and writes.
pub const MLP_FORMAT_VERSION: u32 = 1;

/// The validated configuration of an MLP file (the `picardiff_mlp` metadata; see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct MlpConfig {
    /// D.
    pub dim: usize,
    /// H.
    pub hidden: usize,
    /// N.
    pub layers: usize,
    /// E (even).
    pub time_embed_dim: usize,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Residual blocks.
    pub residual: bool,
    /// Pre-norm LayerNorm.
    pub layernorm: bool,
    /// LayerNorm ε.
    pub layernorm_eps: f64,
    /// C (0: no conditioning).
    pub cond_dim: usize,
    /// What the network predicts.
    pub prediction: ModelOutput,
    /// Schedule name.
    pub schedule: String,
    /// Training steps of a discrete schedule.
    pub train_steps: usize,
    /// s in the embedding.
    pub time_scale: f64,
    /// The embedding's longest period.
    pub max_period: f64,
    /// Free text from the file.
    pub description: Option<String>,
}

/// A Linear layer in f32: `y = W u + b`, `W` row-major `[out][in]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// `[out_dim][in_dim]`.
    pub weight: Vec<f32>,
    /// `[out_dim]`.
    pub bias: Vec<f32>,
    /// Rows of `weight`.
    pub out_dim: usize,
    /// Columns of `weight`.
    pub in_dim: usize,
}

impl Linear {
    /// The weight as bf16 (bit-exact when the file stored bf16; round-to-nearest-even otherwise).
    pub fn weight_bf16(&self) -> Vec<half::bf16> {
        self.weight
            .iter()
            .map(|&v| half::bf16::from_f32(v))
            .collect()
    }
    /// The weight as f16 (bit-exact when the file stored f16; round-to-nearest-even otherwise).
    pub fn weight_f16(&self) -> Vec<half::f16> {
        self.weight
            .iter()
            .map(|&v| half::f16::from_f32(v))
            .collect()
    }
}

/// LayerNorm's affine parameters, `[H]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct Norm {
    /// γ.
    pub weight: Vec<f32>,
    /// β.
    pub bias: Vec<f32>,
}

/// One hidden layer or residual block.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Pre-norm (when `layernorm`).
    pub norm: Option<Norm>,
    /// The first (or only) Linear H→H.
    pub fc1: Linear,
    /// The second Linear H→H of a residual block.
    pub fc2: Option<Linear>,
}

/// All weights of the network in f32.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpWeights {
    /// E→H.
    pub time_fc1: Linear,
    /// H→H.
    pub time_fc2: Linear,
    /// C→H (when C > 0).
    pub cond_proj: Option<Linear>,
    /// D→H.
    pub input: Linear,
    /// The N layers.
    pub layers: Vec<Layer>,
    /// Final norm (residual and layernorm).
    pub norm_out: Option<Norm>,
    /// H→D.
    pub output: Linear,
}

impl MlpWeights {
    /// Every Linear layer, in forward order (time path first).
    pub fn linears(&self) -> Vec<&Linear> {
        let mut v = vec![&self.time_fc1, &self.time_fc2];
        v.extend(self.cond_proj.as_ref());
        v.push(&self.input);
        for l in &self.layers {
            v.push(&l.fc1);
            v.extend(l.fc2.as_ref());
        }
        v.push(&self.output);
        v
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        let lin: usize = self
            .linears()
            .iter()
            .map(|l| l.weight.len() + l.bias.len())
            .sum();
        let norms: usize = self
            .layers
            .iter()
            .filter_map(|l| l.norm.as_ref())
            .chain(self.norm_out.as_ref())
            .map(|n| n.weight.len() + n.bias.len())
            .sum();
        lin + norms
    }
}

/// Identity of a (weights, cond) state, so that a workspace's time table is never used with another.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An MLP score network loaded from a safetensors file (see the module docs for the format).
#[derive(Debug, Clone)]
pub struct MlpModel {
    config: MlpConfig,
    weights: MlpWeights,
    file_dtype: WeightDtype,
    cond: Option<Vec<f32>>,
    /// `cond_proj · cond` (with bias), `[H]`; empty until the conditioning is set.
    cond_h: Vec<f32>,
    compute_dtype: WeightDtype,
    id: u64,
    /// Host time tables of earlier runs (CPU backend).
    host_tables: cpu::HostTableCache,
    /// Device copies of the weights, per CUDA backend and dtype (uploaded once, freed with the model).
    #[cfg(feature = "cuda")]
    device_cache: cuda_weights::DeviceWeightCache,
}

impl MlpModel {
    /// Reads and validates a model file (at most [`MAX_FILE_BYTES`]).
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with_limit(path, MAX_FILE_BYTES)
    }

    /// Reads a model file of at most `max_bytes` bytes (checked before reading).
    pub fn from_file_with_limit(path: &Path, max_bytes: u64) -> Result<Self> {
        let bytes = load::read_limited(path, max_bytes)?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            Error::Model { field, msg } => Error::Model {
                field,
                msg: format!("{msg} (in {})", path.display()),
            },
            e => e,
        })
    }

    /// Parses and validates a model from the bytes of a safetensors file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (config, weights, file_dtype) = load::parse(bytes)?;
        Ok(MlpModel {
            config,
            weights,
            file_dtype,
            cond: None,
            cond_h: Vec::new(),
            compute_dtype: WeightDtype::F32,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            host_tables: Default::default(),
            #[cfg(feature = "cuda")]
            device_cache: Default::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// The weights (f32).
    pub fn weights(&self) -> &MlpWeights {
        &self.weights
    }

    /// The dtype the file stored the Linear weights in.
    pub fn file_dtype(&self) -> WeightDtype {
        self.file_dtype
    }

    /// The weight and GEMM-input dtype of the GPU path (the CLI's `--dtype`; default f32). The CPU
    /// computes in f32 whatever this says.
    pub fn compute_dtype(&self) -> WeightDtype {
        self.compute_dtype
    }

    /// Sets [`MlpModel::compute_dtype`].
    pub fn set_compute_dtype(&mut self, dtype: WeightDtype) {
        self.compute_dtype = dtype;
    }

    /// The schedule the model was trained with.
    pub fn schedule(&self) -> Result<Schedule> {
        Schedule::from_name(&self.config.schedule, self.config.train_steps)
    }

    /// The conditioning vector, if set.
    pub fn cond(&self) -> Option<&[f32]> {
        self.cond.as_deref()
    }

    /// Sets the per-run conditioning vector (`cond_dim` finite values). Runs use it from their next
    /// `prepare_times` on; a workspace tabulated with an earlier vector is not used again.
    pub fn set_cond(&mut self, cond: &[f32]) -> Result<()> {
        let c = self.config.cond_dim;
        let Some(proj) = &self.weights.cond_proj else {
            return Err(Error::config(
                Field::Cond,
                "this model takes no conditioning (cond_dim = 0)",
            ));
        };
        if cond.len() != c {
            return Err(Error::config(
                Field::Cond,
                format!("expected {c} values (cond_dim), got {}", cond.len()),
            ));
        }
        if let Some(i) = cond.iter().position(|v| !v.is_finite()) {
            return Err(Error::config(
                Field::Cond,
                format!("cond[{i}] = {} is not finite", cond[i]),
            ));
        }
        self.cond_h = cpu_math::matvec(proj, cond);
        self.cond = Some(cond.to_vec());
        self.id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The model with `cond` set (see [`MlpModel::set_cond`]).
    pub fn with_cond(mut self, cond: &[f32]) -> Result<Self> {
        self.set_cond(cond)?;
        Ok(self)
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.weights.parameter_count()
    }

    /// One line describing the architecture, e.g. for `picardiff info`.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let body = match (c.residual, c.layernorm) {
            (true, true) => format!("{} residual blocks (pre-LayerNorm)", c.layers),
            (true, false) => format!("{} residual blocks", c.layers),
            (false, true) => format!("{} layers (pre-LayerNorm)", c.layers),
            (false, false) => format!("{} layers", c.layers),
        };
        let cond = match c.cond_dim {
            0 => "no conditioning".to_string(),
            n => format!(
                "conditioning of {n} ({})",
                if self.cond.is_some() {
                    "set"
                } else {
                    "not set"
                }
            ),
        };
        let params = self.parameter_count();
        format!(
            "MLP score network: dim {}, hidden {}, {body}, {}, time embedding {} (max period {}, \
             scale {}), {cond}, predicts {}, schedule {}{}; {} parameters ({}) stored as {} \
             ({:.1} KiB; CPU computes in f32)",
            c.dim,
            c.hidden,
            c.activation.name(),
            c.time_embed_dim,
            c.max_period,
            c.time_scale,
            prediction_name(c.prediction),
            c.schedule,
            if self.schedule().is_ok_and(|s| s.is_discrete()) {
                format!(" ({} train steps)", c.train_steps)
            } else {
                String::new()
            },
            group_thousands(params),
            human_count(params),
            self.file_dtype.name(),
            (params * self.file_dtype.size()) as f64 / 1024.0,
        )
    }
}

/// The name of a prediction type as the file spells it.
pub(crate) fn prediction_name(p: ModelOutput) -> &'static str {
    match p {
        ModelOutput::Epsilon => "epsilon",
        ModelOutput::Score => "score",
        ModelOutput::Sample => "sample",
        ModelOutput::V => "v",
        ModelOutput::Velocity => "velocity",
    }
}

fn group_thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn human_count(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{:.2}M", n as f64 / 1e6)
    } else {
        format!("{:.1}k", n as f64 / 1e3)
    }
}
