//! Timing shared by the CUDA benches (`#[path]`-included; not a bench target itself).

use std::time::{Duration, Instant};

use picardiff::backend::cuda::CudaBackend;

/// Runs `f` `iters` times between two stream synchronisations and returns the elapsed time (GPU work
/// included: the launches are asynchronous).
pub fn sync_timed(be: &CudaBackend, iters: u64, mut f: impl FnMut()) -> Duration {
    be.synchronize().unwrap();
    let t0 = Instant::now();
    for _ in 0..iters {
        f();
    }
    be.synchronize().unwrap();
    t0.elapsed()
}
