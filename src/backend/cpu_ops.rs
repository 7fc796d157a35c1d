//! [`Ops`] on the CPU: convolutions on `cpu_gemm` (weights read in place), linear layers on
//! `matrixmultiply` (both rayon-parallel over the output and batch-invariant), the rest as
//! fused passes parallel over rows. Every row is computed by the same code whatever the thread
//! count, so results do not depend on it.

use rayon::prelude::*;

use super::cpu::CpuBackend;
use super::cpu_gemm::{self, OutPtr};
use super::ops::{
    Conv, ConvShape, ConvTranspose, GroupNorm, HostTensor, Input, Linear, Ops, Output,
};
use crate::error::{Error, Result};

/// Inputs a convolution may concatenate.
const MAX_INPUTS: usize = 4;
/// Multiply-adds above which a GEMM is split over the rayon pool.
const PARALLEL_FLOPS: usize = 1 << 18;

/// The values `[off, off + len)` of `buf`, or an error naming `op`.
fn range<'a>(op: &str, buf: &'a [f32], off: usize, len: usize) -> Result<&'a [f32]> {
    off.checked_add(len)
        .and_then(|end| buf.get(off..end))
        .ok_or_else(|| short(op, buf.len(), off, len))
}

fn range_mut<'a>(op: &str, buf: &'a mut [f32], off: usize, len: usize) -> Result<&'a mut [f32]> {
    let have = buf.len();
    off.checked_add(len)
        .and_then(|end| buf.get_mut(off..end))
        .ok_or_else(|| short(op, have, off, len))
}

fn short(op: &str, have: usize, off: usize, len: usize) -> Error {
    Error::shape(
        op,
        format!("needs values [{off}, {off} + {len}) of a buffer of {have}"),
    )
}

/// `n × a × b` with overflow as an error.
fn size(op: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::shape(op, format!("{dims:?} overflows")))
}

/// The linear layers' GEMM (their `[out][in]` weights are a strided right-hand side; the
/// convolutions use `cpu_gemm`): `out[m×n] += lhs[m×k] · rhs` (row-major `out` and `lhs`; `rhs`
/// element (i, j) at `rhs[i·rs + j·cs]`), split over the rayon pool by rows (many rows) or by
/// columns (few rows).
///
/// Batch invariance: `matrixmultiply` sums every output element over K in blocks of a fixed size
/// (its kernel's `kc`, independent of m and n), so an element's bits do not depend on how many rows
/// the call has, where its row is, or how the call is split. One row of a window evaluation
/// therefore equals the same row evaluated alone, which keeps Picard's fixed point bit-identical to
/// the sequential sampler (the `gemm` crate picks its K blocking from m and n, so it is not used here).
#[allow(clippy::too_many_arguments)]
fn linear_gemm(
    m: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    rhs: &[f32],
    rs: usize,
    cs: usize,
    out: &mut [f32],
) {
    assert!(lhs.len() >= m * k && out.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    assert!(k == 0 || rhs.len() > (k - 1) * rs + (n - 1) * cs);
    let threads = rayon::current_num_threads().max(1);
    let (row_block, col_block) = if m * n * k < PARALLEL_FLOPS || threads == 1 {
        (m, n)
    } else if m >= 32 * threads {
        (m.div_ceil(2 * threads).next_multiple_of(8), n)
    } else {
        (m, n.div_ceil(threads).next_multiple_of(16))
    };
    let dst = OutPtr(out.as_mut_ptr());
    let col_blocks = n.div_ceil(col_block);
    let blocks = m.div_ceil(row_block) * col_blocks;
    (0..blocks).into_par_iter().for_each(|b| {
        let (r0, c0) = ((b / col_blocks) * row_block, (b % col_blocks) * col_block);
        let (rows, cols) = (row_block.min(m - r0), col_block.min(n - c0));
        // SAFETY: the asserts bound every index read (lhs rows r0.., rhs columns c0.. through its
        // strides) and written (out rows r0..r0+rows, columns c0..c0+cols, row stride n); blocks
        // are disjoint, so no two tasks write the same element, and `out` outlives the loop.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                cols,
                1.0,
                lhs.as_ptr().add(r0 * k),
                k as isize,
                1,
                rhs.as_ptr().add(c0 * cs),
                rs as isize,
                cs as isize,
                1.0,
                dst.get().add(r0 * n + c0),
                n as isize,
                1,
            );
        }
    });
}

/// Mish `v·tanh(softplus v)` with one exponential: `tanh(ln(1 + e^v)) = w/(w + 2)`,
/// `w = e^v (e^v + 2)`; above 20 it is `v` to f32 precision (PyTorch's softplus threshold).
#[inline(always)]
pub(crate) fn mish(v: f32) -> f32 {
    if v > 20.0 {
        return v;
    }
    let e = v.exp();
    let w = e * (e + 2.0);
    v * w / (w + 2.0)
}

impl CpuBackend {
    /// Fills every row of `out` (`rows × bias.len()`) with `bias`.
    fn fill_bias(out: &mut [f32], bias: &[f32]) {
        out.par_chunks_mut(bias.len().max(1))
            .for_each(|r| r.copy_from_slice(bias));
    }
}

impl Ops for CpuBackend {
    type Weight = HostTensor;

    fn weight(&self, host: &HostTensor) -> Result<HostTensor> {
        Ok(host.clone())
    }

    fn linear(
        &self,
        lin: &Linear<HostTensor>,
        n: usize,
        x: Input<'_, Vec<f32>>,
        out: Output<'_, Vec<f32>>,
    ) -> Result<()> {
        let (k, m) = (lin.in_dim, lin.out_dim);
        let xs = range("linear", x.buf, x.off, size("linear", &[n, k])?)?;
        let os = range_mut("linear", out.buf, out.off, size("linear", &[n, m])?)?;
        if lin.weight.len() != k * m || lin.bias.len() != m {
            return Err(Error::shape("linear", "weight or bias of the wrong size"));
        }
        Self::fill_bias(os, &lin.bias);
        linear_gemm(n, m, k, xs, &lin.weight, 1, k, os);
        Ok(())
    }

    fn conv1d_scratch(shape: ConvShape, n: usize, len: usize) -> Result<usize> {
        let lout = shape.conv_len(len)?;
        size("conv1d", &[n, lout, shape.k, shape.cin])
    }

    fn conv1d(
        &self,
        conv: &Conv<HostTensor>,
        n: usize,
        len: usize,
        inputs: &[Input<'_, Vec<f32>>],
        col: &mut Vec<f32>,
        out: Output<'_, Vec<f32>>,
    ) -> Result<()> {
        let s = conv.shape;
        let lout = s.conv_len(len)?;
        if inputs.iter().map(|i| i.ch).sum::<usize>() != s.cin
            || conv.weight.len() != s.k * s.cin * s.cout
            || conv.bias.len() != s.cout
        {
            return Err(Error::shape(
                "conv1d",
                format!("inputs or weights do not match {s:?}"),
            ));
        }
        if inputs.is_empty() || inputs.len() > MAX_INPUTS {
            return Err(Error::shape(
                "conv1d",
                format!("1 to {MAX_INPUTS} inputs, got {}", inputs.len()),
            ));
        }
        // A fixed array, not a Vec: an evaluation allocates nothing.
        let mut srcs: [(&[f32], usize); MAX_INPUTS] = [(&[], 0); MAX_INPUTS];
        for (s, i) in srcs.iter_mut().zip(inputs) {
            *s = (
                range("conv1d", i.buf, i.off, size("conv1d", &[n, len, i.ch])?)?,
                i.ch,
            );
        }
        let srcs = &srcs[..inputs.len()];
        let rows = size("conv1d", &[n, lout])?;
        let os = range_mut("conv1d", out.buf, out.off, size("conv1d", &[rows, s.cout])?)?;
        let kc = s.k * s.cin;
        let direct = s.k == 1 && s.stride == 1 && s.pad == 0 && srcs.len() == 1;
        let lhs: &[f32] = if direct {
            srcs[0].0
        } else {
            let cols = range_mut("conv1d", col, 0, size("conv1d", &[rows, kc])?)?;
            // im2col: row (r, l) holds, for each tap kk, the concatenated channels at position
            // l·stride + kk − pad (zeros outside).
            cols.par_chunks_mut(kc).enumerate().for_each(|(rl, c)| {
                let (r, l) = (rl / lout, rl % lout);
                for (kk, tap) in c.chunks_mut(s.cin).enumerate() {
                    let pos = (l * s.stride + kk).checked_sub(s.pad).filter(|&p| p < len);
                    let mut at = 0;
                    for &(src, ch) in srcs {
                        let dst = &mut tap[at..at + ch];
                        match pos {
                            Some(p) => dst.copy_from_slice(&src[(r * len + p) * ch..][..ch]),
                            None => dst.fill(0.0),
                        }
                        at += ch;
                    }
                }
            });
            cols
        };
        Self::fill_bias(os, &conv.bias);
        cpu_gemm::gemm_acc(rows, s.cout, kc, lhs, &conv.weight, os);
        Ok(())
    }

    fn conv_transpose1d_scratch(shape: ConvShape, n: usize, len: usize) -> usize {
        n.saturating_mul(len)
            .saturating_mul(shape.k)
            .saturating_mul(shape.cout)
    }

    fn conv_transpose1d(
        &self,
        conv: &ConvTranspose<HostTensor>,
        n: usize,
        len: usize,
        x: Input<'_, Vec<f32>>,
        tmp: &mut Vec<f32>,
        out: Output<'_, Vec<f32>>,
    ) -> Result<()> {
        let s = conv.shape;
        let lout = s.transpose_len(len)?;
        if x.ch != s.cin || conv.weight.len() != s.cin * s.k * s.cout || conv.bias.len() != s.cout {
            return Err(Error::shape(
                "conv_transpose1d",
                format!("input or weights do not match {s:?}"),
            ));
        }
        let op = "conv_transpose1d";
        let xs = range(op, x.buf, x.off, size(op, &[n, len, s.cin])?)?;
        let kco = s.k * s.cout;
        let ys = range_mut(op, tmp, 0, size(op, &[n, len, kco])?)?;
        ys.fill(0.0);
        cpu_gemm::gemm_acc(n * len, kco, s.cin, xs, &conv.weight, ys);
        let ys = &*ys;
        let os = range_mut(op, out.buf, out.off, size(op, &[n, lout, s.cout])?)?;
        // Scatter: output position o of row r sums tap kk of input i where o = i·stride − pad + kk.
        os.par_chunks_mut(lout * s.cout)
            .enumerate()
            .for_each(|(r, orow)| {
                for (o, oc) in orow.chunks_mut(s.cout).enumerate() {
                    oc.copy_from_slice(&conv.bias);
                    for kk in 0..s.k {
                        let Some(num) = (o + s.pad).checked_sub(kk) else {
                            continue;
                        };
                        if num % s.stride != 0 || num / s.stride >= len {
                            continue;
                        }
                        let i = num / s.stride;
                        let y = &ys[((r * len + i) * s.k + kk) * s.cout..][..s.cout];
                        oc.iter_mut().zip(y).for_each(|(a, b)| *a += b);
                    }
                }
            });
        Ok(())
    }

    fn group_norm_mish(
        &self,
        gn: &GroupNorm<HostTensor>,
        n: usize,
        len: usize,
        x: Output<'_, Vec<f32>>,
    ) -> Result<()> {
        let ch = gn.ch;
        if gn.groups == 0
            || !ch.is_multiple_of(gn.groups)
            || gn.gamma.len() != ch
            || gn.beta.len() != ch
        {
            return Err(Error::shape(
                "group_norm",
                format!("{} groups do not divide {ch} channels", gn.groups),
            ));
        }
        let xs = range_mut(
            "group_norm",
            x.buf,
            x.off,
            size("group_norm", &[n, len, ch])?,
        )?;
        let per = ch / gn.groups;
        let count = (per * len) as f64;
        xs.par_chunks_mut((len * ch).max(1)).for_each(|row| {
            for g in 0..gn.groups {
                let c0 = g * per;
                let (mut sum, mut sq) = (0f64, 0f64);
                for pos in row.chunks(ch) {
                    for &v in &pos[c0..c0 + per] {
                        sum += v as f64;
                    }
                }
                let mean = sum / count;
                for pos in row.chunks(ch) {
                    for &v in &pos[c0..c0 + per] {
                        let d = v as f64 - mean;
                        sq += d * d;
                    }
                }
                let inv = 1.0 / (sq / count + gn.eps as f64).sqrt();
                let (mean, inv) = (mean as f32, inv as f32);
                for pos in row.chunks_mut(ch) {
                    for (c, v) in pos[c0..c0 + per].iter_mut().enumerate() {
                        let y = (*v - mean) * inv * gn.gamma[c0 + c] + gn.beta[c0 + c];
                        *v = mish(y);
                    }
                }
            }
        });
        Ok(())
    }

    fn film(
        &self,
        n: usize,
        len: usize,
        ch: usize,
        scale: bool,
        film: Input<'_, Vec<f32>>,
        film_stride: usize,
        x: Output<'_, Vec<f32>>,
    ) -> Result<()> {
        let width = if scale { 2 * ch } else { ch };
        if film_stride < width || n == 0 {
            return if n == 0 {
                Ok(())
            } else {
                Err(Error::shape("film", "rows of the FiLM input overlap"))
            };
        }
        let fs = range("film", film.buf, film.off, (n - 1) * film_stride + width)?;
        let xs = range_mut("film", x.buf, x.off, size("film", &[n, len, ch])?)?;
        xs.par_chunks_mut((len * ch).max(1))
            .enumerate()
            .for_each(|(r, row)| {
                let f = &fs[r * film_stride..][..width];
                for pos in row.chunks_mut(ch) {
                    if scale {
                        let (s, t) = f.split_at(ch);
                        for ((v, s), t) in pos.iter_mut().zip(s).zip(t) {
                            *v = s * *v + t;
                        }
                    } else {
                        pos.iter_mut().zip(f).for_each(|(v, t)| *v += t);
                    }
                }
            });
        Ok(())
    }

    fn mish(&self, len: usize, x: Output<'_, Vec<f32>>) -> Result<()> {
        let xs = range_mut("mish", x.buf, x.off, len)?;
        xs.par_chunks_mut(4096)
            .for_each(|c| c.iter_mut().for_each(|v| *v = mish(*v)));
        Ok(())
    }

    fn add(&self, len: usize, x: Input<'_, Vec<f32>>, out: Output<'_, Vec<f32>>) -> Result<()> {
        let xs = range("add", x.buf, x.off, len)?;
        let os = range_mut("add", out.buf, out.off, len)?;
        os.par_chunks_mut(4096)
            .zip(xs.par_chunks(4096))
            .for_each(|(o, x)| o.iter_mut().zip(x).for_each(|(o, x)| *o += x));
        Ok(())
    }

    fn sinusoidal(
        &self,
        dim: usize,
        n: usize,
        times: Input<'_, Vec<f32>>,
        out: Output<'_, Vec<f32>>,
    ) -> Result<()> {
        let half = dim / 2;
        if half < 2 || !dim.is_multiple_of(2) {
            return Err(Error::shape(
                "sinusoidal",
                format!("the embedding width must be even and at least 4, got {dim}"),
            ));
        }
        let ts = range("sinusoidal", times.buf, times.off, n)?;
        let os = range_mut(
            "sinusoidal",
            out.buf,
            out.off,
            size("sinusoidal", &[n, dim])?,
        )?;
        // As PyTorch computes it: the frequency and the argument rounded to f32.
        let step = -(10000f64.ln() / (half - 1) as f64) as f32;
        let freqs: Vec<f32> = (0..half).map(|i| (i as f32 * step).exp()).collect();
        os.par_chunks_mut(dim).zip(ts).for_each(|(row, &t)| {
            let (s, c) = row.split_at_mut(half);
            for ((s, c), f) in s.iter_mut().zip(c).zip(&freqs) {
                let arg = (t * f) as f64;
                *s = arg.sin() as f32;
                *c = arg.cos() as f32;
            }
        });
        Ok(())
    }

    fn concat_cond(
        &self,
        n: usize,
        a: usize,
        first: Input<'_, Vec<f32>>,
        b: usize,
        second: Input<'_, Vec<f32>>,
        row0: usize,
        batch: usize,
        out: Output<'_, Vec<f32>>,
    ) -> Result<()> {
        if batch == 0 {
            return Err(Error::shape("concat_cond", "batch 0"));
        }
        let fs = range(
            "concat_cond",
            first.buf,
            first.off,
            size("concat_cond", &[n, a])?,
        )?;
        let ss = range(
            "concat_cond",
            second.buf,
            second.off,
            size("concat_cond", &[batch, b])?,
        )?;
        let os = range_mut(
            "concat_cond",
            out.buf,
            out.off,
            size("concat_cond", &[n, a + b])?,
        )?;
        os.par_chunks_mut((a + b).max(1))
            .enumerate()
            .for_each(|(r, row)| {
                row[..a].copy_from_slice(&fs[r * a..][..a]);
                let sample = (row0 + r) % batch;
                row[a..].copy_from_slice(&ss[sample * b..][..b]);
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::mish;

    /// The one-exponential Mish equals the textbook `v·tanh(ln(1 + e^v))` (f64) within 4e-7
    /// relative (a few f32 ulps).
    #[test]
    fn mish_matches_the_definition() {
        for i in -4000..=4000 {
            let v = i as f32 * 0.01;
            let want = (v as f64) * ((v as f64).exp().ln_1p()).tanh();
            let got = mish(v) as f64;
            assert!(
                (got - want).abs() <= 4e-7 * want.abs() + 1e-37,
                "mish({v}) = {got}, want {want}"
            );
        }
        assert_eq!(mish(100.0), 100.0);
        assert!(mish(-100.0).abs() < 1e-30);
        assert!(mish(f32::NAN).is_nan());
    }
}
