//! The CPU MLP's arithmetic: activations, the f64-accumulated matvecs of the time and
//! conditioning paths (one vector, or [`TIME_LANES`] interleaved), the row GEMMs with their fused
//! bias and activation, and LayerNorm.

use super::{Activation, Linear, Norm};

#[inline(always)]
pub(super) fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

#[inline(always)]
pub(super) fn gelu_tanh(v: f32) -> f32 {
    const K: f32 = 0.797_884_6; // sqrt(2 / pi)
    0.5 * v * (1.0 + (K * (v + 0.044715 * v * v * v)).tanh())
}

/// `W u + b` for one vector, accumulated in f64 (the time and conditioning paths, once per time).
pub(super) fn matvec(lin: &Linear, u: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; lin.out_dim];
    matvec_into(lin, u, &mut out);
    out
}

pub(super) fn matvec_into(lin: &Linear, u: &[f32], out: &mut [f32]) {
    for (o, (row, b)) in out
        .iter_mut()
        .zip(lin.weight.chunks_exact(lin.in_dim).zip(&lin.bias))
    {
        let s: f64 = row.iter().zip(u).map(|(&w, &v)| w as f64 * v as f64).sum();
        *o = (s + *b as f64) as f32;
    }
}

/// Times whose time vectors [`MlpModel::time_table`] computes together.
pub(super) const TIME_LANES: usize = 4;

/// Scratch of [`MlpModel::time_vectors`]: one embedding, then the interleaved embeddings, hidden
/// and output vectors of [`TIME_LANES`] times.
pub(super) struct TimeLanes {
    /// One time's embedding.
    pub(super) one: Vec<f32>,
    /// The lanes' embeddings, interleaved.
    pub(super) emb: Vec<f32>,
    /// The lanes' hidden vectors, interleaved.
    pub(super) hid: Vec<f32>,
    /// The lanes' outputs, interleaved.
    pub(super) out: Vec<f32>,
}

impl TimeLanes {
    /// Scratch for embeddings of width `e` and hidden width `h`.
    pub(super) fn new(e: usize, h: usize) -> Self {
        TimeLanes {
            one: vec![0.0; e],
            emb: vec![0.0; e * TIME_LANES],
            hid: vec![0.0; h * TIME_LANES],
            out: vec![0.0; h * TIME_LANES],
        }
    }
}

/// [`matvec_into`] for [`TIME_LANES`] vectors at once, interleaved: `u[k·L + i]` is element k of
/// vector i, `out[o·L + i]` element o of result i. Each result is the same sequential f64 sum, in
/// the same order, as `matvec_into`'s, so the bits are equal; the L independent sums run in SIMD
/// lanes instead of one latency-bound chain of additions.
pub(super) fn matvec_lanes_into(lin: &Linear, u: &[f32], out: &mut [f32]) {
    const L: usize = TIME_LANES;
    let zero: f64 = std::iter::empty::<f64>().sum(); // the start of `matvec_into`'s `sum`
    for (o, (row, b)) in lin
        .weight
        .chunks_exact(lin.in_dim)
        .zip(&lin.bias)
        .enumerate()
    {
        let mut acc = [zero; L];
        for (&w, uk) in row.iter().zip(u.chunks_exact(L)) {
            for (a, &v) in acc.iter_mut().zip(uk) {
                *a += w as f64 * v as f64;
            }
        }
        for (r, a) in out[o * L..(o + 1) * L].iter_mut().zip(acc) {
            *r = (a + *b as f64) as f32;
        }
    }
}

/// Up to this many rows the `gemm` crate (no packing: 1.5 µs for 1×192×192 here) beats
/// `matrixmultiply` (14 µs, it packs W on every call); above it `matrixmultiply` is faster
/// (102 vs 153 µs at 256 rows), measured on the 2-core development machine. The price: the two
/// sum in different orders, so a row's bits depend on whether its call has more than this many
/// rows — Picard at τ = 0 equals the sequential sampler bit for bit only for batches above it.
pub(super) const SMALL_ROWS: usize = 4;
/// Weight matrices at least this large are split over threads in the small-rows path.
pub(super) const PARALLEL_WEIGHTS: usize = 1 << 15;

/// `out[rows × out_dim] = input[rows × in_dim] · Wᵀ + beta · out`.
pub(super) fn gemm(rows: usize, input: &[f32], lin: &Linear, beta: f32, out: &mut [f32]) {
    let (k, n) = (lin.in_dim, lin.out_dim);
    assert!(input.len() >= rows * k && out.len() >= rows * n && lin.weight.len() == n * k);
    if rows <= SMALL_ROWS {
        // SAFETY: as below; `gemm` computes dst = 0·dst + 1·lhs·rhs with the same strides.
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                beta != 0.0,
                input.as_ptr(),
                1,
                k as isize,
                lin.weight.as_ptr(),
                k as isize,
                1,
                beta,
                1.0,
                false,
                false,
                false,
                // A large weight matrix read for a few rows is bandwidth-bound: split it over the
                // pool's threads (rows ≤ 4 means the caller's row chunks are not parallel).
                if n * k >= PARALLEL_WEIGHTS {
                    gemm::Parallelism::Rayon(0)
                } else {
                    gemm::Parallelism::None
                },
            );
        }
        return;
    }
    // SAFETY: `input` holds rows×k and `out` rows×n f32 row-major (checked above); Wᵀ is read
    // through W's `[n][k]` storage with row stride 1 and column stride k.
    unsafe {
        matrixmultiply::sgemm(
            rows,
            k,
            n,
            1.0,
            input.as_ptr(),
            k as isize,
            1,
            lin.weight.as_ptr(),
            1,
            k as isize,
            beta,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `buf[r][j] = act(buf[r][j] + bias[j])` (no activation for `None`).
pub(super) fn bias_act(buf: &mut [f32], bias: &[f32], act: Option<Activation>) {
    let n = bias.len();
    match act {
        None => buf
            .chunks_exact_mut(n)
            .for_each(|r| r.iter_mut().zip(bias).for_each(|(v, b)| *v += b)),
        Some(Activation::Silu) => buf
            .chunks_exact_mut(n)
            .for_each(|r| r.iter_mut().zip(bias).for_each(|(v, b)| *v = silu(*v + b))),
        Some(Activation::GeluTanh) => buf.chunks_exact_mut(n).for_each(|r| {
            r.iter_mut()
                .zip(bias)
                .for_each(|(v, b)| *v = gelu_tanh(*v + b))
        }),
    }
}

/// Row-wise LayerNorm of `src` into `dst` (biased variance, statistics in f64).
pub(super) fn layernorm(src: &[f32], dst: &mut [f32], norm: &Norm, eps: f64) {
    let h = norm.weight.len();
    for (s, d) in src.chunks_exact(h).zip(dst.chunks_exact_mut(h)) {
        let mean = s.iter().map(|&v| v as f64).sum::<f64>() / h as f64;
        let var = s.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / h as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, &v), &g), &b) in d.iter_mut().zip(s).zip(&norm.weight).zip(&norm.bias) {
            *o = (((v as f64 - mean) * inv) as f32) * g + b;
        }
    }
}
