//! The one definition of each default of a run that the front ends share: the run specification
//! ([`crate::spec::RunSpec::plan`]) applies them, the CLI's help and the C ABI's and Python's docs
//! quote them from here.

use crate::backend::PicardForm;
use crate::schedule::Spacing;
use crate::spec::{DeviceName, SamplerName};

/// Sampler when not given.
pub const SAMPLER: SamplerName = SamplerName::Auto;
/// Picard window when not given (at most the steps). On 1000-step grids it takes as many rounds as a
/// window over all steps with a quarter of the model rows: DDPM τ = 0.1 on the H = 1024 MLP, 37 and
/// 37 (`docs/perf/2026-11-26-h200-run8/`); on the 64-D mixture (`picardiff compare --window`) DDPM
/// τ = 0.1 37 and 37, DDIM τ = 1e-3 26 and 27.
pub const WINDOW: usize = 256;
/// Picard update form: the exact affine scan, for every rule. The measured frontier
/// (`docs/perf/2026-12-04-frontier.md`) shows ParaDiGMS' drift form reaching the same 90th-percentile
/// deviation in about half the rounds for deterministic rules (DDIM-100 at τ = 1e-3: 11 and 14
/// rounds against 23 and 22), but drift is not the sequential sampler at τ = 0 (only within
/// rounding) and for stochastic rules it leaves far-off samples on a trained MLP (DDPM-100, τ = 0.1:
/// max deviation 2.0 against 6.3e-3). Exactness first: scan is the default, `--picard-form drift`
/// the documented choice for fewer rounds with deterministic rules.
pub const PICARD_FORM: PicardForm = PicardForm::Scan;
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
