//! From `Model.sample`'s keyword arguments (a `picardiff::spec::RunSpec`, the same
//! specification as the CLI's options and the C ABI's config) and arrays to a validated problem
//! and sampler. Every default and check is the library's (`RunSpec::plan`); this file only reads
//! the model's own schedule and checks the arrays' shapes.

use std::borrow::Cow;
use std::path::Path;

use picardiff::model::{DiffusionPolicy, Mixture, MlpModel};
use picardiff::prelude::*;
use picardiff::schedule::ClipSample;
use picardiff::spec::{ModelRun, RunSpec, ScheduleName};
use pyo3::prelude::*;
use serde_json::{json, Map, Value};

use crate::arrays::{expect_shape, shape_str, Inputs};
use crate::callback::PyCallback;
use crate::error::{PdError, PdResult};

/// A loaded model, as `Model` keeps it.
pub enum Loaded {
    /// A Gaussian mixture (the caller names the schedule).
    Mixture(Mixture),
    /// A trained MLP (names its own schedule).
    Mlp(Box<MlpModel>),
    /// A LeRobot Diffusion Policy directory (its own scheduler).
    Policy {
        dir: std::path::PathBuf,
        policy: Box<DiffusionPolicy>,
    },
    /// A Python function (its schedule given at creation).
    Callback {
        func: Py<PyAny>,
        dim: usize,
        output: ModelOutput,
        schedule: String,
        train_steps: usize,
    },
}

/// The network of a run (one per run: the size difference of the variants does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Net<'a> {
    Gmm(GmmModel),
    Mlp(&'a MlpModel),
    Policy(Cow<'a, DiffusionPolicy>),
    Callback(PyCallback<'a>),
}

impl Net<'_> {
    pub fn dim(&self) -> usize {
        match self {
            Net::Gmm(m) => m.mixture.dim,
            Net::Mlp(m) => ScoreModel::<CpuBackend>::dim(*m),
            Net::Policy(m) => ScoreModel::<CpuBackend>::dim(m.as_ref()),
            Net::Callback(m) => ScoreModel::<CpuBackend>::dim(m),
        }
    }

    fn cond_dim(&self) -> usize {
        match self {
            Net::Gmm(_) | Net::Callback(_) => 0,
            Net::Mlp(m) => ScoreModel::<CpuBackend>::cond_dim(*m),
            Net::Policy(m) => ScoreModel::<CpuBackend>::cond_dim(m.as_ref()),
        }
    }
}

/// The sampling problem: everything but the sampler (the CLI's `Problem`).
pub struct Problem<'a> {
    pub net: Net<'a>,
    pub grid: Grid,
    pub rule: StepRule,
    pub batch: usize,
    pub seed: u64,
    pub init: Option<&'a [f32]>,
    pub noise: Option<&'a [f32]>,
    pub cond: Option<&'a [f32]>,
    pub clip: Option<ClipSample>,
    /// `[batch, dim]`, or a policy's `[batch, horizon, action_dim]`.
    pub sample_shape: Vec<usize>,
    /// For the stats dict.
    pub info: Map<String, Value>,
}

impl Problem<'_> {
    pub fn dim(&self) -> usize {
        self.net.dim()
    }

    pub fn inputs(&self) -> RunInputs<'_> {
        RunInputs {
            batch: self.batch,
            seed: self.seed,
            sample0: 0,
            init: self.init,
            noise: self.noise,
            cond: self.cond,
            clip: self.clip,
        }
    }
}

/// A sampler with its effective settings (the CLI's `Sampler`).
pub struct Sampler {
    pub kind: SamplerKind,
    /// `sampler="auto"`: `kind` is the picard candidate, resolved before the run.
    pub auto: bool,
    pub info: Map<String, Value>,
}

/// Warnings for Python's `warnings.warn` (the CLI's `warning:` lines).
pub type Warnings = Vec<String>;

/// The schedule a mixture, MLP or callback model brings (a mixture: none, it takes the spec's).
fn model_run(model: &Loaded) -> PdResult<ModelRun<'_>> {
    Ok(match model {
        Loaded::Mlp(m) => ModelRun::Trained {
            schedule: m.config().schedule.parse::<ScheduleName>()?,
            train_steps: m.config().train_steps,
            what: "the model was trained with",
        },
        Loaded::Callback {
            schedule,
            train_steps,
            ..
        } => ModelRun::Trained {
            schedule: schedule.parse::<ScheduleName>()?,
            train_steps: *train_steps,
            what: "the callback model was created with",
        },
        Loaded::Mixture(_) | Loaded::Policy { .. } => ModelRun::AnySchedule,
    })
}

/// A policy with the spec's `set` overrides: the directory read again with them, as the CLI
/// does, or the loaded policy when there are none.
fn policy_with<'a>(
    dir: &Path,
    policy: &'a DiffusionPolicy,
    spec: &RunSpec,
) -> PdResult<Cow<'a, DiffusionPolicy>> {
    if spec.set.is_empty() {
        return Ok(Cow::Borrowed(policy));
    }
    let set: Vec<(String, Value)> = spec
        .set
        .iter()
        .map(|o| (o.key.clone(), o.value.clone()))
        .collect();
    let p = DiffusionPolicy::from_dir_with(dir, &set).map_err(|e| match e {
        // An override the checkpoint's config refuses is a bad argument.
        picardiff::Error::Model { field, msg } if field.starts_with("config.json") => {
            PdError::arg("set", format!("{field}: {msg}"))
        }
        e => e.into(),
    })?;
    Ok(Cow::Owned(p))
}

/// Plans a run of `model` (the library's `RunSpec::plan`, warnings into `warn`) and checks the
/// arrays against it.
pub fn problem<'a>(
    model: &'a Loaded,
    spec: &RunSpec,
    arrays: Inputs<'a>,
    warn: &mut Warnings,
) -> PdResult<(Problem<'a>, Sampler)> {
    let (net, plan) = match model {
        Loaded::Policy { dir, policy } => {
            let p = policy_with(dir, policy, spec)?;
            let plan = spec.plan(ModelRun::Policy(&p.scheduler), p.scheduler.prediction)?;
            (Net::Policy(p), plan)
        }
        _ if !spec.set.is_empty() => {
            return Err(PdError::arg(
                "set",
                "config overrides apply to a Diffusion Policy directory only",
            ))
        }
        Loaded::Mixture(m) => {
            let out = match spec.schedule {
                Some(ScheduleName::Flow) => ModelOutput::Velocity,
                _ => ModelOutput::Epsilon,
            };
            let plan = spec.plan(ModelRun::AnySchedule, out)?;
            (
                Net::Gmm(GmmModel::new(m.clone(), plan.schedule.clone())),
                plan,
            )
        }
        Loaded::Mlp(m) => {
            let out = ScoreModel::<CpuBackend>::output(m.as_ref());
            (Net::Mlp(m.as_ref()), spec.plan(model_run(model)?, out)?)
        }
        Loaded::Callback {
            func, dim, output, ..
        } => (
            Net::Callback(PyCallback::new(func, *dim, *output)),
            spec.plan(model_run(model)?, *output)?,
        ),
    };
    for (field, msg) in &plan.warnings {
        warn.push(format!("{field} {msg}"));
    }
    let (dim, steps, cond_dim) = (net.dim(), plan.grid.steps(), net.cond_dim());
    if cond_dim == 0 && arrays.cond.is_some() {
        return Err(PdError::arg(
            "cond",
            "this model takes no per-sample conditioning",
        ));
    }
    let batch = match &net {
        Net::Policy(_) => policy_batch(&net, spec, &arrays)?,
        _ => spec
            .batch
            .or_else(|| arrays.init.and_then(|x| x.shape.first().copied()))
            .or_else(|| arrays.noise.and_then(|z| z.shape.get(1).copied()))
            .or_else(|| arrays.cond.and_then(|c| c.shape.first().copied()))
            .unwrap_or(1),
    };
    if batch == 0 {
        return Err(PdError::arg(
            "batch",
            "must be at least 1 (the input arrays are empty)",
        ));
    }
    let sample_shape = match &net {
        Net::Policy(p) => vec![batch, p.config.horizon, p.config.action_dim],
        _ => vec![batch, dim],
    };
    let hint = |s: &[usize], lead: &[usize]| -> Vec<usize> {
        lead.iter().chain(&s[1..]).copied().collect()
    };
    if let Some(x) = &arrays.init {
        if x.shape != [batch, dim] {
            expect_shape(
                x,
                &sample_shape,
                "init",
                if sample_shape.len() == 3 {
                    "[batch, horizon, action_dim]"
                } else {
                    "[batch, dim]"
                },
            )?;
        }
    }
    if let Some(z) = &arrays.noise {
        if z.shape != [steps, batch, dim] {
            let full = hint(&sample_shape, &[steps, batch]);
            let what = if sample_shape.len() == 3 {
                "[steps, batch, horizon, action_dim]: step j's noise at index j"
            } else {
                "[steps, batch, dim]"
            };
            expect_shape(z, &full, "noise", what)?;
        }
        if let Some((f, m)) = plan.unused_noise_warning() {
            warn.push(format!("{f} {m}"));
        }
    }
    if let Some(c) = &arrays.cond {
        expect_shape(c, &[batch, cond_dim], "cond", "[batch, cond_dim]")?;
    } else if cond_dim > 0 {
        return Err(PdError::arg(
            "cond",
            format!("required: the model needs its conditioning, float32 [batch, {cond_dim}]"),
        ));
    }
    let mut info = Map::new();
    info.insert("dim".into(), json!(dim));
    info.insert("batch".into(), json!(batch));
    info.insert("steps".into(), json!(steps));
    info.insert("init".into(), json!(arrays.init.map(|_| "array")));
    info.insert("noise".into(), json!(arrays.noise.map(|_| "array")));
    if let Net::Mlp(_) = net {
        info.insert(
            "dtype".into(),
            json!(spec.dtype.unwrap_or_default().to_string()),
        );
    }
    if let Net::Policy(p) = &net {
        info.insert("horizon".into(), json!(p.config.horizon));
        info.insert("action_dim".into(), json!(p.config.action_dim));
        info.insert("cond".into(), json!("array"));
    }
    info.extend(plan.settings);
    let problem = Problem {
        net,
        grid: plan.grid,
        rule: plan.rule,
        batch,
        seed: plan.seed,
        init: arrays.init.map(|v| v.data),
        noise: arrays.noise.map(|v| v.data),
        cond: arrays.cond.map(|v| v.data),
        clip: plan.clip,
        sample_shape,
        info,
    };
    Ok((
        problem,
        Sampler {
            kind: plan.kind,
            auto: plan.auto,
            info: plan.sampler_settings,
        },
    ))
}

/// A policy's batch: the rows of `cond`, which it requires.
fn policy_batch(net: &Net<'_>, spec: &RunSpec, arrays: &Inputs<'_>) -> PdResult<usize> {
    let Net::Policy(policy) = net else {
        return Ok(1);
    };
    let g = policy.config.global_cond_dim;
    let cond = arrays.cond.as_ref().ok_or_else(|| {
        PdError::arg(
            "cond",
            format!(
                "required for a Diffusion Policy: a float32 array of shape [batch, {g}] ({})",
                policy.features.describe(g)
            ),
        )
    })?;
    let batch = match cond.shape {
        [b, w] if *w == g && *b > 0 => *b,
        s => {
            return Err(PdError::arg(
                "cond",
                format!(
                    "expected a float32 array of shape [batch, {g}] ({}), got {}",
                    policy.features.describe(g),
                    shape_str(s)
                ),
            ))
        }
    };
    if spec.batch.is_some_and(|b| b != batch) {
        return Err(PdError::arg(
            "batch",
            format!(
                "{} disagrees with cond's {batch} rows (the batch comes from cond)",
                spec.batch.unwrap_or_default()
            ),
        ));
    }
    Ok(batch)
}
