//! From command-line arguments to a validated problem (model, grid, rule, noise inputs) and sampler.
//!
//! Everything that can be wrong with the user's input is checked here, before a device is opened
//! or a sampler runs, so that a bad input gives one `error:` line and nothing else.

use std::path::Path;

use picardiff::model::{load_model, DiffusionPolicy, MlpModel, ModelFile};
use picardiff::prelude::*;
use picardiff::schedule::ClipSample;
use picardiff::spec::{ModelRun, Plan, RunSpec, ScheduleName};
use serde_json::{json, Map, Value};

use super::npy::{self, Array};
use super::{warn_field, CliError, CliResult, RunArgs};

pub use picardiff::defaults::{KAPPA as DEFAULT_KAPPA, T_END as DEFAULT_T_END};

/// The demo's and bench's Picard iterations per block (run as the paper's fixed K, τ = 0); the
/// CLI's `--iters` defaults to the longest block's length, which always suffices.
pub const DEFAULT_BLOCK_ITERS: usize = 8;
pub use picardiff::defaults::{
    BLOCK_LEN_CONTINUOUS as DEFAULT_BLOCK_LEN_CONTINUOUS,
    BLOCK_LEN_DISCRETE as DEFAULT_BLOCK_LEN_DISCRETE,
};

/// The model a run samples: the exact mixture or a trained MLP.
pub enum CliModel {
    /// The exact mixture score.
    Gmm(GmmModel),
    /// A trained MLP from a safetensors file.
    Mlp(Box<MlpModel>),
    /// A LeRobot Diffusion Policy (CPU backend).
    Policy(Box<DiffusionPolicy>),
}

impl CliModel {
    /// The model for the library's dispatch.
    pub fn as_ref(&self) -> picardiff::device::ModelRef<'_> {
        use picardiff::device::ModelRef;
        match self {
            CliModel::Gmm(m) => ModelRef::Gmm(m),
            CliModel::Mlp(m) => ModelRef::Mlp(m),
            CliModel::Policy(m) => ModelRef::Policy(m),
        }
    }

    /// Elements per sample.
    pub fn dim(&self) -> usize {
        self.as_ref().dim()
    }
}

/// The sampling problem: everything but the sampler.
pub struct Problem {
    /// The model.
    pub model: CliModel,
    /// The time grid.
    pub grid: Grid,
    /// The step rule.
    pub rule: StepRule,
    /// Samples in the batch.
    pub batch: usize,
    /// Noise seed.
    pub seed: u64,
    /// Caller-supplied x_T, `[batch][dim]`.
    pub init: Option<Vec<f32>>,
    /// Caller-supplied step noise, `[steps][batch][dim]`.
    pub noise: Option<Vec<f32>>,
    /// Per-sample conditioning, `[batch][cond_dim]`.
    pub cond: Option<Vec<f32>>,
    /// Clipping of x̂0 at every step (a policy's `clip_sample`).
    pub clip: Option<ClipSample>,
    /// Shape of the samples array (`[batch, dim]`, or a policy's `[batch, horizon, action_dim]`).
    pub sample_shape: Vec<usize>,
    /// Description for the stats JSON (schedule, grid, rule, ...).
    pub info: Map<String, Value>,
}

impl Problem {
    /// Elements per sample.
    pub fn dim(&self) -> usize {
        self.model.dim()
    }

    /// Grid steps.
    pub fn steps(&self) -> usize {
        self.grid.steps()
    }

    /// The library's run inputs.
    pub fn inputs(&self) -> RunInputs<'_> {
        RunInputs {
            batch: self.batch,
            seed: self.seed,
            sample0: 0,
            init: self.init.as_deref(),
            noise: self.noise.as_deref(),
            cond: self.cond.as_deref(),
            clip: self.clip,
        }
    }
}

/// A sampler with its effective settings.
pub struct Sampler {
    /// What the library runs.
    pub kind: SamplerKind,
    /// A label for tables (`picard (scan)`).
    pub label: String,
    /// `--sampler auto`: `kind` is the picard candidate until [`super::commands::resolve_auto`].
    pub auto: bool,
    /// Settings for the stats JSON (`tol`, `window`, ...).
    pub info: Map<String, Value>,
}

/// The run specification of `a`: its `--config` file (TOML, or JSON for a `.json` name) with the
/// command line's options over it.
pub fn spec(a: &RunArgs) -> CliResult<RunSpec> {
    let Some(path) = &a.config else {
        return Ok(a.spec.clone());
    };
    const MAX_CONFIG_BYTES: u64 = 1 << 20;
    let bytes = picardiff::files::read_regular(path, MAX_CONFIG_BYTES)
        .map_err(|e| CliError::new(format!("--config {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::new(format!("--config {}: not UTF-8 text", path.display())))?;
    let json = path.extension().is_some_and(|e| e == "json");
    let file = RunSpec::from_text(&text, json)
        .map_err(|e| CliError::new(format!("--config {}: {}", path.display(), e)))?;
    Ok(file.overlaid(&a.spec))
}

/// What the exact mixture predicts under the spec's schedule (ε, or the flow velocity).
pub fn mixture_output(spec: &RunSpec) -> ModelOutput {
    match spec.schedule {
        Some(ScheduleName::Flow) => ModelOutput::Velocity,
        _ => ModelOutput::Epsilon,
    }
}

/// Shows the plan's warnings on stderr.
fn show_warnings(plan: &Plan) {
    for (field, msg) in &plan.warnings {
        warn_field(field, msg);
    }
}

/// Loads the model, plans the run and reads the inputs: the problem and its sampler.
pub fn setup(a: &RunArgs) -> CliResult<(Problem, Sampler)> {
    let spec = spec(a)?;
    spec.check_values()?;
    if a.model.is_dir() {
        return super::policy::setup(a, &spec);
    }
    if !spec.set.is_empty() {
        return Err(CliError::new(
            "--set applies to a Diffusion Policy directory only",
        ));
    }
    let file = load_model(Path::new(&a.model))?;
    let model = match file {
        ModelFile::Mixture(m) => {
            let plan = spec.plan(ModelRun::AnySchedule, mixture_output(&spec))?;
            let gmm = GmmModel::new(m, plan.schedule.clone());
            (CliModel::Gmm(gmm), plan)
        }
        ModelFile::Mlp(mut m) => {
            let own: ScheduleName = m.config().schedule.parse()?;
            let run = ModelRun::Trained {
                schedule: own,
                train_steps: m.config().train_steps,
                what: "the model was trained with",
            };
            let plan = spec.plan(run, ScoreModel::<CpuBackend>::output(m.as_ref()))?;
            m.set_compute_dtype(spec.dtype.unwrap_or_default());
            (CliModel::Mlp(m), plan)
        }
        ModelFile::Policy(_) => return super::policy::setup(a, &spec),
    };
    let (model, mut plan) = model;
    if let CliModel::Mlp(_) = model {
        plan.settings.insert(
            "dtype".into(),
            json!(spec.dtype.unwrap_or_default().to_string()),
        );
    }
    show_warnings(&plan);
    let (dim, steps) = (model.dim(), plan.grid.steps());
    let init = a
        .init
        .as_deref()
        .map(|p| npy::read_f32(p, "--init"))
        .transpose()?;
    let noise = a
        .noise
        .as_deref()
        .map(|p| npy::read_f32(p, "--noise"))
        .transpose()?;
    if noise.is_some() {
        if let Some((f, m)) = plan.unused_noise_warning() {
            warn_field(f, &m);
        }
    }
    let cond = read_cond(a, &model)?;
    let batch = spec
        .batch
        .or_else(|| cond.as_ref().and_then(|c| c.shape.first().copied()))
        .or_else(|| init.as_ref().and_then(|x| x.shape.first().copied()))
        .or_else(|| noise.as_ref().and_then(|z| z.shape.get(1).copied()))
        .unwrap_or(1);
    if batch == 0 {
        return Err(CliError::new(
            "--batch: must be at least 1 (the input arrays are empty)",
        ));
    }
    let take = |arr: Option<Array>, shape: &[usize], what: &str, hint: &str| {
        arr.map(|arr| npy::expect_shape(&arr, shape, what, hint).map(|_| arr.data))
            .transpose()
    };
    let init = take(init, &[batch, dim], "--init", "[batch, dim]")?;
    let noise = take(
        noise,
        &[steps, batch, dim],
        "--noise",
        "[steps, batch, dim]",
    )?;
    let c = model.as_ref().cond_dim();
    let cond = take(cond, &[batch, c], "--cond", "[batch, cond_dim]")?;
    let mut info = Map::new();
    info.insert("dim".into(), json!(dim));
    info.insert("batch".into(), json!(batch));
    info.insert("steps".into(), json!(steps));
    let path = |p: &Option<std::path::PathBuf>| json!(p.as_ref().map(|p| p.display().to_string()));
    info.insert("init".into(), path(&a.init));
    info.insert("noise".into(), path(&a.noise));
    Ok(finish(
        model,
        plan,
        batch,
        init,
        noise,
        cond,
        vec![batch, dim],
        info,
    ))
}

/// `--cond` for a model that takes per-sample conditioning (an MLP with `cond_dim` > 0).
fn read_cond(a: &RunArgs, model: &CliModel) -> CliResult<Option<Array>> {
    let c = model.as_ref().cond_dim();
    match (&a.cond, c) {
        (None, 0) => Ok(None),
        (Some(_), 0) => Err(CliError::new(
            "--cond: this model takes no per-sample conditioning (it applies to a Diffusion \
             Policy directory only, or an MLP with cond_dim > 0)",
        )),
        (None, c) => Err(CliError::new(format!(
            "--cond is required: the model takes a conditioning vector per sample, a float32 \
             .npy of shape [batch, {c}]"
        ))),
        (Some(p), _) => Ok(Some(npy::read_f32(p, "--cond")?)),
    }
}

/// The problem and sampler of a planned run with its inputs read.
#[allow(clippy::too_many_arguments)]
pub fn finish(
    model: CliModel,
    plan: Plan,
    batch: usize,
    init: Option<Vec<f32>>,
    noise: Option<Vec<f32>>,
    cond: Option<Vec<f32>>,
    sample_shape: Vec<usize>,
    mut info: Map<String, Value>,
) -> (Problem, Sampler) {
    info.extend(plan.settings);
    let problem = Problem {
        model,
        grid: plan.grid,
        rule: plan.rule,
        batch,
        seed: plan.seed,
        init,
        noise,
        cond,
        clip: plan.clip,
        sample_shape,
        info,
    };
    let sampler = Sampler {
        kind: plan.kind,
        label: plan.label,
        auto: plan.auto,
        info: plan.sampler_settings,
    };
    (problem, sampler)
}
