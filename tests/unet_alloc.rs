//! A Diffusion Policy evaluation keeps no memory once its workspace exists: the U-Net's own code
//! allocates nothing per evaluation, and the only allocations are matrixmultiply's transient
//! packing buffers (one per GEMM call, at most kc × (mc + nc) floats, freed before it returns).
//! Alone in its binary: it counts every heap byte of the process.

mod alloc_count;

use std::path::Path;
use std::sync::atomic::Ordering;

use alloc_count::{LARGEST, LIVE};

use picardiff::model::DiffusionPolicy;
use picardiff::prelude::*;

#[test]
fn unet_eval_keeps_no_memory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lerobot/film_scale_k5");
    let p = DiffusionPolicy::from_dir(&dir).unwrap();
    let be = CpuBackend;
    let (rows, batch) = (300, 3); // more than one chunk of rows
    let dim = ScoreModel::<CpuBackend>::dim(&p);
    let mut ws = ScoreModel::<CpuBackend>::workspace(&p, &be, rows).unwrap();
    p.set_condition(&be, &mut ws, &vec![0.1; batch * 16], batch)
        .unwrap();
    let x = vec![0.3f32; rows * dim];
    let times: Vec<f32> = (0..rows).map(|r| (r % 100) as f32).collect();
    let mut out = vec![0f32; rows * dim];
    p.eval(&be, &mut ws, &x, &times, 0, rows, &mut out).unwrap(); // warm-up (rayon's pool)
    let before = LIVE.load(Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    for _ in 0..3 {
        p.eval(&be, &mut ws, &x, &times, 0, rows, &mut out).unwrap();
    }
    assert_eq!(
        LIVE.load(Ordering::Relaxed),
        before,
        "an evaluation kept memory"
    );
    // matrixmultiply's packing buffer: kc (256) × (mc + nc) f32 at most, well under 8 MiB.
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 8 << 20,
        "an evaluation allocated {largest} bytes at once"
    );
    assert!(out.iter().all(|v| v.is_finite()));
}
