//! Safe wrappers of the tensor-op kernels of `kernels/unet.cu` (used by `Ops` for
//! [`CudaBackend`], `ops.rs`). Each checks that every buffer belongs to the backend and holds the
//! range the kernel touches (offset included), converts sizes without truncation and enqueues the
//! launch on the backend's stream.

use cudarc::driver::CudaSlice;

use super::launch::c_int;
use super::{check, ffi, CudaBackend};
use crate::backend::ops::Input;
use crate::error::{Error, Result};

/// A range `[off, off + len)` of a device buffer.
pub(super) type Span<'a> = (&'a CudaSlice<f32>, usize);

/// `dims` multiplied, overflow as an error naming `op`.
pub(super) fn size(op: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::shape(op, format!("{dims:?} overflows")))
}

fn long(v: usize, what: &str) -> Result<i64> {
    super::launch::c_long(v, what)
}

/// The geometry of an im2col or transposed-convolution scatter launch.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConvGeom {
    pub n: usize,
    pub len: usize,
    pub lout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl CudaBackend {
    /// The device address of element `off` of `buf`, after checking `[off, off + len)` is inside.
    fn span_ptr(
        &self,
        buf: &CudaSlice<f32>,
        off: usize,
        len: usize,
        op: &str,
        what: &str,
    ) -> Result<u64> {
        let end = off
            .checked_add(len)
            .ok_or_else(|| Error::shape(op, format!("{what}: range overflows")))?;
        Ok(self.ptr(buf, end, op, what)? + 4 * off as u64)
    }

    fn span_ptr_mut(
        &self,
        buf: &mut CudaSlice<f32>,
        off: usize,
        len: usize,
        op: &str,
        what: &str,
    ) -> Result<u64> {
        let end = off
            .checked_add(len)
            .ok_or_else(|| Error::shape(op, format!("{what}: range overflows")))?;
        Ok(self.ptr_mut(buf, end, op, what)? + 4 * off as u64)
    }

    /// im2col of the concatenation of `inputs` (n × len × ch each)
    /// into `col` (from element 0): `n·lout` rows of `k·cin` values.
    pub(super) fn launch_im2col(
        &self,
        inputs: &[Input<'_, CudaSlice<f32>>],
        g: ConvGeom,
        col: &mut CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "conv1d (im2col)";
        let max = ffi::PICARDIFF_CONV_MAX_INPUTS as usize;
        if inputs.is_empty() || inputs.len() > max {
            return Err(Error::shape(
                OP,
                format!("1 to {max} inputs, got {}", inputs.len()),
            ));
        }
        let cin: usize = inputs.iter().map(|i| i.ch).sum();
        let mut p = ffi::Im2colParams {
            src: [std::ptr::null(); ffi::PICARDIFF_CONV_MAX_INPUTS as usize],
            ch: [0; ffi::PICARDIFF_CONV_MAX_INPUTS as usize],
            inputs: inputs.len() as i32,
            col: self.ptr_mut(
                col,
                size(OP, &[g.n, g.lout, g.k, cin])?,
                OP,
                "im2col scratch",
            )? as *mut f32,
            n: long(g.n, "rows")?,
            len: c_int(g.len, "positions")?,
            lout: c_int(g.lout, "positions")?,
            k: c_int(g.k, "kernel size")?,
            cin: c_int(cin, "channels")?,
            stride: c_int(g.stride, "stride")?,
            pad: c_int(g.pad, "padding")?,
        };
        for (i, inp) in inputs.iter().enumerate() {
            let len = size(OP, &[g.n, g.len, inp.ch])?;
            p.src[i] = self.span_ptr(inp.buf, inp.off, len, OP, "convolution input")? as *const f32;
            p.ch[i] = c_int(inp.ch, "channels")?;
        }
        self.bind(OP)?;
        // SAFETY: each input holds n × len × ch[i] values from its offset and col n·lout × k·cin
        // (checked); the kernel reads inputs only at positions in [0, len) and writes col in range.
        let code = unsafe { ffi::launch_im2col_f32(p, self.cu_stream()) };
        check(code, OP)
    }

    /// The scatter of a transposed convolution: `y` (`n·len × k·cout` from element 0) and `bias`
    /// (`cout`) into `out` (`n × lout × cout` from `out.1`).
    pub(super) fn launch_conv_transpose_scatter(
        &self,
        y: &CudaSlice<f32>,
        bias: &CudaSlice<f32>,
        g: ConvGeom,
        cout: usize,
        out: (&mut CudaSlice<f32>, usize),
    ) -> Result<()> {
        const OP: &str = "conv_transpose1d (scatter)";
        let yp = self.ptr(y, size(OP, &[g.n, g.len, g.k, cout])?, OP, "GEMM result")?;
        let bp = self.ptr(bias, cout, OP, "bias")?;
        let op = self.span_ptr_mut(out.0, out.1, size(OP, &[g.n, g.lout, cout])?, OP, "output")?;
        self.bind(OP)?;
        // SAFETY: y holds n·len × k·cout, bias cout, out n × lout × cout values (checked); the kernel
        // reads y only at input positions i < len.
        let code = unsafe {
            ffi::launch_conv_transpose_scatter_f32(
                yp as *const f32,
                bp as *const f32,
                op as *mut f32,
                long(g.n, "rows")?,
                c_int(g.len, "positions")?,
                c_int(g.lout, "positions")?,
                c_int(g.k, "kernel size")?,
                c_int(cout, "channels")?,
                c_int(g.stride, "stride")?,
                c_int(g.pad, "padding")?,
                self.cu_stream(),
            )
        };
        check(code, OP)
    }

    /// In place GroupNorm + Mish over `n × len × ch` values of `x` from `x.1`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_group_norm_mish(
        &self,
        x: (&mut CudaSlice<f32>, usize),
        gamma: &CudaSlice<f32>,
        beta: &CudaSlice<f32>,
        (n, len, ch): (usize, usize, usize),
        groups: usize,
        eps: f32,
    ) -> Result<()> {
        const OP: &str = "group_norm";
        if groups == 0 || !ch.is_multiple_of(groups) {
            return Err(Error::shape(
                OP,
                format!("{groups} groups do not divide {ch} channels"),
            ));
        }
        size(OP, &[n, groups])?;
        let xp = self.span_ptr_mut(x.0, x.1, size(OP, &[n, len, ch])?, OP, "activations")?;
        let gp = self.ptr(gamma, ch, OP, "weight")?;
        let bp = self.ptr(beta, ch, OP, "bias")?;
        self.bind(OP)?;
        // SAFETY: x holds n × len × ch values from its offset, gamma and beta ch (checked).
        let code = unsafe {
            ffi::launch_group_norm_mish_f32(
                xp as *mut f32,
                gp as *const f32,
                bp as *const f32,
                long(n, "rows")?,
                c_int(len, "positions")?,
                c_int(ch, "channels")?,
                c_int(groups, "groups")?,
                eps,
                self.cu_stream(),
            )
        };
        check(code, OP)
    }

    /// In place FiLM over `n × len × ch` values of `x` (see `Ops::film`); `film` rows of `width`
    /// values, `stride` apart.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_film(
        &self,
        x: (&mut CudaSlice<f32>, usize),
        film: Span<'_>,
        (n, len, ch): (usize, usize, usize),
        stride: usize,
        scale: bool,
    ) -> Result<()> {
        const OP: &str = "film";
        let width = if scale { size(OP, &[2, ch])? } else { ch };
        if n == 0 {
            return Ok(());
        }
        if stride < width {
            return Err(Error::shape(OP, "rows of the FiLM input overlap"));
        }
        let flen = size(OP, &[n - 1, stride])?
            .checked_add(width)
            .ok_or_else(|| Error::shape(OP, "FiLM rows overflow"))?;
        let fp = self.span_ptr(film.0, film.1, flen, OP, "FiLM input")?;
        let xp = self.span_ptr_mut(x.0, x.1, size(OP, &[n, len, ch])?, OP, "activations")?;
        self.bind(OP)?;
        // SAFETY: x holds n × len × ch values, film (n − 1)·stride + width (checked).
        let code = unsafe {
            ffi::launch_film_f32(
                xp as *mut f32,
                fp as *const f32,
                long(n, "rows")?,
                c_int(len, "positions")?,
                c_int(ch, "channels")?,
                long(stride, "FiLM stride")?,
                i32::from(scale),
                self.cu_stream(),
            )
        };
        check(code, OP)
    }

    /// In place Mish over `len` values of `x` from `x.1`.
    pub(super) fn launch_mish(&self, x: (&mut CudaSlice<f32>, usize), len: usize) -> Result<()> {
        const OP: &str = "mish";
        let xp = self.span_ptr_mut(x.0, x.1, len, OP, "values")?;
        self.bind(OP)?;
        // SAFETY: x holds len values from its offset (checked).
        let code =
            unsafe { ffi::launch_mish_f32(xp as *mut f32, long(len, "len")?, self.cu_stream()) };
        check(code, OP)
    }

    /// `out += x` over `len` values (distinct buffers: one is borrowed shared, one mutably).
    pub(super) fn launch_add(
        &self,
        out: (&mut CudaSlice<f32>, usize),
        x: Span<'_>,
        len: usize,
    ) -> Result<()> {
        const OP: &str = "add";
        let xp = self.span_ptr(x.0, x.1, len, OP, "addend")?;
        let op = self.span_ptr_mut(out.0, out.1, len, OP, "values")?;
        self.bind(OP)?;
        // SAFETY: both hold len values from their offsets (checked).
        let code = unsafe {
            ffi::launch_add_f32(
                op as *mut f32,
                xp as *const f32,
                long(len, "len")?,
                self.cu_stream(),
            )
        };
        check(code, OP)
    }

    /// Sinusoidal embeddings (`dim` wide, frequency exponent `step`) of `n` times.
    pub(super) fn launch_sinusoidal(
        &self,
        times: Span<'_>,
        n: usize,
        dim: usize,
        step: f32,
        out: (&mut CudaSlice<f32>, usize),
    ) -> Result<()> {
        const OP: &str = "sinusoidal";
        let tp = self.span_ptr(times.0, times.1, n, OP, "times")?;
        let op = self.span_ptr_mut(out.0, out.1, size(OP, &[n, dim])?, OP, "embeddings")?;
        self.bind(OP)?;
        // SAFETY: times holds n values, out n × dim (checked; dim even and ≥ 4, checked by Ops).
        let code = unsafe {
            ffi::launch_sinusoidal_f32(
                tp as *const f32,
                op as *mut f32,
                long(n, "rows")?,
                c_int(dim, "embedding width")?,
                step,
                self.cu_stream(),
            )
        };
        check(code, OP)
    }

    /// Row r of `out` becomes `[first[r] (a) | second[(row0 + r) % batch] (b)]` for `n` rows.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_concat_cond(
        &self,
        (n, a, b): (usize, usize, usize),
        first: Span<'_>,
        second: Span<'_>,
        row0: usize,
        batch: usize,
        out: (&mut CudaSlice<f32>, usize),
    ) -> Result<()> {
        const OP: &str = "concat_cond";
        if batch == 0 {
            return Err(Error::shape(OP, "batch 0"));
        }
        let fp = self.span_ptr(first.0, first.1, size(OP, &[n, a])?, OP, "first part")?;
        let sp = self.span_ptr(
            second.0,
            second.1,
            size(OP, &[batch, b])?,
            OP,
            "conditioning",
        )?;
        let w = a
            .checked_add(b)
            .ok_or_else(|| Error::shape(OP, "width overflows"))?;
        let op = self.span_ptr_mut(out.0, out.1, size(OP, &[n, w])?, OP, "output")?;
        self.bind(OP)?;
        // SAFETY: first holds n × a, second batch × b, out n × (a + b) values (checked); the kernel
        // reads second only at rows (row0 + r) % batch < batch.
        let code = unsafe {
            ffi::launch_concat_cond_f32(
                fp as *const f32,
                c_int(a, "width")?,
                sp as *const f32,
                c_int(b, "conditioning width")?,
                long(n, "rows")?,
                long(row0, "row")?,
                c_int(batch, "batch")?,
                op as *mut f32,
                self.cu_stream(),
            )
        };
        check(code, OP)
    }
}
