//! The sampling problem of a LeRobot Diffusion Policy directory: its own scheduler (with
//! command-line overrides), the per-sample conditioning (`--cond`) and LeRobot's `(B, T, A)` arrays.

use std::path::Path;

use picardiff::model::DiffusionPolicy;
use picardiff::spec::{ModelRun, RunSpec};
use serde_json::{json, Map, Value};

use super::config::{finish, CliModel, Problem, Sampler};
use super::npy::{self, Array};
use super::{warn_field, CliError, CliResult, RunArgs};

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

/// The problem and sampler of `sample`/`compare` for the policy directory `--model`.
pub fn setup(a: &RunArgs, spec: &RunSpec) -> CliResult<(Problem, Sampler)> {
    let set: Vec<(String, Value)> = spec
        .set
        .iter()
        .map(|o| (o.key.clone(), o.value.clone()))
        .collect();
    let policy = DiffusionPolicy::from_dir_with(Path::new(&a.model), &set)?;
    let plan = spec.plan(
        ModelRun::Policy(&policy.scheduler),
        policy.scheduler.prediction,
    )?;
    for (field, msg) in &plan.warnings {
        warn_field(field, msg);
    }
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
    if spec.batch.is_some_and(|b| b != batch) {
        return Err(CliError::new(format!(
            "--batch {} disagrees with --cond's {batch} rows (the batch comes from --cond)",
            spec.batch.unwrap_or_default()
        )));
    }
    let (t, ad, steps) = (c.horizon, c.action_dim, plan.grid.steps());
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
    if noise.is_some() {
        if let Some((f, m)) = plan.unused_noise_warning() {
            warn_field(f, &m);
        }
    }
    let mut info = Map::new();
    info.insert("horizon".into(), json!(t));
    info.insert("action_dim".into(), json!(ad));
    info.insert("dim".into(), json!(dim));
    info.insert("batch".into(), json!(batch));
    info.insert("steps".into(), json!(steps));
    info.insert("cond".into(), json!(cond_path.display().to_string()));
    let model = CliModel::Policy(Box::new(policy));
    Ok(finish(
        model,
        plan,
        batch,
        init,
        noise,
        Some(cond.data),
        vec![batch, t, ad],
        info,
    ))
}
