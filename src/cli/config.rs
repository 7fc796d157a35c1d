//! From command-line arguments to a validated problem (model, grid, rule, noise inputs) and sampler.
//!
//! Everything that can be wrong with the user's input is checked here, before a device is opened
//! or a sampler runs, so that a bad input gives one `error:` line and nothing else.

use std::path::Path;

use picardiff::backend::{PicardForm, WindowPlan};
use picardiff::model::{load_model, DiffusionPolicy, MlpModel, ModelFile, WeightDtype};
use picardiff::prelude::*;
use picardiff::sampler::{block_ends, sufficient_block_iters, Corrector};
use picardiff::schedule::ClipSample;
use picardiff::schedule::DEFAULT_TRAIN_STEPS;
use serde_json::{json, Map, Value};

use super::npy::{self, Array};
use super::{warn, CliError, CliResult, RunArgs};

use picardiff::defaults::WINDOW as DEFAULT_WINDOW;
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
    /// Elements per sample.
    pub fn dim(&self) -> usize {
        match self {
            CliModel::Gmm(m) => m.mixture.dim,
            CliModel::Mlp(m) => ScoreModel::<CpuBackend>::dim(m.as_ref()),
            CliModel::Policy(m) => ScoreModel::<CpuBackend>::dim(m.as_ref()),
        }
    }

    /// What the model predicts.
    pub fn output(&self) -> ModelOutput {
        match self {
            CliModel::Gmm(m) => ScoreModel::<CpuBackend>::output(m),
            CliModel::Mlp(m) => ScoreModel::<CpuBackend>::output(m.as_ref()),
            CliModel::Policy(m) => ScoreModel::<CpuBackend>::output(m.as_ref()),
        }
    }
}

/// The sampling problem: everything but the sampler.
pub struct Problem {
    /// The model.
    pub model: CliModel,
    /// The schedule the grid was built from.
    pub schedule: Schedule,
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
    /// Settings for the stats JSON (`tol`, `window`, ...).
    pub info: Map<String, Value>,
}

pub fn form_name(form: PicardForm) -> &'static str {
    match form {
        PicardForm::Scan => "scan",
        PicardForm::Drift => "drift",
    }
}

/// Parses `--picard-form`.
pub fn parse_form(name: &str) -> CliResult<PicardForm> {
    match name {
        "scan" => Ok(PicardForm::Scan),
        "drift" => Ok(PicardForm::Drift),
        o => Err(CliError::new(format!(
            "--picard-form: unknown form `{o}` (expected scan or drift)"
        ))),
    }
}

/// Checks the numeric options that are wrong whatever they are used for.
fn check_values(a: &RunArgs) -> CliResult<()> {
    let bad = |opt: &str, msg: String| Err(CliError::new(format!("--{opt}: {msg}")));
    if a.steps == Some(0) {
        return bad("steps", "must be at least 1, got 0".into());
    }
    const MAX_STEPS: usize = 10_000_000;
    if a.steps.is_some_and(|n| n > MAX_STEPS) {
        return bad("steps", format!("at most {MAX_STEPS} are supported"));
    }
    if a.train_steps.is_some_and(|n| n > MAX_STEPS) {
        return bad("train-steps", format!("at most {MAX_STEPS} are supported"));
    }
    if a.window == Some(0) {
        return bad("window", "must be at least 1, got 0".into());
    }
    if a.iters == Some(0) {
        return bad("iters", "must be at least 1, got 0".into());
    }
    if a.max_iters == Some(0) {
        return bad("max-iters", "must be at least 1, got 0".into());
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
            return bad("block-len", format!("must be finite and > 0, got {h}"));
        }
    }
    if let Some(t) = a.t_end {
        if !(t > 0.0 && t.is_finite()) {
            return bad(
                "t-end",
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

/// Loads the model and builds the grid, rule and noise inputs.
pub fn problem(a: &RunArgs) -> CliResult<Problem> {
    check_values(a)?;
    if a.model.is_dir() {
        return super::policy::problem(a);
    }
    if a.cond.is_some() || !a.set.is_empty() {
        return Err(CliError::new(
            "--cond and --set apply to a Diffusion Policy directory only",
        ));
    }
    let rule_name = a.rule.as_deref().ok_or_else(|| {
        CliError::new(
            "--rule is required (ddpm, ddim, exp-sde, exp-ode or euler) except for a policy directory",
        )
    })?;
    let file = load_model(Path::new(&a.model))?;
    let (schedule_name, model_train_steps) = match (&file, a.schedule.as_deref()) {
        (ModelFile::Mlp(m), given) => {
            let own = m.config().schedule.clone();
            if given.is_some_and(|g| g != own) {
                return Err(CliError::new(format!(
                    "--schedule: the model was trained with `{own}`, not `{}`",
                    given.unwrap_or_default()
                )));
            }
            let own_steps = m.config().train_steps;
            if a.train_steps.is_some_and(|n| n != own_steps) {
                return Err(CliError::new(format!(
                    "--train-steps: the model was trained with {own_steps} training steps (its \
                     time input is a timestep of that schedule), not {}",
                    a.train_steps.unwrap_or_default()
                )));
            }
            (own, Some(own_steps))
        }
        (ModelFile::Mixture(_), Some(g)) => (g.to_string(), None),
        (ModelFile::Mixture(_), None) => {
            return Err(CliError::new(
                "--schedule is required with a mixture model (an MLP file names its own)",
            ))
        }
        (ModelFile::Policy(_), _) => return super::policy::problem(a),
    };
    let a = &RunArgs {
        schedule: Some(schedule_name.clone()),
        ..a.clone()
    };
    let discrete = matches!(
        schedule_name.as_str(),
        "ddpm-linear" | "scaled-linear" | "cosine"
    );
    let train_steps = a
        .train_steps
        .or(model_train_steps)
        .unwrap_or(DEFAULT_TRAIN_STEPS);
    let schedule = Schedule::from_name(&schedule_name, train_steps)?;
    let rule = StepRule::from_name(rule_name, a.eta)?;
    if a.noise.is_some() && !rule.is_stochastic() {
        warn(&format!(
            "--noise: the {} rule{} is deterministic: the step noise is unused",
            rule_name,
            match rule {
                StepRule::Ddim { eta } => format!(" with eta {eta}"),
                _ => String::new(),
            }
        ));
    }
    if a.eta.is_some() && !matches!(rule, StepRule::Ddim { .. }) {
        warn(&format!(
            "--eta applies to the ddpm and ddim rules only; ignored for {rule_name}"
        ));
    }
    let mut info = Map::new();
    info.insert("schedule".into(), json!(schedule.name()));
    info.insert("rule".into(), json!(rule_name));
    if let StepRule::Ddim { eta } = rule {
        info.insert("eta".into(), json!(eta));
    }

    let flow_only = [(a.shift.is_some(), "--shift"), (a.mu.is_some(), "--mu")];
    let grid = if schedule.is_flow() {
        for (given, opt) in [
            (a.horizon.is_some(), "--horizon"),
            (a.t_end.is_some(), "--t-end"),
            (a.kappa.is_some(), "--kappa"),
            (a.spacing.is_some(), "--spacing"),
        ] {
            if given {
                warn(&format!(
                    "{opt} does not apply to the flow schedule; ignored"
                ));
            }
        }
        let steps = a
            .steps
            .ok_or_else(|| CliError::new("--steps is required for the flow schedule"))?;
        let grid_name = a.grid.as_deref().unwrap_or("diffusers");
        info.insert("grid".into(), json!(grid_name));
        info.insert("train_steps".into(), json!(train_steps));
        match grid_name {
            "diffusers" => {
                let shift = match (a.shift, a.mu) {
                    (Some(_), Some(_)) => return Err(CliError::new(
                        "--shift and --mu exclude each other (--mu is diffusers' dynamic shifting)",
                    )),
                    (_, Some(mu)) => {
                        info.insert("mu".into(), json!(mu));
                        FlowShift::Dynamic { mu }
                    }
                    (s, None) => {
                        let s = s.unwrap_or(1.0);
                        info.insert("shift".into(), json!(s));
                        FlowShift::Static(s)
                    }
                };
                Grid::flow(&schedule, steps, shift)?
            }
            "uniform" => {
                for (given, opt) in flow_only {
                    if given {
                        warn(&format!(
                            "{opt} applies to --grid diffusers only; ignored for --grid uniform"
                        ));
                    }
                }
                Grid::flow_uniform(&schedule, steps)?
            }
            o => {
                return Err(CliError::new(format!(
                "--grid: unknown grid `{o}` for the flow schedule (expected diffusers or uniform)"
            )))
            }
        }
    } else if discrete {
        for (given, opt) in flow_only {
            if given {
                warn(&format!(
                    "{opt} applies to the flow schedule only; ignored for {schedule_name}"
                ));
            }
        }
        for (given, opt) in [
            (a.horizon.is_some(), "--horizon"),
            (a.t_end.is_some(), "--t-end"),
            (a.grid.is_some(), "--grid"),
            (a.kappa.is_some(), "--kappa"),
        ] {
            if given {
                warn(&format!(
                    "{opt} applies to continuous schedules (ou, vp-linear) only; ignored for {}",
                    schedule_name
                ));
            }
        }
        let spacing_name = a.spacing.as_deref().unwrap_or("leading");
        let spacing: Spacing = spacing_name.parse()?;
        let steps = a.steps.ok_or_else(|| {
            CliError::new(format!(
                "--steps is required for the discrete schedule {}",
                schedule_name
            ))
        })?;
        info.insert("spacing".into(), json!(spacing_name));
        info.insert("train_steps".into(), json!(train_steps));
        Grid::discrete(&schedule, steps, spacing)?
    } else {
        for (given, opt) in flow_only {
            if given {
                warn(&format!(
                    "{opt} applies to the flow schedule only; ignored for {schedule_name}"
                ));
            }
        }
        for (given, opt) in [
            (a.spacing.is_some(), "--spacing"),
            (a.train_steps.is_some(), "--train-steps"),
        ] {
            if given {
                warn(&format!(
                    "{opt} applies to discrete schedules (ddpm-linear, scaled-linear, cosine) only; ignored for {}",
                    schedule_name
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
                    warn("--kappa applies to --grid paper only; ignored");
                }
                let steps = a.steps.ok_or_else(|| {
                    CliError::new("--steps is required with --grid uniform (or use --grid paper)")
                })?;
                Grid::uniform(&schedule, steps, horizon, t_end)?
            }
            "paper" => {
                if a.steps.is_some() {
                    warn("--steps is ignored with --grid paper (the grid's step count follows from --kappa)");
                }
                let kappa = a.kappa.unwrap_or(DEFAULT_KAPPA);
                info.insert("kappa".into(), json!(kappa));
                Grid::paper(&schedule, kappa, horizon, t_end)?
            }
            o => {
                return Err(CliError::new(format!(
                    "--grid: unknown grid `{o}` (expected uniform or paper)"
                )))
            }
        }
    };

    let dtype = WeightDtype::from_name(a.dtype.as_deref().unwrap_or("f32"))?;
    let model = match file {
        ModelFile::Mixture(mixture) => {
            if a.dtype.is_some() {
                warn("--dtype applies to MLP models only; ignored for a mixture");
            }
            CliModel::Gmm(GmmModel::new(mixture, schedule.clone()))
        }
        ModelFile::Mlp(mut m) => {
            m.set_compute_dtype(dtype);
            info.insert("dtype".into(), json!(a.dtype.as_deref().unwrap_or("f32")));
            CliModel::Mlp(m)
        }
        ModelFile::Policy(_) => unreachable!("a policy returned above"),
    };
    // Rejects grids on which the rule's table is not finite, before anything runs.
    StepTable::new(&grid, rule, model.output())?;
    let (dim, steps) = (model.dim(), grid.steps());

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
    let batch = a
        .batch
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
    info.insert("dim".into(), json!(dim));
    info.insert("batch".into(), json!(batch));
    info.insert("steps".into(), json!(steps));
    info.insert("seed".into(), json!(a.seed));
    info.insert(
        "init".into(),
        json!(a.init.as_ref().map(|p| p.display().to_string())),
    );
    info.insert(
        "noise".into(),
        json!(a.noise.as_ref().map(|p| p.display().to_string())),
    );
    Ok(Problem {
        model,
        schedule,
        grid,
        rule,
        batch,
        seed: a.seed,
        init,
        noise,
        cond: None,
        clip: None,
        sample_shape: vec![batch, dim],
        info,
    })
}

/// The Langevin corrector of the blocks sampler, if `--corrector` is given.
fn corrector(a: &RunArgs) -> CliResult<Option<Corrector>> {
    let knobs = a.corrector_gamma.is_some()
        || a.corrector_time.is_some()
        || a.corrector_steps.is_some()
        || a.corrector_iters.is_some();
    if !a.corrector {
        if knobs {
            warn("--corrector-* options apply with --corrector only; ignored");
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

/// The sampler named by `--sampler` (default picard) with its defaults, validated against the grid.
pub fn sampler(a: &RunArgs, p: &Problem) -> CliResult<Sampler> {
    let name = a.sampler.as_deref().unwrap_or("picard");
    let steps = p.steps();
    let tol = a.tol.unwrap_or_else(|| p.rule.default_tolerance());
    let form = parse_form(a.picard_form.as_deref().unwrap_or("scan"))?;
    let ignored = |given: &[(bool, &str)]| {
        for (g, opt) in given {
            if *g {
                warn(&format!(
                    "{opt} does not apply to the {name} sampler; ignored"
                ));
            }
        }
    };
    let mut info = Map::new();
    info.insert("sampler".into(), json!(name));
    let (kind, label) = match name {
        "sequential" => {
            ignored(&[
                (a.window.is_some(), "--window"),
                (a.tol.is_some(), "--tol"),
                (a.corrector, "--corrector"),
                (a.max_iters.is_some(), "--max-iters"),
                (a.block_len.is_some(), "--block-len"),
                (a.iters.is_some(), "--iters"),
                (a.picard_form.is_some(), "--picard-form"),
            ]);
            info.insert("tol".into(), Value::Null);
            info.insert("window".into(), Value::Null);
            (SamplerKind::Sequential, "sequential".to_string())
        }
        "picard" => {
            ignored(&[
                (a.block_len.is_some(), "--block-len"),
                (a.iters.is_some(), "--iters"),
                (a.corrector, "--corrector"),
            ]);
            let window = a.window.unwrap_or(DEFAULT_WINDOW).min(steps);
            WindowPlan::sliding(steps, window, tol, form, a.max_iters)?;
            info.insert("tol".into(), json!(tol));
            info.insert("window".into(), json!(window));
            info.insert("max_iters".into(), json!(a.max_iters.unwrap_or(steps)));
            info.insert("picard_form".into(), json!(form_name(form)));
            (
                SamplerKind::Picard {
                    window,
                    tol,
                    max_iters: a.max_iters,
                    form,
                },
                format!("picard ({})", form_name(form)),
            )
        }
        "blocks" => {
            ignored(&[
                (a.window.is_some(), "--window"),
                (a.max_iters.is_some(), "--max-iters"),
            ]);
            let block_len =
                a.block_len
                    .unwrap_or(if p.schedule.is_discrete() || p.schedule.is_flow() {
                        DEFAULT_BLOCK_LEN_DISCRETE
                    } else {
                        DEFAULT_BLOCK_LEN_CONTINUOUS
                    });
            let ends = block_ends(&p.grid, block_len)?;
            let iters = a.iters.unwrap_or_else(|| sufficient_block_iters(&ends));
            let blocks = ends.len();
            let plan = WindowPlan::blocks(steps, ends, iters, tol, form)?;
            let corrector = corrector(a)?;
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
            let label = match corrector {
                Some(_) => format!("blocks ({}) + corrector", form_name(form)),
                None => format!("blocks ({})", form_name(form)),
            };
            (
                SamplerKind::Blocks {
                    block_len,
                    iters,
                    tol,
                    form,
                    corrector,
                },
                label,
            )
        }
        o => {
            return Err(CliError::new(format!(
                "--sampler: unknown sampler `{o}` (expected sequential, picard or blocks)"
            )))
        }
    };
    let ring = match &kind {
        SamplerKind::Sequential => 1,
        _ => info["window"].as_u64().unwrap_or(steps as u64) as usize + 1,
    };
    check_memory(p, ring)?;
    Ok(Sampler { kind, label, info })
}

/// Refuses runs whose buffers could not possibly be allocated (an allocation failure aborts the
/// process instead of giving an error): the state and model-output rings, `ring × batch × dim` f32
/// each, plus a caller-supplied noise table.
fn check_memory(p: &Problem, ring: usize) -> CliResult<()> {
    const LIMIT: u128 = 1 << 40;
    let slot = p.batch as u128 * p.dim() as u128;
    let bytes = 4 * slot * (2 * ring as u128 + p.steps() as u128 * p.noise.is_some() as u128);
    if bytes > LIMIT {
        return Err(CliError::new(format!(
            "the run would need about {} GiB of buffers (batch {} x dim {} x {ring} window slots); \
             reduce --batch or --window",
            bytes >> 30,
            p.batch,
            p.dim()
        )));
    }
    Ok(())
}
