//! The device helper of the GPU tests: the CUDA backend, or a loud skip when there is no device
//! (a panic instead when `REQUIRE_GPU=1`, so a GPU run cannot pass by skipping).
#![allow(dead_code)]

use std::io::Write;

pub mod ops;

use picardiff::backend::cuda::CudaBackend;

/// Device 0, or `None` after printing `skipped: no CUDA device (...)` straight to stderr (not
/// captured by the test harness). Panics when `REQUIRE_GPU=1`.
pub fn device(test: &str) -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(b) => Some(b),
        Err(e) => {
            if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("REQUIRE_GPU=1 but the CUDA backend does not open: {e}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "skipped: no CUDA device ({e}) -- {test} did not run; set REQUIRE_GPU=1 to fail instead"
            );
            None
        }
    }
}

/// Deterministic values in [-1, 1) (xorshift), for test inputs.
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Asserts `a` and `b` have identical bits (NaN payloads included), naming the first difference.
pub fn assert_bits_eq(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
        panic!("{what}: first difference at {i}: cpu {} gpu {}", a[i], b[i]);
    }
}

/// max |a − b| / max(1, |a|).
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(1.0))
        .fold(0.0, f32::max)
}

/// Prints a line straight to stderr, past the test harness's capture, so that GPU reports (rounds,
/// differences) appear in the GPU run's log even for passing tests.
pub fn report(msg: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr(), "{}", msg.as_ref());
}
