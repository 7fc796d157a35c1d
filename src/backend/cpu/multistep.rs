//! The CPU backend's multistep rules (DPM-Solver++, `docs/algorithms.md` §9): the sequential step
//! and the Picard sweep. Both compute a point's direction `d = p·x + q·out` and the step
//! `a·y + b·d_j + b1·d_{j−1} + b2·d_{j−2}` with the same two functions, so a converged sweep
//! rounds exactly as the sequential sampler.

use rayon::prelude::*;

use super::*;

/// Point m's direction (x̂0 for DPM-Solver++) from the state the model saw and its output.
#[inline(always)]
fn direction(p: f32, q: f32, x: f32, o: f32) -> f32 {
    p * x + q * o
}

/// One multistep step: `a·y + b·d0 + b1·d1 + b2·d2`, in this order (d1, d2: the earlier points).
#[inline(always)]
fn combine(k: (f32, f32, f32, f32), y: f32, d0: f32, d1: f32, d2: f32) -> f32 {
    let (a, b, b1, b2) = k;
    a * y + b * d0 + b1 * d1 + b2 * d2
}

impl CpuBackend {
    /// [`Backend::step`] for a multistep table: `x[x_off..]` holds the state and then `history`
    /// slots with the directions of points j − 1 (and j − 2), zero before the first step; the step
    /// updates the state and shifts the directions (point j's becomes the first).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step_multistep<const CHECK: bool>(
        &self,
        tab: &CpuTables,
        ms: &CpuMultistep,
        j: usize,
        shape: Shape,
        x: &mut [f32],
        x_off: usize,
        out: &[f32],
        out_off: usize,
    ) -> Result<()> {
        let (slot, dim, hist) = (shape.slot_len(), shape.dim, ms.history);
        if x.len() < x_off + (1 + hist) * slot || out.len() < out_off + slot {
            return Err(Error::shape(
                "sequential step",
                format!(
                    "the {hist}-point multistep rule needs the state and {hist} direction slots"
                ),
            ));
        }
        let k = (tab.a[j], tab.b[j], ms.b1[j], ms.b2[j]);
        let (p, q) = (tab.p[j], tab.q[j]);
        let xp = SharedMut(x[x_off..].as_mut_ptr());
        let per_row = dim.div_ceil(CHUNK);
        let finite = (0..Self::units(shape)).into_par_iter().all(|u| {
            let (sample, d0) = (u / per_row, (u % per_row) * CHUNK);
            let len = (d0 + CHUNK).min(dim) - d0;
            let at = sample * dim + d0;
            // SAFETY: unit u touches elements [at, at + len) of the state and of each direction
            // slot (checked in range above); units partition them, and `x` outlives the loop.
            let part = |k: usize| unsafe {
                std::slice::from_raw_parts_mut(xp.ptr().add(k * slot + at), len)
            };
            let (xs, h1) = (part(0), part(1));
            let mut h2 = if hist > 1 { Some(part(2)) } else { None };
            let o = &out[out_off + at..out_off + at + len];
            let mut bad = 0u32;
            for i in 0..len {
                let d = direction(p, q, xs[i], o[i]);
                let old1 = h1[i];
                let old2 = h2.as_ref().map_or(0.0, |h| h[i]);
                let v = combine(k, xs[i], d, old1, old2);
                xs[i] = v;
                if let Some(h) = h2.as_mut() {
                    h[i] = old1;
                }
                h1[i] = d;
                bad |= u32::from(v.to_bits() & EXP_BITS == EXP_BITS);
            }
            !CHECK || bad == 0
        });
        if !finite {
            return Err(Error::NonFinite {
                op: "sequential step (state or model output)".into(),
                step: j,
            });
        }
        Ok(())
    }

    /// [`Backend::picard_sweep`] for a multistep table (buffers checked by the caller). Per element,
    /// for m = s..e−1: `d_m = p·X_old[m] + q·E[m]` (stored in the window's direction ring), then
    /// scan `Y[m+1] = a·Y[m] + b·d_m + b1·d_{m−1} + b2·d_{m−2}` or drift
    /// `Y[m+1] = Y[m] + ((a − 1)·X_old[m] + b·d_m + b1·d_{m−1} + b2·d_{m−2})`, where the
    /// directions before s come from the ring (the sweeps that last evaluated those points).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sweep_multistep(
        &self,
        plan: &WindowPlan,
        tab: &CpuTables,
        ms: &CpuMultistep,
        w: &CpuWindow,
        shape: Shape,
        x: &mut [f32],
        out: &[f32],
        err: &mut [f32],
    ) -> Result<()> {
        let (s, e) = (w.start, w.end);
        let (r, p, dim, slot) = (plan.ring(), plan.window, shape.dim, shape.slot_len());
        let (hp, hlen) = w.hist.values();
        let hr = w.hist.slots;
        if hr < e - s + ms.history || hlen < hr * slot {
            return Err(Error::shape(
                "picard_sweep",
                "the window's direction ring is smaller than the multistep rule needs",
            ));
        }
        let (hp, xp) = (SharedMut(hp), SharedMut(x.as_mut_ptr()));
        let drift = plan.form == PicardForm::Drift;
        let per_row = dim.div_ceil(CHUNK);
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
                    let at = sample * dim + g;
                    // SAFETY: unit u touches only elements [at, at + wl) of each slot of the
                    // state ring and of the direction ring (both checked in range); units
                    // partition the (sample, element) pairs, and both rings outlive the loop.
                    let xs = |m: usize| unsafe {
                        std::slice::from_raw_parts_mut(xp.ptr().add((m % r) * slot + at), wl)
                    };
                    // SAFETY: as `xs`, in the direction ring.
                    let hs = |m: usize| unsafe {
                        std::slice::from_raw_parts_mut(hp.ptr().add((m % hr) * slot + at), wl)
                    };
                    let (mut y, mut xold) = ([0f32; LANES], [0f32; LANES]);
                    let (mut h1, mut h2) = ([0f32; LANES], [0f32; LANES]);
                    y[..wl].copy_from_slice(xs(s));
                    xold[..wl].copy_from_slice(xs(s));
                    if s >= 1 {
                        h1[..wl].copy_from_slice(hs(s - 1));
                    }
                    if s >= 2 && ms.history > 1 {
                        h2[..wl].copy_from_slice(hs(s - 2));
                    }
                    for m in s..e {
                        let k = (tab.a[m], tab.b[m], ms.b1[m], ms.b2[m]);
                        let (pm, qm) = (tab.p[m], tab.q[m]);
                        let o = &out[(m % r) * slot + at..(m % r) * slot + at + wl];
                        let (next, dst) = (xs(m + 1), hs(m));
                        let mut sq = 0f32;
                        for i in 0..wl {
                            let d = direction(pm, qm, xold[i], o[i]);
                            dst[i] = d;
                            let yn = if drift {
                                y[i] + ((k.0 - 1.0) * xold[i] + k.1 * d + k.2 * h1[i] + k.3 * h2[i])
                            } else {
                                combine(k, y[i], d, h1[i], h2[i])
                            };
                            let diff = yn - next[i];
                            sq += diff * diff;
                            xold[i] = next[i];
                            next[i] = yn;
                            y[i] = yn;
                            h2[i] = h1[i];
                            h1[i] = d;
                        }
                        acc[m - s] += sq;
                    }
                    g += wl;
                }
            });
        Ok(())
    }
}
