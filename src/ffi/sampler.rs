//! `picardiff_sampler`: a validated configuration on a device, and the run that fills a caller's
//! buffer with samples.

use std::sync::Arc;

use super::args::{arg_out, arg_ref, free_handle, opt_slice, write_handle};
use super::config::{picardiff_sampler_config, plan, Plan};
use super::context::{picardiff_context, Device};
use super::model::{picardiff_model, ModelKind};
use super::status::{ffi_boundary, picardiff_status, FfiError};
use crate::backend::cpu::CpuBackend;
use crate::device::ModelRef;
use crate::model::{GmmModel, ScoreModel};
use crate::sampler::{RunInputs, RunOutput, RunStats};
use crate::spec::{ModelRun, Plan as SpecPlan};

/// Counters and timing of one run.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct picardiff_stats {
    /// Sequential model calls (Picard iterations; the steps for the sequential sampler).
    pub rounds: usize,
    /// Model evaluations per sample.
    pub nfe: usize,
    /// Wall-clock time of the run in milliseconds.
    pub wall_ms: f64,
    /// Host reads of the Picard window state (device synchronisations inside the loop).
    pub host_syncs: usize,
    /// With `final_tol` set: the last point's RMS change per element in the last iteration that
    /// swept it, for the sample that changed most (data units); −1 without the stop.
    pub final_change: f64,
    /// 1 if the final-sample stop ended the run before the per-step test accepted every point.
    pub final_stopped: u32,
}

impl From<&RunStats> for picardiff_stats {
    fn from(s: &RunStats) -> Self {
        picardiff_stats {
            rounds: s.rounds,
            nfe: s.nfe,
            wall_ms: s.wall_ms,
            host_syncs: s.host_syncs,
            final_change: s.final_change.unwrap_or(-1.0),
            final_stopped: u32::from(s.final_stopped),
        }
    }
}

/// A sampler: schedule, grid, step rule and Picard settings on a device. Create with
/// `picardiff_sampler_new`, free with `picardiff_sampler_free`. Read-only after creation: on the CPU
/// device several threads may run the same sampler at once.
pub struct picardiff_sampler {
    pub(super) device: Arc<Device>,
    pub(super) plan: Plan,
}

/// Validates `config` and makes a sampler on `ctx`'s device into `*sampler_out`. Unknown names and
/// out-of-range values give `PICARDIFF_INVALID_CONFIG` with a message naming the setting.
///
/// # Safety
/// `ctx` must be NULL or a live context; `config` NULL or a valid config whose strings are NULL or
/// NUL-terminated; `sampler_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_sampler_new(
    ctx: *const picardiff_context,
    config: *const picardiff_sampler_config,
    sampler_out: *mut *mut picardiff_sampler,
) -> picardiff_status {
    ffi_boundary!("picardiff_sampler_new", {
        // SAFETY: per the contract.
        let ctx = unsafe { arg_ref(ctx, "ctx") }?;
        // SAFETY: per the contract.
        let config = unsafe { arg_ref(config, "config") }?;
        let out = arg_out(sampler_out, "sampler_out")?;
        // SAFETY: the config's strings are NULL or NUL-terminated per the contract.
        let plan = unsafe { plan(config) }?;
        let sampler = picardiff_sampler {
            device: ctx.device.clone(),
            plan,
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { write_handle(out, sampler) };
        Ok(())
    })
}

/// Frees a sampler; NULL is a no-op.
///
/// # Safety
/// `sampler` must be NULL or a sampler from `picardiff_sampler_new` not freed before, and no run
/// may be using it.
#[no_mangle]
pub unsafe extern "C" fn picardiff_sampler_free(sampler: *mut picardiff_sampler) {
    // SAFETY: forwarded contract.
    super::status::boundary_or((), || unsafe { free_handle(sampler) })
}

/// The sampler's steps N (a caller's noise table holds `steps × batch × dim` values) and batch.
/// Either out-pointer may be NULL when not wanted.
///
/// # Safety
/// `sampler` must be NULL or a live sampler; the out-pointers NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_sampler_shape(
    sampler: *const picardiff_sampler,
    steps_out: *mut usize,
    batch_out: *mut usize,
) -> picardiff_status {
    ffi_boundary!("picardiff_sampler_shape", {
        // SAFETY: per the contract.
        let s = unsafe { arg_ref(sampler, "sampler") }?;
        // SAFETY: NULL or writable per the contract.
        unsafe {
            if let Some(p) = steps_out.as_mut() {
                *p = s.plan.base.grid.steps();
            }
            if let Some(p) = batch_out.as_mut() {
                *p = s.plan.batch;
            }
        }
        Ok(())
    })
}

/// α_t and σ_t of the sampler's schedule at model time `t` (the time a callback receives): for
/// callbacks that need them, e.g. to turn a network's output into ε.
///
/// # Safety
/// `sampler` must be NULL or a live sampler; `alpha_out`, `sigma_out` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn picardiff_sampler_alpha_sigma(
    sampler: *const picardiff_sampler,
    t: f64,
    alpha_out: *mut f64,
    sigma_out: *mut f64,
) -> picardiff_status {
    ffi_boundary!("picardiff_sampler_alpha_sigma", {
        // SAFETY: per the contract.
        let s = unsafe { arg_ref(sampler, "sampler") }?;
        let a = arg_out(alpha_out, "alpha_out")?;
        let g = arg_out(sigma_out, "sigma_out")?;
        if !t.is_finite() {
            return Err(FfiError::invalid(format!("t = {t} is not finite")));
        }
        let (alpha, sigma) = s.plan.base.schedule.alpha_sigma(t);
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe {
            *a = alpha;
            *g = sigma;
        }
        Ok(())
    })
}

/// Runs `sampler` with `model` and Philox noise from the config's seed; writes the samples,
/// `[batch][dim]` row-major f32, to `out` (`out_len` must be exactly batch × dim) and the run's
/// counters to `*stats_out` (NULL when not wanted). On failure neither is written.
///
/// # Safety
/// `sampler` and `model` must be NULL or live handles; `out` NULL or valid for `out_len` writes;
/// `stats_out` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_sampler_run(
    sampler: *const picardiff_sampler,
    model: *const picardiff_model,
    out: *mut f32,
    out_len: usize,
    stats_out: *mut picardiff_stats,
) -> picardiff_status {
    ffi_boundary!("picardiff_sampler_run", {
        // SAFETY: forwarded contract; no caller inputs.
        unsafe { run_checked(sampler, model, None, None, None, out, out_len, stats_out) }
    })
}

/// As `picardiff_sampler_run`, with an optional caller x_T (`x_T`, `[batch][dim]`, `x_T_len` =
/// batch × dim) and optional step noise (`noise`, `[steps][batch][dim]`, `noise_len` = steps ×
/// batch × dim; see `picardiff_sampler_shape`). A NULL input with length 0 uses Philox noise.
/// `out` may be the same buffer as `x_T`.
///
/// # Safety
/// As `picardiff_sampler_run`; `x_T` and `noise` NULL or valid for their lengths.
#[no_mangle]
#[allow(clippy::too_many_arguments, non_snake_case)]
pub unsafe extern "C" fn picardiff_sampler_run_with_inputs(
    sampler: *const picardiff_sampler,
    model: *const picardiff_model,
    x_T: *const f32,
    x_T_len: usize,
    noise: *const f32,
    noise_len: usize,
    out: *mut f32,
    out_len: usize,
    stats_out: *mut picardiff_stats,
) -> picardiff_status {
    ffi_boundary!("picardiff_sampler_run_with_inputs", {
        // SAFETY: per the contract; the slices are dropped before `out` is written.
        let init = unsafe { opt_slice(x_T, x_T_len, "x_T") }?;
        // SAFETY: as above.
        let noise = unsafe { opt_slice(noise, noise_len, "noise") }?;
        // SAFETY: forwarded contract.
        unsafe { run_checked(sampler, model, None, init, noise, out, out_len, stats_out) }
    })
}

/// As `picardiff_sampler_run_with_inputs`, with per-sample conditioning: `cond` holds `batch` rows
/// of `picardiff_model_cond_dim` values (`cond_len` = batch × cond_dim), row b conditioning sample
/// b (a Diffusion Policy's global conditioning: the normalised observation features). A policy
/// runs under its own scheduler (steps, rule, x̂0 clipping from its config.json; the config's
/// schedule, steps, spacing and rule are not used; its window is clamped to the policy's steps and
/// a default `tol` is the policy rule's):
/// the noise table then holds `picardiff_sampler_model_steps` steps.
///
/// # Safety
/// As `picardiff_sampler_run_with_inputs`; `cond` NULL or valid for `cond_len` reads.
#[no_mangle]
#[allow(clippy::too_many_arguments, non_snake_case)]
pub unsafe extern "C" fn picardiff_sampler_run_cond(
    sampler: *const picardiff_sampler,
    model: *const picardiff_model,
    cond: *const f32,
    cond_len: usize,
    x_T: *const f32,
    x_T_len: usize,
    noise: *const f32,
    noise_len: usize,
    out: *mut f32,
    out_len: usize,
    stats_out: *mut picardiff_stats,
) -> picardiff_status {
    ffi_boundary!("picardiff_sampler_run_cond", {
        // SAFETY: per the contract; the slices are dropped before `out` is written.
        let cond = unsafe { opt_slice(cond, cond_len, "cond") }?;
        // SAFETY: as above.
        let init = unsafe { opt_slice(x_T, x_T_len, "x_T") }?;
        // SAFETY: as above.
        let noise = unsafe { opt_slice(noise, noise_len, "noise") }?;
        // SAFETY: forwarded contract.
        unsafe { run_checked(sampler, model, cond, init, noise, out, out_len, stats_out) }
    })
}

/// The steps a run of `sampler` with `model` takes: the sampler's, or a Diffusion Policy's own.
///
/// # Safety
/// `sampler` and `model` must be NULL or live handles; `steps_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_sampler_model_steps(
    sampler: *const picardiff_sampler,
    model: *const picardiff_model,
    steps_out: *mut usize,
) -> picardiff_status {
    ffi_boundary!("picardiff_sampler_model_steps", {
        // SAFETY: per the contract.
        let s = unsafe { arg_ref(sampler, "sampler") }?;
        // SAFETY: per the contract.
        let model = unsafe { arg_ref(model, "model") }?;
        let out = arg_out(steps_out, "steps_out")?;
        let steps = model_plan(s, model)?.grid.steps();
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { *out = steps };
        Ok(())
    })
}

/// The shared body of the two runs.
///
/// # Safety
/// As `picardiff_sampler_run_with_inputs`.
#[allow(clippy::too_many_arguments)]
unsafe fn run_checked(
    sampler: *const picardiff_sampler,
    model: *const picardiff_model,
    cond: Option<&[f32]>,
    init: Option<&[f32]>,
    noise: Option<&[f32]>,
    out: *mut f32,
    out_len: usize,
    stats_out: *mut picardiff_stats,
) -> Result<(), FfiError> {
    // SAFETY: per the contract.
    let s = unsafe { arg_ref(sampler, "sampler") }?;
    // SAFETY: per the contract.
    let model = unsafe { arg_ref(model, "model") }?;
    let out = arg_out(out, "out")?;
    let need = check_out_len(s, model, out_len)?;
    let inputs = RunInputs {
        batch: s.plan.batch,
        seed: s.plan.base.seed,
        sample0: s.plan.base.sample0,
        init,
        noise,
        cond,
        clip: None,
    };
    let result = dispatch(s, model, &inputs)?;
    debug_assert_eq!(result.samples.len(), need);
    // SAFETY: `out` is non-NULL and valid for `out_len` = samples.len() writes per the contract; the
    // samples are a fresh Rust allocation, so the ranges do not overlap (the input slices, which
    // may alias `out`, are no longer used).
    unsafe { std::ptr::copy_nonoverlapping(result.samples.as_ptr(), out, need) };
    // SAFETY: NULL or writable per the contract.
    if let Some(st) = unsafe { stats_out.as_mut() } {
        *st = picardiff_stats::from(&result.stats);
    }
    Ok(())
}

/// batch × dim, or a shape error when `out_len` differs.
pub(super) fn check_out_len(
    s: &picardiff_sampler,
    model: &picardiff_model,
    out_len: usize,
) -> Result<usize, FfiError> {
    let Some(need) = s.plan.batch.checked_mul(model.dim()) else {
        return Err(FfiError::new(
            picardiff_status::PICARDIFF_INVALID_CONFIG,
            format!("batch × dim = {} × {} overflows", s.plan.batch, model.dim()),
        ));
    };
    if out_len != need {
        return Err(FfiError::new(
            picardiff_status::PICARDIFF_SHAPE_MISMATCH,
            format!(
                "`out_len` is {out_len}, the run writes batch × dim = {} × {} = {need} floats",
                s.plan.batch,
                model.dim()
            ),
        ));
    }
    Ok(need)
}

/// An MLP names its schedule: the sampler's must be the same.
/// The plan of a run of `model`: the sampler's own for a model that takes its schedule, else the
/// spec planned again for the model's schedule (an MLP) or scheduler (a Diffusion Policy).
pub(super) fn model_plan<'a>(
    s: &'a picardiff_sampler,
    model: &picardiff_model,
) -> crate::Result<std::borrow::Cow<'a, SpecPlan>> {
    use std::borrow::Cow;
    Ok(match &model.kind {
        ModelKind::Mixture(_) | ModelKind::Callback(_) => Cow::Borrowed(&s.plan.base),
        ModelKind::Mlp(m) => {
            let run = ModelRun::Trained {
                schedule: m.config().schedule.parse()?,
                train_steps: m.config().train_steps,
                what: "the MLP was trained with",
            };
            Cow::Owned(
                s.plan
                    .for_model(run, ScoreModel::<CpuBackend>::output(m.as_ref()))?,
            )
        }
        ModelKind::Policy(m) => Cow::Owned(
            s.plan
                .for_model(ModelRun::Policy(&m.scheduler), m.scheduler.prediction)?,
        ),
    })
}

/// Runs the sampler on its device with the model.
pub(super) fn dispatch(
    s: &picardiff_sampler,
    model: &picardiff_model,
    inputs: &RunInputs<'_>,
) -> Result<RunOutput, FfiError> {
    let p = model_plan(s, model)?;
    let inputs = RunInputs {
        clip: p.clip,
        ..inputs.clone()
    };
    let (g, r) = (&p.grid, p.rule);
    let device = &*s.device;
    // `auto` measures the model by running it: a callback model is not run for that, and runs
    // the picard candidate (what `kind` holds).
    let run = |m: ModelRef<'_>| -> crate::Result<RunOutput> {
        let kind = match p.auto {
            true => m.choose(device, g, r, &p.kind, &inputs)?.kind,
            false => p.kind.clone(),
        };
        m.run(device, g, r, &kind, &inputs)
    };
    let out = match &model.kind {
        ModelKind::Mixture(m) => run(ModelRef::Gmm(&GmmModel::new(m.clone(), p.schedule.clone()))),
        ModelKind::Callback(c) => device.run(c, g, r, &p.kind, &inputs),
        ModelKind::Mlp(m) => run(ModelRef::Mlp(m)),
        ModelKind::Policy(m) => run(ModelRef::Policy(m)),
    };
    Ok(out?)
}
