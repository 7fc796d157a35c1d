//! The sampling problem of a LeRobot Diffusion Policy directory: its own scheduler (with
//! command-line overrides), the per-sample conditioning (`--cond`) and LeRobot's `(B, T, A)` arrays.

use std::path::Path;

use picardiff::model::DiffusionPolicy;
use picardiff::prelude::*;
use serde_json::{json, Map, Value};

use super::config::{CliModel, Problem};
use super::npy::{self, Array};
use super::{warn, CliError, CliResult, RunArgs};

/// The config overrides the run asks for: `--set KEY=VALUE` (VALUE as JSON, else a string), then
/// the flags that name scheduler fields (`--steps`, `--train-steps`, `--rule`).
fn overrides(a: &RunArgs) -> CliResult<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for kv in &a.set {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            CliError::new(format!(
                "--set `{kv}`: expected KEY=VALUE (e.g. num_inference_steps=10)"
            ))
        })?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        out.push((k.to_string(), v));
    }
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
            return Err(CliError::new(format!(
                "--rule: a Diffusion Policy samples with its scheduler, ddpm or ddim, not `{o}`"
            )))
        }
    }
    Ok(out)
}

/// Reads an optional array of `shape` (LeRobot's layout) or of `flat` (one row per sample).
fn read_shaped(
    path: Option<&Path>,
    shape: &[usize],
    flat: &[usize],
    what: &str,
    hint: &str,
) -> CliResult<Option<Vec<f32>>> {
    let Some(path) = path else { return Ok(None) };
    let arr: Array = npy::read_f32(path, what)?;
    if arr.shape != flat {
        npy::expect_shape(&arr, shape, what, hint)?;
    }
    Ok(Some(arr.data))
}

/// The problem of `sample`/`compare` for the policy directory `--model`.
pub fn problem(a: &RunArgs) -> CliResult<Problem> {
    if a.schedule.is_some() {
        return Err(CliError::new(
            "--schedule: a Diffusion Policy names its own schedule (change it with --set beta_schedule=...)",
        ));
    }
    for (given, opt) in [
        (a.dtype.is_some(), "--dtype"),
        (a.horizon.is_some(), "--horizon"),
        (a.t_end.is_some(), "--t-end"),
        (a.grid.is_some(), "--grid"),
        (a.kappa.is_some(), "--kappa"),
    ] {
        if given {
            warn(&format!(
                "{opt} does not apply to a Diffusion Policy; ignored"
            ));
        }
    }
    let policy = DiffusionPolicy::from_dir_with(Path::new(&a.model), &overrides(a)?)?;
    let sched = policy.scheduler.clone();
    let schedule = sched.schedule()?;
    let spacing_name = a.spacing.as_deref().unwrap_or("leading");
    let grid = Grid::discrete(&schedule, sched.steps(), spacing_name.parse()?)?;
    let rule = match a.rule.as_deref() {
        Some(r) => StepRule::from_name(r, a.eta)?,
        None => sched.rule(),
    };
    let clip = sched
        .clip
        .map(|r| picardiff::schedule::ClipSample::for_rule(rule, r));
    let c = policy.config.clone();
    let g = c.global_cond_dim;
    let cond_path = a.cond.as_deref().ok_or_else(|| {
        CliError::new(format!(
            "--cond is required for a Diffusion Policy: a float32 .npy of shape [batch, {}] ({})",
            g,
            policy.features.describe(g)
        ))
    })?;
    let cond = npy::read_f32(cond_path, "--cond")?;
    let batch = match cond.shape.as_slice() {
        [b, w] if *w == g && *b > 0 => *b,
        s => {
            return Err(CliError::new(format!(
                "--cond: expected a float32 array of shape [batch, {g}] ({}), got {}",
                policy.features.describe(g),
                npy::shape_str(s)
            )))
        }
    };
    if a.batch.is_some_and(|b| b != batch) {
        return Err(CliError::new(format!(
            "--batch {} disagrees with --cond's {batch} rows (the batch comes from --cond)",
            a.batch.unwrap_or_default()
        )));
    }
    let (t, ad, steps) = (c.horizon, c.action_dim, grid.steps());
    let dim = t * ad;
    let init = read_shaped(
        a.init.as_deref(),
        &[batch, t, ad],
        &[batch, dim],
        "--init",
        "[batch, horizon, action_dim]",
    )?;
    let noise = read_shaped(
        a.noise.as_deref(),
        &[steps, batch, t, ad],
        &[steps, batch, dim],
        "--noise",
        "[steps, batch, horizon, action_dim]: step j's noise at index j",
    )?;
    if noise.is_some() && !rule.is_stochastic() {
        warn("--noise: the scheduler is deterministic (DDIM), so the step noise is unused");
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
    info.insert("cond".into(), json!(cond_path.display().to_string()));
    Ok(Problem {
        model: CliModel::Policy(Box::new(policy)),
        schedule,
        grid,
        rule,
        batch,
        seed: a.seed,
        init,
        noise,
        cond: Some(cond.data),
        clip,
        sample_shape: vec![batch, t, ad],
        info,
    })
}
