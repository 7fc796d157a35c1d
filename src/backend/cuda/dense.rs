//! Dense-layer primitives (the MLP's device half, `src/model/mlp/cuda.rs`, is built on them): one cuBLAS GEMM per Linear
//! layer (SGEMM in f32, GemmEx with bf16/f16 inputs and f32 accumulation otherwise) and one safe
//! wrapper per MLP launcher of `kernels/picardiff_kernels.h` (`kernels/mlp.cu`). Each wrapper checks
//! that every buffer belongs to the backend and is long enough for what the kernel touches.
//!
//! # The GEMM
//!
//! Activations are row-major `[rows][in]`, a weight `W` is PyTorch's row-major `[out][in]`, and a
//! layer computes `Y[rows][out] = X · Wᵀ (+ β Y)`. cuBLAS is column-major: the row-major `Y` is the
//! column-major `Yᵀ (out × rows) = W · Xᵀ`; `W`'s storage read column-major is `Wᵀ (in × out)` and
//! `X`'s is `Xᵀ (in × rows)`, so: `transa = T, transb = N, m = out, n = rows, k = in, lda = in,
//! ldb = in, ldc = out` (the same call as the mixture's `x·μᵀ`).

use std::ffi::c_void;

use cudarc::cublas::result::{gemm_ex, sgemm};
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::driver::CudaSlice;

use super::launch::c_int;
use super::{check, ffi, CudaBackend, DeviceResultExt};
use crate::error::{Error, Result};
use crate::types::{Activation, WeightDtype};

/// A Linear layer's weight in device memory: f32, or the raw bits of bf16/f16.
#[derive(Debug)]
pub enum DevWeight {
    /// `[out][in]` f32.
    F32(CudaSlice<f32>),
    /// `[out][in]` bf16 or f16 bits (the dtype is the workspace's).
    Half(CudaSlice<u16>),
}

/// The input of a GEMM: an f32 activation buffer or its 16-bit copy.
#[derive(Debug, Clone, Copy)]
pub enum GemmIn<'a> {
    /// f32 (with f32 weights).
    F32(&'a CudaSlice<f32>),
    /// bf16/f16 bits (with 16-bit weights of the same dtype).
    Half(&'a CudaSlice<u16>),
}

fn elems(rows: usize, cols: usize, off: usize, op: &str) -> Result<usize> {
    rows.checked_mul(cols)
        .and_then(|n| n.checked_add(off))
        .ok_or_else(|| Error::shape(op, "rows × cols overflows"))
}

fn half_kind(dtype: WeightDtype) -> i32 {
    (match dtype {
        WeightDtype::F32 => ffi::PICARDIFF_HALF_NONE,
        WeightDtype::Bf16 => ffi::PICARDIFF_HALF_BF16,
        WeightDtype::F16 => ffi::PICARDIFF_HALF_F16,
    }) as i32
}

fn act_code(act: Option<Activation>) -> i32 {
    (match act {
        None => ffi::PICARDIFF_ACT_NONE,
        Some(Activation::Silu) => ffi::PICARDIFF_ACT_SILU,
        Some(Activation::GeluTanh) => ffi::PICARDIFF_ACT_GELU_TANH,
    }) as i32
}

impl CudaBackend {
    /// The device address (as a pointer) of the optional 16-bit copy, checked to hold `need` values
    /// when `dtype` is 16-bit; null for f32.
    fn half_out(
        &self,
        buf: Option<&mut CudaSlice<u16>>,
        dtype: WeightDtype,
        need: usize,
        op: &str,
    ) -> Result<*mut u16> {
        match (dtype, buf) {
            (WeightDtype::F32, _) => Ok(std::ptr::null_mut()),
            (_, Some(b)) => Ok(self.ptr_mut(b, need, op, "16-bit copy")? as *mut u16),
            (_, None) => Err(Error::shape(
                op,
                "a 16-bit dtype needs a 16-bit copy buffer",
            )),
        }
    }

    /// `y[y_off ..][rows × out] = x[x_off ..][rows × in] · Wᵀ + beta · y` (see the module docs), with
    /// `W` `[out][in]`. A 16-bit weight needs a 16-bit input of the same `dtype`; accumulation is f32.
    #[allow(clippy::too_many_arguments)]
    pub fn mlp_gemm(
        &self,
        w: &DevWeight,
        dtype: WeightDtype,
        (out_dim, in_dim): (usize, usize),
        x: GemmIn<'_>,
        x_off: usize,
        rows: usize,
        beta: f32,
        y: &mut CudaSlice<f32>,
        y_off: usize,
    ) -> Result<()> {
        const OP: &str = "mlp gemm";
        if rows == 0 || out_dim == 0 {
            return Ok(());
        }
        let (m, n, k) = (
            c_int(out_dim, "mlp out_dim")?,
            c_int(rows, "rows")?,
            c_int(in_dim, "mlp in_dim")?,
        );
        let need_x = elems(rows, in_dim, x_off, OP)?;
        let need_y = elems(rows, out_dim, y_off, OP)?;
        let need_w = elems(out_dim, in_dim, 0, OP)?;
        let yp = self.ptr_mut(y, need_y, OP, "output activations")? + 4 * y_off as u64;
        let (alpha, beta) = (1.0f32, beta);
        let (ta, tb) = (
            cublasOperation_t::CUBLAS_OP_T,
            cublasOperation_t::CUBLAS_OP_N,
        );
        self.bind(OP)?;
        match (w, x) {
            (DevWeight::F32(wb), GemmIn::F32(xb)) if dtype == WeightDtype::F32 => {
                let wp = self.ptr(wb, need_w, OP, "weight")?;
                let xp = self.ptr(xb, need_x, OP, "input activations")? + 4 * x_off as u64;
                let blas = self.blas();
                // SAFETY: W holds out × in, x rows × in from x_off, y rows × out from y_off f32
                // (checked above); all are buffers of this backend's stream, the cuBLAS handle's
                // stream; alpha and beta are host scalars (the handle's default pointer mode).
                unsafe {
                    sgemm(
                        *blas.handle(),
                        ta,
                        tb,
                        m,
                        n,
                        k,
                        &alpha,
                        wp as *const f32,
                        k,
                        xp as *const f32,
                        k,
                        &beta,
                        yp as *mut f32,
                        m,
                    )
                }
                .during(OP)
            }
            (DevWeight::Half(wb), GemmIn::Half(xb)) if dtype != WeightDtype::F32 => {
                let ty = if dtype == WeightDtype::Bf16 {
                    cudaDataType::CUDA_R_16BF
                } else {
                    cudaDataType::CUDA_R_16F
                };
                let wp = self.ptr(wb, need_w, OP, "weight")?;
                let xp = self.ptr(xb, need_x, OP, "input activations (16-bit)")? + 2 * x_off as u64;
                let blas = self.blas();
                // SAFETY: as for SGEMM; W and x are 16-bit (2 bytes a value) of type `ty`, y f32,
                // accumulation f32 (alpha, beta f32 host scalars as CUBLAS_COMPUTE_32F requires).
                unsafe {
                    gemm_ex(
                        *blas.handle(),
                        ta,
                        tb,
                        m,
                        n,
                        k,
                        &alpha as *const f32 as *const c_void,
                        wp as *const c_void,
                        ty,
                        k,
                        xp as *const c_void,
                        ty,
                        k,
                        &beta as *const f32 as *const c_void,
                        yp as *mut c_void,
                        cudaDataType::CUDA_R_32F,
                        m,
                        cublasComputeType_t::CUBLAS_COMPUTE_32F,
                        cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                    )
                }
                .during(OP)
            }
            _ => Err(Error::shape(
                OP,
                format!(
                    "weight and input dtypes do not match the workspace dtype {}",
                    dtype.name()
                ),
            )),
        }
    }

    /// In place `y[y_off ..][r][c] = act(y[r][c] + bias[c])` on `rows × cols` values, plus the
    /// 16-bit copy into `y16` (from element 0) when `dtype` is bf16/f16.
    #[allow(clippy::too_many_arguments)]
    pub fn mlp_epilogue(
        &self,
        y: &mut CudaSlice<f32>,
        y_off: usize,
        bias: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        act: Option<Activation>,
        y16: Option<&mut CudaSlice<u16>>,
        dtype: WeightDtype,
    ) -> Result<()> {
        const OP: &str = "mlp epilogue";
        let n = elems(rows, cols, 0, OP)?;
        if n == 0 {
            return Ok(());
        }
        let yp =
            self.ptr_mut(y, elems(rows, cols, y_off, OP)?, OP, "activations")? + 4 * y_off as u64;
        let bp = self.ptr(bias, cols, OP, "bias")? as *const f32;
        let hp = self.half_out(y16, dtype, n, OP)?;
        let (r, c) = (rows as i64, cols as i64);
        self.bind(OP)?;
        // SAFETY: y holds rows × cols f32 from y_off, bias cols, the 16-bit copy (if any) rows × cols
        // (checked); the kernel touches exactly those, on this backend's stream.
        let code = unsafe {
            ffi::launch_mlp_epilogue_f32(
                yp as *mut f32,
                bp,
                r,
                c,
                act_code(act),
                hp,
                half_kind(dtype),
                self.stream.cu_stream() as ffi::cudaStream_t,
            )
        };
        check(code, OP)
    }

    /// `h[r][c] = (h[r][c] + bias[c]) + table[k][c]` for the `rows` times `times[row0 ..]`, `k` the
    /// entry of `table_times` (sorted, `n_times`) equal to the row's time; a missing time sets
    /// `status[0] = 1` and writes NaN into the row. Plus the 16-bit copy.
    #[allow(clippy::too_many_arguments)]
    pub fn mlp_time_add(
        &self,
        h: &mut CudaSlice<f32>,
        bias: &CudaSlice<f32>,
        table: &CudaSlice<f32>,
        table_times: &CudaSlice<f32>,
        n_times: usize,
        times: &CudaSlice<f32>,
        row0: usize,
        rows: usize,
        hidden: usize,
        status: &mut CudaSlice<i32>,
        h16: Option<&mut CudaSlice<u16>>,
        dtype: WeightDtype,
    ) -> Result<()> {
        const OP: &str = "mlp time add";
        let n = elems(rows, hidden, 0, OP)?;
        if n == 0 {
            return Ok(());
        }
        let nt = c_int(n_times, "tabulated times")?;
        let hp = self.ptr_mut(h, n, OP, "hidden state")? as *mut f32;
        let bp = self.ptr(bias, hidden, OP, "input bias")? as *const f32;
        let tp = self.ptr(table, elems(n_times, hidden, 0, OP)?, OP, "time table")? as *const f32;
        let ttp = self.ptr(table_times, n_times, OP, "table times")? as *const f32;
        let end = row0
            .checked_add(rows)
            .ok_or_else(|| Error::shape(OP, "row range overflows"))?;
        let timp = self.ptr(times, end, OP, "times")? + 4 * row0 as u64;
        let sp = self.ptr_mut(status, 1, OP, "time status")? as *mut i32;
        let h16p = self.half_out(h16, dtype, n, OP)?;
        self.bind(OP)?;
        // SAFETY: h holds rows × hidden, bias hidden, the table n_times × hidden and its times
        // n_times, times rows values from row0, status one i32, the 16-bit copy rows × hidden (all
        // checked); the kernel reads table rows only at an index < n_times found by its search.
        let code = unsafe {
            ffi::launch_mlp_time_add_f32(
                hp,
                bp,
                tp,
                ttp,
                nt,
                timp as *const f32,
                rows as i64,
                hidden as i64,
                sp,
                h16p,
                half_kind(dtype),
                self.stream.cu_stream() as ffi::cudaStream_t,
            )
        };
        check(code, OP)
    }

    /// Row-wise LayerNorm of `src` into `dst` (`rows × cols`, affine `gamma`, `beta`, `eps`), plus
    /// the 16-bit copy into `dst16`.
    #[allow(clippy::too_many_arguments)]
    pub fn mlp_layernorm(
        &self,
        src: &CudaSlice<f32>,
        dst: &mut CudaSlice<f32>,
        gamma: &CudaSlice<f32>,
        beta: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        eps: f64,
        dst16: Option<&mut CudaSlice<u16>>,
        dtype: WeightDtype,
    ) -> Result<()> {
        const OP: &str = "mlp layernorm";
        let n = elems(rows, cols, 0, OP)?;
        if n == 0 {
            return Ok(());
        }
        let sp = self.ptr(src, n, OP, "input")? as *const f32;
        let dp = self.ptr_mut(dst, n, OP, "output")? as *mut f32;
        let gp = self.ptr(gamma, cols, OP, "weight")? as *const f32;
        let bp = self.ptr(beta, cols, OP, "bias")? as *const f32;
        let hp = self.half_out(dst16, dtype, n, OP)?;
        self.bind(OP)?;
        // SAFETY: src and dst hold rows × cols f32 (distinct buffers: one is borrowed shared, the
        // other mutably), gamma and beta cols, the 16-bit copy rows × cols (all checked).
        let code = unsafe {
            ffi::launch_mlp_layernorm_f32(
                sp,
                dp,
                gp,
                bp,
                rows as i64,
                cols as i64,
                eps,
                hp,
                half_kind(dtype),
                self.stream.cu_stream() as ffi::cudaStream_t,
            )
        };
        check(code, OP)
    }

    /// `dst[i] = src[src_off + i]` rounded to `dtype` (bf16 or f16) for `n` values.
    pub fn mlp_to_half(
        &self,
        src: &CudaSlice<f32>,
        src_off: usize,
        n: usize,
        dst: &mut CudaSlice<u16>,
        dtype: WeightDtype,
    ) -> Result<()> {
        const OP: &str = "mlp to 16-bit";
        if dtype == WeightDtype::F32 {
            return Err(Error::shape(OP, "the target dtype must be bf16 or f16"));
        }
        if n == 0 {
            return Ok(());
        }
        let end = src_off
            .checked_add(n)
            .ok_or_else(|| Error::shape(OP, "range overflows"))?;
        let sp = self.ptr(src, end, OP, "input")? + 4 * src_off as u64;
        let dp = self.ptr_mut(dst, n, OP, "output")? as *mut u16;
        self.bind(OP)?;
        // SAFETY: src holds n f32 from src_off, dst n 16-bit values (checked).
        let code = unsafe {
            ffi::launch_mlp_to_half(
                sp as *const f32,
                dp,
                n as i64,
                half_kind(dtype),
                self.stream.cu_stream() as ffi::cudaStream_t,
            )
        };
        check(code, OP)
    }
}
