//! The CPU backend's sequential step and Picard advance with their non-finite checks (the
//! `Backend` methods call them with the check on; `bench_internals` measures them with it off),
//! and the helpers the sweep shares with them.

use rayon::prelude::*;

use super::*;

impl CpuBackend {
    pub(super) fn units(shape: Shape) -> usize {
        shape.batch * shape.dim.div_ceil(CHUNK)
    }

    pub(super) fn check_noise(noise: &Noise<'_, Self>, steps: usize, shape: Shape) -> Result<()> {
        if let Noise::Table(t) = noise {
            if t.len() < steps * shape.slot_len() {
                return Err(Error::shape(
                    "noise",
                    format!(
                        "need [{steps}, {}, {}], got {} values",
                        shape.batch,
                        shape.dim,
                        t.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// [`Backend::step`] with its non-finite check (`CHECK = true`, all the library uses) or with
    /// the check compiled out (`false`: only to measure what the check costs,
    /// `benches/nonfinite_check.rs` through `bench_internals`; a NaN state then goes undetected).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step_checked<const CHECK: bool>(
        &self,
        tab: &CpuTables,
        j: usize,
        shape: Shape,
        x: &mut [f32],
        x_off: usize,
        out: &[f32],
        out_off: usize,
        noise: Noise<'_, Self>,
    ) -> Result<()> {
        Self::check_noise(&noise, j + 1, shape)?;
        if let Some(ms) = &tab.ms {
            return self.step_multistep::<CHECK>(tab, ms, j, shape, x, x_off, out, out_off);
        }
        let k = (tab.a[j], tab.b[j], tab.c[j], tab.p[j], tab.q[j]);
        let clip = tab.clip_at(j);
        let (xs, os) = (
            &mut x[x_off..x_off + shape.slot_len()],
            &out[out_off..out_off + shape.slot_len()],
        );
        let finite = xs
            .par_chunks_mut(shape.dim)
            .zip(os.par_chunks(shape.dim))
            .enumerate()
            .all(|(sample, (xr, or))| {
                xr.par_chunks_mut(CHUNK)
                    .zip(or.par_chunks(CHUNK))
                    .enumerate()
                    .all(|(u, (xc, oc))| {
                        let mut z = [0f32; LANES];
                        for (l, (xl, ol)) in xc.chunks_mut(LANES).zip(oc.chunks(LANES)).enumerate()
                        {
                            let zl = &mut z[..xl.len()];
                            if k.2 != 0.0 {
                                noise_lanes(&noise, shape, j, sample, u * CHUNK + l * LANES, zl);
                            }
                            match clip {
                                None => {
                                    for i in 0..xl.len() {
                                        xl[i] = affine(k, xl[i], xl[i], ol[i], zl[i]);
                                    }
                                }
                                Some(c) => {
                                    for i in 0..xl.len() {
                                        let o = clip_fix(c, xl[i], ol[i]);
                                        xl[i] = affine(k, xl[i], xl[i], o, zl[i]);
                                    }
                                }
                            }
                        }
                        // A second pass over the chunk (in L1) that vectorises: is any value ∞ or
                        // NaN (all exponent bits set)?
                        !CHECK
                            || xc.iter().fold(0u32, |bad, v| {
                                bad | u32::from(v.to_bits() & EXP_BITS == EXP_BITS)
                            }) == 0
                    })
            });
        if !finite {
            return Err(Error::NonFinite {
                op: "sequential step (state or model output)".into(),
                step: j,
            });
        }
        Ok(())
    }

    /// [`Backend::picard_advance`] with its non-finite check (`CHECK = true`, all the library
    /// uses) or with the check compiled out (`false`: only to measure what the check costs,
    /// `benches/nonfinite_check.rs` through `bench_internals`; a NaN error then reads as converged).
    /// The check is the pass that looks for a non-finite point error before the window moves, and
    /// the NaN → ∞ mapping in the point error; the sweep needs none, its squared-error sums carry
    /// a NaN or ∞ as they are.
    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(not(feature = "bench-internals"), allow(dead_code))]
    pub(crate) fn picard_advance_checked<const CHECK: bool>(
        &self,
        plan: &WindowPlan,
        tab: &CpuTables,
        w: &mut WindowState,
        shape: Shape,
        x: &mut [f32],
        times: &mut [f32],
        err: &[f32],
    ) -> Result<()> {
        self.advance_accelerated::<CHECK>(plan, tab, w, shape, x, times, err, None)
    }

    /// [`Self::picard_advance_checked`] with the window's Anderson state, if any: after the
    /// window moves, the points after the frontier (and after the new start) that stay in the
    /// window get their Anderson iterates (before the new points copy the last one), and the
    /// points entering the window start without history.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn advance_accelerated<const CHECK: bool>(
        &self,
        plan: &WindowPlan,
        tab: &CpuTables,
        w: &mut WindowState,
        shape: Shape,
        x: &mut [f32],
        times: &mut [f32],
        err: &[f32],
        mut aa: Option<std::cell::RefMut<'_, Anderson>>,
    ) -> Result<()> {
        if w.done(plan) {
            return Ok(());
        }
        let (s, p, units, dim) = (w.start, plan.window, Self::units(shape), shape.dim as f32);
        let per_row = shape.dim.div_ceil(CHUNK);
        let point_err = |k: usize| -> f32 {
            let mut worst = 0f32;
            for b in 0..shape.batch {
                let sum: f32 = (0..per_row).map(|c| err[(b * per_row + c) * p + k]).sum();
                let v = sum / (dim * tab.var[s + k]);
                // NaN compares false: make any non-finite error the worst.
                worst = if !CHECK || v.is_finite() {
                    worst.max(v)
                } else {
                    f32::INFINITY
                };
            }
            worst
        };
        debug_assert!(units * p <= err.len());
        if CHECK {
            if let Some(k) = (0..w.end - s).find(|&k| !point_err(k).is_finite()) {
                return Err(Error::NonFinite {
                    op: "picard iteration (state or model output)".into(),
                    step: s + k,
                });
            }
        }
        let (before, frontier) = (*w, w.first_fail(plan, point_err));
        let old_end = w.advance(plan, point_err);
        let (r, slot) = (plan.ring(), shape.slot_len());
        if let Some(aa) = aa.as_mut() {
            let lo = frontier.max(w.start);
            aa.accelerate(before.iters, before.start, old_end, lo, x, r);
            if w.end > old_end {
                aa.reset(old_end + 1, w.end);
            }
        }
        let src = (old_end % r) * slot;
        for m in old_end + 1..=w.end {
            let dst = (m % r) * slot;
            x.copy_within(src..src + slot, dst);
            if m < plan.steps {
                times[(m % r) * shape.batch..(m % r + 1) * shape.batch].fill(tab.t[m]);
            }
        }
        if w.iters >= plan.max_iters && !w.done(plan) {
            return Err(Error::NotConverged {
                iters: plan.max_iters,
                step: w.start,
            });
        }
        Ok(())
    }
}
