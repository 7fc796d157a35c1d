//! The pure-Rust CPU backend: the embedded default and the oracle for the CUDA backend.
//!
//! Work is split into fixed units (one sample × a chunk of [`CHUNK`] elements) run in parallel with
//! rayon; partial error sums are kept per unit and reduced in a fixed order, so results are
//! bit-identical whatever the thread count.

use rayon::prelude::*;

pub use super::cpu_window::CpuWindow;
use super::{
    check_multistep, ring_ranges, Backend, LangevinSweep, Noise, PicardForm, Shape, SlotRange,
    WindowPlan, WindowState,
};
use crate::error::{Error, Result};
use crate::rng;
use crate::schedule::StepTable;

/// Elements per parallel work unit (a multiple of 4, the Philox group size).
pub const CHUNK: usize = 1024;
/// Elements processed together in registers inside a unit (a multiple of 4).
const LANES: usize = 16;
/// The exponent bits of an f32: all set in ∞ and NaN only.
const EXP_BITS: u32 = 0x7f80_0000;

pub use super::host::cgroup_free;

/// The CPU backend (stateless; parallelism from rayon's global pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuBackend;

/// A step table in f32, as the kernels use it.
#[derive(Debug, Clone)]
pub struct CpuTables {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    p: Vec<f32>,
    q: Vec<f32>,
    t: Vec<f32>,
    var: Vec<f32>,
    /// The clipped-x̂0 correction (`u`, `v`, `f` per point and the range), when the run clips.
    clip: Option<CpuClip>,
    /// A multistep rule's coefficients of the earlier points (`docs/algorithms.md` §9).
    ms: Option<CpuMultistep>,
}

/// [`crate::schedule::MultistepTable`] in f32.
#[derive(Debug, Clone)]
struct CpuMultistep {
    /// Earlier points a step reads (1 or 2).
    history: usize,
    b1: Vec<f32>,
    b2: Vec<f32>,
}

/// [`crate::schedule::ClipTable`] in f32.
#[derive(Debug, Clone)]
struct CpuClip {
    u: Vec<f32>,
    v: Vec<f32>,
    f: Vec<f32>,
    range: f32,
}

impl CpuTables {
    /// The clip coefficients `(u, v, f, r)` of point `j`, if the run clips.
    #[inline]
    fn clip_at(&self, j: usize) -> Option<(f32, f32, f32, f32)> {
        self.clip
            .as_ref()
            .map(|c| (c.u[j], c.v[j], c.f[j], c.range))
    }
}

/// The clipped-x̂0 correction of one model output (`docs/algorithms.md` §7), written once so that
/// the sequential step and the sweep round identically: `o + f·(clamp(x̂0, −r, r) − x̂0)` with
/// `x̂0 = u·x + v·o`. Nothing clipped: `o` exactly.
#[inline(always)]
fn clip_fix(c: (f32, f32, f32, f32), x: f32, o: f32) -> f32 {
    let (u, v, f, r) = c;
    let x0 = u * x + v * o;
    o + f * (x0.clamp(-r, r) - x0)
}

/// One affine step, written once so that the sequential sampler and the scan round identically:
/// `a·y + b·(p·x + q·o) + c·z`.
#[inline(always)]
fn affine(k: (f32, f32, f32, f32, f32), y: f32, x: f32, o: f32, z: f32) -> f32 {
    let (a, b, c, p, q) = k;
    a * y + b * (p * x + q * o) + c * z
}

/// The noise for elements `g..g + out.len()` of `sample` at `step` (`g` a multiple of 4).
#[inline]
fn noise_lanes(
    noise: &Noise<'_, CpuBackend>,
    shape: Shape,
    step: usize,
    sample: usize,
    g: usize,
    out: &mut [f32],
) {
    match noise {
        Noise::Philox { seed, sample0 } => rng::fill_normal_from(
            *seed,
            (g / 4) as u32,
            step as u32,
            sample0 + sample as u32,
            rng::TAG_STEP,
            out,
        ),
        Noise::Table(t) => {
            let base = (step * shape.batch + sample) * shape.dim + g;
            out.copy_from_slice(&t[base..base + out.len()]);
        }
    }
}

/// A raw pointer that may cross threads; every use writes disjoint elements (see SAFETY notes).
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: the pointer is only dereferenced at elements that one work unit alone writes, while the
// buffer it points into outlives the parallel loop (see the SAFETY notes at each use).
unsafe impl Send for SharedMut {}
// SAFETY: as for `Send`: shared references only ever write disjoint elements.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn ptr(&self) -> *mut f32 {
        self.0
    }
}

mod anderson;
mod checked;
mod multistep;

pub(crate) use anderson::Anderson;

/// The sequential sampler's step counter on the CPU: the steps begun ([`Backend::seq_begin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSeq {
    begun: usize,
}

impl Backend for CpuBackend {
    type Buf = Vec<f32>;
    type Tables = CpuTables;
    type Window = CpuWindow;
    type Seq = CpuSeq;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn alloc(&self, len: usize) -> Result<Vec<f32>> {
        super::host::filled(len, 0.0, "f32 buffer")
    }

    /// The host's free memory: `MemAvailable` and the cgroup's limit, the smaller.
    fn free_memory(&self) -> Option<usize> {
        super::host::free_bytes()
    }

    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        let mut v = super::host::filled(data.len(), 0.0, "upload")?;
        v.copy_from_slice(data);
        Ok(v)
    }

    fn download(&self, buf: &Vec<f32>, offset: usize, out: &mut [f32]) -> Result<()> {
        let src = buf
            .get(range(offset, out.len(), buf.len(), "download")?)
            .ok_or_else(|| Error::shape("download", "range out of bounds"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn copy(
        &self,
        src: &Vec<f32>,
        src_off: usize,
        dst: &mut Vec<f32>,
        dst_off: usize,
        len: usize,
    ) -> Result<()> {
        let from = range(src_off, len, src.len(), "copy (source)")?;
        let to = range(dst_off, len, dst.len(), "copy (destination)")?;
        dst[to].copy_from_slice(&src[from]);
        Ok(())
    }

    fn fill(&self, buf: &mut Vec<f32>, offset: usize, len: usize, value: f32) -> Result<()> {
        let r = range(offset, len, buf.len(), "fill")?;
        buf[r].fill(value);
        Ok(())
    }

    /// One partial sum per (work unit, window point).
    fn err_len(&self, plan: &WindowPlan, shape: Shape) -> usize {
        Self::units(shape) * plan.window
    }

    /// One slot per ring slot ([`CpuWindow`]), for a rule with noise.
    fn noise_ring_len(&self, plan: &WindowPlan, shape: Shape) -> usize {
        plan.ring() * shape.slot_len()
    }

    /// `window + history` slots of directions ([`CpuWindow`]) for a multistep rule.
    fn history_ring_len(&self, plan: &WindowPlan, shape: Shape, history: usize) -> usize {
        if history == 0 {
            0
        } else {
            (plan.window + history) * shape.slot_len()
        }
    }

    /// The histories and fit sums of Anderson acceleration (`cpu/anderson.rs`), in f32-sized values.
    fn anderson_len(&self, plan: &WindowPlan, shape: Shape) -> Option<usize> {
        Some(
            plan.anderson
                .map_or(0, |m| Anderson::floats(m, plan.window, shape)),
        )
    }

    fn upload_tables(&self, t: &StepTable) -> Result<CpuTables> {
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
        check_multistep(t, "CPU")?;
        Ok(CpuTables {
            a: f(&t.a),
            b: f(&t.b),
            c: f(&t.c),
            p: f(&t.p),
            q: f(&t.q),
            t: f(&t.t),
            var: f(&t.var),
            clip: t.clip.as_ref().map(|c| CpuClip {
                u: f(&c.u),
                v: f(&c.v),
                f: f(&c.f),
                range: c.range as f32,
            }),
            ms: t.multistep.as_ref().map(|m| CpuMultistep {
                history: m.history,
                b1: f(&m.b1),
                b2: f(&m.b2),
            }),
        })
    }

    fn normal_fill(
        &self,
        buf: &mut Vec<f32>,
        offset: usize,
        shape: Shape,
        seed: u64,
        sample0: u32,
        step: u32,
        tag: u32,
    ) -> Result<()> {
        let dst = &mut buf[offset..offset + shape.slot_len()];
        dst.par_chunks_mut(shape.dim)
            .enumerate()
            .for_each(|(b, row)| rng::fill_normal(seed, step, sample0 + b as u32, tag, row));
        Ok(())
    }

    fn step(
        &self,
        tab: &CpuTables,
        j: usize,
        shape: Shape,
        x: &mut Vec<f32>,
        x_off: usize,
        out: &Vec<f32>,
        out_off: usize,
        noise: Noise<'_, Self>,
    ) -> Result<()> {
        self.step_checked::<true>(tab, j, shape, x, x_off, out, out_off, noise)
    }

    fn seq_new(&self, _tab: &CpuTables) -> Result<CpuSeq> {
        Ok(CpuSeq { begun: 0 })
    }

    fn seq_begin(
        &self,
        tab: &CpuTables,
        seq: &mut CpuSeq,
        times: &mut Vec<f32>,
        batch: usize,
    ) -> Result<()> {
        let Some(&t) = tab.t.get(seq.begun) else {
            return Err(Error::shape(
                "sequential step",
                format!("step {} of a {}-step table", seq.begun, tab.t.len()),
            ));
        };
        self.fill(times, 0, batch, t)?;
        seq.begun += 1;
        Ok(())
    }

    fn seq_step(
        &self,
        tab: &CpuTables,
        seq: &CpuSeq,
        shape: Shape,
        x: &mut Vec<f32>,
        out: &Vec<f32>,
        noise: Noise<'_, Self>,
    ) -> Result<()> {
        let Some(j) = seq.begun.checked_sub(1) else {
            return Err(Error::shape("sequential step", "no step was begun"));
        };
        self.step(tab, j, shape, x, 0, out, 0, noise)
    }

    fn seq_finish(&self, _tab: &CpuTables, _seq: &CpuSeq) -> Result<()> {
        Ok(())
    }

    fn window_new(
        &self,
        plan: &WindowPlan,
        tab: &CpuTables,
        times: &mut Vec<f32>,
        shape: Shape,
    ) -> Result<CpuWindow> {
        let st = plan.initial_state();
        for m in 0..=st.end.min(plan.steps - 1) {
            let slot = m % plan.ring();
            times[slot * shape.batch..(slot + 1) * shape.batch].fill(tab.t[m]);
        }
        let noisy = tab.c.iter().any(|&c| c != 0.0);
        let hist = tab.ms.as_ref().map_or(0, |m| plan.window + m.history);
        let aa = plan
            .anderson
            .map(|m| Anderson::new(m, plan.window, shape))
            .transpose()?;
        CpuWindow::new(
            st,
            plan.ring(),
            if noisy { shape.slot_len() } else { 0 },
            hist,
            shape.slot_len(),
            aa,
        )
    }

    fn window_read(&self, w: &CpuWindow) -> Result<WindowState> {
        Ok(w.state)
    }

    fn model_slots(&self, w: &CpuWindow, plan: &WindowPlan) -> Result<[Option<SlotRange>; 2]> {
        if w.done(plan) {
            return Ok([None, None]);
        }
        Ok(ring_ranges(plan.ring(), w.start, w.end - w.start))
    }

    fn picard_sweep(
        &self,
        plan: &WindowPlan,
        tab: &CpuTables,
        w: &CpuWindow,
        shape: Shape,
        x: &mut Vec<f32>,
        out: &Vec<f32>,
        noise: Noise<'_, Self>,
        err: &mut Vec<f32>,
    ) -> Result<()> {
        let (s, e) = (w.start, w.end);
        if s >= plan.steps {
            return Ok(());
        }
        Self::check_noise(&noise, plan.steps, shape)?;
        let (r, p, dim, slot) = (plan.ring(), plan.window, shape.dim, shape.slot_len());
        if x.len() < r * slot
            || out.len() < r * slot
            || err.len() < Self::units(shape) * plan.window
        {
            return Err(Error::shape(
                "picard_sweep",
                "workspace buffers are smaller than the plan needs",
            ));
        }
        if let Some(aa) = &w.aa {
            aa.borrow_mut().save_inputs(w.iters, s, e, x, r);
        }
        if let Some(ms) = &tab.ms {
            return self.sweep_multistep(plan, tab, ms, w, shape, x, out, err);
        }
        let per_row = dim.div_ceil(CHUNK);
        let xp = SharedMut(x.as_mut_ptr());
        let drift = plan.form == PicardForm::Drift;
        // Philox noise goes through the window's ring: made once per point, read afterwards.
        let ring = match noise {
            Noise::Philox { seed, sample0 } => w.noise.begin((seed, sample0)).map(SharedMut),
            Noise::Table(_) => None,
        };
        let marks = w.noise.marks();
        err.par_chunks_mut(p)
            .take(Self::units(shape))
            .enumerate()
            .for_each(|(u, acc)| {
                let (sample, d0) = (u / per_row, (u % per_row) * CHUNK);
                let d1 = (d0 + CHUNK).min(dim);
                acc[..e - s].fill(0.0);
                let mut g = d0;
                while g < d1 {
                    let wl = LANES.min(d1 - g);
                    let (mut y, mut xold, mut z) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
                    let base = |m: usize| (m % r) * slot + sample * dim + g;
                    // SAFETY: unit u reads and writes only elements [g, g + wl) of sample `sample` in
                    // every slot; units partition (sample, element) pairs, so no two threads touch the
                    // same element, and `x` outlives the parallel loop.
                    let xs = |m: usize| unsafe {
                        std::slice::from_raw_parts_mut(xp.ptr().add(base(m)), wl)
                    };
                    y[..wl].copy_from_slice(xs(s));
                    xold[..wl].copy_from_slice(xs(s));
                    for m in s..e {
                        let k = (tab.a[m], tab.b[m], tab.c[m], tab.p[m], tab.q[m]);
                        let clip = tab.clip_at(m);
                        if k.2 != 0.0 {
                            match ring {
                                // SAFETY: as `xs`: this unit's elements of slot m % r of the ring
                                // (r · slot values), which no other unit touches.
                                Some(zr) => unsafe {
                                    let zs =
                                        std::slice::from_raw_parts_mut(zr.ptr().add(base(m)), wl);
                                    if !marks.holds(m) {
                                        noise_lanes(&noise, shape, m, sample, g, zs);
                                    }
                                    z[..wl].copy_from_slice(zs);
                                },
                                None => noise_lanes(&noise, shape, m, sample, g, &mut z[..wl]),
                            }
                        }
                        let o = &out[base(m)..base(m) + wl];
                        let next = xs(m + 1);
                        let mut sq = 0f32;
                        let mut oc = [0f32; LANES];
                        let o = match clip {
                            None => o,
                            Some(c) => {
                                for i in 0..wl {
                                    oc[i] = clip_fix(c, xold[i], o[i]);
                                }
                                &oc[..wl]
                            }
                        };
                        for i in 0..wl {
                            let yn = if drift {
                                y[i] + ((k.0 - 1.0) * xold[i]
                                    + k.1 * (k.3 * xold[i] + k.4 * o[i])
                                    + k.2 * z[i])
                            } else {
                                affine(k, y[i], xold[i], o[i], z[i])
                            };
                            let d = yn - next[i];
                            sq += d * d;
                            xold[i] = next[i];
                            next[i] = yn;
                            y[i] = yn;
                        }
                        acc[m - s] += sq;
                    }
                    g += wl;
                }
            });
        if ring.is_some() {
            (s..e)
                .filter(|&m| tab.c[m] != 0.0)
                .for_each(|m| w.noise.made(m));
        }
        Ok(())
    }

    fn picard_advance(
        &self,
        plan: &WindowPlan,
        tab: &CpuTables,
        w: &mut CpuWindow,
        shape: Shape,
        x: &mut Vec<f32>,
        times: &mut Vec<f32>,
        err: &Vec<f32>,
    ) -> Result<()> {
        let aa = w.aa.as_ref().map(|a| a.borrow_mut());
        self.advance_accelerated::<true>(plan, tab, &mut w.state, shape, x, times, err, aa)
    }

    fn langevin_sweep(
        &self,
        lp: &LangevinSweep,
        shape: Shape,
        x: &mut Vec<f32>,
        out: &Vec<f32>,
    ) -> Result<()> {
        let (slot, dim, m) = (shape.slot_len(), shape.dim, lp.steps);
        if x.len() < (m + 1) * slot || out.len() < m * slot {
            return Err(Error::shape(
                "langevin_sweep",
                "corrector buffers are smaller than its steps need",
            ));
        }
        let per_row = dim.div_ceil(CHUNK);
        let xp = SharedMut(x.as_mut_ptr());
        (0..shape.batch * per_row).into_par_iter().for_each(|u| {
            let (sample, d0) = (u / per_row, (u % per_row) * CHUNK);
            let d1 = (d0 + CHUNK).min(dim);
            let noise = |step: u32, g: usize, z: &mut [f32]| {
                let sample = lp.sample0 + sample as u32;
                rng::fill_normal_from(lp.seed, (g / 4) as u32, step, sample, rng::TAG_CORRECTOR, z);
            };
            let mut g = d0;
            while g < d1 {
                let wl = LANES.min(d1 - g);
                let (mut y, mut xold, mut v, mut z) =
                    ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0f32; LANES]);
                let base = |i: usize| i * slot + sample * dim + g;
                // SAFETY: as in `picard_sweep`, unit u touches only its own (sample, element) pairs.
                let xs =
                    |i: usize| unsafe { std::slice::from_raw_parts_mut(xp.ptr().add(base(i)), wl) };
                y[..wl].copy_from_slice(xs(0));
                xold[..wl].copy_from_slice(xs(0));
                noise(lp.step0, g, &mut v[..wl]);
                for i in 0..m {
                    noise(lp.step0 + 1 + i as u32, g, &mut z[..wl]);
                    let o = &out[base(i)..base(i) + wl];
                    let next = xs(i + 1);
                    for l in 0..wl {
                        let eps = lp.p * xold[l] + lp.q * o[l];
                        v[l] = lp.decay * v[l] + lp.force * eps + lp.kick * z[l];
                        y[l] += lp.h * v[l];
                        xold[l] = next[l];
                        next[l] = y[l];
                    }
                }
                g += wl;
            }
        });
        Ok(())
    }
}

/// `offset..offset + len` when it lies within a buffer of `have` values, else the shape error the
/// CUDA backend gives for the same call (no panic on a bad range).
fn range(offset: usize, len: usize, have: usize, op: &str) -> Result<std::ops::Range<usize>> {
    match offset.checked_add(len) {
        Some(end) if end <= have => Ok(offset..end),
        _ => Err(Error::shape(
            op,
            format!("range {offset}..{offset}+{len} is outside the buffer of {have} values"),
        )),
    }
}
