//! Runs the CUDA kernels (compiled for a CPU emulation of CUDA) against the CPU backend.
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code)]
mod ffi {
    include!(concat!(env!("EMU_LIB_DIR"), "/picardiff_kernels.rs"));
}
mod models;
mod ops;

use picardiff::backend::{
    Backend, LangevinSweep, Noise, PicardForm, Shape, UnconvergedBlock, WindowPlan, WindowState,
};
use picardiff::prelude::*;
use picardiff::schedule::ClipSample;

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// One row of the packed coefficient table: (a, b, c, p, q, u, v, f), 32-byte aligned as on the
/// device (u, v, f: the clip columns, 0 without clipping).
#[repr(C, align(32))]
struct CoefRow([f32; 8]);

struct Tabs {
    coef: Vec<CoefRow>,
    t: Vec<f32>,
    var: Vec<f32>,
    clip_range: f32,
    /// A multistep rule's (b1, b2) per step, and its history (0: a one-step rule).
    hist: Vec<f32>,
    history: usize,
}
impl Tabs {
    fn new(t: &StepTable) -> Self {
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
        let coef = (0..t.a.len())
            .map(|j| {
                let mut r = [0.0f32; 8];
                r[..5].copy_from_slice(&[t.a[j], t.b[j], t.c[j], t.p[j], t.q[j]].map(|x| x as f32));
                if let Some(c) = &t.clip {
                    r[5..].copy_from_slice(&[c.u[j], c.v[j], c.f[j]].map(|x| x as f32));
                }
                CoefRow(r)
            })
            .collect();
        // As `CudaBackend::upload_tables` fills them.
        let clip_range = t.clip.as_ref().map_or(0.0, |c| c.range as f32);
        let hist = t.multistep.as_ref().map_or(vec![], |m| m.b1.iter().zip(&m.b2).flat_map(|(&x, &y)| [x as f32, y as f32]).collect());
        let history = t.multistep.as_ref().map_or(0, |m| m.history);
        Tabs { coef, t: f(&t.t), var: f(&t.var), clip_range, hist, history }
    }
    fn raw(&self) -> ffi::PicardTables {
        ffi::PicardTables {
            coef: self.coef.as_ptr().cast(),
            t: self.t.as_ptr(),
            var: self.var.as_ptr(),
            clip_range: self.clip_range,
            hist_coef: if self.history > 0 { self.hist.as_ptr() } else { std::ptr::null() },
            history: self.history as i32,
        }
    }
}

/// The step table of `rule` over a 1000-step DDPM schedule; `rule+clip` adds the clipped-x̂0
/// columns (range 1, diffusers' rule for which quantity stays; docs/algorithms.md §7).
fn table(steps: usize, rule: &str) -> StepTable {
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let spacing = if rule.starts_with("dpmpp") { Spacing::DpmLinspace } else { Spacing::Leading };
    let g = Grid::discrete(&s, steps, spacing).unwrap();
    let (name, clip) = match rule.strip_suffix("+clip") {
        Some(n) => (n, true),
        None => (rule, false),
    };
    let r = StepRule::from_name(name, None).unwrap();
    let t = StepTable::new(&g, r, ModelOutput::Epsilon).unwrap();
    if clip {
        t.with_clip(&g, ModelOutput::Epsilon, ClipSample::for_rule(r, 1.0)).unwrap()
    } else {
        t
    }
}

fn null() -> ffi::cudaStream_t {
    std::ptr::null_mut()
}

fn check_normals() {
    for &(b, d) in &[(1usize, 1usize), (3, 3), (2, 1000), (1, 4097), (5, 6)] {
        let shape = Shape { batch: b, dim: d };
        let mut cpu = vec![0f32; b * d + 3];
        CpuBackend.normal_fill(&mut cpu, 3, shape, 0xDEAD_BEEF_1234, 7, 11, 1).unwrap();
        let mut emu = vec![0f32; b * d + 3];
        let code = unsafe {
            ffi::launch_normal_fill_f32(emu.as_mut_ptr().add(3), b as i32, d as i64, 0xDEAD_BEEF_1234, 7, 11, 1, null())
        };
        assert_eq!(code, 0);
        assert!(cpu.iter().zip(&emu).all(|(x, y)| x.to_bits() == y.to_bits()), "normals {b}x{d}");
    }
    println!("normal_fill: bit-identical");
}

/// The Langevin corrector's sweep against CpuBackend::langevin_sweep, bit for bit, over several
/// sweeps from changing model outputs (ring of M + 1 slots, M outputs).
fn check_langevin() {
    for &(b, d, m) in &[(1usize, 1usize, 1usize), (3, 3, 4), (2, 1000, 16), (1, 4097, 3), (2, 8, 2)] {
        let shape = Shape { batch: b, dim: d };
        let slot = b * d;
        let lp = LangevinSweep {
            steps: m,
            h: 0.0625,
            decay: 0.88,
            force: -0.7,
            kick: 0.47,
            p: 1.3,
            q: -0.4,
            seed: 0x5eed,
            sample0: 3,
            step0: 17,
        };
        let x0 = rand_vec((m + 1) * slot, 7 + d as u64);
        let mut cx = x0.clone();
        let mut ex = x0;
        for sweep in 0..3u64 {
            let out = rand_vec(m * slot, 1000 + sweep);
            CpuBackend.langevin_sweep(&lp, shape, &mut cx, &out).unwrap();
            let p = ffi::LangevinParams {
                x: ex.as_mut_ptr(),
                out: out.as_ptr(),
                dim: d as i64,
                batch: b as i32,
                steps: m as i32,
                h: lp.h,
                decay: lp.decay,
                force: lp.force,
                kick: lp.kick,
                p: lp.p,
                q: lp.q,
                seed: lp.seed,
                sample0: lp.sample0,
                step0: lp.step0,
            };
            assert_eq!(unsafe { ffi::launch_langevin_sweep_f32(p, null()) }, 0);
            let same = cx.iter().zip(&ex).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "langevin {b}x{d} M={m} sweep {sweep}");
        }
    }
    println!("langevin: bit-identical");
}

fn check_step() {
    for rule in ["ddpm", "ddim", "ddpm+clip", "ddim+clip"] {
        let st = table(50, rule);
        let tabs = Tabs::new(&st);
        let ctab = CpuBackend.upload_tables(&st).unwrap();
        for &(b, d) in &[(1usize, 1usize), (3, 3), (2, 1000), (1, 4097), (2, 8)] {
            let shape = Shape { batch: b, dim: d };
            let noise_tab = rand_vec(50 * b * d, 5);
            for j in [0usize, 17, 49] {
                for use_table in [false, true] {
                    let x0 = rand_vec(b * d, j as u64 + 1);
                    let o = rand_vec(b * d, j as u64 + 100);
                    let mut cx = x0.clone();
                    let noise = if use_table { Noise::Table(&noise_tab) } else { Noise::Philox { seed: 99, sample0: 4 } };
                    CpuBackend.step(&ctab, j, shape, &mut cx, 0, &o, 0, noise).unwrap();
                    let mut ex = x0.clone();
                    let mut status = i32::MAX;
                    let p = ffi::PicardStepParams {
                        x: ex.as_mut_ptr(),
                        status: &mut status,
                        out: o.as_ptr(),
                        tab: tabs.raw(),
                        noise: ffi::PicardNoise {
                            seed: 99,
                            sample0: 4,
                            table: if use_table { noise_tab.as_ptr() } else { std::ptr::null() },
                        },
                        dim: d as i64,
                        batch: b as i32,
                        j: j as i32,
                        step_counter: std::ptr::null(),
                        steps: 50,
                    };
                    assert_eq!(unsafe { ffi::launch_picard_step_f32(p, null()) }, 0);
                    assert!(cx.iter().zip(&ex).all(|(x, y)| x.to_bits() == y.to_bits()), "step {rule} {b}x{d} j={j} table={use_table}");
                    assert_eq!(status, i32::MAX);
                }
            }
        }
    }
    // non-finite
    let st = table(50, "ddpm");
    let tabs = Tabs::new(&st);
    let mut ex = vec![0f32; 10];
    let mut o = vec![0f32; 10];
    o[7] = f32::NAN;
    let mut status = i32::MAX;
    let p = ffi::PicardStepParams {
        x: ex.as_mut_ptr(),
        status: &mut status,
        out: o.as_ptr(),
        tab: tabs.raw(),
        noise: ffi::PicardNoise { seed: 1, sample0: 0, table: std::ptr::null() },
        dim: 5,
        batch: 2,
        j: 13,
        step_counter: std::ptr::null(),
        steps: 50,
    };
    assert_eq!(unsafe { ffi::launch_picard_step_f32(p, null()) }, 0);
    assert_eq!(status, 13);
    println!("step: bit-identical (ddpm/ddim, clipped or not, philox/table), non-finite status ok");
}

/// The sequential sampler's counter path (the CUDA graph's kernels): seq_begin_f32 writes t_j to
/// the model times and advances the device counter, picard_step_f32 reads j from it. Against the
/// CPU backend's seq_begin / seq_step over every step of a 50-step table: times, counter and the
/// state bits after each step; one step past the last leaves times and state alone (the CPU errs).
fn check_seq() {
    for rule in ["ddpm", "ddim"] {
        let st = table(50, rule);
        let tabs = Tabs::new(&st);
        let ctab = CpuBackend.upload_tables(&st).unwrap();
        for &(b, d) in &[(1usize, 1usize), (3, 3), (2, 1000), (300, 2), (1, 4097)] {
            let shape = Shape { batch: b, dim: d };
            let noise_tab = rand_vec(50 * b * d, 5);
            for use_table in [false, true] {
                let noise = if use_table { Noise::Table(&noise_tab) } else { Noise::Philox { seed: 99, sample0: 4 } };
                let mut cseq = CpuBackend.seq_new(&ctab).unwrap();
                let (mut cx, mut ex) = (rand_vec(b * d, 1), vec![0f32; b * d]);
                ex.copy_from_slice(&cx);
                let (mut ctimes, mut etimes) = (vec![0f32; b], vec![f32::NAN; b]);
                let mut counter = 0i32;
                let mut status = i32::MAX;
                for j in 0..=50usize {
                    let o = rand_vec(b * d, j as u64 + 100);
                    assert_eq!(unsafe { ffi::launch_seq_begin_f32(&mut counter, tabs.t.as_ptr(), etimes.as_mut_ptr(), b as i32, 50, null()) }, 0);
                    let p = ffi::PicardStepParams {
                        x: ex.as_mut_ptr(),
                        status: &mut status,
                        out: o.as_ptr(),
                        step_counter: &counter,
                        tab: tabs.raw(),
                        noise: ffi::PicardNoise { seed: 99, sample0: 4, table: if use_table { noise_tab.as_ptr() } else { std::ptr::null() } },
                        dim: d as i64,
                        batch: b as i32,
                        j: 0,
                        steps: 50,
                    };
                    assert_eq!(unsafe { ffi::launch_picard_step_f32(p, null()) }, 0);
                    if j == 50 {
                        // Past the end: no time written, the step after it a no-op.
                        assert_eq!(counter, 51, "seq: counter past the last step");
                        assert!(CpuBackend.seq_begin(&ctab, &mut cseq, &mut ctimes, b).is_err());
                    } else {
                        CpuBackend.seq_begin(&ctab, &mut cseq, &mut ctimes, b).unwrap();
                        CpuBackend.seq_step(&ctab, &cseq, shape, &mut cx, &o, noise).unwrap();
                        assert_eq!(counter, j as i32 + 1, "seq: counter after step {j}");
                    }
                    let bits = |a: &[f32], e: &[f32]| a.iter().zip(e).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(bits(&ctimes, &etimes), "seq {rule} {b}x{d} table={use_table}: times at step {j}");
                    assert!(bits(&cx, &ex), "seq {rule} {b}x{d} table={use_table}: state after step {j}");
                }
                assert_eq!(status, i32::MAX);
            }
        }
    }
    println!("sequential counter path: bit-identical (ddpm/ddim, philox/table, 50 steps + one past)");
}

/// The multistep rules' sequential step (the state and its direction slots) against the CPU
/// backend's, bit for bit over every step of 20- and 9-step DPM-Solver++ tables, with j given and
/// through the step counter (one extra call past the last step: no-op).
fn check_multistep_seq() {
    for (rule, steps) in [("dpmpp-2m", 20usize), ("dpmpp-3m", 20), ("dpmpp-3m", 9)] {
        let st = table(steps, rule);
        let tabs = Tabs::new(&st);
        let ctab = CpuBackend.upload_tables(&st).unwrap();
        for &(b, d) in &[(1usize, 1usize), (3, 3), (2, 1000), (1, 4097)] {
            let shape = Shape { batch: b, dim: d };
            let slot = b * d;
            for counter_path in [false, true] {
                let mut cx = rand_vec(slot, 1);
                cx.resize((1 + tabs.history) * slot, 0.0);
                let mut ex = cx.clone();
                let mut status = i32::MAX;
                let mut counter = 0i32;
                let mut etimes = vec![0f32; b];
                for j in 0..=steps {
                    let o = rand_vec(slot, j as u64 + 100);
                    if counter_path {
                        assert_eq!(unsafe { ffi::launch_seq_begin_f32(&mut counter, tabs.t.as_ptr(), etimes.as_mut_ptr(), b as i32, steps as i32, null()) }, 0);
                    } else if j == steps {
                        break;
                    }
                    let p = ffi::PicardStepParams {
                        x: ex.as_mut_ptr(),
                        status: &mut status,
                        out: o.as_ptr(),
                        step_counter: if counter_path { &counter } else { std::ptr::null() },
                        tab: tabs.raw(),
                        noise: ffi::PicardNoise { seed: 1, sample0: 0, table: std::ptr::null() },
                        dim: d as i64,
                        batch: b as i32,
                        j: if counter_path { 0 } else { j as i32 },
                        steps: steps as i32,
                    };
                    assert_eq!(unsafe { ffi::launch_picard_step_f32(p, null()) }, 0);
                    if j < steps {
                        CpuBackend.step(&ctab, j, shape, &mut cx, 0, &o, 0, Noise::Philox { seed: 1, sample0: 0 }).unwrap();
                    }
                    let same = cx.iter().zip(&ex).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "multistep step {rule}-{steps} {b}x{d} counter={counter_path}: state or directions differ after step {j}");
                }
                assert_eq!(status, i32::MAX);
            }
        }
    }
    println!("multistep sequential step: bit-identical (dpmpp-2m/3m, state and directions, j and counter)");
}

fn to_state(w: &ffi::PicardWindow) -> WindowState {
    WindowState {
        start: w.start as usize,
        end: w.end as usize,
        iters: w.iters as usize,
        nfe: w.nfe as usize,
        block: w.block as usize,
        block_iters: w.block_iters as usize,
        worst_block_err: w.worst_block_err,
        unconverged: (w.unconverged_block > 0).then(|| UnconvergedBlock {
            block: w.unconverged_block as usize - 1,
            end: w.unconverged_end as usize,
            err: w.unconverged_err,
        }),
        final_sweeps: w.final_sweeps as usize,
        final_err: w.final_err,
        final_stopped: w.final_stopped != 0,
    }
}

/// Runs `iters` Picard iterations with fixed random model outputs on both and compares everything.
fn check_picard(plan: &WindowPlan, rule: &str, shape: Shape, noise_table: bool, nan_at: Option<usize>) -> (usize, WindowState) {
    let st = table(plan.steps, rule);
    let tabs = Tabs::new(&st);
    let ctab = CpuBackend.upload_tables(&st).unwrap();
    let r = plan.ring();
    let slot = shape.slot_len();
    let mut cx = rand_vec(r * slot, 1);
    let mut ex = cx.clone();
    let mut out = rand_vec(r * slot, 2);
    if let Some(s) = nan_at {
        out[s * slot + slot / 2] = f32::NAN;
    }
    let ntab = rand_vec(plan.steps * slot, 3);
    let noise = if noise_table { Noise::Table(&ntab) } else { Noise::Philox { seed: 42, sample0: 3 } };
    let mut ctimes = vec![0f32; r * shape.batch];
    let mut cw = CpuBackend.window_new(plan, &ctab, &mut ctimes, shape).unwrap();
    // A multistep rule's direction ring (window + history slots, zeros as alloc makes them).
    let hr = if tabs.history > 0 { plan.window + tabs.history } else { 0 };
    let mut eh = vec![0f32; hr * slot];
    let mut etimes = ctimes.clone();
    let st0 = plan.initial_state();
    let mut ew = ffi::PicardWindow {
        start: 0,
        end: st0.end as i32,
        iters: 0,
        nfe: 0,
        block: 0,
        block_iters: 0,
        old_end: st0.end as i32,
        bad_point: 0,
        worst_block_err: 0.0,
        unconverged_block: 0,
        unconverged_end: 0,
        unconverged_err: 0.0,
        final_sweeps: 0,
        final_err: 0.0,
        final_stopped: 0,
    };
    let ends: Vec<i32> = match &plan.mode {
        picardiff::backend::WindowMode::Sliding => vec![0],
        picardiff::backend::WindowMode::Blocks { ends, .. } => ends.iter().map(|&e| e as i32).collect(),
    };
    let (mode, nb, k) = match &plan.mode {
        picardiff::backend::WindowMode::Sliding => (0, 0, 0),
        picardiff::backend::WindowMode::Blocks { ends, iters } => (1, ends.len(), *iters),
    };
    let bps = unsafe { ffi::picardiff_sweep_blocks_per_sample(shape.dim as i64) } as usize;
    let mut cerr = vec![0f32; CpuBackend.err_len(plan, shape)];
    let mut eerr = vec![f32::NAN; plan.window * shape.batch * bps];
    let mut iters = 0;
    loop {
        let params = ffi::PicardParams {
            x: ex.as_mut_ptr(),
            out: out.as_ptr(),
            times: etimes.as_mut_ptr(),
            partial: eerr.as_mut_ptr(),
            win: &mut ew,
            block_ends: ends.as_ptr(),
            tab: tabs.raw(),
            noise: ffi::PicardNoise { seed: 42, sample0: 3, table: if noise_table { ntab.as_ptr() } else { std::ptr::null() } },
            dim: shape.dim as i64,
            batch: shape.batch as i32,
            steps: plan.steps as i32,
            window: plan.window as i32,
            mode,
            form: if plan.form == PicardForm::Drift { 1 } else { 0 },
            num_blocks: nb as i32,
            block_iters: k as i32,
            tol2: plan.tol2,
            final_tol2: plan.final_stop.map_or(-1.0, |f| f.tol2),
            sweep_path: ffi::PICARDIFF_SWEEP_SERIAL as i32,
            noisy: i32::from(tabs.coef.iter().any(|r| r.0[2] != 0.0)),
            hist: if hr > 0 { eh.as_mut_ptr() } else { std::ptr::null_mut() },
            hist_slots: hr as i32,
        };
        let (s, e) = (cw.start, cw.end);
        // The window-parallel scan kernel on a copy of the same state (equal up to rounding).
        let mut sx = ex.clone();
        let mut serr = vec![f32::NAN; eerr.len()];
        let mut sh = eh.clone();
        let sparams = ffi::PicardParams {
            x: sx.as_mut_ptr(),
            hist: if hr > 0 { sh.as_mut_ptr() } else { std::ptr::null_mut() },
            partial: serr.as_mut_ptr(),
            win: &mut ew,
            sweep_path: ffi::PICARDIFF_SWEEP_SCAN as i32,
            ..params
        };
        assert_eq!(unsafe { ffi::launch_picard_sweep_f32(sparams, null()) }, 0);
        CpuBackend.picard_sweep(plan, &ctab, &cw, shape, &mut cx, &out, noise, &mut cerr).unwrap();
        // Rounding of a reassociated recurrence: relative to the magnitude of the slot's values.
        let scale: Vec<f32> = cx.chunks(slot).map(|v| v.iter().filter(|x| x.is_finite()).fold(1f32, |m, x| m.max(x.abs()))).collect();
        for (i, (c, g)) in cx.iter().zip(&sx).enumerate() {
            let ok = (c - g).abs() <= 1e-5 * scale[i / slot] || (c.is_nan() && g.is_nan());
            assert!(ok, "scan sweep x[{i}]: cpu {c} scan {g} (iter {iters})");
        }
        let per_row = shape.dim.div_ceil(picardiff::backend::cpu::CHUNK);
        for kk in 0..e - s {
            let sl = ((s + kk + 1) % r) * slot;
            for b in 0..shape.batch {
                let c: f32 = (0..per_row).map(|u| cerr[(b * per_row + u) * plan.window + kk]).sum();
                let g: f32 = (0..bps).map(|u| serr[(kk * shape.batch + b) * bps + u]).sum();
                let ny2: f64 = cx[sl + b * shape.dim..sl + (b + 1) * shape.dim].iter().map(|&v| (v as f64) * (v as f64)).sum();
                let (c64, g64) = (c as f64, g as f64);
                let tol = 1e-4 * c64.abs() + 2.0 * (c64.abs() * 1e-10 * ny2).sqrt() + 1e-10 * ny2 + 1e-30;
                let ok = (c64 - g64).abs() <= tol || (!c.is_finite() && !g.is_finite());
                assert!(ok, "scan err k={kk} b={b}: cpu {c} scan {g} (iter {iters})");
            }
        }
        assert_eq!(unsafe { ffi::launch_picard_sweep_f32(params, null()) }, 0);
        let same = cx.iter().zip(&ex).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "sweep state differs (iter {iters})");
        // Per (point, sample) sums.
        for kk in 0..e - s {
            for b in 0..shape.batch {
                let c: f32 = (0..per_row).map(|u| cerr[(b * per_row + u) * plan.window + kk]).sum();
                let g: f32 = (0..bps).map(|u| eerr[(kk * shape.batch + b) * bps + u]).sum();
                let ok = (c - g).abs() <= 1e-5 * c.abs().max(1e-30) || (c.is_nan() && g.is_nan()) || c == g;
                assert!(ok, "err k={kk} b={b}: cpu {c} emu {g}");
            }
        }
        let cres = CpuBackend.picard_advance(plan, &ctab, &mut cw, shape, &mut cx, &mut ctimes, &cerr);
        assert_eq!(unsafe { ffi::launch_picard_advance_f32(params, null()) }, 0);
        assert_eq!(unsafe { ffi::launch_picard_new_slots_f32(params, null()) }, 0);
        iters += 1;
        match cres {
            Err(Error::NonFinite { step, .. }) => {
                assert_eq!(ew.bad_point as usize, step + 1, "bad point");
                return (iters, cw.state);
            }
            Err(e) => panic!("{e}"),
            Ok(()) => {}
        }
        assert_eq!(ew.bad_point, 0);
        // The block residuals are float sums in each side's order: equal to rounding.
        assert!(to_state(&ew).matches(&cw.state, 1e-4), "state after iter {iters}: {:?} vs {:?}", to_state(&ew), cw.state);
        assert!(cx.iter().zip(&ex).all(|(a, b)| a.to_bits() == b.to_bits()), "new slots differ");
        assert_eq!(ctimes, etimes, "times differ");
        if cw.done(plan) {
            // One more no-op round.
            let params = ffi::PicardParams { win: &mut ew, ..params };
            let before = ew;
            unsafe {
                assert_eq!(ffi::launch_picard_sweep_f32(params, null()), 0);
                assert_eq!(ffi::launch_picard_advance_f32(params, null()), 0);
                assert_eq!(ffi::launch_picard_new_slots_f32(params, null()), 0);
            }
            assert_eq!(to_state(&ew), to_state(&before));
            assert!(cx.iter().zip(&ex).all(|(a, b)| a.to_bits() == b.to_bits()));
            return (iters, cw.state);
        }
        // A "model": perturb the outputs of the window a little so that errors shrink.
        for v in out.iter_mut() {
            *v *= 0.5;
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("gmm") {
        models::check_bias_act();
        models::check_gmm();
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("ops") {
        ops::check_ops(false);
        return;
    }
    // `quick` (CI): fewer Picard shapes and tolerances, every kernel path still (scalar and float4
    // loads, n < 4 tails, scan and drift forms, sliding and blocks windows, both noise sources).
    let quick = std::env::args().nth(1).as_deref() == Some("quick");
    check_normals();
    check_step();
    check_seq();
    check_multistep_seq();
    check_langevin();
    let mut cases = vec![];
    let shapes: &[(usize, usize, usize, usize)] = if quick {
        &[(50, 7, 3, 3), (30, 7, 1, 4097), (20, 20, 1, 512)]
    } else {
        &[(50, 1, 2, 1), (50, 7, 3, 3), (50, 7, 2, 1000), (100, 40, 2, 5), (60, 60, 1, 4096), (30, 7, 1, 4097)]
    };
    let tols: &[f64] = if quick { &[0.0, 0.3] } else { &[0.0, 0.3, 1e3] };
    for &(steps, p, b, d) in shapes {
        for form in [PicardForm::Scan, PicardForm::Drift] {
            for &tol in tols {
                cases.push((WindowPlan::sliding(steps, p, tol, form, None).unwrap(), b, d));
            }
        }
    }
    let blocks: &[(Vec<usize>, usize)] =
        if quick { &[(vec![10, 25, 30, 50], 3)] } else { &[(vec![10, 25, 30, 50], 3), (vec![50], 2), (vec![1, 2, 50], 60)] };
    for (ends, k) in blocks {
        for &tol in tols {
            cases.push((WindowPlan::blocks(50, ends.clone(), *k, tol, PicardForm::Scan).unwrap(), 3, 5));
        }
    }
    // The final-sample stop (bounds in the normalised units of tol2; the outputs halve each
    // iteration, so the last point's error falls by about 4 per iteration): sliding and blocks,
    // τ = 0 so that only the stop can end the window early.
    let stop = |plan: WindowPlan, tol2: f32| WindowPlan {
        final_stop: Some(picardiff::backend::FinalStop { tol: 0.0, var: 1.0, tol2 }),
        ..plan
    };
    for tol2 in [1e-2f32, 1e2] {
        cases.push((stop(WindowPlan::sliding(50, 50, 0.0, PicardForm::Scan, None).unwrap(), tol2), 3, 5));
        cases.push((stop(WindowPlan::sliding(30, 7, 0.0, PicardForm::Drift, None).unwrap(), tol2), 2, 513));
        cases.push((stop(WindowPlan::blocks(50, vec![10, 50], 60, 0.0, PicardForm::Scan).unwrap(), tol2), 3, 5));
    }
    for (plan, b, d) in &cases {
        let rules = [("ddpm", false), ("ddpm", true), ("ddim", false), ("ddpm+clip", false), ("ddim+clip", true), ("dpmpp-2m", false), ("dpmpp-3m", false)];
        for (rule, nt) in rules {
            let (it, st) = check_picard(plan, rule, Shape { batch: *b, dim: *d }, nt, None);
            let fin = plan.final_stop.map_or(String::new(), |f| {
                format!(" final_tol2={} stopped={} sweeps={}", f.tol2, st.final_stopped, st.final_sweeps)
            });
            println!("picard {:?} p={} tol2={} {rule} table={nt} B={b} D={d}: {it} iters equal{fin}", plan.mode, plan.window, plan.tol2);
        }
    }
    // NaN inside the window
    let plan = WindowPlan::sliding(50, 10, 0.1, PicardForm::Scan, None).unwrap();
    let (it, _) = check_picard(&plan, "ddpm", Shape { batch: 2, dim: 3 }, false, Some(4));
    println!("nan: stopped after {it} iters with the same step");
    models::check_gmm();
    ops::check_ops(quick);
    println!("ALL OK");
}
