//! Set-up and timing shared by the CUDA benches (`#[path]`-included; not a bench target itself).

use std::time::{Duration, Instant};

use picardiff::backend::cuda::CudaBackend;

/// Device 0, or `None` after printing that `bench` is skipped (no device).
pub fn device_or_skip(bench: &str) -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(be) => Some(be),
        Err(e) => {
            println!("{bench}: skipped: no CUDA device ({e})");
            None
        }
    }
}

/// The MLP files of `PICARDIFF_BENCH_MLP` (comma-separated), or `None` after printing that `bench`
/// is skipped (unset).
#[allow(dead_code)] // cuda_picard has no MLP benchmarks
pub fn bench_mlp_files(bench: &str) -> Option<Vec<String>> {
    let files = std::env::var("PICARDIFF_BENCH_MLP").unwrap_or_default();
    if files.is_empty() {
        println!("{bench}: skipped: set PICARDIFF_BENCH_MLP to MLP .safetensors files");
        return None;
    }
    Some(files.split(',').map(str::to_string).collect())
}

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
