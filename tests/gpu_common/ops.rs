//! Helpers of the `Ops` GPU tests (`tests/gpu_ops.rs`, `tests/gpu_ops_pointwise.rs`): host
//! tensors, offsets, downloads and the tolerance check.
#![allow(dead_code)]

use std::sync::Arc;

use picardiff::backend::cuda::CudaBackend;
use picardiff::backend::ops::HostTensor;
use picardiff::backend::Backend;

use super::{max_rel_diff, report};

/// Where inputs and outputs start inside their buffers (an offset that is not a multiple of 4).
pub const OFF: usize = 5;

/// A CUDA buffer.
pub type Buf = <CudaBackend as Backend>::Buf;

/// A host tensor of `v`.
pub fn host(v: Vec<f32>) -> HostTensor {
    Arc::from(v)
}

/// The whole buffer, downloaded.
pub fn down(be: &CudaBackend, buf: &Buf) -> Vec<f32> {
    let mut v = vec![0f32; buf.len()];
    be.download(buf, 0, &mut v).unwrap();
    v
}

/// `v` behind OFF leading values (so every op reads at an offset).
pub fn padded(v: &[f32]) -> Vec<f32> {
    let mut p = vec![7.0f32; OFF];
    p.extend_from_slice(v);
    p
}

/// Asserts max |cpu − gpu| / max(1, |cpu|) ≤ `tol`, reporting it.
pub fn check(what: &str, cpu: &[f32], gpu: &[f32], tol: f32) {
    let d = max_rel_diff(cpu, gpu);
    report(format!("{what}: max rel diff {d:e}"));
    assert!(d <= tol, "{what}: max rel diff {d:e} above {tol:e}");
}
