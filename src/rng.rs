//! Counter-based Gaussian noise: Philox4x32-10 and a Box–Muller transform that give the same bits
//! on the CPU (this file) and on the GPU (`kernels/philox.cuh`).
//!
//! Every noise value is a pure function of `(seed, step, sample, element, tag)`: no noise buffer is
//! stored, runs are reproducible, and the value does not depend on window size, batch split or
//! thread layout (docs/algorithms.md, section 5).
//!
//! # The exact mapping (the CUDA twin follows it operation for operation)
//!
//! 1. **Philox.** `x = philox4x32_10(counter, key)`, `key = [seed as u32, (seed >> 32) as u32]`,
//!    `counter = [group, step, sample, tag]`, `group = element / 4`, lane `element % 4`.
//!    Random123 Philox4x32-10: a round maps `(c0, c1, c2, c3)` to
//!    `(hi(M1·c2) ^ c1 ^ k0, lo(M1·c2), hi(M0·c0) ^ c3 ^ k1, lo(M0·c0))` (64-bit products,
//!    `M0 = 0xD2511F53`, `M1 = 0xCD9E8D57`); between rounds `k0 += 0x9E3779B9`,
//!    `k1 += 0xBB67AE85` (wrapping); 10 rounds.
//! 2. **Uniforms.** Word `x` stands for `u = ((x >> 8) + 0.5)·2⁻²⁴ = t·2⁻²⁵` with the odd integer
//!    `t = (x >> 7) | 1 ∈ [1, 2²⁵)`, so `0 < u < 1`. `u` itself is never rounded to f32 (above ½ it
//!    needs 25 significant bits, and `(k as f32 + 0.5)` would round): steps 4 and 5 read `t`.
//! 3. **Box–Muller.** Lanes 0..4 are `r01·c1, r01·s1, r23·c3, r23·s3` where
//!    `r01 = sqrt(ln(u0) · -2)`, `r23 = sqrt(ln(u2) · -2)`, `(c1, s1) = (cos, sin)(2πu1)`,
//!    `(c3, s3) = (cos, sin)(2πu3)`, and `uᵢ` comes from `x[i]`.
//! 4. **`ln u`** (`ln_dyadic`). `z = leading_zeros(t)`, `E = 31 - z + ((t << z) >= 0xB504F334)`
//!    (so `t·2⁻ᴱ ∈ [√½, √2)`), `f = ((t - 2ᴱ) as i32 as f32)·2⁻ᴱ` (exact), `k = (E - 25) as f32`;
//!    `p = LOG[8]`, `p = fma(p, f, LOG[i])` for `i = 7, 6, …, 0`; `lp = fma(f·f, p, f)`;
//!    `ln u = fma(k, LN2_HI, fma(k, LN2_LO, lp))`.
//! 5. **`(cos, sin)(2πu)`** (`sincos_2pi`). `j = (t + 2²²) >> 23`,
//!    `a = ((t - j·2²³) as i32 as f32)·2⁻²³ ∈ [-½, ½)` (exact), `y = a·a`;
//!    `s = fma(a, SIN[0], a·fma(fma(fma(SIN[4], y, SIN[3]), y, SIN[2]), y, SIN[1]))`,
//!    `c = fma(fma(fma(fma(COS[4], y, COS[3]), y, COS[2]), y, COS[1]), y, 1)`; by quadrant `j & 3`
//!    the result is `(c, s)`, `(-s, c)`, `(-c, -s)`, `(s, -c)` (a swap and sign-bit flips).
//!
//! Only correctly rounded IEEE operations appear (`*`, `sqrt`, exact int→float conversions and the
//! fused multiply-add: `f32::mul_add` here, `__fmaf_rn` / `fmaf` in CUDA), and no product feeds an
//! addition outside an explicit fma, so FMA contraction cannot change a result. The coefficients
//! are exact f32 values (hex floats in the CUDA file). Checked over all 2²⁴ values of `t`: `ln`
//! within 0.88 ulp, `cos`/`sin` within 0.87 ulp of the f64 values; the CUDA header gives the same
//! bits on the host (g++, nvcc) and on an H200, for every `t` (see the unit tests below and
//! `tests/rng.rs`, whose `tests/data/philox_normals.json` holds reference bits for the GPU tests).

use std::f32::consts::FRAC_PI_2;

/// Stream tag for the per-step noise `z` of the stochastic sampler update.
pub const TAG_STEP: u32 = 0;
/// Stream tag for the initial state `x_T`.
pub const TAG_INIT: u32 = 1;
/// Stream tag for the noise of corrector (Langevin) steps.
pub const TAG_CORRECTOR: u32 = 2;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// `log1p(f) ≈ f + f²·Σ LOG[i]·fⁱ` on `f ∈ [√½ - 1, √2 - 1]` (weighted minimax, < 0.08 ulp).
const LOG: [f32; 9] = [
    -0.499_999_88,
    0.333_333_25,
    -0.250_016_1,
    0.200_020_13,
    -0.166_084_3,
    0.141_805_96,
    -0.132_475,
    0.129_147_29,
    -0.076_231_7,
];
/// `ln 2` split so that `k·LN2_HI` is exact for `|k| ≤ 25` (`LN2_HI` has 16 significant bits).
const LN2_HI: f32 = 0.693_145_75;
/// `ln 2 - LN2_HI`, rounded to f32.
const LN2_LO: f32 = 1.428_606_8e-6;
/// `sin(πa/2) ≈ a·SIN[0] + a·(SIN[1] + Σ SIN[i+2]·a²⁽ⁱ⁺¹⁾)` on `|a| ≤ ½`: `SIN[0] + SIN[1]` is π/2
/// to 48 bits, and the leading term `a·SIN[0]` is exact inside the final fma.
const SIN: [f32; 5] = [
    FRAC_PI_2,
    -4.371_139e-8,
    -0.645_963_6,
    0.079_681_08,
    -0.004_603_722_6,
];
/// `cos(πa/2) ≈ 1 + Σ COS[i]·a²ⁱ` on `|a| ≤ ½` (COS[0] unused, the constant term is exactly 1).
const COS: [f32; 5] = [
    1.0,
    -1.233_700_5,
    0.253_668_55,
    -0.020_855_596,
    0.000_894_486_4,
];

/// Philox4x32 with 10 rounds, exactly as Random123's `philox4x32(ctr, key)` (same word order, so
/// its known-answer vectors apply): a bijection of the 128-bit `counter` for each 64-bit `key`.
#[must_use]
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let p0 = u64::from(M0) * u64::from(c0);
        let p1 = u64::from(M1) * u64::from(c2);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    [c0, c1, c2, c3]
}

/// `2⁻ᵉ` as an exact f32, for `0 ≤ e ≤ 126`.
#[inline(always)]
fn pow2_neg(e: u32) -> f32 {
    f32::from_bits((127 - e) << 23)
}

/// `ln(t·2⁻²⁵)` for an odd `t ∈ [1, 2²⁵)`, within 0.88 ulp (mapping step 4).
#[inline(always)]
fn ln_dyadic(t: u32) -> f32 {
    let z = t.leading_zeros();
    let big = u32::from((t << z) >= 0xB504_F334);
    let e = 31 - z + big;
    let f = (t as i32 - (1i32 << e)) as f32 * pow2_neg(e);
    let k = (e as i32 - 25) as f32;
    let mut p = LOG[8];
    for &c in LOG[..8].iter().rev() {
        p = p.mul_add(f, c);
    }
    let lp = (f * f).mul_add(p, f);
    k.mul_add(LN2_HI, k.mul_add(LN2_LO, lp))
}

/// `(cos 2πu, sin 2πu)` for `u = t·2⁻²⁵`, odd `t ∈ [1, 2²⁵)`, within 0.87 ulp (mapping step 5).
#[inline(always)]
fn sincos_2pi(t: u32) -> (f32, f32) {
    let j = (t + (1 << 22)) >> 23;
    let a = (t as i32 - (j << 23) as i32) as f32 * pow2_neg(23);
    let y = a * a;
    let tail = SIN[4]
        .mul_add(y, SIN[3])
        .mul_add(y, SIN[2])
        .mul_add(y, SIN[1]);
    let s = a.mul_add(SIN[0], a * tail);
    let c = COS[4]
        .mul_add(y, COS[3])
        .mul_add(y, COS[2])
        .mul_add(y, COS[1])
        .mul_add(y, 1.0);
    // Quadrant j & 3 → (c, s), (-s, c), (-c, -s), (s, -c), without data-dependent branches.
    let (c, s) = if j & 1 == 0 { (c, s) } else { (s, c) };
    let neg_c = ((j + 1) & 2) << 30;
    let neg_s = (j & 2) << 30;
    (
        f32::from_bits(c.to_bits() ^ neg_c),
        f32::from_bits(s.to_bits() ^ neg_s),
    )
}

/// The odd integer `t = 2·(x >> 8) + 1` with `u = t·2⁻²⁵` (mapping step 2).
#[inline(always)]
fn dyadic(x: u32) -> u32 {
    (x >> 7) | 1
}

/// Four standard normals: elements `4·group .. 4·group + 3` of the noise vector of
/// `(step, sample)` in stream `tag`, from one Philox call with key `seed` and counter
/// `[group, step, sample, tag]`.
#[must_use]
#[inline]
pub fn normal4(seed: u64, group: u32, step: u32, sample: u32, tag: u32) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports FMA, checked just above.
            return unsafe { fma_x86::normal4(seed, group, step, sample, tag) };
        }
    }
    normal4_impl(seed, group, step, sample, tag)
}

/// Element `element` of the standard normal noise vector of `(step, sample)` in stream `tag`: lane
/// `element % 4` of `normal4(seed, element / 4, ..)`. Elements must be below `2³⁴`. In loops prefer
/// [`fill_normal`], which makes one Philox call per four elements.
#[must_use]
#[inline]
pub fn normal_at(seed: u64, step: u32, sample: u32, element: usize, tag: u32) -> f32 {
    debug_assert!((element / 4) as u64 <= u64::from(u32::MAX));
    normal4(seed, (element / 4) as u32, step, sample, tag)[element % 4]
}

/// Fills `out[e] = normal_at(seed, step, sample, e, tag)` for every `e`, one Philox call per four
/// elements (a trailing partial group uses the first lanes of its group). No allocation.
#[inline]
pub fn fill_normal(seed: u64, step: u32, sample: u32, tag: u32, out: &mut [f32]) {
    fill_normal_from(seed, 0, step, sample, tag, out);
}

/// Fills `out[i]` with element `4·group + i` of the noise vector of `(step, sample)` in stream `tag`
/// (so `fill_normal` is `group = 0`): the same bits as [`normal4`], four groups at a time in SIMD
/// lanes where the CPU has AVX2 and FMA. No allocation.
#[inline]
pub fn fill_normal_from(seed: u64, group: u32, step: u32, sample: u32, tag: u32, out: &mut [f32]) {
    debug_assert!((group as u64 + (out.len() / 4) as u64) <= u64::from(u32::MAX));
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { fma_x86::fill_normal_avx2(seed, group, step, sample, tag, out) };
        }
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports FMA, checked just above.
            return unsafe { fma_x86::fill_normal(seed, group, step, sample, tag, out) };
        }
    }
    fill_normal_impl(seed, group, step, sample, tag, out);
}

#[inline(always)]
fn normal4_impl(seed: u64, group: u32, step: u32, sample: u32, tag: u32) -> [f32; 4] {
    let x = philox4x32_10(
        [group, step, sample, tag],
        [seed as u32, (seed >> 32) as u32],
    );
    let r01 = (ln_dyadic(dyadic(x[0])) * -2.0).sqrt();
    let r23 = (ln_dyadic(dyadic(x[2])) * -2.0).sqrt();
    let (c1, s1) = sincos_2pi(dyadic(x[1]));
    let (c3, s3) = sincos_2pi(dyadic(x[3]));
    [r01 * c1, r01 * s1, r23 * c3, r23 * s3]
}

/// Groups of four normals computed together by [`normal_wide_impl`].
const WIDE_GROUPS: usize = 4;

/// [`normal4_impl`] for the four groups `group .. group + 4`, written word-major over fixed arrays so
/// that the compiler runs each stage in SIMD lanes: Philox on 4 counters, `ln` on the 8 words 0 and
/// 2, `sincos` on the 8 words 1 and 3. Every lane does exactly `normal4_impl`'s operations, so the
/// bits are the same.
#[inline(always)]
fn normal_wide_impl(
    seed: u64,
    group: u32,
    step: u32,
    sample: u32,
    tag: u32,
) -> [f32; 4 * WIDE_GROUPS] {
    let mut c0: [u32; WIDE_GROUPS] = std::array::from_fn(|i| group.wrapping_add(i as u32));
    let (mut c1, mut c2, mut c3) = (
        [step; WIDE_GROUPS],
        [sample; WIDE_GROUPS],
        [tag; WIDE_GROUPS],
    );
    let (mut k0, mut k1) = (seed as u32, (seed >> 32) as u32);
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        for i in 0..WIDE_GROUPS {
            let p0 = u64::from(M0) * u64::from(c0[i]);
            let p1 = u64::from(M1) * u64::from(c2[i]);
            c0[i] = (p1 >> 32) as u32 ^ c1[i] ^ k0;
            c1[i] = p1 as u32;
            c2[i] = (p0 >> 32) as u32 ^ c3[i] ^ k1;
            c3[i] = p0 as u32;
        }
    }
    let (w, g) = (2 * WIDE_GROUPS, WIDE_GROUPS);
    let ln_t: [u32; 2 * WIDE_GROUPS] =
        std::array::from_fn(|i| dyadic(if i < g { c0[i] } else { c2[i - g] }));
    let arc_t: [u32; 2 * WIDE_GROUPS] =
        std::array::from_fn(|i| dyadic(if i < g { c1[i] } else { c3[i - g] }));
    let mut r = [0.0f32; 2 * WIDE_GROUPS];
    let (mut cos, mut sin) = ([0.0f32; 2 * WIDE_GROUPS], [0.0f32; 2 * WIDE_GROUPS]);
    for i in 0..w {
        r[i] = (ln_dyadic(ln_t[i]) * -2.0).sqrt();
        (cos[i], sin[i]) = sincos_2pi(arc_t[i]);
    }
    std::array::from_fn(|e| {
        let (i, lane) = (e / 4, e % 4);
        let k = if lane < 2 { i } else { g + i };
        r[k] * if lane % 2 == 0 { cos[k] } else { sin[k] }
    })
}

#[inline(always)]
fn fill_normal_impl(seed: u64, group: u32, step: u32, sample: u32, tag: u32, out: &mut [f32]) {
    let mut group = group;
    let mut wide = out.chunks_exact_mut(4 * WIDE_GROUPS);
    for chunk in &mut wide {
        chunk.copy_from_slice(&normal_wide_impl(seed, group, step, sample, tag));
        group = group.wrapping_add(WIDE_GROUPS as u32);
    }
    let mut quads = wide.into_remainder().chunks_mut(4);
    for quad in &mut quads {
        let z = normal4_impl(seed, group, step, sample, tag);
        quad.copy_from_slice(&z[..quad.len()]);
        group = group.wrapping_add(1);
    }
}

/// The same code compiled with hardware FMA, chosen at run time. The x86-64 baseline has no FMA
/// instruction, so there `f32::mul_add` calls libm's `fmaf` (4-5x slower overall). A fused
/// multiply-add is exactly rounded either way: both paths give identical bits.
#[cfg(target_arch = "x86_64")]
mod fma_x86 {
    #[target_feature(enable = "fma")]
    pub(super) unsafe fn normal4(
        seed: u64,
        group: u32,
        step: u32,
        sample: u32,
        tag: u32,
    ) -> [f32; 4] {
        super::normal4_impl(seed, group, step, sample, tag)
    }

    #[target_feature(enable = "fma")]
    pub(super) unsafe fn fill_normal(
        seed: u64,
        group: u32,
        step: u32,
        sample: u32,
        tag: u32,
        out: &mut [f32],
    ) {
        super::fill_normal_impl(seed, group, step, sample, tag, out);
    }

    /// Also with AVX2: the four-group stages run in 8-lane vectors.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fill_normal_avx2(
        seed: u64,
        group: u32,
        step: u32,
        sample: u32,
        tag: u32,
        out: &mut [f32],
    ) {
        super::fill_normal_impl(seed, group, step, sample, tag, out);
    }
}

#[cfg(test)]
mod tests {
    //! Exhaustive accuracy of the private `ln` and `sincos` over all 2²⁴ uniforms.
    use super::*;

    /// Distance in f32 ulps (of the reference) between `got` and the f64 reference.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = (want as f32).abs();
        let ulp = f64::from(f32::from_bits(w.to_bits() + 1) - w);
        (f64::from(got) - want).abs() / ulp
    }

    #[test]
    fn ln_is_within_one_ulp_everywhere() {
        let (mut worst, mut worst_t) = (0.0f64, 0u32);
        for t in (1..1u32 << 25).step_by(2) {
            let e = ulps(ln_dyadic(t), (f64::from(t) * 2f64.powi(-25)).ln());
            if e > worst {
                (worst, worst_t) = (e, t);
            }
        }
        println!("ln: max error {worst:.3} ulp at t = {worst_t}");
        assert!(worst < 1.0, "ln error {worst} ulp at t = {worst_t}");
    }

    #[test]
    fn sincos_is_within_one_ulp_everywhere() {
        let (mut worst_c, mut worst_s) = (0.0f64, 0.0f64);
        for t in (1..1u32 << 25).step_by(2) {
            let (c, s) = sincos_2pi(t);
            let (rs, rc) = (std::f64::consts::TAU * f64::from(t) * 2f64.powi(-25)).sin_cos();
            worst_c = worst_c.max(ulps(c, rc));
            worst_s = worst_s.max(ulps(s, rs));
        }
        println!("sincos: max error cos {worst_c:.3} ulp, sin {worst_s:.3} ulp");
        assert!(
            worst_c < 1.0 && worst_s < 1.0,
            "cos {worst_c} ulp, sin {worst_s} ulp"
        );
    }

    #[test]
    fn portable_and_dispatched_paths_agree() {
        // `normal4_impl` here is compiled without FMA (libm `fmaf` on x86-64 baseline), `normal4`
        // and `fill_normal` take the hardware-FMA path where the CPU has one.
        // `fill_normal_from` runs four groups at a time (AVX2 lanes where available), then single
        // groups for the rest: every length and first group gives `normal4_impl`'s bits.
        let mut v = vec![0.0f32; 4 * 4096 + 3];
        for (seed, step) in [(0u64, 0u32), (u64::MAX, 77), (0x5eed, 123_456)] {
            fill_normal(seed, step, 5, TAG_STEP, &mut v);
            for g in 0..v.len().div_ceil(4) {
                let want = normal4_impl(seed, g as u32, step, 5, TAG_STEP).map(f32::to_bits);
                assert_eq!(
                    normal4(seed, g as u32, step, 5, TAG_STEP).map(f32::to_bits),
                    want
                );
                for (lane, z) in v[4 * g..].iter().take(4).enumerate() {
                    assert_eq!(z.to_bits(), want[lane]);
                }
            }
            for (first, len) in [
                (0u32, 16usize),
                (7, 15),
                (u32::MAX - 4, 16),
                (1000, 61),
                (3, 1),
            ] {
                let mut w = vec![f32::NAN; len];
                fill_normal_from(seed, first, step, 9, TAG_INIT, &mut w);
                for (e, z) in w.iter().enumerate() {
                    let g = first.wrapping_add((e / 4) as u32);
                    let want = normal4_impl(seed, g, step, 9, TAG_INIT)[e % 4];
                    assert_eq!(z.to_bits(), want.to_bits(), "group {first} + element {e}");
                }
            }
        }
    }

    #[test]
    fn extreme_uniforms() {
        // u = 2⁻²⁵ (x < 2⁸) gives the largest radius sqrt(50 ln 2); u = 1 - 2⁻²⁵ the smallest.
        assert_eq!(dyadic(0), 1);
        assert_eq!(dyadic(u32::MAX), (1 << 25) - 1);
        let ln_min = f64::from(ln_dyadic(1));
        assert!((ln_min + 25.0 * std::f64::consts::LN_2).abs() < 4e-6);
        let ln_max = f64::from(ln_dyadic((1 << 25) - 1));
        assert!((ln_max / (1.0 - 2f64.powi(-25)).ln() - 1.0).abs() < 1e-7);
        assert_eq!(
            sincos_2pi(1 << 24 | 1).0.to_bits() >> 31,
            1,
            "cos(π + ε) < 0"
        );
    }
}
