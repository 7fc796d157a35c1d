//! CPU kernels: the fused Picard sweep (effective bandwidth: X and O read, X written, per element and
//! window point) and the exact mixture score (evaluations per second).
// criterion_group! defines a public function without docs.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use picardiff::backend::{Backend, Noise, PicardForm, Shape, WindowPlan};
use picardiff::prelude::*;

fn sweep(c: &mut Criterion) {
    let cpu = CpuBackend;
    let mut group = c.benchmark_group("cpu_picard_sweep");
    group.sample_size(10);
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let g = Grid::discrete(&s, 1000, Spacing::Leading).unwrap();
    let table = StepTable::new(&g, StepRule::Ddim { eta: 0.0 }, ModelOutput::Epsilon).unwrap();
    let tables = cpu.upload_tables(&table).unwrap();
    for (window, batch, dim) in [(64, 1, 1024), (64, 16, 1024), (64, 16, 16384)] {
        let shape = Shape { batch, dim };
        let plan = WindowPlan::sliding(1000, window, 0.1, PicardForm::Scan, None).unwrap();
        let n = plan.ring() * shape.slot_len();
        let mut x = cpu.alloc(n).unwrap();
        cpu.normal_fill(
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
        let out = x.clone();
        let mut times = cpu.alloc(plan.ring() * batch).unwrap();
        let mut err = cpu.alloc(cpu.err_len(&plan, shape)).unwrap();
        let w = cpu.window_new(&plan, &tables, &mut times, shape).unwrap();
        let elems = (window * batch * dim) as u64;
        group.throughput(Throughput::Bytes(elems * 12));
        group.bench_function(
            BenchmarkId::new("ddim_scan", format!("p{window}_b{batch}_d{dim}")),
            |bch| {
                bch.iter(|| {
                    cpu.picard_sweep(
                        &plan,
                        &tables,
                        &w,
                        shape,
                        &mut x,
                        &out,
                        Noise::Philox {
                            seed: 1,
                            sample0: 0,
                        },
                        &mut err,
                    )
                    .unwrap()
                })
            },
        );
    }
    // A stochastic rule adds in-loop Philox noise.
    let table = StepTable::new(&g, StepRule::Ddim { eta: 1.0 }, ModelOutput::Epsilon).unwrap();
    let tables = cpu.upload_tables(&table).unwrap();
    let (window, shape) = (
        64,
        Shape {
            batch: 16,
            dim: 1024,
        },
    );
    let plan = WindowPlan::sliding(1000, window, 0.1, PicardForm::Scan, None).unwrap();
    let mut x = cpu.alloc(plan.ring() * shape.slot_len()).unwrap();
    let out = x.clone();
    let mut times = cpu.alloc(plan.ring() * shape.batch).unwrap();
    let mut err = cpu.alloc(cpu.err_len(&plan, shape)).unwrap();
    let w = cpu.window_new(&plan, &tables, &mut times, shape).unwrap();
    group.throughput(Throughput::Bytes((window * shape.slot_len()) as u64 * 12));
    group.bench_function(
        BenchmarkId::new("ddpm_scan_philox", "p64_b16_d1024"),
        |bch| {
            bch.iter(|| {
                cpu.picard_sweep(
                    &plan,
                    &tables,
                    &w,
                    shape,
                    &mut x,
                    &out,
                    Noise::Philox {
                        seed: 1,
                        sample0: 0,
                    },
                    &mut err,
                )
                .unwrap()
            })
        },
    );
    group.finish();
}

fn mixture_score(c: &mut Criterion) {
    let cpu = CpuBackend;
    let mut group = c.benchmark_group("cpu_gmm_score");
    group.sample_size(10);
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    for (dim, comps, rows) in [(64, 8, 1024), (1024, 16, 1024), (16384, 8, 64)] {
        let means: Vec<Vec<f64>> = (0..comps)
            .map(|k| {
                (0..dim)
                    .map(|j| ((k * 31 + j * 7) % 13) as f64 / 6.0 - 1.0)
                    .collect()
            })
            .collect();
        let mix = Mixture::new(vec![1.0; comps], means, vec![0.5; comps]).unwrap();
        let model = GmmModel::new(mix, s.clone());
        let mut ws = model.workspace(&cpu, rows).unwrap();
        let mut x = cpu.alloc(rows * dim).unwrap();
        cpu.normal_fill(&mut x, 0, Shape { batch: rows, dim }, 3, 0, 0, 1)
            .unwrap();
        let times: Vec<f32> = (0..rows).map(|r| (r % 1000) as f32).collect();
        let mut out = cpu.alloc(rows * dim).unwrap();
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(
            BenchmarkId::new("evals", format!("d{dim}_k{comps}_rows{rows}")),
            |b| {
                b.iter(|| {
                    model
                        .eval(&cpu, &mut ws, &x, &times, 0, rows, &mut out)
                        .unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, sweep, mixture_score);
criterion_main!(benches);
