//! `picardiff_sampler_config`: every sampler setting in one plain struct, and its validation into
//! the library's schedule, grid, rule and sampler kind.

use std::ffi::c_char;

use super::args::{arg_out, opt_str};
use super::status::{ffi_boundary, picardiff_status, FfiError};
use crate::schedule::ModelOutput;
use crate::spec::{GridName, ModelRun, Plan as SpecPlan, RuleName, RunSpec, ScheduleName};

/// Sampler settings. Fill it with `picardiff_sampler_config_default`, then change fields. Strings are
/// NUL-terminated UTF-8, borrowed only during `picardiff_sampler_new` (the config owns nothing);
/// NULL strings and the "default" values named below select the default. Settings that do not apply
/// to the chosen schedule or sampler are ignored.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct picardiff_sampler_config {
    /// Noise schedule: "ddpm-linear", "scaled-linear", "cosine" (discrete), "ou", "vp-linear"
    /// (continuous) or "flow" (rectified flow, α = 1 − σ; model time σ·train_steps). Default
    /// "ddpm-linear".
    pub schedule: *const c_char,
    /// Training timesteps of a discrete schedule (flow: diffusers' num_train_timesteps, the model
    /// time is σ·train_steps); 0 = 1000 (diffusers' default).
    pub train_steps: usize,
    /// Sampling steps N (ignored by the "paper" grid); 0 = 100 (a Diffusion Policy: its config's).
    pub steps: usize,
    /// Discrete timestep spacing: "leading", "trailing", "linspace", "dpm-linspace" (the linspace
    /// of diffusers' DPMSolverMultistepScheduler). Default "leading" (diffusers').
    pub spacing: *const c_char,
    /// Continuous schedules: the horizon T; 0 = 10 for "ou", 1 for "vp-linear".
    pub horizon: f64,
    /// Continuous schedules: the early-stopping time (> 0); 0 = 1e-3.
    pub t_end: f64,
    /// Continuous schedules: "uniform" (`steps` steps) or "paper" (step κ while t >= 1, then
    /// geometric). Default "uniform". Flow: "diffusers" (FlowMatchEulerDiscreteScheduler with
    /// `shift`, the default) or "uniform" (pi0's σ = 1 − k/steps).
    pub grid: *const c_char,
    /// Step scale κ of the "paper" grid; 0 = 0.05.
    pub kappa: f64,
    /// Step rule: "ddpm", "ddim", "exp-sde", "exp-ode", "dpmpp-2m", "dpmpp-3m" (VP schedules) or
    /// "euler" (flow). Default "ddpm", "euler" on flow.
    pub rule: *const c_char,
    /// η of the ddpm/ddim rules; negative = the rule's default (ddpm 1, ddim 0).
    pub eta: f64,
    /// Sampler: "auto", "sequential", "picard" (sliding window) or "blocks" (PIADM). Default
    /// "auto": sequential or picard, whichever a cost model measured on the model, device and
    /// batch (once per process) says is faster; a callback model runs picard.
    pub sampler: *const c_char,
    /// Picard window length p (clamped to the steps); 0 = the library's default, 256
    /// (`picardiff::defaults::WINDOW`; before the run specification, 0 meant all steps).
    pub window: usize,
    /// Convergence tolerance τ (picard, blocks); negative = the default: for picard with a window
    /// holding every step, 0 with the final-sample stop (`final_tol`); otherwise the rule's (0.1
    /// for stochastic rules, 1e-3 for deterministic ones, ParaDiGMS'). With blocks, 0 runs exactly
    /// `iters`.
    pub tol: f64,
    /// Iteration cap of the picard sampler (reaching it is `PICARDIFF_NOT_CONVERGED`); 0 = the
    /// number of steps, which always suffices.
    pub max_iters: usize,
    /// Block length of the blocks sampler in the schedule's time; 0 = 100 timesteps (discrete) or
    /// 1 (continuous).
    pub block_len: f64,
    /// Picard iterations per block K; 0 = the longest block's length, which always suffices. A
    /// block still above `tol` > 0 after K iterations is `PICARDIFF_NOT_CONVERGED`.
    pub iters: usize,
    /// Picard update form: "scan" or "drift". Default "drift" with the final-sample stop, else
    /// "scan".
    pub picard_form: *const c_char,
    /// Blocks only: non-zero runs PIADM-ODE's Langevin corrector after each block.
    pub corrector: u32,
    /// Corrector friction γ; 0 = 2.
    pub corrector_gamma: f64,
    /// Corrector duration; 0 = 1.
    pub corrector_time: f64,
    /// Corrector steps M; 0 = 16.
    pub corrector_steps: usize,
    /// Corrector Picard iterations; 0 = 16.
    pub corrector_iters: usize,
    /// Samples per run; 0 = 1.
    pub batch: usize,
    /// Philox seed of x_T and the step noise.
    pub seed: u64,
    /// Global index of the batch's first sample: runs with sample0 = 0, batch 8 and sample0 = 8,
    /// batch 8 give the same samples as one run of batch 16. Default 0.
    pub sample0: u32,
    /// Flow, "diffusers" grid: diffusers' `shift` s (σ' = sσ/(1 + (s − 1)σ)); 0 = 1 (no shift).
    pub shift: f64,
    /// Anderson acceleration of the picard and blocks samplers with this history (2 to 5; CPU
    /// only); 0 = off (the default).
    pub anderson: u32,
    /// Picard and blocks: also stop once the last point's RMS change per element in one
    /// iteration is at most this for every sample, in the samples' units (counted from the
    /// second iteration that reaches the last point); 0 = the default: 1e-3 for picard when `tol`
    /// is negative (not given) and the window holds every step, else off. Negative is an error.
    pub final_tol: f64,
}

impl Default for picardiff_sampler_config {
    /// Every setting "default" (NULL strings, zeros, negative η and τ).
    fn default() -> Self {
        picardiff_sampler_config {
            schedule: std::ptr::null(),
            train_steps: 0,
            steps: 0,
            spacing: std::ptr::null(),
            horizon: 0.0,
            t_end: 0.0,
            grid: std::ptr::null(),
            kappa: 0.0,
            rule: std::ptr::null(),
            eta: -1.0,
            sampler: std::ptr::null(),
            window: 0,
            tol: -1.0,
            max_iters: 0,
            block_len: 0.0,
            iters: 0,
            picard_form: std::ptr::null(),
            corrector: 0,
            corrector_gamma: 0.0,
            corrector_time: 0.0,
            corrector_steps: 0,
            corrector_iters: 0,
            batch: 0,
            seed: 0,
            sample0: 0,
            shift: 0.0,
            anderson: 0,
            final_tol: 0.0,
        }
    }
}

/// Writes the default configuration to `*config_out`: NULL strings, zero counts and lengths, η and
/// τ −1, i.e. a 100-step DDPM run of the auto sampler on "ddpm-linear", batch 1, seed 0.
///
/// # Safety
/// `config_out` must be valid for a write of a `picardiff_sampler_config`.
#[no_mangle]
pub unsafe extern "C" fn picardiff_sampler_config_default(
    config_out: *mut picardiff_sampler_config,
) -> picardiff_status {
    ffi_boundary!("picardiff_sampler_config_default", {
        let out = arg_out(config_out, "config_out")?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(picardiff_sampler_config::default()) };
        Ok(())
    })
}

/// A validated configuration: the config as a run spec, and its plan for a model that takes the
/// sampler's schedule (a mixture, a callback). A model with its own schedule (an MLP) or
/// scheduler (a Diffusion Policy) is planned again from the spec when it runs ([`Plan::for_model`]).
pub(crate) struct Plan {
    /// The config as the library's run specification, `None` where the config says "default".
    pub spec: RunSpec,
    /// The spec planned with the C ABI's fallbacks for a model that takes the sampler's schedule.
    pub base: SpecPlan,
    /// Samples per run.
    pub batch: usize,
}

/// Steps when the config gives none: the C ABI's fallback for a setting the library requires
/// (the CLI and Python ask for `steps`; a Diffusion Policy's config gives its own).
const FALLBACK_STEPS: usize = 100;
/// Schedule when the config gives none, for a model that takes the sampler's schedule.
const FALLBACK_SCHEDULE: ScheduleName = ScheduleName::DdpmLinear;

impl Plan {
    /// The run's plan for `model` ([`plan_for`]).
    pub fn for_model(&self, model: ModelRun<'_>, output: ModelOutput) -> crate::Result<SpecPlan> {
        plan_for(&self.spec, model, output)
    }
}

/// `spec` planned for `model`, with the C ABI's fallbacks (schedule ddpm-linear, rule ddpm, or
/// euler on flow, 100 steps) for what the library requires and the config leaves unset.
fn plan_for(spec: &RunSpec, model: ModelRun<'_>, output: ModelOutput) -> crate::Result<SpecPlan> {
    let mut spec = spec.clone();
    if !matches!(model, ModelRun::Policy(_)) {
        if matches!(model, ModelRun::AnySchedule) {
            spec.schedule = spec.schedule.or(Some(FALLBACK_SCHEDULE));
        }
        let flow = match model {
            ModelRun::Trained { schedule, .. } => schedule == ScheduleName::Flow,
            _ => spec.schedule == Some(ScheduleName::Flow),
        };
        let rule = if flow {
            RuleName::Euler
        } else {
            RuleName::Ddpm
        };
        spec.rule = spec.rule.or(Some(rule));
        if spec.grid != Some(GridName::Paper) {
            spec.steps = spec.steps.or(Some(FALLBACK_STEPS));
        }
    }
    spec.plan(model, output)
}

/// A string field as a named choice (NULL: not given).
///
/// # Safety
/// `p` must be NULL or NUL-terminated.
unsafe fn choice<T: std::str::FromStr<Err = crate::Error>>(
    p: *const c_char,
    name: &str,
) -> Result<Option<T>, FfiError> {
    // SAFETY: the caller's contract.
    match unsafe { opt_str(p, name) }? {
        None => Ok(None),
        Some(s) => Ok(Some(s.parse()?)),
    }
}

/// `Some(v)` unless `v` is the config's "default" zero.
fn given<T: PartialEq + Default>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// The config as a run spec (zeros, NULLs and negative η/τ: not given).
///
/// # Safety
/// The string fields of `c` must be NULL or NUL-terminated.
pub(crate) unsafe fn spec_of(c: &picardiff_sampler_config) -> Result<RunSpec, FfiError> {
    // SAFETY: every `choice` call reads a string field of `c`, NULL or NUL-terminated by the
    // caller's contract.
    unsafe {
        Ok(RunSpec {
            schedule: choice(c.schedule, "schedule")?,
            train_steps: given(c.train_steps),
            steps: given(c.steps),
            spacing: choice(c.spacing, "spacing")?,
            horizon: given(c.horizon),
            t_end: given(c.t_end),
            grid: choice(c.grid, "grid")?,
            kappa: given(c.kappa),
            rule: choice(c.rule, "rule")?,
            eta: (c.eta >= 0.0 || c.eta.is_nan()).then_some(c.eta),
            sampler: choice(c.sampler, "sampler")?,
            window: given(c.window),
            tol: (c.tol >= 0.0 || c.tol.is_nan()).then_some(c.tol),
            max_iters: given(c.max_iters),
            block_len: given(c.block_len),
            iters: given(c.iters),
            picard_form: choice(c.picard_form, "picard_form")?,
            corrector: c.corrector != 0,
            corrector_gamma: given(c.corrector_gamma),
            corrector_time: given(c.corrector_time),
            corrector_steps: given(c.corrector_steps),
            corrector_iters: given(c.corrector_iters),
            batch: given(c.batch),
            seed: Some(c.seed),
            sample0: Some(c.sample0),
            shift: given(c.shift),
            anderson: given(c.anderson).map(|m| m as usize),
            final_tol: given(c.final_tol),
            ..RunSpec::default()
        })
    }
}

/// Validates `c` into a [`Plan`], with the library's defaults and checks.
///
/// # Safety
/// The string fields of `c` must be NULL or NUL-terminated.
pub(crate) unsafe fn plan(c: &picardiff_sampler_config) -> Result<Plan, FfiError> {
    // SAFETY: forwarded contract.
    let spec = unsafe { spec_of(c) }?;
    // The process's natural output (the run checks the model's own).
    let natural = match spec.schedule {
        Some(ScheduleName::Flow) => ModelOutput::Velocity,
        _ => ModelOutput::Epsilon,
    };
    let base = plan_for(&spec, ModelRun::AnySchedule, natural)?;
    Ok(Plan {
        batch: spec.batch.unwrap_or(1),
        base,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default config is the library's default spec: every setting "not given" (seed and
    /// sample0 are plain numbers in C, 0 like the library's defaults), and its plan is the
    /// library's plan of the C fallbacks (ddpm-linear, ddpm, 100 steps) with nothing else set.
    #[test]
    fn the_default_config_is_the_default_spec() {
        // SAFETY: the default config's strings are NULL.
        let p = unsafe { plan(&picardiff_sampler_config::default()) }.unwrap();
        let want = RunSpec {
            seed: Some(crate::defaults::SEED),
            sample0: Some(0),
            ..RunSpec::default()
        };
        assert_eq!(p.spec, want);
        let lib = RunSpec {
            schedule: Some(FALLBACK_SCHEDULE),
            rule: Some(RuleName::Ddpm),
            steps: Some(FALLBACK_STEPS),
            ..RunSpec::default()
        }
        .plan(ModelRun::AnySchedule, ModelOutput::Epsilon)
        .unwrap();
        assert_eq!(p.base.kind, lib.kind);
        assert_eq!(p.base.settings, lib.settings);
        assert_eq!(p.base.sampler_settings, lib.sampler_settings);
        assert_eq!(p.batch, 1);
    }
}
