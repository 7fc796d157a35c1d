//! The one definition of each default of a run that the front ends share (the CLI, the C ABI and
//! the Python module take them from here; the C ABI keeps "window 0 = all steps" for its existing
//! callers).

/// Picard window when not given (at most the steps). On 1000-step grids it takes as many rounds as a
/// window over all steps with a quarter of the model rows: DDPM τ = 0.1 on the H = 1024 MLP, 37 and
/// 37 (`docs/perf/2026-11-26-h200-run8/`); on the 64-D mixture (`picardiff compare --window`) DDPM
/// τ = 0.1 37 and 37, DDIM τ = 1e-3 26 and 27.
pub const WINDOW: usize = 256;
/// Early-stopping time δ of the continuous schedules (`--t-end`; η is DDIM's stochasticity).
pub const T_END: f64 = 1e-3;
/// Step scale κ of the paper grid.
pub const KAPPA: f64 = 0.05;
/// Block length of continuous schedules, in their time.
pub const BLOCK_LEN_CONTINUOUS: f64 = 1.0;
/// Block length of discrete schedules, in timesteps.
pub const BLOCK_LEN_DISCRETE: f64 = 100.0;
/// The horizon T of a continuous schedule: 10 for `ou`, 1 otherwise.
pub fn horizon(schedule: &crate::schedule::Schedule) -> f64 {
    match schedule {
        crate::schedule::Schedule::Ou => 10.0,
        _ => 1.0,
    }
}
/// Iterations per block when not given: the longest block's length, which always suffices
/// ([`crate::sampler::sufficient_block_iters`]).
pub use crate::sampler::sufficient_block_iters as block_iters;
