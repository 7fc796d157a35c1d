//! The MLP forward on CUDA: time per evaluation and effective TFLOP/s (2·rows·Σ in·out over the
//! layers' GEMMs) for the MLP files named in `PICARDIFF_BENCH_MLP` (comma-separated; e.g. made by
//! `tools/make_bench_models.py`), at 1 row (the sequential sampler's GEMV shape) and 1001 rows (a full
//! 1000-point Picard ring). Compare with `tools/torch_linear_bench.py` in the same run to tell our
//! cuBLAS use from the model's size. Skips without a CUDA device or without files.
//! Timing: `iter_custom`, enqueue `iters` evaluations, synchronise the stream, read the clock.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use picardiff::backend::Backend;
use picardiff::model::MlpModel;
use picardiff::prelude::*;

#[path = "cuda_common/mod.rs"]
mod cuda_common;
use cuda_common::{bench_mlp_files, device_or_skip, sync_timed};

fn main() {
    let Some(be) = device_or_skip("cuda_mlp") else {
        return;
    };
    let Some(files) = bench_mlp_files("cuda_mlp") else {
        return;
    };
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("cuda_mlp_forward");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    for path in &files {
        let model = match MlpModel::from_file(path.as_ref()) {
            Ok(m) => m,
            Err(e) => {
                println!("cuda_mlp: {path}: {e}");
                continue;
            }
        };
        let cfg = model.config().clone();
        let (d, h) = (cfg.dim, cfg.hidden);
        let per_row: u64 = 2 * (d * h + 2 * cfg.layers * h * h + h * d) as u64;
        for rows in [1usize, 1001] {
            let mut ws = model.workspace(&be, rows).unwrap();
            let times: Vec<f64> = (0..1000).rev().map(f64::from).collect();
            model.prepare_times(&be, &mut ws, &times).unwrap();
            let x = be.upload(&vec![0.1f32; rows * d]).unwrap();
            let t = be
                .upload(&(0..rows).map(|r| (r % 1000) as f32).collect::<Vec<_>>())
                .unwrap();
            let mut out = be.alloc(rows * d).unwrap();
            group.throughput(Throughput::Elements(per_row * rows as u64));
            group.bench_function(BenchmarkId::new(format!("h{h}_flop"), rows), |b| {
                b.iter_custom(|iters| {
                    sync_timed(&be, iters, || {
                        model.eval(&be, &mut ws, &x, &t, 0, rows, &mut out).unwrap();
                    })
                })
            });
        }
    }
    group.finish();
    c.final_summary();
}
