//! Measurement and test hooks, compiled only with the `bench-internals` feature. Not part of the
//! library's API and off by default: this package's own tests and benches turn it on through a
//! dev-dependency on the package itself (`Cargo.toml`), so `cargo test` and `cargo bench` see these
//! items while a dependent crate (or `cargo build`) does not.
//!
//! - [`CpuChecked`]: the CPU backend's sequential step and Picard advance with their non-finite
//!   check compiled in or out (`benches/nonfinite_check.rs` measures what the check costs).
//! - [`overflow_checks`]: whether the library was compiled with integer overflow checks (the hostile
//!   tests rely on them: `tests/hardening.rs`).
//! - `set_sweep_path` / `SweepPath` (with `cuda`): force one Picard sweep kernel for the calling
//!   thread's launches (`benches/cuda_picard.rs`, `tests/gpu_kernels.rs`).

use crate::backend::cpu::{CpuBackend, CpuTables};
use crate::backend::{Noise, Shape, WindowPlan, WindowState};
use crate::error::Result;

#[cfg(feature = "cuda")]
pub use crate::backend::cuda::launch::{set_sweep_path, SweepPath};

/// Whether this build of the library panics on integer overflow (Cargo's `overflow-checks`, on
/// with debug assertions in the dev and test profiles). Overflows once inside `catch_unwind`: with
/// checks on, the panic's message lands in the caller's (captured) test output.
pub fn overflow_checks() -> bool {
    std::panic::catch_unwind(|| std::hint::black_box(u32::MAX) + std::hint::black_box(1)).is_err()
}

/// [`CpuBackend`]'s fused operations with the non-finite check as a compile-time switch
/// (`CHECK = true` is what the library runs; `false` only measures the check's cost).
pub trait CpuChecked {
    /// [`Backend::step`](crate::backend::Backend::step) with (`CHECK`) or without its check; without,
    /// a NaN state goes undetected.
    #[allow(clippy::too_many_arguments)]
    fn step_checked<const CHECK: bool>(
        &self,
        tab: &CpuTables,
        j: usize,
        shape: Shape,
        x: &mut [f32],
        x_off: usize,
        out: &[f32],
        out_off: usize,
        noise: Noise<'_, CpuBackend>,
    ) -> Result<()>;

    /// [`Backend::picard_advance`](crate::backend::Backend::picard_advance) with (`CHECK`) or without
    /// its check; without, a NaN error reads as converged.
    #[allow(clippy::too_many_arguments)]
    fn picard_advance_checked<const CHECK: bool>(
        &self,
        plan: &WindowPlan,
        tab: &CpuTables,
        w: &mut WindowState,
        shape: Shape,
        x: &mut [f32],
        times: &mut [f32],
        err: &[f32],
    ) -> Result<()>;
}

impl CpuChecked for CpuBackend {
    fn step_checked<const CHECK: bool>(
        &self,
        tab: &CpuTables,
        j: usize,
        shape: Shape,
        x: &mut [f32],
        x_off: usize,
        out: &[f32],
        out_off: usize,
        noise: Noise<'_, CpuBackend>,
    ) -> Result<()> {
        CpuBackend::step_checked::<CHECK>(self, tab, j, shape, x, x_off, out, out_off, noise)
    }

    fn picard_advance_checked<const CHECK: bool>(
        &self,
        plan: &WindowPlan,
        tab: &CpuTables,
        w: &mut WindowState,
        shape: Shape,
        x: &mut [f32],
        times: &mut [f32],
        err: &[f32],
    ) -> Result<()> {
        CpuBackend::picard_advance_checked::<CHECK>(self, plan, tab, w, shape, x, times, err)
    }
}
