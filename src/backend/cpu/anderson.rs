//! Anderson acceleration of the Picard iteration on the CPU (`docs/algorithms.md` §11): ParaTAA's
//! triangular form. Per window point m and sample b the window keeps the map's outputs
//! g = G(x) and residuals r = g − x of its last `hist` iterations (the current one included);
//! after a sweep, the point's
//! mixing coefficients γ solve the regularised least-squares problem
//!
//! ```text
//! min_γ Σ_{i ≤ m} ‖r_i − Σ_a γ_a (r_i − r_i^(a))‖²  + λ·(tr/k)·‖γ‖²
//! ```
//!
//! over itself and the window's earlier (noisier) points i, in f64, and the point's next iterate
//! is `g + Σ_a γ_a (g^(a) − g)`. The first point that failed the tolerance (the frontier) and every
//! point before it take the plain update g, so accepted points are always plain Picard values.
//! A point whose residual grew since the last iteration drops its history (plain update).
//!
//! Layout: entry e (0..hist) of the ring slot q = point % window lives at `((e·window + q)·B·D)`,
//! sample-major like the state ring; the entry of iteration n is `n % hist`. Work units are the
//! sweep's (one sample × [`CHUNK`] elements), partial sums per (unit, point) in f64, reduced in a
//! fixed order: the result does not depend on the thread count.

use rayon::prelude::*;

use super::*;
use crate::backend::host::filled;

/// Tikhonov regularisation, relative to the mean diagonal of the normal equations.
const LAMBDA: f64 = 1e-3;

/// The Anderson state of a window, sized once by `window_new`.
#[derive(Debug)]
pub(crate) struct Anderson {
    /// Entries kept per point (the current one included): at most `hist − 1` in a fit.
    hist: usize,
    /// Window length p (ring slots of the history).
    window: usize,
    shape: Shape,
    /// Map outputs g, `hist × window × B × D`; before the sweep's results come in, the current
    /// entry holds the old iterate x.
    g: Vec<f32>,
    /// Residuals r = g − x, same layout.
    r: Vec<f32>,
    /// Valid earlier entries of each (sample, slot) (sample-major, as `last`, `coef`, `used`).
    count: Vec<usize>,
    /// ‖r‖² of each (sample, slot) in its last iteration.
    last: Vec<f64>,
    /// Per (unit, point) partial sums: the Gram matrix of the residual differences (K × K), its
    /// right-hand side (K) and ‖r‖² (1), K = hist − 1.
    part: Vec<f64>,
    /// Mixing coefficients of each (sample, slot), K each, and how many are used (0: plain).
    coef: Vec<f64>,
    used: Vec<usize>,
}

impl Anderson {
    /// Values per (unit, point) of the partial sums.
    fn nq(hist: usize) -> usize {
        let k = hist - 1;
        k * k + k + 1
    }

    /// f32-sized values the state takes for history `hist` (the sampler's memory check;
    /// saturating, so an absurd size reads as more than any free memory).
    pub(crate) fn floats(hist: usize, window: usize, shape: Shape) -> usize {
        let units = CpuBackend::units(shape);
        let rows = window.saturating_mul(shape.batch);
        let ring = window.saturating_mul(shape.slot_len());
        (2 * hist)
            .saturating_mul(ring)
            .saturating_add(
                units
                    .saturating_mul(window)
                    .saturating_mul(2 * Self::nq(hist)),
            )
            .saturating_add(rows.saturating_mul(2 * hist + 4))
    }

    /// A fresh state: no history anywhere.
    pub(crate) fn new(hist: usize, window: usize, shape: Shape) -> Result<Self> {
        let too_big =
            || Error::device("window", "the Anderson history overflows the address space");
        let rows = window.checked_mul(shape.batch).ok_or_else(too_big)?;
        let ring = hist
            .checked_mul(window)
            .and_then(|n| n.checked_mul(shape.slot_len()))
            .ok_or_else(too_big)?;
        let part = (CpuBackend::units(shape).checked_mul(window))
            .and_then(|n| n.checked_mul(Self::nq(hist)))
            .ok_or_else(too_big)?;
        Ok(Anderson {
            hist,
            window,
            shape,
            g: filled(ring, 0f32, "Anderson history")?,
            r: filled(ring, 0f32, "Anderson history")?,
            count: filled(rows, 0usize, "Anderson history")?,
            last: filled(rows, 0f64, "Anderson history")?,
            part: filled(part, 0f64, "Anderson history")?,
            coef: filled(rows * (hist - 1), 0f64, "Anderson history")?,
            used: filled(rows, 0usize, "Anderson history")?,
        })
    }

    /// Offset of entry `e` of point `m`.
    fn at(&self, e: usize, m: usize) -> usize {
        (e * self.window + m % self.window) * self.shape.slot_len()
    }

    /// Before the sweep of iteration `iter` over the window (s, e]: keeps each point's old iterate
    /// in its current entry (the sweep overwrites the state ring `x` of `ring` slots).
    pub(crate) fn save_inputs(&mut self, iter: usize, s: usize, e: usize, x: &[f32], ring: usize) {
        let slot = self.shape.slot_len();
        let cur = iter % self.hist;
        for m in s + 1..=e {
            let dst = self.at(cur, m);
            self.g[dst..dst + slot].copy_from_slice(&x[(m % ring) * slot..][..slot]);
        }
    }

    /// Forgets the history of points `from..=to` (points entering the window).
    pub(crate) fn reset(&mut self, from: usize, to: usize) {
        for m in from..=to {
            for b in 0..self.shape.batch {
                self.count[b * self.window + m % self.window] = 0;
            }
        }
    }

    /// After the sweep and the advance of iteration `iter` over the window (s, e]: records the
    /// results, fits every point after `lo` (the frontier or the new start, whichever is later)
    /// and overwrites those points of `x` with their Anderson iterates.
    pub(crate) fn accelerate(
        &mut self,
        iter: usize,
        s: usize,
        e: usize,
        lo: usize,
        x: &mut [f32],
        ring: usize,
    ) {
        if lo >= e {
            return; // every point of the window was accepted or ends its block: nothing continues
        }
        self.record(iter, s, e, x, ring);
        self.fit(s, e, lo);
        self.mix(iter, lo, e, x, ring);
    }
}

/// Largest K = hist − 1 (the coefficients of one fit).
const KMAX: usize = 4;

impl Anderson {
    /// Turns the current entries of the points s+1..=e into (g, r) from the swept state `x` and
    /// writes each (unit, point)'s partial sums of the fit: with δ_a = r − r^(a) over the point's
    /// valid earlier entries a, `Σ δ_a δ_b`, `Σ δ_a r` and `Σ r²` (f64).
    fn record(&mut self, iter: usize, s: usize, e: usize, x: &[f32], ring: usize) {
        let (hist, window, shape) = (self.hist, self.window, self.shape);
        let (dim, slot, nq, k_max) = (shape.dim, shape.slot_len(), Self::nq(hist), hist - 1);
        let per_row = dim.div_ceil(CHUNK);
        let cur = iter % hist;
        let (gp, rp) = (
            SharedMut(self.g.as_mut_ptr()),
            SharedMut(self.r.as_mut_ptr()),
        );
        let (count, at) = (&self.count, |e: usize, m: usize| {
            (e * window + m % window) * slot
        });
        self.part
            .par_chunks_mut(window * nq)
            .take(CpuBackend::units(shape))
            .enumerate()
            .for_each(|(u, acc)| {
                let (b, d0) = (u / per_row, (u % per_row) * CHUNK);
                let len = (d0 + CHUNK).min(dim) - d0;
                for m in s + 1..=e {
                    let k = count[b * window + m % window];
                    let sums = &mut acc[(m - s - 1) * nq..][..nq];
                    sums.fill(0.0);
                    let el = b * dim + d0;
                    // SAFETY: unit u reads and writes only elements [el, el + len) of sample b in
                    // every entry of g and r; units partition the (sample, element) pairs, and
                    // both buffers outlive the parallel loop.
                    let (gc, rc) = unsafe {
                        (
                            std::slice::from_raw_parts_mut(gp.ptr().add(at(cur, m) + el), len),
                            std::slice::from_raw_parts_mut(rp.ptr().add(at(cur, m) + el), len),
                        )
                    };
                    let xs = &x[(m % ring) * slot + el..][..len];
                    let prev = |a: usize| (iter + hist - 1 - a) % hist;
                    for i in 0..len {
                        let r = xs[i] - gc[i];
                        rc[i] = r;
                        gc[i] = xs[i];
                        let mut d = [0f64; KMAX];
                        for (a, da) in d.iter_mut().enumerate().take(k) {
                            // SAFETY: as above, element el + i of an earlier entry of point m.
                            let ra = unsafe { *rp.ptr().add(at(prev(a), m) + el + i) };
                            *da = f64::from(r) - f64::from(ra);
                        }
                        let r = f64::from(r);
                        for a in 0..k {
                            for c in a..k {
                                sums[a * k_max + c] += d[a] * d[c];
                            }
                            sums[k_max * k_max + a] += d[a] * r;
                        }
                        sums[nq - 1] += r * r;
                    }
                }
            });
    }
}

impl Anderson {
    /// Per sample, in point order: reduces the partial sums over the sample's units, applies the
    /// fallback (a residual larger than last iteration's drops the point's history), accumulates
    /// the triangular sums (level k: the points so far with at least k entries) and solves the
    /// fit of each point after `lo` that has history.
    fn fit(&mut self, s: usize, e: usize, lo: usize) {
        let (window, nq, k_max) = (self.window, Self::nq(self.hist), self.hist - 1);
        let per_row = self.shape.dim.div_ceil(CHUNK);
        let part = &self.part;
        self.count
            .par_chunks_mut(window)
            .zip(self.last.par_chunks_mut(window))
            .zip(self.used.par_chunks_mut(window))
            .zip(self.coef.par_chunks_mut(window * k_max))
            .enumerate()
            .for_each(|(b, (((count, last), used), coef))| {
                let mut gram = [[0f64; KMAX * KMAX]; KMAX];
                let mut rhs = [[0f64; KMAX]; KMAX];
                let mut tot = [0f64; KMAX * KMAX + KMAX + 1];
                for m in s + 1..=e {
                    let q = m % window;
                    tot[..nq].fill(0.0);
                    for c in 0..per_row {
                        let p = &part[((b * per_row + c) * window + m - s - 1) * nq..][..nq];
                        tot.iter_mut().zip(p).for_each(|(t, v)| *t += v);
                    }
                    let rr = tot[nq - 1];
                    let mut k = count[q];
                    // The fallback; a NaN residual compares false and drops the history too.
                    if k > 0 && (rr.is_nan() || rr > last[q]) {
                        k = 0;
                    }
                    last[q] = rr;
                    for level in 0..k {
                        for a in 0..=level {
                            for c in a..=level {
                                gram[level][a * KMAX + c] += tot[a * k_max + c];
                            }
                            rhs[level][a] += tot[k_max * k_max + a];
                        }
                    }
                    used[q] = 0;
                    if m > lo && k > 0 {
                        let g = &mut coef[q * k_max..][..k_max];
                        if solve(&gram[k - 1], &rhs[k - 1], k, g) {
                            used[q] = k;
                        }
                    }
                    count[q] = (k + 1).min(k_max);
                }
            });
    }

    /// Overwrites each point m in (lo, e] that has a fit with `g + Σ_a γ_a (g^(a) − g)` (f64).
    fn mix(&mut self, iter: usize, lo: usize, e: usize, x: &mut [f32], ring: usize) {
        let (hist, window, shape) = (self.hist, self.window, self.shape);
        let (dim, slot, k_max) = (shape.dim, shape.slot_len(), hist - 1);
        let per_row = dim.div_ceil(CHUNK);
        let xp = SharedMut(x.as_mut_ptr());
        let (g, used, coef) = (&self.g, &self.used, &self.coef);
        let at = |e: usize, m: usize| (e * window + m % window) * slot;
        (0..CpuBackend::units(shape)).into_par_iter().for_each(|u| {
            let (b, d0) = (u / per_row, (u % per_row) * CHUNK);
            let (len, el) = ((d0 + CHUNK).min(dim) - d0, b * dim + d0);
            for m in lo + 1..=e {
                let q = m % window;
                let k = used[b * window + q];
                if k == 0 {
                    continue;
                }
                let gam = &coef[(b * window + q) * k_max..][..k];
                // SAFETY: unit u writes only elements [el, el + len) of sample b of slot m % ring;
                // units partition the (sample, element) pairs, and `x` outlives the loop.
                let xs = unsafe {
                    std::slice::from_raw_parts_mut(xp.ptr().add((m % ring) * slot + el), len)
                };
                let gc = &g[at(iter % hist, m) + el..][..len];
                for i in 0..len {
                    let gk = f64::from(gc[i]);
                    let mut v = gk;
                    for (a, ga) in gam.iter().enumerate() {
                        let old = g[at((iter + hist - 1 - a) % hist, m) + el + i];
                        v += ga * (f64::from(old) - gk);
                    }
                    xs[i] = v as f32;
                }
            }
        });
    }
}

/// Solves `(A + λ·(tr A / k)·I) γ = rhs` for the leading k × k block of the upper triangle `a`
/// (row stride [`KMAX`]) by Cholesky in f64. False when the system is degenerate (no residual
/// change, or not finite): the point then takes the plain update.
fn solve(a: &[f64; KMAX * KMAX], rhs: &[f64; KMAX], k: usize, gamma: &mut [f64]) -> bool {
    let tr: f64 = (0..k).map(|i| a[i * KMAX + i]).sum();
    if !(tr > 0.0 && tr.is_finite()) {
        return false;
    }
    let mu = LAMBDA * tr / k as f64;
    let mut l = [[0f64; KMAX]; KMAX];
    for i in 0..k {
        for j in 0..=i {
            // a is stored as its upper triangle: element (j, i) with j ≤ i.
            let diag = if i == j { mu } else { 0.0 };
            let v = a[j * KMAX + i] + diag - (0..j).map(|t| l[i][t] * l[j][t]).sum::<f64>();
            if i == j {
                if v.is_nan() || v <= 0.0 {
                    return false;
                }
                l[i][i] = v.sqrt();
            } else {
                l[i][j] = v / l[j][j];
            }
        }
    }
    let mut y = [0f64; KMAX];
    for i in 0..k {
        y[i] = (rhs[i] - (0..i).map(|t| l[i][t] * y[t]).sum::<f64>()) / l[i][i];
    }
    for i in (0..k).rev() {
        gamma[i] = (y[i] - (i + 1..k).map(|t| l[t][i] * gamma[t]).sum::<f64>()) / l[i][i];
    }
    gamma[..k].iter().all(|g| g.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One iteration on a window (0, 2] of one sample: the old iterate `x`, the map's output `g`.
    fn iterate(aa: &mut Anderson, iter: usize, x: &mut [f32], g: &[f32]) {
        aa.save_inputs(iter, 0, 2, x, 3);
        x.copy_from_slice(g);
        aa.accelerate(iter, 0, 2, 0, x, 3);
    }

    /// Point 2's residual shrinks, so its second iterate mixes; then it grows, so the point drops
    /// its history and takes the plain update, and mixes again once it shrinks.
    #[test]
    fn a_growing_residual_drops_the_history() {
        let shape = Shape { batch: 1, dim: 4 };
        let mut aa = Anderson::new(3, 2, shape).unwrap();
        let (a, b) = (4, 8); // points 1 and 2 in the 3-slot state ring
        let mut x = vec![0f32; 12];
        let mut g = vec![0f32; 12];
        let set = |g: &mut Vec<f32>, v1: f32, v2: f32| {
            g[a..a + 4].fill(v1);
            g[b..b + 4]
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = v2 + i as f32 * 0.1);
        };
        set(&mut g, 1.0, 1.0);
        iterate(&mut aa, 0, &mut x, &g);
        assert_eq!((aa.used[1], aa.count[1]), (0, 1), "no history yet");
        set(&mut g, 1.5, 1.5); // residual 0.5 < 1: a fit
        iterate(&mut aa, 1, &mut x, &g);
        assert_eq!(aa.used[1], 1);
        assert_ne!(x[b..b + 4], g[b..b + 4], "the mixed iterate differs from g");
        let before = x.clone();
        set(&mut g, 1.0, before[b] + 5.0); // residual 5 > the last one: fallback
        iterate(&mut aa, 2, &mut x, &g);
        assert_eq!((aa.used[1], aa.count[1]), (0, 1), "history dropped");
        assert_eq!(x[b..b + 4], g[b..b + 4], "plain update");
        set(&mut g, 1.0, x[b] + 0.1); // shrinks again: mixes with the one entry kept
        iterate(&mut aa, 3, &mut x, &g);
        assert_eq!((aa.used[1], aa.count[1]), (1, 2));
    }
}
