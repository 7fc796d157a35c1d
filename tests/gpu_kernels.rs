//! Every CUDA kernel against its CPU twin, through the `Backend` trait, on awkward sizes (1, not a
//! multiple of the block, more than one block per sample, more than 2^20 elements). Without a device
//! each test prints "skipped: no CUDA device (...)" and passes; with `REQUIRE_GPU=1` it fails.
#![cfg(feature = "cuda")]

mod common;
mod gpu_common;

use gpu_common::*;
use picardiff::backend::cuda::CudaBackend;
use picardiff::backend::{Backend, Noise, PicardForm, Shape, WindowPlan, WindowState};
use picardiff::bench_internals::{set_sweep_path, SweepPath};
use picardiff::model::Activation;
use picardiff::prelude::*;

/// The table of `rule`; `rule+clip` adds the clipped-x̂0 columns (range 1, algorithms §7), which
/// the CUDA step and sweeps apply with the CPU's roundings.
fn table(steps: usize, rule: &str) -> StepTable {
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let g = Grid::discrete(&s, steps, Spacing::Leading).unwrap();
    let (name, clip) = rule
        .strip_suffix("+clip")
        .map_or((rule, false), |n| (n, true));
    let r = StepRule::from_name(name, None).unwrap();
    let t = StepTable::new(&g, r, ModelOutput::Epsilon).unwrap();
    if !clip {
        return t;
    }
    let c = picardiff::schedule::ClipSample::for_rule(r, 1.0);
    t.with_clip(&g, ModelOutput::Epsilon, c).unwrap()
}

fn down(be: &CudaBackend, buf: &<CudaBackend as Backend>::Buf) -> Vec<f32> {
    let mut v = vec![0f32; buf.len()];
    be.download(buf, 0, &mut v).unwrap();
    v
}

const BIG: usize = (1 << 20) + 1;

#[test]
fn philox_normals_are_bit_identical_to_the_cpu() {
    let Some(be) = device("philox_normals_are_bit_identical_to_the_cpu") else {
        return;
    };
    for (batch, dim) in [(1, 1), (33, 3), (2, 1000), (1, BIG), (33, 7)] {
        let shape = Shape { batch, dim };
        for (seed, sample0, step, tag) in
            [(0u64, 0u32, 0u32, 1u32), (0xDEAD_BEEF_0123_4567, 5, 999, 0)]
        {
            let off = 3;
            let mut cpu = vec![0f32; off + shape.slot_len()];
            CpuBackend
                .normal_fill(&mut cpu, off, shape, seed, sample0, step, tag)
                .unwrap();
            let mut gpu = be.alloc(off + shape.slot_len()).unwrap();
            be.normal_fill(&mut gpu, off, shape, seed, sample0, step, tag)
                .unwrap();
            assert_bits_eq(&cpu, &down(&be, &gpu), &format!("normals {batch}x{dim}"));
        }
    }
}

#[test]
fn fill_copy_download_and_bounds() {
    let Some(be) = device("fill_copy_download_and_bounds") else {
        return;
    };
    let data = rand_vec(1003, 1);
    let src = be.upload(&data).unwrap();
    let mut dst = be.alloc(1003).unwrap();
    be.fill(&mut dst, 1, 1001, 2.5).unwrap();
    be.copy(&src, 5, &mut dst, 500, 77).unwrap();
    let mut want = vec![0f32; 1003];
    want[1..1002].fill(2.5);
    want[500..577].copy_from_slice(&data[5..82]);
    assert_eq!(down(&be, &dst), want);
    let mut part = vec![0f32; 10];
    be.download(&dst, 495, &mut part).unwrap();
    assert_eq!(part, want[495..505]);
    // Out of bounds: errors, not panics.
    assert!(be.download(&dst, 1000, &mut part).is_err());
    assert!(be.copy(&src, 1000, &mut dst, 0, 10).is_err());
    assert!(be.fill(&mut dst, 1000, 10, 0.0).is_err());
    let empty = be.alloc(0).unwrap();
    be.download(&empty, 0, &mut []).unwrap();
    // A buffer of another backend is rejected.
    let other = device("fill_copy_download_and_bounds").unwrap();
    let foreign = other.alloc(16).unwrap();
    assert!(matches!(
        be.fill(&mut other.alloc(4).unwrap(), 0, 4, 1.0),
        Err(Error::Device { .. })
    ));
    assert!(be.download(&foreign, 0, &mut part).is_err());
}

#[test]
fn sequential_step_is_bit_identical_to_the_cpu() {
    let Some(be) = device("sequential_step_is_bit_identical_to_the_cpu") else {
        return;
    };
    for rule in ["ddpm", "ddim", "ddpm+clip", "ddim+clip"] {
        let st = table(50, rule);
        let (ct, gt) = (
            CpuBackend.upload_tables(&st).unwrap(),
            be.upload_tables(&st).unwrap(),
        );
        for (batch, dim) in [(1, 1), (33, 3), (2, 1000), (1, BIG), (3, 8)] {
            let shape = Shape { batch, dim };
            let n = shape.slot_len();
            let table_noise = rand_vec(50 * n, 3);
            let gtable = be.upload(&table_noise).unwrap();
            for (j, use_table, off) in [(0, false, 0), (17, true, 1), (48, false, 2)] {
                let x0 = rand_vec(off + n, j as u64 + 1);
                let o = rand_vec(off + n, j as u64 + 100);
                let mut cx = x0.clone();
                let (cn, gn) = if use_table {
                    (Noise::Table(&table_noise), Noise::Table(&gtable))
                } else {
                    let p = Noise::Philox {
                        seed: 99,
                        sample0: 4,
                    };
                    (
                        p,
                        Noise::Philox {
                            seed: 99,
                            sample0: 4,
                        },
                    )
                };
                CpuBackend
                    .step(&ct, j, shape, &mut cx, off, &o, off, cn)
                    .unwrap();
                let mut gx = be.upload(&x0).unwrap();
                let go = be.upload(&o).unwrap();
                be.step(&gt, j, shape, &mut gx, off, &go, off, gn).unwrap();
                assert_bits_eq(
                    &cx,
                    &down(&be, &gx),
                    &format!("step {rule} j={j} {batch}x{dim} table={use_table}"),
                );
            }
        }
    }
}

#[test]
fn sequential_step_reports_the_first_non_finite_step() {
    let Some(be) = device("sequential_step_reports_the_first_non_finite_step") else {
        return;
    };
    let st = table(20, "ddpm");
    let gt = be.upload_tables(&st).unwrap();
    let shape = Shape { batch: 2, dim: 5 };
    let mut x = be.alloc(10).unwrap();
    let mut o = vec![0f32; 10];
    let noise = Noise::Philox {
        seed: 1,
        sample0: 0,
    };
    for j in 0..20 {
        o[7] = if j == 13 { f32::NAN } else { 0.0 };
        let go = be.upload(&o).unwrap();
        let r = be.step(&gt, j, shape, &mut x, 0, &go, 0, noise);
        if j < 19 {
            r.unwrap();
        } else {
            match r {
                Err(Error::NonFinite { step, .. }) => assert_eq!(step, 13),
                other => panic!("expected NonFinite at step 13, got {other:?}"),
            }
        }
    }
}

/// The window-parallel scan sweep on a copy of the device iterate `gx` against the CPU result `cx`
/// (and the CPU errors `cerr`) of the same sweep: equal up to the rounding of the reassociated
/// recurrence, 1e-5 relative to the slot's largest value (errors: the matching first-order bound).
#[allow(clippy::too_many_arguments)]
fn check_scan_sweep(
    be: &CudaBackend,
    plan: &WindowPlan,
    gt: &<CudaBackend as Backend>::Tables,
    gw: &<CudaBackend as Backend>::Window,
    shape: Shape,
    gx_before: &[f32],
    gout: &<CudaBackend as Backend>::Buf,
    gn: Noise<'_, CudaBackend>,
    cx: &[f32],
    cerr: &[f32],
    what: &str,
) {
    let (r, slot) = (plan.ring(), shape.slot_len());
    let (s, e) = {
        let w = be.window_read(gw).unwrap();
        (w.start, w.end)
    };
    let mut sx = be.upload(gx_before).unwrap();
    let mut serr = be.alloc(be.err_len(plan, shape)).unwrap();
    let prev = set_sweep_path(SweepPath::Scan);
    be.picard_sweep(plan, gt, gw, shape, &mut sx, gout, gn, &mut serr)
        .unwrap();
    set_sweep_path(prev);
    let (sx, se) = (down(be, &sx), down(be, &serr));
    let scale: Vec<f32> = cx
        .chunks(slot)
        .map(|v| {
            v.iter()
                .filter(|x| x.is_finite())
                .fold(1f32, |m, x| m.max(x.abs()))
        })
        .collect();
    for (i, (c, g)) in cx.iter().zip(&sx).enumerate() {
        assert!(
            (c - g).abs() <= 1e-5 * scale[i / slot] || (c.is_nan() && g.is_nan()),
            "{what}: scan sweep x[{i}]: cpu {c} gpu {g}"
        );
    }
    let bps = be.err_len(plan, shape) / (plan.window * shape.batch);
    let per_row = shape.dim.div_ceil(picardiff::backend::cpu::CHUNK);
    for k in 0..e - s {
        let sl = ((s + k + 1) % r) * slot;
        for b in 0..shape.batch {
            let c: f64 = (0..per_row)
                .map(|u| cerr[(b * per_row + u) * plan.window + k])
                .sum::<f32>()
                .into();
            let g: f64 = (0..bps)
                .map(|u| se[(k * shape.batch + b) * bps + u])
                .sum::<f32>()
                .into();
            let ny2: f64 = cx[sl + b * shape.dim..sl + (b + 1) * shape.dim]
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum();
            let tol = 1e-4 * c.abs() + 2.0 * (c.abs() * 1e-10 * ny2).sqrt() + 1e-10 * ny2 + 1e-30;
            assert!(
                (c - g).abs() <= tol || (!c.is_finite() && !g.is_finite()),
                "{what}: scan error of point {k} sample {b}: cpu {c} gpu {g}"
            );
        }
    }
}

/// Runs Picard iterations with fixed, shrinking "model outputs" on both backends and compares the
/// iterate (bits), the per-(point, sample) errors, the window state and the model times after each.
/// The device runs the serial sweep (bit-identical to the CPU); on rings up to 2^22 values the
/// window-parallel scan sweep is also checked at every iteration, from the same state.
fn compare_picard(
    be: &CudaBackend,
    plan: &WindowPlan,
    rule: &str,
    shape: Shape,
    table_noise: bool,
) -> usize {
    set_sweep_path(SweepPath::Serial);
    let st = table(plan.steps, rule);
    let (ct, gt) = (
        CpuBackend.upload_tables(&st).unwrap(),
        be.upload_tables(&st).unwrap(),
    );
    let (r, slot) = (plan.ring(), shape.slot_len());
    let mut cx = rand_vec(r * slot, 1);
    let mut gx = be.upload(&cx).unwrap();
    let mut out = rand_vec(r * slot, 2);
    let zt = rand_vec(plan.steps * slot, 3);
    let gzt = be.upload(&zt).unwrap();
    let (cn, gn) = if table_noise {
        (Noise::Table(&zt), Noise::Table(&gzt))
    } else {
        let p = Noise::Philox {
            seed: 42,
            sample0: 3,
        };
        (
            p,
            Noise::Philox {
                seed: 42,
                sample0: 3,
            },
        )
    };
    let mut ctimes = vec![0f32; r * shape.batch];
    let mut gtimes = be.alloc(r * shape.batch).unwrap();
    let mut cw = CpuBackend
        .window_new(plan, &ct, &mut ctimes, shape)
        .unwrap();
    let mut gw = be.window_new(plan, &gt, &mut gtimes, shape).unwrap();
    assert_eq!(be.window_read(&gw).unwrap(), cw.state);
    // Later states: the block residuals are float sums in each backend's order (equal to ~1e-5).
    let same = |g: WindowState, c: WindowState| {
        assert!(g.matches(&c, 1e-4), "gpu {g:?}\ncpu {c:?}");
    };
    let mut cerr = vec![0f32; CpuBackend.err_len(plan, shape)];
    let mut gerr = be.alloc(be.err_len(plan, shape)).unwrap();
    let bps = be.err_len(plan, shape) / (plan.window * shape.batch);
    let per_row = shape.dim.div_ceil(picardiff::backend::cpu::CHUNK);
    let what = format!(
        "{:?} p={} tol2={} {rule} {}x{}",
        plan.mode, plan.window, plan.tol2, shape.batch, shape.dim
    );
    for iter in 0.. {
        let (s, e) = (cw.start, cw.end);
        let gout = be.upload(&out).unwrap();
        let gx_before = (r * slot <= 1 << 22).then(|| down(be, &gx));
        CpuBackend
            .picard_sweep(plan, &ct, &cw, shape, &mut cx, &out, cn, &mut cerr)
            .unwrap();
        if let Some(before) = &gx_before {
            check_scan_sweep(
                be, plan, &gt, &gw, shape, before, &gout, gn, &cx, &cerr, &what,
            );
        }
        be.picard_sweep(plan, &gt, &gw, shape, &mut gx, &gout, gn, &mut gerr)
            .unwrap();
        assert_bits_eq(&cx, &down(be, &gx), &format!("{what}: sweep {iter}"));
        let ge = down(be, &gerr);
        for k in 0..e - s {
            for b in 0..shape.batch {
                let c: f32 = (0..per_row)
                    .map(|u| cerr[(b * per_row + u) * plan.window + k])
                    .sum();
                let g: f32 = (0..bps).map(|u| ge[(k * shape.batch + b) * bps + u]).sum();
                assert!(
                    (c - g).abs() <= 1e-5 * c.abs() || c == g,
                    "{what}: error of point {k} sample {b}: cpu {c} gpu {g}"
                );
            }
        }
        CpuBackend
            .picard_advance(plan, &ct, &mut cw, shape, &mut cx, &mut ctimes, &cerr)
            .unwrap();
        be.picard_advance(plan, &gt, &mut gw, shape, &mut gx, &mut gtimes, &gerr)
            .unwrap();
        let g = be.window_read(&gw).unwrap();
        assert!(
            g.matches(&cw.state, 1e-4),
            "{what}: state after iteration {iter}: gpu {g:?}, cpu {:?}",
            cw.state
        );
        assert_bits_eq(&cx, &down(be, &gx), &format!("{what}: new slots {iter}"));
        assert_eq!(ctimes, down(be, &gtimes), "{what}: times {iter}");
        if cw.done(plan) {
            // Once done, further iterations are no-ops on the device.
            be.picard_sweep(plan, &gt, &gw, shape, &mut gx, &gout, gn, &mut gerr)
                .unwrap();
            be.picard_advance(plan, &gt, &mut gw, shape, &mut gx, &mut gtimes, &gerr)
                .unwrap();
            same(be.window_read(&gw).unwrap(), cw.state);
            assert_bits_eq(&cx, &down(be, &gx), &format!("{what}: after done"));
            return iter + 1;
        }
        out.iter_mut().for_each(|v| *v *= 0.5);
    }
    unreachable!()
}

#[test]
fn picard_sweep_and_advance_match_the_cpu() {
    let Some(be) = device("picard_sweep_and_advance_match_the_cpu") else {
        return;
    };
    // (steps, window, batch, dim): window 1, 7, 100 and 1000; batch 1, 2 and 33; dim 1, 3, 64, 1000,
    // 2^20 + 1.
    let cases = [
        (50, 1, 33, 1),
        (50, 7, 33, 3),
        (50, 7, 1, 1000),
        (1000, 1000, 1, 3),
        (200, 100, 2, 64),
        (12, 7, 1, BIG),
    ];
    for (steps, window, batch, dim) in cases {
        let shape = Shape { batch, dim };
        for form in [PicardForm::Scan, PicardForm::Drift] {
            for tol in [0.0, 0.3, 1e3] {
                if dim == BIG && tol == 0.0 {
                    continue; // many iterations of 32 MB downloads: covered by the smaller cases
                }
                let plan = WindowPlan::sliding(steps, window, tol, form, None).unwrap();
                for (rule, table_noise) in [
                    ("ddpm", false),
                    ("ddpm", true),
                    ("ddim", false),
                    ("ddpm+clip", false),
                    ("ddim+clip", true),
                ] {
                    if steps == 1000 && (table_noise || form == PicardForm::Drift) {
                        continue;
                    }
                    let it = compare_picard(&be, &plan, rule, shape, table_noise);
                    report(format!("steps {steps} window {window} {batch}x{dim} {form:?} tol {tol} {rule}: {it} iterations equal"));
                }
            }
        }
    }
    for (ends, k) in [
        (vec![10, 25, 30, 50], 3),
        (vec![50], 2),
        (vec![1, 2, 50], 60),
    ] {
        for tol in [0.0, 0.3, 1e3] {
            let plan = WindowPlan::blocks(50, ends.clone(), k, tol, PicardForm::Scan).unwrap();
            let it = compare_picard(&be, &plan, "ddpm", Shape { batch: 33, dim: 5 }, false);
            report(format!(
                "blocks {ends:?} K={k} tol {tol}: {it} iterations equal"
            ));
        }
    }
}

#[test]
fn a_non_finite_point_freezes_the_window_and_names_the_step() {
    let Some(be) = device("a_non_finite_point_freezes_the_window_and_names_the_step") else {
        return;
    };
    let plan = WindowPlan::sliding(50, 10, 0.1, PicardForm::Scan, None).unwrap();
    let shape = Shape { batch: 2, dim: 3 };
    let st = table(50, "ddpm");
    let (ct, gt) = (
        CpuBackend.upload_tables(&st).unwrap(),
        be.upload_tables(&st).unwrap(),
    );
    let (r, slot) = (plan.ring(), shape.slot_len());
    let mut cx = rand_vec(r * slot, 1);
    let mut gx = be.upload(&cx).unwrap();
    let mut out = rand_vec(r * slot, 2);
    out[4 * slot + 4] = f32::NAN; // model output of point 4, used by step 4
    let gout = be.upload(&out).unwrap();
    let mut ctimes = vec![0f32; r * 2];
    let mut gtimes = be.alloc(r * 2).unwrap();
    let mut cw = CpuBackend
        .window_new(&plan, &ct, &mut ctimes, shape)
        .unwrap();
    let mut gw = be.window_new(&plan, &gt, &mut gtimes, shape).unwrap();
    let mut cerr = vec![0f32; CpuBackend.err_len(&plan, shape)];
    let mut gerr = be.alloc(be.err_len(&plan, shape)).unwrap();
    let noise = Noise::Philox {
        seed: 1,
        sample0: 0,
    };
    CpuBackend
        .picard_sweep(&plan, &ct, &cw, shape, &mut cx, &out, noise, &mut cerr)
        .unwrap();
    let cpu_step =
        match CpuBackend.picard_advance(&plan, &ct, &mut cw, shape, &mut cx, &mut ctimes, &cerr) {
            Err(Error::NonFinite { step, .. }) => step,
            other => panic!("cpu: {other:?}"),
        };
    let gnoise = Noise::Philox {
        seed: 1,
        sample0: 0,
    };
    for _ in 0..3 {
        be.picard_sweep(&plan, &gt, &gw, shape, &mut gx, &gout, gnoise, &mut gerr)
            .unwrap();
        be.picard_advance(&plan, &gt, &mut gw, shape, &mut gx, &mut gtimes, &gerr)
            .unwrap();
    }
    match be.window_read(&gw) {
        Err(Error::NonFinite { step, .. }) => assert_eq!(step, cpu_step),
        other => panic!("gpu: expected NonFinite at step {cpu_step}, got {other:?}"),
    }
}

#[test]
fn model_slots_are_the_whole_ring_and_syncs_are_periodic() {
    let Some(be) = device("model_slots_are_the_whole_ring_and_syncs_are_periodic") else {
        return;
    };
    let plan = WindowPlan::sliding(100, 30, 0.1, PicardForm::Scan, None).unwrap();
    let st = table(100, "ddpm");
    let gt = be.upload_tables(&st).unwrap();
    let mut times = be.alloc(31 * 4).unwrap();
    let w = be
        .window_new(&plan, &gt, &mut times, Shape { batch: 4, dim: 2 })
        .unwrap();
    let slots = be.model_slots(&w, &plan).unwrap();
    assert_eq!(slots[0].map(|s| (s.start, s.len)), Some((0, 31)));
    assert!(slots[1].is_none());
    assert!(be.sync_interval() > 1);
    assert!(be.free_memory().is_some_and(|f| f > 0));
}

#[test]
fn gmm_eval_matches_the_cpu() {
    let Some(be) = device("gmm_eval_matches_the_cpu") else {
        return;
    };
    let big = {
        let (k, d) = (300, 1000);
        let w: Vec<f64> = (0..k).map(|i| 1.0 + (i % 7) as f64).collect();
        let m: Vec<Vec<f64>> = (0..k)
            .map(|i| {
                rand_vec(d, 500 + i as u64)
                    .iter()
                    .map(|&v| 0.2 * v as f64)
                    .collect()
            })
            .collect();
        let s: Vec<f64> = (0..k).map(|i| 0.2 + 0.002 * i as f64).collect();
        Mixture::new(w, m, s).unwrap()
    };
    let one = Mixture::new(vec![1.0], vec![vec![0.5]], vec![0.3]).unwrap();
    for mix in [common::mixture_2d(), common::mixture_64d(), big, one] {
        for sname in ["ddpm-linear", "cosine", "ou", "vp-linear"] {
            let sched = Schedule::from_name(sname, 1000).unwrap();
            let d = mix.dim;
            let model = GmmModel::new(mix.clone(), sched);
            let (row0, rows) = (3, 33);
            let x: Vec<f32> = rand_vec((row0 + rows) * d, 77)
                .iter()
                .map(|v| v * 3.0)
                .collect();
            let times: Vec<f32> = (0..row0 + rows)
                .map(|i| match sname {
                    "ddpm-linear" | "cosine" => {
                        [0.0, 1.0, 999.0, 500.4, 500.5, -1.0, 1500.0, 20.0][i % 8]
                    }
                    "ou" => [1e-3, 0.01, 0.5, 1.0, 2.0, 5.0, 10.0, 0.1][i % 8],
                    _ => [1e-3, 0.01, 0.2, 0.5, 0.9, 1.0, 0.05, 0.3][i % 8],
                })
                .collect();
            let mut cws = ScoreModel::<CpuBackend>::workspace(&model, &CpuBackend, rows).unwrap();
            let mut cout = vec![0f32; (row0 + rows) * d];
            model
                .eval(&CpuBackend, &mut cws, &x, &times, row0, rows, &mut cout)
                .unwrap();
            let mut gws = ScoreModel::<CudaBackend>::workspace(&model, &be, rows).unwrap();
            let (gx, gtimes) = (be.upload(&x).unwrap(), be.upload(&times).unwrap());
            let mut gout = be.alloc((row0 + rows) * d).unwrap();
            model
                .eval(&be, &mut gws, &gx, &gtimes, row0, rows, &mut gout)
                .unwrap();
            let g = down(&be, &gout);
            let diff = max_rel_diff(&cout[row0 * d..], &g[row0 * d..]);
            report(format!(
                "gmm {sname} K={} D={d}: max relative difference {diff:e}",
                mix.components()
            ));
            assert!(
                diff <= 1e-4,
                "gmm {sname} K={} D={d}: {diff}",
                mix.components()
            );
            assert!(
                g[..row0 * d].iter().all(|&v| v == 0.0),
                "rows before row0 untouched"
            );
            // Too many rows for the workspace: an error.
            assert!(model
                .eval(&be, &mut gws, &gx, &gtimes, 0, rows + 1, &mut gout)
                .is_err());
        }
    }
}

#[test]
fn bias_activation_epilogue() {
    let Some(be) = device("bias_activation_epilogue") else {
        return;
    };
    let (rows, cols) = (70_000, 3);
    let y0: Vec<f32> = rand_vec(rows * cols, 9).iter().map(|v| v * 6.0).collect();
    let bias = rand_vec(cols, 10);
    let gb = be.upload(&bias).unwrap();
    for act in [None, Some(Activation::Silu), Some(Activation::GeluTanh)] {
        let mut y = be.upload(&y0).unwrap();
        be.bias_act(&mut y, Some(&gb), rows, cols, act).unwrap();
        let got = down(&be, &y);
        for (i, &g) in got.iter().enumerate() {
            let v = f64::from(y0[i] + bias[i % cols]);
            let want = match act {
                None => v,
                Some(Activation::Silu) => v / (1.0 + (-v).exp()),
                Some(Activation::GeluTanh) => {
                    0.5 * v
                        * (1.0
                            + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3)))
                                .tanh())
                }
            };
            assert!(
                (f64::from(g) - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{act:?} at {i}: {g} vs {want}"
            );
        }
    }
    let mut y = be.upload(&y0).unwrap();
    be.bias_act(&mut y, None, rows, cols, None).unwrap();
    assert_eq!(down(&be, &y), y0);
    assert!(be
        .bias_act(&mut y, Some(&gb), rows, cols + 1, Some(Activation::Silu))
        .is_err());
}
