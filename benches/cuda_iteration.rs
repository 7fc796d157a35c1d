//! One Picard iteration of an MLP model on CUDA against its cuBLAS GEMMs alone (issue 6's target:
//! an iteration should cost at most 1.5× the GEMMs; the rest is our kernels and launch overhead).
//! For each MLP file in `PICARDIFF_BENCH_MLP` (comma-separated, e.g. from
//! `tools/make_bench_models.py`), on a 1000-step DDPM grid, batch 1, with a full window (p = 1000:
//! the model evaluates 1000 rows) and with p = 256 (the ring, 257 rows):
//! - `gemms`: the forward's GEMMs alone (input, per layer fc1 and fc2, output; as many rows, the same
//!   SGEMM calls and layouts as the model), on random buffers;
//! - `forward`: the model's whole forward on 1000 rows (GEMMs, bias/activation epilogues,
//!   LayerNorms, the time-table lookup);
//! - `iteration_graph` / `iteration_eager`: the sampler's iteration (forward on the covering model
//!   slots, fused sweep, window advance, new slots) through `Backend::iteration`, recorded into a CUDA
//!   graph and replayed, or enqueued eagerly. The window restarts every `CHUNK` iterations (before
//!   it converges), so the windows stay long; one graph capture per chunk is included.
//!
//! Then prints `ratio iteration/gemms` from the medians. Timing: `iter_custom`, enqueue, synchronise
//! the stream, read the clock. Skips without a CUDA device or without files.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use cudarc::cublas::result::sgemm;
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use picardiff::backend::cuda::CudaBackend;
use picardiff::backend::{Backend, Noise, PicardForm, Shape, WindowPlan};
use picardiff::model::MlpModel;
use picardiff::prelude::*;

#[path = "cuda_common/mod.rs"]
mod cuda_common;
use cuda_common::{bench_mlp_files, device_or_skip, sync_timed};

/// Iterations per window before it is restarted.
const CHUNK: u64 = 24;
/// Grid steps = window = model rows per iteration.
const STEPS: usize = 1000;

/// `(out, in, beta)` of every GEMM of one forward, in order.
fn gemm_shapes(m: &MlpModel) -> Vec<(usize, usize, f32)> {
    let c = m.config();
    let mut v = vec![(c.hidden, c.dim, 0.0)];
    for _ in 0..c.layers {
        v.push((c.hidden, c.hidden, 0.0));
        if c.residual {
            v.push((c.hidden, c.hidden, 1.0));
        }
    }
    v.push((c.dim, c.hidden, 0.0));
    v
}

/// Enqueues the forward's GEMMs once (W `[out][in]`, x `[rows][in]`, y `[rows][out]`, as the
/// model's `mlp_gemm` does: `y = x·Wᵀ + β·y`).
fn gemms(be: &CudaBackend, shapes: &[(usize, usize, f32)], bufs: &mut GemmBufs, rows: usize) {
    let stream = be.stream().clone();
    let blas = be.blas();
    for &(out, inp, beta) in shapes {
        let (w, _g1) = bufs.w.device_ptr(&stream);
        let (x, _g2) = bufs.x.device_ptr(&stream);
        let (y, _g3) = bufs.y.device_ptr_mut(&stream);
        let alpha = 1.0f32;
        // SAFETY: w holds ≥ out·in, x ≥ rows·in, y ≥ rows·out f32 (GemmBufs::new sizes them for the
        // largest layer); all on the backend's stream, the handle's stream.
        unsafe {
            sgemm(
                *blas.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                out as i32,
                rows as i32,
                inp as i32,
                &alpha,
                w as *const f32,
                inp as i32,
                x as *const f32,
                inp as i32,
                &beta,
                y as *mut f32,
                out as i32,
            )
        }
        .unwrap();
    }
}

/// Random operands for the largest GEMM of a forward.
struct GemmBufs {
    w: CudaSlice<f32>,
    x: CudaSlice<f32>,
    y: CudaSlice<f32>,
}

impl GemmBufs {
    fn new(be: &CudaBackend, shapes: &[(usize, usize, f32)], rows: usize) -> Self {
        let (mut wn, mut xn, mut yn) = (0, 0, 0);
        for &(out, inp, _) in shapes {
            wn = wn.max(out * inp);
            xn = xn.max(rows * inp);
            yn = yn.max(rows * out);
        }
        let shape = |n: usize| Shape { batch: 1, dim: n };
        let fill = |n: usize, tag: u32| {
            let mut b = be.alloc(n).unwrap();
            be.normal_fill(&mut b, 0, shape(n), 3, 0, 0, tag).unwrap();
            b
        };
        GemmBufs {
            w: fill(wn, 1),
            x: fill(xn, 2),
            y: fill(yn, 3),
        }
    }
}

/// Everything one Picard run of the model needs, sized once.
struct IterationBench<'a> {
    be: &'a CudaBackend,
    model: &'a MlpModel,
    plan: WindowPlan,
    tables: <CudaBackend as Backend>::Tables,
    shape: Shape,
    x: CudaSlice<f32>,
    out: CudaSlice<f32>,
    times: CudaSlice<f32>,
    err: CudaSlice<f32>,
    ws: <MlpModel as ScoreModel<CudaBackend>>::Workspace,
    /// The grid's model times.
    grid_t: Vec<f32>,
}

impl<'a> IterationBench<'a> {
    fn new(be: &'a CudaBackend, model: &'a MlpModel, window: usize) -> Self {
        let s = model.schedule().unwrap();
        let grid = Grid::discrete(&s, STEPS, Spacing::Leading).unwrap();
        let rule = StepRule::from_name("ddpm", None).unwrap();
        let table = StepTable::new(&grid, rule, ScoreModel::<CudaBackend>::output(model)).unwrap();
        let plan = WindowPlan::sliding(STEPS, window, 0.1, PicardForm::Scan, None).unwrap();
        let shape = Shape {
            batch: 1,
            dim: model.config().dim,
        };
        let ring = plan.ring();
        let mut ws = model.workspace(be, ring).unwrap();
        model.prepare_times(be, &mut ws, &table.t).unwrap();
        IterationBench {
            be,
            model,
            tables: be.upload_tables(&table).unwrap(),
            x: be.alloc(ring * shape.slot_len()).unwrap(),
            out: be.alloc(ring * shape.slot_len()).unwrap(),
            times: be.alloc(ring).unwrap(),
            err: be.alloc(be.err_len(&plan, shape)).unwrap(),
            plan,
            shape,
            ws,
            grid_t: table.t.iter().map(|&t| t as f32).collect(),
        }
    }

    /// A fresh window from x_T; then `iters` iterations, timed between synchronisations.
    fn run(&mut self, iters: u64) -> Duration {
        let (be, plan, shape) = (self.be, &self.plan, self.shape);
        be.normal_fill(&mut self.x, 0, shape, 1, 0, 0, picardiff::rng::TAG_INIT)
            .unwrap();
        let mut window = be
            .window_new(plan, &self.tables, &mut self.times, shape)
            .unwrap();
        let noise = Noise::Philox {
            seed: 1,
            sample0: 0,
        };
        be.synchronize().unwrap();
        let t0 = Instant::now();
        for _ in 0..iters {
            let slots = be.model_slots(&window, plan).unwrap();
            let (model, tables) = (self.model, &self.tables);
            let (x, out, times, err, ws) = (
                &mut self.x,
                &mut self.out,
                &mut self.times,
                &mut self.err,
                &mut self.ws,
            );
            // SAFETY: one window per call of `run`, one body for it, on buffers made in `new` that
            // outlive the window: the same work on the same buffers for the same slots.
            unsafe {
                be.iteration(&mut window, &slots, true, &mut |w| {
                    for r in slots.iter().flatten() {
                        model.eval(be, ws, x, times, r.start, r.len, out)?;
                    }
                    be.picard_sweep(plan, tables, w, shape, x, out, noise, err)?;
                    be.picard_advance(plan, tables, w, shape, x, times, err)
                })
            }
            .unwrap();
        }
        be.synchronize().unwrap();
        t0.elapsed()
    }

    /// `iters` iterations in chunks of at most [`CHUNK`] (a fresh window each).
    fn chunked(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(CHUNK);
            total += self.run(n);
            left -= n;
        }
        total
    }
}

/// Median seconds per call of `f(iters)` over `reps` repetitions.
fn median_per_call(reps: usize, iters: u64, mut f: impl FnMut(u64) -> Duration) -> f64 {
    let mut v: Vec<f64> = (0..reps)
        .map(|_| f(iters).as_secs_f64() / iters as f64)
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let Some(be) = device_or_skip("cuda_iteration") else {
        return;
    };
    let Some(files) = bench_mlp_files("cuda_iteration") else {
        return;
    };
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("cuda_picard_iteration");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    let mut summary = Vec::new();
    for path in &files {
        let model = match MlpModel::from_file(path.as_ref()) {
            Ok(m) => m,
            Err(e) => {
                println!("cuda_iteration: {path}: {e}");
                continue;
            }
        };
        let h = model.config().hidden;
        let shapes = gemm_shapes(&model);
        let mut bufs = GemmBufs::new(&be, &shapes, STEPS);
        let mut bench = IterationBench::new(&be, &model, STEPS);
        let fwd_rows = STEPS;
        let fwd_t: Vec<f32> = (0..fwd_rows).map(|r| bench.grid_t[r]).collect();
        let fwd_times = be.upload(&fwd_t).unwrap();
        group.bench_function(BenchmarkId::new(format!("h{h}"), "forward"), |b| {
            b.iter_custom(|iters| {
                let (x, ws, out) = (&bench.x, &mut bench.ws, &mut bench.out);
                sync_timed(&be, iters, || {
                    model
                        .eval(&be, ws, x, &fwd_times, 0, fwd_rows, out)
                        .unwrap()
                })
            })
        });
        // The full window (the model evaluates 1000 rows) and p = 256 (the ring: 257 rows).
        for window in [STEPS, 256] {
            let mut bench = IterationBench::new(&be, &model, window);
            let rows: usize = be
                .model_slots(
                    &be.window_new(&bench.plan, &bench.tables, &mut bench.times, bench.shape)
                        .unwrap(),
                    &bench.plan,
                )
                .unwrap()
                .iter()
                .flatten()
                .map(|r| r.len)
                .sum();
            let id = |what: &str| BenchmarkId::new(format!("h{h}_p{window}"), what);
            group.bench_function(id("gemms"), |b| {
                b.iter_custom(|iters| {
                    sync_timed(&be, iters, || gemms(&be, &shapes, &mut bufs, rows))
                })
            });
            for graphs in [true, false] {
                be.set_graphs(graphs);
                let name = if graphs {
                    "iteration_graph"
                } else {
                    "iteration_eager"
                };
                group.bench_function(id(name), |b| b.iter_custom(|iters| bench.chunked(iters)));
            }
            // The ratio from direct medians (the same calls as above).
            let g = median_per_call(5, 96, |n| {
                sync_timed(&be, n, || gemms(&be, &shapes, &mut bufs, rows))
            });
            be.set_graphs(true);
            let ig = median_per_call(5, 96, |n| bench.chunked(n));
            be.set_graphs(false);
            let ie = median_per_call(5, 96, |n| bench.chunked(n));
            be.set_graphs(true);
            if let Some(why) = be.graph_refusal() {
                println!("cuda_iteration: graph capture refused: {why}");
            }
            summary.push(format!(
                "h{h} p={window} ({rows} rows): gemms {:.1} us, iteration graph {:.1} us ({:.2}x gemms), eager {:.1} us ({:.2}x)",
                g * 1e6,
                ig * 1e6,
                ig / g,
                ie * 1e6,
                ie / g
            ));
        }
    }
    group.finish();
    c.final_summary();
    for line in summary {
        println!("cuda_iteration: ratio {line}");
    }
}
