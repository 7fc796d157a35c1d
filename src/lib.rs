//! picardiff: parallel-in-time diffusion sampling with Picard iterations.
//!
//! A diffusion sampler is a chain of N dependent steps, each a call of a score network. Picard
//! iteration guesses the whole trajectory and refines every point of a window at once, one batched
//! model call per iteration, until it reproduces the sequential result. picardiff implements the
//! sliding window of ParaDiGMS (Shih et al., NeurIPS 2023) and the blocks of PIADM (Chen, Ren, Ying,
//! Rotskoff, NeurIPS 2024) on a pure-Rust CPU backend and (feature `cuda`) a CUDA backend.
//!
//! Layers: [`schedule`] (host-side tables) → [`sampler`] (generic over [`backend::Backend`]) →
//! [`model`] (score networks) and [`backend`] (buffers and fused kernels).
//!
//! ```
//! use picardiff::prelude::*;
//! let schedule = Schedule::from_name("ddpm-linear", 1000).unwrap();
//! let grid = Grid::discrete(&schedule, 100, Spacing::Leading).unwrap();
//! let mixture = Mixture::new(vec![0.5, 0.5], vec![vec![-2.0, 0.0], vec![2.0, 0.0]], vec![0.3, 0.3]).unwrap();
//! let model = GmmModel::new(mixture, schedule);
//! let rule = StepRule::from_name("ddpm", None).unwrap();
//! let picard = SamplerKind::Picard { window: 100, tol: 0.1, max_iters: None, form: PicardForm::Scan, anderson: None, final_tol: None };
//! let inputs = RunInputs { batch: 4, seed: 7, ..Default::default() };
//! let out = run(&CpuBackend, &model, &grid, rule, &picard, &inputs).unwrap();
//! assert_eq!(out.samples.len(), 4 * 2);
//! assert!(out.stats.rounds < 100);
//! ```

pub mod backend;
#[cfg(feature = "bench-internals")]
pub mod bench_internals;
pub mod defaults;
pub mod device;
pub mod error;
pub mod ffi;
pub mod field;
pub mod files;
pub mod metrics;
pub mod model;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod spec;
pub mod types;

pub use error::{Error, Result};
pub use field::Field;

/// The common imports.
pub mod prelude {
    pub use crate::backend::cpu::CpuBackend;
    #[cfg(feature = "cuda")]
    pub use crate::backend::cuda::CudaBackend;
    pub use crate::backend::{Backend, PicardForm};
    pub use crate::error::{Error, Result};
    pub use crate::model::{GmmModel, Mixture, ScoreModel};
    pub use crate::sampler::{run, RunInputs, RunOutput, RunStats, SamplerKind};
    pub use crate::schedule::{
        FlowShift, Grid, ModelOutput, Schedule, Spacing, StepRule, StepTable,
    };
}
