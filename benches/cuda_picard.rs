//! CUDA kernels: the fused Picard sweep's effective bandwidth (per element and window point it must
//! read X and O and write X: 12 bytes) beside a device-to-device copy moving the same bytes in the
//! same run, for p·B·D from 2^16 to 2^28; and the exact mixture score in evaluations per second.
//! Where `batch × dim < 2^16` the default (auto) sweep is the window-parallel scan kernel; the serial
//! kernel is then measured beside it (`ddim_scan_serial_kernel`). `cuda_picard_small`: one sweep of
//! the latency-bound small problem (1000-step DDPM, full window p = 1000, batch 1, D = 64) with each
//! kernel, in time per sweep.
//! The kernel is forced with `bench_internals::set_sweep_path` (feature `bench-internals`, on for
//! this package's benches).
//! Timing: `iter_custom`, enqueue `iters` launches, synchronise the stream, then read the clock.
//! Without a CUDA device it prints a skip and returns.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use picardiff::backend::cuda::CudaBackend;
use picardiff::backend::{Backend, Noise, PicardForm, Shape, WindowPlan};
use picardiff::bench_internals::{set_sweep_path, SweepPath};
use picardiff::prelude::*;

#[path = "cuda_common/mod.rs"]
mod cuda_common;
use cuda_common::{device_or_skip, sync_timed};

/// Window points of the sweep benchmark.
const WINDOW: usize = 64;

fn sweep(c: &mut Criterion, be: &CudaBackend) {
    let mut group = c.benchmark_group("cuda_picard_sweep");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let g = Grid::discrete(&s, 1000, Spacing::Leading).unwrap();
    let free = be.free_memory().unwrap_or(0);
    for log2 in [16u32, 20, 24, 26, 28] {
        let elems = 1usize << log2; // p · B · D
        let (batch, dim) = if log2 <= 20 {
            (1, elems / WINDOW)
        } else {
            (16, elems / WINDOW / 16)
        };
        let shape = Shape { batch, dim };
        let plan = WindowPlan::sliding(1000, WINDOW, 0.1, PicardForm::Scan, None).unwrap();
        let ring = plan.ring() * shape.slot_len();
        // x and out rings, the copy's source and destination (6 bytes per element-point each).
        let need = (2 * ring + 3 * elems) * 4;
        if need as f64 > 0.85 * free as f64 {
            println!("cuda_picard_sweep: skipping 2^{log2} elements ({need} bytes, {free} free)");
            continue;
        }
        let mut x = be.alloc(ring).unwrap();
        be.normal_fill(
            &mut x,
            0,
            Shape {
                batch: plan.ring() * batch,
                dim,
            },
            1,
            0,
            0,
            1,
        )
        .unwrap();
        let mut out = be.alloc(ring).unwrap();
        be.copy(&x, 0, &mut out, 0, ring).unwrap();
        let mut times = be.alloc(plan.ring() * batch).unwrap();
        let mut err = be.alloc(be.err_len(&plan, shape)).unwrap();
        group.throughput(Throughput::Bytes(elems as u64 * 12));
        let id = format!("2^{log2}_p{WINDOW}_b{batch}_d{dim}");
        let small = batch * dim < 1 << 16;
        for (rule, name, path) in [
            (StepRule::Ddim { eta: 0.0 }, "ddim_scan", SweepPath::Auto),
            (
                StepRule::Ddim { eta: 1.0 },
                "ddpm_philox_scan",
                SweepPath::Auto,
            ),
            (
                StepRule::Ddim { eta: 0.0 },
                "ddim_scan_serial_kernel",
                SweepPath::Serial,
            ),
        ] {
            if path == SweepPath::Serial && !small {
                continue; // auto already is the serial kernel
            }
            set_sweep_path(path);
            let table = StepTable::new(&g, rule, ModelOutput::Epsilon).unwrap();
            let tables = be.upload_tables(&table).unwrap();
            let w = be.window_new(&plan, &tables, &mut times, shape).unwrap();
            group.bench_function(BenchmarkId::new(name, &id), |bch| {
                bch.iter_custom(|iters| {
                    sync_timed(be, iters, || {
                        let noise = Noise::Philox {
                            seed: 1,
                            sample0: 0,
                        };
                        be.picard_sweep(&plan, &tables, &w, shape, &mut x, &out, noise, &mut err)
                            .unwrap();
                    })
                })
            });
            set_sweep_path(SweepPath::Auto);
        }
        // The same 12 bytes per element-point as a plain copy: 6 read + 6 written.
        let copy_len = elems * 6 / 4;
        let src = be.alloc(copy_len).unwrap();
        let mut dst = be.alloc(copy_len).unwrap();
        group.bench_function(BenchmarkId::new("dtod_copy_same_bytes", &id), |bch| {
            bch.iter_custom(|iters| {
                sync_timed(be, iters, || {
                    be.copy(&src, 0, &mut dst, 0, copy_len).unwrap();
                })
            })
        });
    }
    group.finish();
}

/// One sweep of the small, latency-bound problem: 1000-step DDPM (Philox noise), full window
/// p = 1000, batch 1, D = 64, with the serial and the window-parallel kernel (time per sweep).
fn sweep_small(c: &mut Criterion, be: &CudaBackend) {
    let mut group = c.benchmark_group("cuda_picard_small");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let g = Grid::discrete(&s, 1000, Spacing::Leading).unwrap();
    let (steps, window, shape) = (1000, 1000, Shape { batch: 1, dim: 64 });
    let plan = WindowPlan::sliding(steps, window, 0.1, PicardForm::Scan, None).unwrap();
    let ring = plan.ring() * shape.slot_len();
    let mut x = be.alloc(ring).unwrap();
    be.normal_fill(
        &mut x,
        0,
        Shape {
            batch: plan.ring(),
            dim: shape.dim,
        },
        1,
        0,
        0,
        1,
    )
    .unwrap();
    let mut out = be.alloc(ring).unwrap();
    be.copy(&x, 0, &mut out, 0, ring).unwrap();
    let mut times = be.alloc(plan.ring() * shape.batch).unwrap();
    let mut err = be.alloc(be.err_len(&plan, shape)).unwrap();
    let table = StepTable::new(&g, StepRule::Ddim { eta: 1.0 }, ModelOutput::Epsilon).unwrap();
    let tables = be.upload_tables(&table).unwrap();
    let w = be.window_new(&plan, &tables, &mut times, shape).unwrap();
    for (name, path) in [
        ("serial_kernel", SweepPath::Serial),
        ("window_parallel_kernel", SweepPath::Scan),
    ] {
        set_sweep_path(path);
        group.bench_function(
            BenchmarkId::new(name, "ddpm_p1000_b1_d64_per_sweep"),
            |bch| {
                bch.iter_custom(|iters| {
                    sync_timed(be, iters, || {
                        let noise = Noise::Philox {
                            seed: 1,
                            sample0: 0,
                        };
                        be.picard_sweep(&plan, &tables, &w, shape, &mut x, &out, noise, &mut err)
                            .unwrap();
                    })
                })
            },
        );
    }
    set_sweep_path(SweepPath::Auto);
    group.finish();
}

fn mixture(k: usize, d: usize) -> Mixture {
    let weights = (0..k).map(|i| 1.0 + (i % 3) as f64).collect();
    let means = (0..k)
        .map(|i| {
            (0..d)
                .map(|j| (((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0) * 1.5)
                .collect()
        })
        .collect();
    let stds = (0..k).map(|i| 0.3 + 0.01 * (i % 10) as f64).collect();
    Mixture::new(weights, means, stds).unwrap()
}

fn mixture_score(c: &mut Criterion, be: &CudaBackend) {
    let mut group = c.benchmark_group("cuda_gmm_eval");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    for (k, d, rows) in [(8, 64, 4096), (64, 1024, 4096), (256, 4096, 2048)] {
        let model = GmmModel::new(mixture(k, d), s.clone());
        let mut ws = ScoreModel::<CudaBackend>::workspace(&model, be, rows).unwrap();
        let mut x = be.alloc(rows * d).unwrap();
        be.normal_fill(
            &mut x,
            0,
            Shape {
                batch: rows,
                dim: d,
            },
            3,
            0,
            0,
            1,
        )
        .unwrap();
        let host_t: Vec<f32> = (0..rows).map(|i| (i % 1000) as f32).collect();
        let times = be.upload(&host_t).unwrap();
        let mut out = be.alloc(rows * d).unwrap();
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(
            BenchmarkId::new("rows", format!("k{k}_d{d}_rows{rows}")),
            |bch| {
                bch.iter_custom(|iters| {
                    sync_timed(be, iters, || {
                        model
                            .eval(be, &mut ws, &x, &times, 0, rows, &mut out)
                            .unwrap();
                    })
                })
            },
        );
    }
    group.finish();
}

fn main() {
    let Some(be) = device_or_skip("cuda_picard") else {
        return;
    };
    if let Ok(name) = be.device_name() {
        println!("cuda_picard on {name}");
    }
    let mut c = Criterion::default().configure_from_args();
    sweep_small(&mut c, &be);
    sweep(&mut c, &be);
    mixture_score(&mut c, &be);
    c.final_summary();
}
