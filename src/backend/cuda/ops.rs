//! [`Ops`] on the CUDA backend: every GEMM is one cuBLAS SGEMM over all rows of the call
//! ([`CudaBackend::gemm`]), the rest the kernels of `kernels/unet.cu` (`ops_kernels.rs`). The CPU
//! twin is `backend/cpu_ops.rs`; shapes are validated as there (the number of concatenated inputs
//! by the im2col wrapper), and every launch checks its ranges first, so a short buffer is an error
//! before anything writes past it (at most the op's scratch has been written by then).
//!
//! - linear: `out = x · Wᵀ` (W `[out][in]`, given transposed), then the bias (`bias_act`);
//! - conv1d: im2col of the concatenated inputs into `col` (skipped for a 1×1 convolution of one
//!   input, which multiplies the input itself), `col · W` (W `[k·cin][cout]`), then the bias;
//! - conv-transpose1d: `tmp = x · W` (W `[cin][k·cout]`), then the scatter kernel (bias + taps);
//! - GroupNorm + Mish fused; FiLM, Mish, add, sinusoidal, concat_cond elementwise.
//!
//! Everything only enqueues work on the backend's stream (no host synchronisation, no host state),
//! so a model written over these ops can be recorded into a CUDA graph ([`Ops::ENQUEUES_ONLY`]).
//! Precision: the GEMMs' summation order is cuBLAS's (see `gemm.rs`: not batch-invariant), Mish
//! and the sinusoid use f64 `exp`/`sin` rounded once; GPU = CPU within rounding, not bit for bit.

use cudarc::driver::CudaSlice;

use super::gemm::{MatMut, MatRef};
use super::ops_kernels::{size, ConvGeom};
use super::CudaBackend;
use crate::backend::cpu::CpuBackend;
use crate::backend::ops::{
    Conv, ConvShape, ConvTranspose, GroupNorm, HostTensor, Input, Linear, Ops, Output,
};
use crate::backend::Backend;
use crate::error::{Error, Result};

type Buf = CudaSlice<f32>;

impl Ops for CudaBackend {
    type Weight = CudaSlice<f32>;

    const ENQUEUES_ONLY: bool = true;
    const UPLOADS_WEIGHTS: bool = true;

    fn weight(&self, host: &HostTensor) -> Result<Buf> {
        self.upload(host)
    }

    fn linear(
        &self,
        lin: &Linear<Buf>,
        n: usize,
        x: Input<'_, Buf>,
        out: Output<'_, Buf>,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        let (k, m) = (lin.in_dim, lin.out_dim);
        if lin.weight.len() != size("linear", &[k, m])? || lin.bias.len() != m {
            return Err(Error::shape("linear", "weight or bias of the wrong size"));
        }
        let a = MatRef {
            buf: x.buf,
            off: x.off,
            ld: k.max(1),
            trans: false,
        };
        let w = MatRef {
            buf: &lin.weight,
            off: 0,
            ld: k.max(1),
            trans: true,
        };
        let c = MatMut {
            buf: &mut *out.buf,
            off: out.off,
            ld: m.max(1),
        };
        self.gemm("linear", (n, m, k), a, w, 0.0, c)?;
        self.bias_act_at((out.buf, out.off), Some(&lin.bias), n, m, None)
    }

    fn conv1d_scratch(shape: ConvShape, n: usize, len: usize) -> Result<usize> {
        <CpuBackend as Ops>::conv1d_scratch(shape, n, len)
    }

    fn conv1d(
        &self,
        conv: &Conv<Buf>,
        n: usize,
        len: usize,
        inputs: &[Input<'_, Buf>],
        col: &mut Buf,
        out: Output<'_, Buf>,
    ) -> Result<()> {
        const OP: &str = "conv1d";
        let _exclusive = self.exclusive();
        let s = conv.shape;
        let lout = s.conv_len(len)?;
        let kc = size(OP, &[s.k, s.cin])?;
        if inputs.iter().map(|i| i.ch).sum::<usize>() != s.cin
            || conv.weight.len() != size(OP, &[kc, s.cout])?
            || conv.bias.len() != s.cout
        {
            return Err(Error::shape(
                OP,
                format!("inputs or weights do not match {s:?}"),
            ));
        }
        let rows = size(OP, &[n, lout])?;
        let direct = s.k == 1 && s.stride == 1 && s.pad == 0 && inputs.len() == 1;
        let lhs = if direct {
            let i = inputs[0];
            MatRef {
                buf: i.buf,
                off: i.off,
                ld: s.cin,
                trans: false,
            }
        } else {
            let g = ConvGeom {
                n,
                len,
                lout,
                k: s.k,
                stride: s.stride,
                pad: s.pad,
            };
            self.launch_im2col(inputs, g, col)?;
            MatRef {
                buf: &*col,
                off: 0,
                ld: kc,
                trans: false,
            }
        };
        let w = MatRef {
            buf: &conv.weight,
            off: 0,
            ld: s.cout,
            trans: false,
        };
        let c = MatMut {
            buf: &mut *out.buf,
            off: out.off,
            ld: s.cout,
        };
        self.gemm(OP, (rows, s.cout, kc), lhs, w, 0.0, c)?;
        self.bias_act_at((out.buf, out.off), Some(&conv.bias), rows, s.cout, None)
    }

    fn conv_transpose1d_scratch(shape: ConvShape, n: usize, len: usize) -> usize {
        <CpuBackend as Ops>::conv_transpose1d_scratch(shape, n, len)
    }

    fn conv_transpose1d(
        &self,
        conv: &ConvTranspose<Buf>,
        n: usize,
        len: usize,
        x: Input<'_, Buf>,
        tmp: &mut Buf,
        out: Output<'_, Buf>,
    ) -> Result<()> {
        const OP: &str = "conv_transpose1d";
        let _exclusive = self.exclusive();
        let s = conv.shape;
        let lout = s.transpose_len(len)?;
        let kco = size(OP, &[s.k, s.cout])?;
        if x.ch != s.cin
            || conv.weight.len() != size(OP, &[s.cin, kco])?
            || conv.bias.len() != s.cout
        {
            return Err(Error::shape(
                OP,
                format!("input or weights do not match {s:?}"),
            ));
        }
        let rows = size(OP, &[n, len])?;
        let a = MatRef {
            buf: x.buf,
            off: x.off,
            ld: s.cin,
            trans: false,
        };
        let w = MatRef {
            buf: &conv.weight,
            off: 0,
            ld: kco,
            trans: false,
        };
        let y = MatMut {
            buf: &mut *tmp,
            off: 0,
            ld: kco,
        };
        self.gemm(OP, (rows, kco, s.cin), a, w, 0.0, y)?;
        let g = ConvGeom {
            n,
            len,
            lout,
            k: s.k,
            stride: s.stride,
            pad: s.pad,
        };
        self.launch_conv_transpose_scatter(tmp, &conv.bias, g, s.cout, (out.buf, out.off))
    }

    fn group_norm_mish(
        &self,
        gn: &GroupNorm<Buf>,
        n: usize,
        len: usize,
        x: Output<'_, Buf>,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        if gn.gamma.len() != gn.ch || gn.beta.len() != gn.ch {
            return Err(Error::shape(
                "group_norm",
                format!("weight and bias must have {} values", gn.ch),
            ));
        }
        self.launch_group_norm_mish(
            (x.buf, x.off),
            &gn.gamma,
            &gn.beta,
            (n, len, gn.ch),
            gn.groups,
            gn.eps,
        )
    }

    fn film(
        &self,
        n: usize,
        len: usize,
        ch: usize,
        scale: bool,
        film: Input<'_, Buf>,
        film_stride: usize,
        x: Output<'_, Buf>,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        self.launch_film(
            (x.buf, x.off),
            (film.buf, film.off),
            (n, len, ch),
            film_stride,
            scale,
        )
    }

    fn mish(&self, len: usize, x: Output<'_, Buf>) -> Result<()> {
        let _exclusive = self.exclusive();
        self.launch_mish((x.buf, x.off), len)
    }

    fn add(&self, len: usize, x: Input<'_, Buf>, out: Output<'_, Buf>) -> Result<()> {
        let _exclusive = self.exclusive();
        self.launch_add((out.buf, out.off), (x.buf, x.off), len)
    }

    fn sinusoidal(
        &self,
        dim: usize,
        n: usize,
        times: Input<'_, Buf>,
        out: Output<'_, Buf>,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        let half = dim / 2;
        if half < 2 || !dim.is_multiple_of(2) {
            return Err(Error::shape(
                "sinusoidal",
                format!("the embedding width must be even and at least 4, got {dim}"),
            ));
        }
        // As the CPU (and PyTorch): the exponent step rounded to f32.
        let step = -(10000f64.ln() / (half - 1) as f64) as f32;
        self.launch_sinusoidal((times.buf, times.off), n, dim, step, (out.buf, out.off))
    }

    fn concat_cond(
        &self,
        n: usize,
        a: usize,
        first: Input<'_, Buf>,
        b: usize,
        second: Input<'_, Buf>,
        row0: usize,
        batch: usize,
        out: Output<'_, Buf>,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        self.launch_concat_cond(
            (n, a, b),
            (first.buf, first.off),
            (second.buf, second.off),
            row0,
            batch,
            (out.buf, out.off),
        )
    }
}
