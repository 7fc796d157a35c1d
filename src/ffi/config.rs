//! `picardiff_sampler_config`: every sampler setting in one plain struct, and its validation into
//! the library's schedule, grid, rule and sampler kind.

use std::ffi::c_char;

use super::args::{arg_out, opt_str};
use super::status::{ffi_boundary, picardiff_status, FfiError};
use crate::backend::{PicardForm, WindowPlan};
use crate::sampler::{block_ends, sufficient_block_iters, Corrector, SamplerKind};
use crate::schedule::{
    FlowShift, Grid, ModelOutput, Schedule, Spacing, StepRule, StepTable, DEFAULT_TRAIN_STEPS,
};

use crate::defaults::{
    BLOCK_LEN_CONTINUOUS as DEFAULT_BLOCK_LEN_CONTINUOUS,
    BLOCK_LEN_DISCRETE as DEFAULT_BLOCK_LEN_DISCRETE, KAPPA as DEFAULT_KAPPA,
    T_END as DEFAULT_T_END,
};
/// Default steps (the CLI has none; 100 is a common DDPM/DDIM inference length).
const DEFAULT_STEPS: usize = 100;

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
    /// Sampling steps N (ignored by the "paper" grid); 0 = 100.
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
    /// Sampler: "sequential", "picard" (sliding window) or "blocks" (PIADM). Default "picard".
    pub sampler: *const c_char,
    /// Picard window length p (clamped to the steps); 0 = all steps.
    pub window: usize,
    /// Convergence tolerance τ (picard, blocks); negative = the rule's default (0.1 for stochastic
    /// rules, 1e-3 for deterministic ones, ParaDiGMS'). With blocks, 0 runs exactly `iters`.
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
    /// Picard update form: "scan" or "drift". Default "scan".
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
        }
    }
}

/// Writes the default configuration to `*config_out`: NULL strings, zero counts and lengths, η and
/// τ −1, i.e. a 100-step DDPM run of the picard sampler on "ddpm-linear", batch 1, seed 0.
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

/// A validated configuration.
pub(crate) struct Plan {
    pub schedule: Schedule,
    pub grid: Grid,
    pub rule: StepRule,
    pub kind: SamplerKind,
    pub batch: usize,
    pub seed: u64,
    pub sample0: u32,
    /// True when the config left τ at its default (the rule's): a model that brings its own rule
    /// (a Diffusion Policy) then uses that rule's default.
    pub default_tol: bool,
}

fn or(v: usize, default: usize) -> usize {
    if v == 0 {
        default
    } else {
        v
    }
}

fn or_f(v: f64, default: f64) -> f64 {
    if v == 0.0 {
        default
    } else {
        v
    }
}

fn parse_form(name: &str) -> Result<PicardForm, FfiError> {
    match name {
        "scan" => Ok(PicardForm::Scan),
        "drift" => Ok(PicardForm::Drift),
        o => Err(crate::Error::config(
            "picard_form",
            format!("unknown form `{o}` (expected scan or drift)"),
        )
        .into()),
    }
}

/// Validates `c` into a [`Plan`], with the CLI's defaults and checks.
///
/// # Safety
/// The string fields of `c` must be NULL or NUL-terminated.
pub(crate) unsafe fn plan(c: &picardiff_sampler_config) -> Result<Plan, FfiError> {
    // SAFETY (all `opt_str` calls): the caller's contract on the string fields.
    let s = |p: *const c_char, name: &str, default: &'static str| -> Result<String, FfiError> {
        Ok(unsafe { opt_str(p, name) }?.unwrap_or(default).to_string())
    };
    let schedule = Schedule::from_name(
        &s(c.schedule, "schedule", "ddpm-linear")?,
        or(c.train_steps, DEFAULT_TRAIN_STEPS),
    )?;
    let eta = (c.eta >= 0.0 || c.eta.is_nan()).then_some(c.eta);
    let default_rule = if schedule.is_flow() { "euler" } else { "ddpm" };
    let rule = StepRule::from_name(&s(c.rule, "rule", default_rule)?, eta)?;
    let steps = or(c.steps, DEFAULT_STEPS);
    let grid = if schedule.is_flow() {
        match s(c.grid, "grid", "diffusers")?.as_str() {
            "diffusers" => Grid::flow(&schedule, steps, FlowShift::Static(or_f(c.shift, 1.0)))?,
            "uniform" => Grid::flow_uniform(&schedule, steps)?,
            o => {
                return Err(crate::Error::config(
                    "grid",
                    format!("unknown grid `{o}` for flow (expected diffusers or uniform)"),
                )
                .into())
            }
        }
    } else if schedule.is_discrete() {
        let spacing: Spacing = s(c.spacing, "spacing", "leading")?.parse()?;
        Grid::discrete(&schedule, steps, spacing)?
    } else {
        let horizon = or_f(c.horizon, if schedule == Schedule::Ou { 10.0 } else { 1.0 });
        let t_end = or_f(c.t_end, DEFAULT_T_END);
        match s(c.grid, "grid", "uniform")?.as_str() {
            "uniform" => Grid::uniform(&schedule, steps, horizon, t_end)?,
            "paper" => Grid::paper(&schedule, or_f(c.kappa, DEFAULT_KAPPA), horizon, t_end)?,
            o => {
                return Err(crate::Error::config(
                    "grid",
                    format!("unknown grid `{o}` (expected uniform or paper)"),
                )
                .into())
            }
        }
    };
    // Rejects grids on which the rule's table is not finite, before anything runs (with the
    // process's natural output; the run checks the model's own).
    let natural = if schedule.is_flow() {
        ModelOutput::Velocity
    } else {
        ModelOutput::Epsilon
    };
    StepTable::new(&grid, rule, natural)?;
    let n = grid.steps();
    let tol = if c.tol < 0.0 {
        rule.default_tolerance()
    } else {
        c.tol
    };
    let form = parse_form(&s(c.picard_form, "picard_form", "scan")?)?;
    let max_iters = (c.max_iters > 0).then_some(c.max_iters);
    let kind = match s(c.sampler, "sampler", "picard")?.as_str() {
        "sequential" => SamplerKind::Sequential,
        "picard" => {
            let window = or(c.window, n).min(n);
            WindowPlan::sliding(n, window, tol, form, max_iters)?;
            SamplerKind::Picard {
                window,
                tol,
                max_iters,
                form,
            }
        }
        "blocks" => {
            let default_len = if schedule.is_discrete() || schedule.is_flow() {
                DEFAULT_BLOCK_LEN_DISCRETE
            } else {
                DEFAULT_BLOCK_LEN_CONTINUOUS
            };
            let block_len = or_f(c.block_len, default_len);
            let ends = block_ends(&grid, block_len)?;
            let iters = or(c.iters, sufficient_block_iters(&ends));
            WindowPlan::blocks(n, ends, iters, tol, form)?;
            let corrector = if c.corrector != 0 {
                let d = Corrector::default();
                let k = Corrector {
                    gamma: or_f(c.corrector_gamma, d.gamma),
                    duration: or_f(c.corrector_time, d.duration),
                    steps: or(c.corrector_steps, d.steps),
                    iters: or(c.corrector_iters, d.iters),
                };
                k.validate()?;
                Some(k)
            } else {
                None
            };
            SamplerKind::Blocks {
                block_len,
                iters,
                tol,
                form,
                corrector,
            }
        }
        o => {
            return Err(crate::Error::config(
                "sampler",
                format!("unknown sampler `{o}` (expected sequential, picard or blocks)"),
            )
            .into())
        }
    };
    Ok(Plan {
        schedule,
        grid,
        rule,
        kind,
        batch: or(c.batch, 1),
        seed: c.seed,
        sample0: c.sample0,
        default_tol: c.tol < 0.0,
    })
}
