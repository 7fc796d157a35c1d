//! What the non-finite check costs on the CPU backend (issue 7: at most 2% of an iteration).
//!
//! A model that returns NaN or a diverging state must end a run with an error naming the step. On the
//! CPU backend the check lives in two places:
//!
//! - the Picard iteration: the sweep's squared-error sums carry a NaN or ∞ by themselves (no extra
//!   work there); `picard_advance` then maps a non-finite point error to ∞ and makes one pass over the
//!   window's point errors looking for one before the window moves;
//! - the sequential step: an `is_finite` flag ANDed per element inside the fused step loop.
//!
//! Both are measured against the same code with the check compiled out
//! (`picard_advance_checked::<false>`, `step_checked::<false>` of `bench_internals::CpuChecked`,
//! feature `bench-internals`, on for this package's benches; the library only ever uses `true`), and
//! set against a whole iteration with a real model: the exact score of an 8-component mixture over
//! the whole window (`GmmModel`), the fused sweep and the advance.
//!
//! After the criterion groups, the sequential step is also timed interleaved (checked, unchecked,
//! with the model), since its check is below what separate criterion runs resolve.
//!
//! Run: `cargo bench --bench nonfinite_check` (about a minute on 2 cores).
//! Figures: `docs/perf/2026-11-26-nonfinite-check-cpu.md`.
// criterion_group! defines a public function without docs.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion};
use picardiff::backend::cpu::{CpuTables, CpuWindow};
use picardiff::backend::{Backend, Noise, PicardForm, Shape, WindowPlan, WindowState};
use picardiff::bench_internals::CpuChecked;
use picardiff::prelude::*;
use picardiff::rng::TAG_INIT;

/// Grid steps and Picard window (a full 1000-step window: a ring of 1001 slots).
const STEPS: usize = 1000;
/// Mixture components of the model.
const COMPONENTS: usize = 8;
/// Picard iterations run before the advance is timed, so that its error buffer is a mid-run one.
const WARM_ITERS: usize = 5;
/// (batch, dim) of the problems.
const SIZES: [(usize, usize); 4] = [(1, 64), (1, 1024), (16, 64), (16, 1024)];
/// The grid point of the timed sequential step.
const SEQ_STEP: usize = 500;

/// One problem size with every buffer a Picard run allocates.
struct Setup {
    cpu: CpuBackend,
    model: GmmModel,
    ws: <GmmModel as ScoreModel<CpuBackend>>::Workspace,
    tables: CpuTables,
    plan: WindowPlan,
    shape: Shape,
    x: Vec<f32>,
    out: Vec<f32>,
    times: Vec<f32>,
    err: Vec<f32>,
    /// The window (its state reset to `w0` for every timed iteration; its noise ring kept).
    w: CpuWindow,
    w0: WindowState,
    /// The sequential sampler's state (one slot) and model times (t at [`SEQ_STEP`]).
    seq_x0: Vec<f32>,
    seq_times: Vec<f32>,
}

impl Setup {
    fn new(batch: usize, dim: usize) -> Setup {
        let cpu = CpuBackend;
        let schedule = Schedule::from_name("ddpm-linear", 1000).unwrap();
        let grid = Grid::discrete(&schedule, STEPS, Spacing::Leading).unwrap();
        let mixture = Mixture::benchmark(COMPONENTS, dim).unwrap();
        let model = GmmModel::new(mixture, schedule);
        let rule = StepRule::from_name("ddpm", None).unwrap();
        let table = StepTable::new(&grid, rule, ScoreModel::<CpuBackend>::output(&model)).unwrap();
        let tables = cpu.upload_tables(&table).unwrap();
        let plan = WindowPlan::sliding(
            STEPS,
            STEPS,
            rule.default_tolerance(),
            PicardForm::Scan,
            None,
        )
        .unwrap();
        let shape = Shape { batch, dim };
        let ring = plan.ring();
        let mut x = cpu.alloc(ring * shape.slot_len()).unwrap();
        cpu.normal_fill(&mut x, 0, shape, 1, 0, 0, TAG_INIT)
            .unwrap();
        let seq_x0 = x[..shape.slot_len()].to_vec();
        let seq_times = vec![table.t[SEQ_STEP] as f32; batch];
        let out = cpu.alloc(ring * shape.slot_len()).unwrap();
        let mut times = cpu.alloc(ring * batch).unwrap();
        let mut ws = model.workspace(&cpu, ring * batch).unwrap();
        model.prepare_times(&cpu, &mut ws, &table.t).unwrap();
        let err = cpu.alloc(cpu.err_len(&plan, shape)).unwrap();
        let w = cpu.window_new(&plan, &tables, &mut times, shape).unwrap();
        let w0 = w.state;
        let mut s = Setup {
            cpu,
            model,
            ws,
            tables,
            plan,
            shape,
            x,
            out,
            times,
            err,
            w,
            w0,
            seq_x0,
            seq_times,
        };
        for _ in 0..WARM_ITERS {
            s.iteration::<true>();
        }
        s
    }

    /// One Picard iteration from the first window (the window is reset every time, so that every
    /// timed iteration does the same work: the model over all 1000 points, sweep, advance).
    fn iteration<const CHECK: bool>(&mut self) {
        self.w.state = self.w0;
        for range in self
            .cpu
            .model_slots(&self.w, &self.plan)
            .unwrap()
            .into_iter()
            .flatten()
        {
            self.model
                .eval(
                    &self.cpu,
                    &mut self.ws,
                    &self.x,
                    &self.times,
                    range.start * self.shape.batch,
                    range.len * self.shape.batch,
                    &mut self.out,
                )
                .unwrap();
        }
        self.cpu
            .picard_sweep(
                &self.plan,
                &self.tables,
                &self.w,
                self.shape,
                &mut self.x,
                &self.out,
                Self::noise(),
                &mut self.err,
            )
            .unwrap();
        let mut w = self.w.state;
        self.advance::<CHECK>(&mut w);
    }

    /// The advance alone, on the error buffer of the last sweep.
    fn advance<const CHECK: bool>(&mut self, w: &mut WindowState) {
        self.cpu
            .picard_advance_checked::<CHECK>(
                &self.plan,
                &self.tables,
                w,
                self.shape,
                &mut self.x,
                &mut self.times,
                &self.err,
            )
            .unwrap();
    }

    /// One sequential step at [`SEQ_STEP`] on `x` (one slot): the model on the batch if
    /// `with_model`, then the fused step. `x` is fresh each time (repeating a step on its own output
    /// would grow the state without bound).
    fn sequential_step<const CHECK: bool>(&mut self, x: &mut Vec<f32>, with_model: bool) {
        if with_model {
            self.model
                .eval(
                    &self.cpu,
                    &mut self.ws,
                    x,
                    &self.seq_times,
                    0,
                    self.shape.batch,
                    &mut self.out,
                )
                .unwrap();
        }
        self.cpu
            .step_checked::<CHECK>(
                &self.tables,
                SEQ_STEP,
                self.shape,
                x,
                0,
                &self.out,
                0,
                Self::noise(),
            )
            .unwrap();
    }

    fn noise() -> Noise<'static, CpuBackend> {
        Noise::Philox {
            seed: 1,
            sample0: 0,
        }
    }
}

fn nonfinite_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("nonfinite_check");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200));
    for (batch, dim) in SIZES {
        let mut s = Setup::new(batch, dim);
        let id = format!("p{STEPS}_b{batch}_d{dim}");
        group.bench_function(BenchmarkId::new("picard_iteration_checked", &id), |b| {
            b.iter(|| s.iteration::<true>())
        });
        group.bench_function(BenchmarkId::new("picard_iteration_unchecked", &id), |b| {
            b.iter(|| s.iteration::<false>())
        });
        // The advance alone, on a fixed mid-run error buffer (the window reset each time).
        group.bench_function(BenchmarkId::new("picard_advance_checked", &id), |b| {
            b.iter(|| {
                let mut w = s.w0;
                s.advance::<true>(&mut w);
                w
            })
        });
        group.bench_function(BenchmarkId::new("picard_advance_unchecked", &id), |b| {
            b.iter(|| {
                let mut w = s.w0;
                s.advance::<false>(&mut w);
                w
            })
        });
        // The sequential sampler: one model call on the batch + the fused step.
        // (The fresh state is copied outside the timed region.)
        let x0 = s.seq_x0.clone();
        group.bench_function(BenchmarkId::new("sequential_iteration", &id), |b| {
            b.iter_batched_ref(
                || x0.clone(),
                |x| s.sequential_step::<true>(x, true),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("sequential_step_checked", &id), |b| {
            b.iter_batched_ref(
                || x0.clone(),
                |x| s.sequential_step::<true>(x, false),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("sequential_step_unchecked", &id), |b| {
            b.iter_batched_ref(
                || x0.clone(),
                |x| s.sequential_step::<false>(x, false),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The sequential step's check is a few tens of nanoseconds on steps of microseconds, below what
/// separate criterion runs resolve on a shared 2-core machine. This times the three variants
/// interleaved (model + checked step, checked step, unchecked step), `ROUNDS` rounds of `reps`
/// steps each, each step on a fresh copy of the same state (the copy is timed in all three), and
/// prints the minimum per step of each.
fn sequential_step_interleaved() {
    use std::time::Instant;
    const ROUNDS: usize = 20;
    println!(
        "\ninterleaved sequential step (min over {ROUNDS} rounds, ns per step, copy included):"
    );
    for (batch, dim) in SIZES {
        let mut s = Setup::new(batch, dim);
        let x0 = s.seq_x0.clone();
        let mut x = x0.clone();
        let reps = (400_000 / (batch * dim)).clamp(50, 5000);
        let mut best = [f64::INFINITY; 3];
        for _ in 0..ROUNDS {
            for (v, slot) in best.iter_mut().enumerate() {
                let t0 = Instant::now();
                for _ in 0..reps {
                    x.copy_from_slice(&x0);
                    match v {
                        0 => s.sequential_step::<true>(&mut x, true),
                        1 => s.sequential_step::<true>(&mut x, false),
                        _ => s.sequential_step::<false>(&mut x, false),
                    }
                }
                *slot = slot.min(t0.elapsed().as_nanos() as f64 / reps as f64);
            }
        }
        let [iter, checked, unchecked] = best;
        println!(
            "  b{batch} d{dim}: model + checked step {iter:.0}, checked step {checked:.0}, \
             unchecked step {unchecked:.0}; check {:.0} = {:.2}% of the iteration",
            checked - unchecked,
            100.0 * (checked - unchecked) / iter
        );
    }
}

criterion_group!(benches, nonfinite_check);

fn main() {
    benches();
    // Only under `cargo bench` (which passes `--bench`; `cargo test --benches` does not), not with
    // `--list`.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list") {
        sequential_step_interleaved();
    }
    Criterion::default().configure_from_args().final_summary();
}
