//! The one definition of each default of a run that the front ends share: the run specification
//! ([`crate::spec::RunSpec::plan`]) applies them, the CLI's help and the C ABI's and Python's docs
//! quote them from here.

use crate::backend::PicardForm;
use crate::schedule::{Spacing, StepRule};
use crate::spec::{DeviceName, SamplerName};

/// Sampler when not given.
pub const SAMPLER: SamplerName = SamplerName::Auto;
/// Picard window when not given (at most the steps). On 1000-step grids it takes as many rounds as a
/// window over all steps with a quarter of the model rows: DDPM τ = 0.1 on the H = 1024 MLP, 37 and
/// 37 (`docs/perf/2026-11-26-h200-run8/`); on the 64-D mixture (`picardiff compare --window`) DDPM
/// τ = 0.1 37 and 37, DDIM τ = 1e-3 26 and 27.
pub const WINDOW: usize = 256;
/// Picard update form when the per-step test stops the run (`tol` given, or a window shorter than
/// the grid): the exact affine scan, for every rule. At τ = 0 it is the sequential sampler bit for
/// bit; ParaDiGMS' drift form is equal only within rounding, and at τ = 0.1 with a stochastic rule
/// it leaves far-off samples on a trained MLP (DDPM-100: max deviation 2.0 against 6.3e-3,
/// `docs/perf/2026-12-04-frontier.md`).
pub const PICARD_FORM: PicardForm = PicardForm::Scan;
/// Picard update form when the final samples stop the run ([`FINAL_TOL`]): ParaDiGMS' drift,
/// which reaches the last point in about half the scan's rounds (`docs/perf/2026-12-07-defaults.md`).
pub const PICARD_FORM_FINAL_STOP: PicardForm = PicardForm::Drift;
/// The final-sample stop's tolerance (RMS change per element of the last point in one iteration,
/// data units) when `tol` is not given and the window holds every step: the run is then drift at
/// τ = 0 stopped by the final samples, the best frontier point measured for every rule family on
/// grids of 10–100 steps (batch 16, the 64-D mixture and the mix64d MLP: DDIM-100 9 and 12 rounds,
/// DDPM-100 23 and 22, DPM-Solver++(2M)-20 8 and 11, flow Euler-10 7, every sample within 5e-4 of
/// sequential, against 25/25, 33/31, 10/14 and 9 rounds of the scan at the per-step τ;
/// `docs/perf/2026-12-07-final-stop/`). Longer grids keep the per-step test: at τ = 0 a sliding
/// window gains one exact point per round (DDPM-1000, window 256: 54 rounds against 41).
pub const FINAL_TOL: f64 = 1e-3;
/// ParaDiGMS' tolerance τ for stochastic rules.
pub const TOL_STOCHASTIC: f64 = 0.1;
/// ParaDiGMS' tolerance τ for deterministic rules.
pub const TOL_DETERMINISTIC: f64 = 1e-3;
/// Timestep spacing of discrete schedules (diffusers' default).
pub const SPACING: Spacing = Spacing::Leading;
/// Early-stopping time δ of the continuous schedules (`--t-end`; η is DDIM's stochasticity).
pub const T_END: f64 = 1e-3;
/// Step scale κ of the paper grid.
pub const KAPPA: f64 = 0.05;
/// Horizon T of the `ou` schedule.
pub const HORIZON_OU: f64 = 10.0;
/// Horizon T of the other continuous schedules.
pub const HORIZON: f64 = 1.0;
/// Static shift s of diffusers' flow grid (1: none).
pub const SHIFT: f64 = 1.0;
/// Block length of continuous schedules, in their time.
pub const BLOCK_LEN_CONTINUOUS: f64 = 1.0;
/// Block length of discrete (and flow) schedules, in timesteps.
pub const BLOCK_LEN_DISCRETE: f64 = 100.0;
/// Philox seed.
pub const SEED: u64 = 0;
/// Backend of the CLI and Python (the C ABI's context names its own).
pub const DEVICE: DeviceName = DeviceName::Auto;

/// τ, the Picard form and the final-sample stop of a run, each the given one where given. With a
/// window holding every step (`holds_every_step`) and no τ given, the final samples stop the run:
/// drift ([`PICARD_FORM_FINAL_STOP`]) at τ = 0 with [`FINAL_TOL`]. Otherwise ParaDiGMS' per-step
/// test at the rule's τ ([`StepRule::default_tolerance`]) in the scan form ([`PICARD_FORM`]), with
/// no final stop (a given τ = 0 is then the sequential sampler bit for bit).
pub fn stopping(
    rule: StepRule,
    holds_every_step: bool,
    tol: Option<f64>,
    form: Option<PicardForm>,
    final_tol: Option<f64>,
) -> (f64, PicardForm, Option<f64>) {
    match tol {
        None if holds_every_step => (
            0.0,
            form.unwrap_or(PICARD_FORM_FINAL_STOP),
            Some(final_tol.unwrap_or(FINAL_TOL)),
        ),
        _ => (
            tol.unwrap_or_else(|| rule.default_tolerance()),
            form.unwrap_or(PICARD_FORM),
            final_tol,
        ),
    }
}

/// The horizon T of a continuous schedule: [`HORIZON_OU`] for `ou`, [`HORIZON`] otherwise.
pub fn horizon(schedule: &crate::schedule::Schedule) -> f64 {
    match schedule {
        crate::schedule::Schedule::Ou => HORIZON_OU,
        _ => HORIZON,
    }
}
/// Iterations per block when not given: the longest block's length, which always suffices
/// ([`crate::sampler::sufficient_block_iters`]).
pub use crate::sampler::sufficient_block_iters as block_iters;
