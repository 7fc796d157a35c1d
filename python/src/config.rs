//! From `Model.sample`'s keyword arguments to a validated problem and sampler: a port of the
//! CLI's `src/cli/config.rs` and `src/cli/policy.rs` with the same defaults, checks and warnings
//! (argument names are the CLI's options in snake_case). Everything that can be wrong with the
//! arguments is refused here, before anything runs.

use std::borrow::Cow;
use std::path::Path;

use picardiff::backend::{PicardForm, WindowPlan};
use picardiff::model::unet::SchedulerType;
use picardiff::model::{DiffusionPolicy, Mixture, MlpModel};
use picardiff::prelude::*;
use picardiff::sampler::{block_ends, Corrector};
use picardiff::schedule::{ClipSample, DEFAULT_TRAIN_STEPS};
use pyo3::prelude::*;
use serde_json::{json, Map, Value};

use crate::arrays::{expect_shape, shape_str, Inputs};
use crate::callback::PyCallback;
use crate::error::{PdError, PdResult};

// The defaults shared with the CLI and the C ABI: defined once, in the library.
pub use picardiff::defaults::WINDOW as DEFAULT_WINDOW;
use picardiff::defaults::{
    BLOCK_LEN_CONTINUOUS as DEFAULT_BLOCK_LEN_CONTINUOUS,
    BLOCK_LEN_DISCRETE as DEFAULT_BLOCK_LEN_DISCRETE, KAPPA as DEFAULT_KAPPA,
    T_END as DEFAULT_T_END,
};
/// The CLI's limit on `steps` and `train_steps`.
const MAX_STEPS: usize = 10_000_000;

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

/// `Model.sample`'s arguments (the CLI's `RunArgs` without the file options).
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub sampler: String,
    pub steps: Option<usize>,
    pub rule: Option<String>,
    pub eta: Option<f64>,
    pub schedule: Option<String>,
    pub train_steps: Option<usize>,
    pub spacing: Option<String>,
    pub horizon: Option<f64>,
    pub t_end: Option<f64>,
    pub grid: Option<String>,
    pub kappa: Option<f64>,
    pub tol: Option<f64>,
    pub window: Option<usize>,
    pub picard_form: Option<String>,
    pub max_iters: Option<usize>,
    pub block_len: Option<f64>,
    pub iters: Option<usize>,
    pub corrector: bool,
    pub corrector_gamma: Option<f64>,
    pub corrector_time: Option<f64>,
    pub corrector_steps: Option<usize>,
    pub corrector_iters: Option<usize>,
    pub batch: Option<usize>,
    pub seed: u64,
    pub device: String,
    /// A policy's config overrides (the CLI's `--set KEY=VALUE`).
    pub set: Vec<(String, Value)>,
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

    pub fn output(&self) -> ModelOutput {
        match self {
            Net::Gmm(m) => ScoreModel::<CpuBackend>::output(m),
            Net::Mlp(m) => ScoreModel::<CpuBackend>::output(*m),
            Net::Policy(m) => ScoreModel::<CpuBackend>::output(m.as_ref()),
            Net::Callback(m) => ScoreModel::<CpuBackend>::output(m),
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
    pub schedule: Schedule,
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

    pub fn steps(&self) -> usize {
        self.grid.steps()
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
    pub info: Map<String, Value>,
}

/// Warnings for Python's `warnings.warn` (the CLI's `warning:` lines).
pub type Warnings = Vec<String>;

fn form_name(form: PicardForm) -> &'static str {
    match form {
        PicardForm::Scan => "scan",
        PicardForm::Drift => "drift",
    }
}

fn parse_form(name: &str) -> PdResult<PicardForm> {
    match name {
        "scan" => Ok(PicardForm::Scan),
        "drift" => Ok(PicardForm::Drift),
        o => Err(PdError::arg(
            "picard_form",
            format!("unknown form `{o}` (expected scan or drift)"),
        )),
    }
}

/// The numeric arguments that are wrong whatever they are used for (the CLI's `check_values`).
fn check_values(a: &Opts) -> PdResult<()> {
    let bad = |opt: &str, msg: String| Err(PdError::arg(opt, msg));
    if a.steps == Some(0) {
        return bad("steps", "must be at least 1, got 0".into());
    }
    if a.steps.is_some_and(|n| n > MAX_STEPS) {
        return bad("steps", format!("at most {MAX_STEPS} are supported"));
    }
    if a.train_steps.is_some_and(|n| n > MAX_STEPS) {
        return bad("train_steps", format!("at most {MAX_STEPS} are supported"));
    }
    if a.window == Some(0) {
        return bad("window", "must be at least 1, got 0".into());
    }
    if a.iters == Some(0) {
        return bad("iters", "must be at least 1, got 0".into());
    }
    if a.max_iters == Some(0) {
        return bad("max_iters", "must be at least 1, got 0".into());
    }
    if a.batch == Some(0) {
        return bad("batch", "must be at least 1, got 0".into());
    }
    if let Some(t) = a.tol {
        if !(t >= 0.0 && t.is_finite()) {
            return bad("tol", format!("must be finite and >= 0, got {t}"));
        }
    }
    if let Some(h) = a.block_len {
        if !(h > 0.0 && h.is_finite()) {
            return bad("block_len", format!("must be finite and > 0, got {h}"));
        }
    }
    if let Some(t) = a.t_end {
        if !(t > 0.0 && t.is_finite()) {
            return bad(
                "t_end",
                format!("the early-stopping time must be finite and > 0, got {t}"),
            );
        }
    }
    if let Some(k) = a.kappa {
        if !(k > 0.0 && k.is_finite()) {
            return bad("kappa", format!("must be finite and > 0, got {k}"));
        }
    }
    Ok(())
}

/// Builds the model, grid, rule and inputs of a run of `model` (the CLI's `config::problem`).
pub fn problem<'a>(
    model: &'a Loaded,
    a: &Opts,
    arrays: Inputs<'a>,
    warn: &mut Warnings,
) -> PdResult<Problem<'a>> {
    check_values(a)?;
    if let Loaded::Policy { dir, policy } = model {
        return policy_problem(dir, policy, a, arrays, warn);
    }
    if !a.set.is_empty() {
        return Err(PdError::arg(
            "set",
            "config overrides apply to a Diffusion Policy directory only",
        ));
    }
    let rule_name = a.rule.as_deref().ok_or_else(|| {
        PdError::arg(
            "rule",
            "required (ddpm, ddim, exp-sde or exp-ode) except for a policy directory",
        )
    })?;
    let (schedule_name, model_train_steps) = match (model, a.schedule.as_deref()) {
        (Loaded::Mlp(m), given) => {
            let own = m.config().schedule.clone();
            if given.is_some_and(|g| g != own) {
                return Err(PdError::arg(
                    "schedule",
                    format!(
                        "the model was trained with `{own}`, not `{}`",
                        given.unwrap_or_default()
                    ),
                ));
            }
            (own, Some(m.config().train_steps))
        }
        (
            Loaded::Callback {
                schedule,
                train_steps,
                ..
            },
            given,
        ) => {
            if given.is_some_and(|g| g != schedule) {
                return Err(PdError::arg(
                    "schedule",
                    format!(
                        "the callback model was created with `{schedule}`, not `{}`",
                        given.unwrap_or_default()
                    ),
                ));
            }
            (schedule.clone(), Some(*train_steps))
        }
        (Loaded::Mixture(_), Some(g)) => (g.to_string(), None),
        (Loaded::Mixture(_), None) => {
            return Err(PdError::arg(
                "schedule",
                "required with a mixture model (an MLP file names its own)",
            ))
        }
        (Loaded::Policy { .. }, _) => unreachable!("a policy returned above"),
    };
    let discrete = matches!(
        schedule_name.as_str(),
        "ddpm-linear" | "scaled-linear" | "cosine"
    );
    let train_steps = a
        .train_steps
        .or(model_train_steps)
        .unwrap_or(DEFAULT_TRAIN_STEPS);
    if schedule_name == "flow" {
        // The flow grids (diffusers' shifted one, pi0's uniform one) are not wired here yet:
        // refuse rather than build a VP grid for a flow schedule.
        return Err(PdError::arg(
            "schedule",
            "flow matching is not available from Python yet (use the CLI: --schedule flow --rule euler)",
        ));
    }
    let schedule = Schedule::from_name(&schedule_name, train_steps)?;
    let rule = StepRule::from_name(rule_name, a.eta)?;
    if a.eta.is_some() && !matches!(rule, StepRule::Ddim { .. }) {
        warn.push(format!(
            "eta applies to the ddpm and ddim rules only; ignored for {rule_name}"
        ));
    }
    let mut info = Map::new();
    info.insert("schedule".into(), json!(schedule.name()));
    info.insert("rule".into(), json!(rule_name));
    if let StepRule::Ddim { eta } = rule {
        info.insert("eta".into(), json!(eta));
    }

    let grid = if discrete {
        for (given, opt) in [
            (a.horizon.is_some(), "horizon"),
            (a.t_end.is_some(), "t_end"),
            (a.grid.is_some(), "grid"),
            (a.kappa.is_some(), "kappa"),
        ] {
            if given {
                warn.push(format!(
                    "{opt} applies to continuous schedules (ou, vp-linear) only; ignored for {schedule_name}"
                ));
            }
        }
        let spacing_name = a.spacing.as_deref().unwrap_or("leading");
        let spacing: Spacing = spacing_name.parse()?;
        let steps = a.steps.ok_or_else(|| {
            PdError::arg(
                "steps",
                format!("required for the discrete schedule {schedule_name}"),
            )
        })?;
        info.insert("spacing".into(), json!(spacing_name));
        info.insert("train_steps".into(), json!(train_steps));
        Grid::discrete(&schedule, steps, spacing)?
    } else {
        for (given, opt) in [
            (a.spacing.is_some(), "spacing"),
            (a.train_steps.is_some(), "train_steps"),
        ] {
            if given {
                warn.push(format!(
                    "{opt} applies to discrete schedules (ddpm-linear, scaled-linear, cosine) only; ignored for {schedule_name}"
                ));
            }
        }
        let horizon = a.horizon.unwrap_or(match schedule {
            Schedule::Ou => 10.0,
            _ => 1.0,
        });
        let t_end = a.t_end.unwrap_or(DEFAULT_T_END);
        let grid_name = a.grid.as_deref().unwrap_or("uniform");
        info.insert("horizon".into(), json!(horizon));
        info.insert("t_end".into(), json!(t_end));
        info.insert("grid".into(), json!(grid_name));
        match grid_name {
            "uniform" => {
                if a.kappa.is_some() {
                    warn.push("kappa applies to grid='paper' only; ignored".into());
                }
                let steps = a.steps.ok_or_else(|| {
                    PdError::arg(
                        "steps",
                        "required with grid='uniform' (or use grid='paper')",
                    )
                })?;
                Grid::uniform(&schedule, steps, horizon, t_end)?
            }
            "paper" => {
                if a.steps.is_some() {
                    warn.push("steps is ignored with grid='paper' (the grid's step count follows from kappa)".into());
                }
                let kappa = a.kappa.unwrap_or(DEFAULT_KAPPA);
                info.insert("kappa".into(), json!(kappa));
                Grid::paper(&schedule, kappa, horizon, t_end)?
            }
            o => {
                return Err(PdError::arg(
                    "grid",
                    format!("unknown grid `{o}` (expected uniform or paper)"),
                ))
            }
        }
    };

    let net = match model {
        Loaded::Mixture(m) => Net::Gmm(GmmModel::new(m.clone(), schedule.clone())),
        Loaded::Mlp(m) => {
            info.insert("dtype".into(), json!("f32"));
            Net::Mlp(m.as_ref())
        }
        Loaded::Callback {
            func, dim, output, ..
        } => Net::Callback(PyCallback::new(func, *dim, *output)),
        Loaded::Policy { .. } => unreachable!("a policy returned above"),
    };
    // Rejects grids on which the rule's table is not finite, before anything runs.
    StepTable::new(&grid, rule, net.output())?;
    let (dim, steps, cond_dim) = (net.dim(), grid.steps(), net.cond_dim());

    if cond_dim == 0 && arrays.cond.is_some() {
        return Err(PdError::arg(
            "cond",
            "this model takes no per-sample conditioning",
        ));
    }
    let batch = a
        .batch
        .or_else(|| arrays.init.and_then(|x| x.shape.first().copied()))
        .or_else(|| arrays.noise.and_then(|z| z.shape.get(1).copied()))
        .or_else(|| arrays.cond.and_then(|c| c.shape.first().copied()))
        .unwrap_or(1);
    if batch == 0 {
        return Err(PdError::arg(
            "batch",
            "must be at least 1 (the input arrays are empty)",
        ));
    }
    if let Some(x) = &arrays.init {
        expect_shape(x, &[batch, dim], "init", "[batch, dim]")?;
    }
    if let Some(z) = &arrays.noise {
        expect_shape(z, &[steps, batch, dim], "noise", "[steps, batch, dim]")?;
    }
    if let Some(c) = &arrays.cond {
        expect_shape(c, &[batch, cond_dim], "cond", "[batch, cond_dim]")?;
    } else if cond_dim > 0 {
        return Err(PdError::arg(
            "cond",
            format!("required: the model needs its conditioning, float32 [batch, {cond_dim}]"),
        ));
    }
    info.insert("dim".into(), json!(dim));
    info.insert("batch".into(), json!(batch));
    info.insert("steps".into(), json!(steps));
    info.insert("seed".into(), json!(a.seed));
    info.insert("init".into(), json!(arrays.init.map(|_| "array")));
    info.insert("noise".into(), json!(arrays.noise.map(|_| "array")));
    Ok(Problem {
        net,
        schedule,
        grid,
        rule,
        batch,
        seed: a.seed,
        init: arrays.init.map(|v| v.data),
        noise: arrays.noise.map(|v| v.data),
        cond: arrays.cond.map(|v| v.data),
        clip: None,
        sample_shape: vec![batch, dim],
        info,
    })
}

/// The config overrides of a policy run: `set`, then the arguments that name scheduler fields
/// (`steps`, `train_steps`, `rule`), as the CLI's `overrides`.
fn overrides(a: &Opts) -> PdResult<Vec<(String, Value)>> {
    let mut out = a.set.clone();
    if let Some(n) = a.steps {
        out.push(("num_inference_steps".into(), json!(n)));
    }
    if let Some(n) = a.train_steps {
        out.push(("num_train_timesteps".into(), json!(n)));
    }
    match a.rule.as_deref() {
        None => {}
        Some("ddpm") => out.push(("noise_scheduler_type".into(), json!("DDPM"))),
        Some("ddim") => out.push(("noise_scheduler_type".into(), json!("DDIM"))),
        Some(o) => {
            return Err(PdError::arg(
                "rule",
                format!("a Diffusion Policy samples with its scheduler, ddpm or ddim, not `{o}`"),
            ))
        }
    }
    Ok(out)
}

/// The policy with the run's overrides. With `set`, the directory is read again with them, as the
/// CLI does; with only `steps`/`train_steps`/`rule`, the loaded policy is used and its scheduler
/// copy changed, with the loader's checks (the U-Net does not depend on those fields).
fn overridden<'a>(
    dir: &Path,
    policy: &'a DiffusionPolicy,
    a: &Opts,
) -> PdResult<(
    Cow<'a, DiffusionPolicy>,
    picardiff::model::unet::DpScheduler,
)> {
    let over = overrides(a)?;
    if !a.set.is_empty() {
        let p = DiffusionPolicy::from_dir_with(dir, &over).map_err(|e| match e {
            // An override the checkpoint's config refuses is a bad argument.
            picardiff::Error::Model { field, msg } if field.starts_with("config.json") => {
                PdError::arg("set", format!("{field}: {msg}"))
            }
            e => e.into(),
        })?;
        let s = p.scheduler.clone();
        return Ok((Cow::Owned(p), s));
    }
    let mut s = policy.scheduler.clone();
    // The loader's ranges (`uint(cfg, field, min)` with its 65536 cap).
    const MAX_WIDTH: usize = 1 << 16;
    if let Some(n) = a.steps {
        if !(1..=MAX_WIDTH).contains(&n) {
            return Err(PdError::arg(
                "steps",
                format!("num_inference_steps {n} is not an integer in 1..={MAX_WIDTH}"),
            ));
        }
        s.inference_steps = Some(n);
    }
    if let Some(n) = a.train_steps {
        if !(2..=MAX_WIDTH).contains(&n) {
            return Err(PdError::arg(
                "train_steps",
                format!("num_train_timesteps {n} is not an integer in 2..={MAX_WIDTH}"),
            ));
        }
        s.train_steps = n;
    }
    match a.rule.as_deref() {
        Some("ddpm") => s.kind = SchedulerType::Ddpm,
        Some("ddim") => s.kind = SchedulerType::Ddim,
        _ => {}
    }
    s.schedule()?;
    if s.steps() > s.train_steps {
        return Err(PdError::arg(
            "steps",
            format!(
                "num_inference_steps {} exceeds num_train_timesteps {}",
                s.steps(),
                s.train_steps
            ),
        ));
    }
    Ok((Cow::Borrowed(policy), s))
}

/// The problem of a LeRobot Diffusion Policy (the CLI's `policy::problem`).
fn policy_problem<'a>(
    dir: &Path,
    policy: &'a DiffusionPolicy,
    a: &Opts,
    arrays: Inputs<'a>,
    warn: &mut Warnings,
) -> PdResult<Problem<'a>> {
    if a.schedule.is_some() {
        return Err(PdError::arg(
            "schedule",
            "a Diffusion Policy names its own schedule (change it with set={'beta_schedule': ...})",
        ));
    }
    for (given, opt) in [
        (a.horizon.is_some(), "horizon"),
        (a.t_end.is_some(), "t_end"),
        (a.grid.is_some(), "grid"),
        (a.kappa.is_some(), "kappa"),
    ] {
        if given {
            warn.push(format!(
                "{opt} does not apply to a Diffusion Policy; ignored"
            ));
        }
    }
    let (policy, sched) = overridden(dir, policy, a)?;
    let schedule = sched.schedule()?;
    let spacing_name = a.spacing.as_deref().unwrap_or("leading");
    let grid = Grid::discrete(&schedule, sched.steps(), spacing_name.parse()?)?;
    let rule = match a.rule.as_deref() {
        Some(r) => StepRule::from_name(r, a.eta)?,
        None => {
            if a.eta.is_some() {
                warn.push(
                    "eta applies with rule='ddpm' or rule='ddim' for a Diffusion Policy; ignored"
                        .into(),
                );
            }
            sched.rule()
        }
    };
    let clip = sched.clip.map(|r| ClipSample::for_rule(rule, r));
    let c = policy.config.clone();
    let g = c.global_cond_dim;
    let cond = arrays.cond.ok_or_else(|| {
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
    if a.batch.is_some_and(|b| b != batch) {
        return Err(PdError::arg(
            "batch",
            format!(
                "{} disagrees with cond's {batch} rows (the batch comes from cond)",
                a.batch.unwrap_or_default()
            ),
        ));
    }
    let (t, ad, steps) = (c.horizon, c.action_dim, grid.steps());
    let dim = t * ad;
    if let Some(x) = &arrays.init {
        if x.shape != [batch, dim] {
            expect_shape(x, &[batch, t, ad], "init", "[batch, horizon, action_dim]")?;
        }
    }
    if let Some(z) = &arrays.noise {
        if z.shape != [steps, batch, dim] {
            expect_shape(
                z,
                &[steps, batch, t, ad],
                "noise",
                "[steps, batch, horizon, action_dim]: step j's noise at index j",
            )?;
        }
        if !rule.is_stochastic() {
            warn.push(
                "noise: the scheduler is deterministic (DDIM), so the step noise is unused".into(),
            );
        }
    }
    StepTable::new(&grid, rule, policy.scheduler.prediction)?;
    let mut info = Map::new();
    info.insert("model_kind".into(), json!("lerobot_diffusion"));
    info.insert("scheduler".into(), json!(format!("{:?}", sched.kind)));
    info.insert("schedule".into(), json!(schedule.name()));
    info.insert("beta_schedule".into(), json!(sched.beta_schedule));
    info.insert("train_steps".into(), json!(sched.train_steps));
    info.insert("spacing".into(), json!(spacing_name));
    info.insert("clip_sample".into(), json!(sched.clip));
    info.insert(
        "prediction_type".into(),
        json!(format!("{:?}", sched.prediction)),
    );
    if let StepRule::Ddim { eta } = rule {
        info.insert("eta".into(), json!(eta));
    }
    info.insert("horizon".into(), json!(t));
    info.insert("action_dim".into(), json!(ad));
    info.insert("dim".into(), json!(dim));
    info.insert("batch".into(), json!(batch));
    info.insert("steps".into(), json!(steps));
    info.insert("seed".into(), json!(a.seed));
    info.insert("cond".into(), json!("array"));
    Ok(Problem {
        net: Net::Policy(policy),
        schedule,
        grid,
        rule,
        batch,
        seed: a.seed,
        init: arrays.init.map(|v| v.data),
        noise: arrays.noise.map(|v| v.data),
        cond: Some(cond.data),
        clip,
        sample_shape: vec![batch, t, ad],
        info,
    })
}

/// The Langevin corrector of the blocks sampler, if `corrector=True`.
fn corrector(a: &Opts, warn: &mut Warnings) -> PdResult<Option<Corrector>> {
    let knobs = a.corrector_gamma.is_some()
        || a.corrector_time.is_some()
        || a.corrector_steps.is_some()
        || a.corrector_iters.is_some();
    if !a.corrector {
        if knobs {
            warn.push("corrector_* arguments apply with corrector=True only; ignored".into());
        }
        return Ok(None);
    }
    let d = Corrector::default();
    let c = Corrector {
        gamma: a.corrector_gamma.unwrap_or(d.gamma),
        duration: a.corrector_time.unwrap_or(d.duration),
        steps: a.corrector_steps.unwrap_or(d.steps),
        iters: a.corrector_iters.unwrap_or(d.iters),
    };
    c.validate()?;
    Ok(Some(c))
}

/// The sampler named by `sampler` (default picard) with its defaults, validated against the grid
/// (the CLI's `config::sampler`).
pub fn sampler(a: &Opts, p: &Problem<'_>, warn: &mut Warnings) -> PdResult<Sampler> {
    let name = a.sampler.as_str();
    let steps = p.steps();
    let tol = a.tol.unwrap_or_else(|| p.rule.default_tolerance());
    let form = parse_form(a.picard_form.as_deref().unwrap_or("scan"))?;
    let mut ignored = |given: &[(bool, &str)]| {
        for (g, opt) in given {
            if *g {
                warn.push(format!(
                    "{opt} does not apply to the {name} sampler; ignored"
                ));
            }
        }
    };
    let mut info = Map::new();
    info.insert("sampler".into(), json!(name));
    let kind = match name {
        "sequential" => {
            ignored(&[
                (a.window.is_some(), "window"),
                (a.tol.is_some(), "tol"),
                (a.corrector, "corrector"),
                (a.max_iters.is_some(), "max_iters"),
                (a.block_len.is_some(), "block_len"),
                (a.iters.is_some(), "iters"),
                (a.picard_form.is_some(), "picard_form"),
            ]);
            info.insert("tol".into(), Value::Null);
            info.insert("window".into(), Value::Null);
            SamplerKind::Sequential
        }
        "picard" => {
            ignored(&[
                (a.block_len.is_some(), "block_len"),
                (a.iters.is_some(), "iters"),
                (a.corrector, "corrector"),
            ]);
            let window = a.window.unwrap_or(DEFAULT_WINDOW).min(steps);
            WindowPlan::sliding(steps, window, tol, form, a.max_iters)?;
            info.insert("tol".into(), json!(tol));
            info.insert("window".into(), json!(window));
            info.insert("max_iters".into(), json!(a.max_iters.unwrap_or(steps)));
            info.insert("picard_form".into(), json!(form_name(form)));
            SamplerKind::Picard {
                window,
                tol,
                max_iters: a.max_iters,
                form,
            }
        }
        "blocks" => {
            ignored(&[
                (a.window.is_some(), "window"),
                (a.max_iters.is_some(), "max_iters"),
            ]);
            let block_len = a.block_len.unwrap_or(if p.schedule.is_discrete() {
                DEFAULT_BLOCK_LEN_DISCRETE
            } else {
                DEFAULT_BLOCK_LEN_CONTINUOUS
            });
            let ends = block_ends(&p.grid, block_len)?;
            let iters = a
                .iters
                .unwrap_or_else(|| picardiff::defaults::block_iters(&ends));
            let blocks = ends.len();
            let plan = WindowPlan::blocks(steps, ends, iters, tol, form)?;
            let corrector = corrector(a, warn)?;
            info.insert("tol".into(), json!(tol));
            info.insert("window".into(), json!(plan.window));
            info.insert("block_len".into(), json!(block_len));
            info.insert("blocks".into(), json!(blocks));
            info.insert("iters".into(), json!(iters));
            info.insert("picard_form".into(), json!(form_name(form)));
            info.insert(
                "corrector".into(),
                corrector.map_or(Value::Null, |c| {
                    json!({"gamma": c.gamma, "time": c.duration, "steps": c.steps, "iters": c.iters})
                }),
            );
            SamplerKind::Blocks {
                block_len,
                iters,
                tol,
                form,
                corrector,
            }
        }
        o => {
            return Err(PdError::arg(
                "sampler",
                format!("unknown sampler `{o}` (expected sequential, picard or blocks)"),
            ))
        }
    };
    let ring = match &kind {
        SamplerKind::Sequential => 1,
        _ => info["window"].as_u64().unwrap_or(steps as u64) as usize + 1,
    };
    check_memory(p, ring)?;
    Ok(Sampler { kind, info })
}

/// Refuses runs whose buffers could not possibly be allocated (the CLI's `check_memory`).
fn check_memory(p: &Problem<'_>, ring: usize) -> PdResult<()> {
    const LIMIT: u128 = 1 << 40;
    let slot = p.batch as u128 * p.dim() as u128;
    let bytes = 4 * slot * (2 * ring as u128 + p.steps() as u128 * p.noise.is_some() as u128);
    if bytes > LIMIT {
        return Err(PdError::Value(format!(
            "the run would need about {} GiB of buffers (batch {} x dim {} x {ring} window slots); \
             reduce batch or window",
            bytes >> 30,
            p.batch,
            p.dim()
        )));
    }
    Ok(())
}
