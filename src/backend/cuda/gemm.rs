//! The f32 GEMM helper of the CUDA backend: a row-major `C = op(A)·op(B) + β C` on cuBLAS, with
//! every operand checked (owner, offset, leading dimension, extent) before the call. Models (the
//! mixture, `Ops` for the U-Net) call this instead of cuBLAS.
//!
//! cuBLAS is column-major: the row-major `C` (m × n, rows `ldc` apart) is the column-major `Cᵀ`
//! (n × m, leading dimension `ldc`), and `Cᵀ = op(B)ᵀ · op(A)ᵀ`. A row-major operand's storage read
//! column-major is its transpose, so the call is `sgemm(op_b, op_a, n, m, k, B, ldb, A, lda, C, ldc)`
//! with `op_b = T` exactly when B is given transposed (likewise A).
//!
//! Batch invariance: cuBLAS chooses its kernel (tile sizes, split-K) from m, n and k, so a row's
//! bits may change with the number of rows in the call. The CUDA backend therefore promises GPU =
//! CPU within rounding (the U-Net: 1e-3 relative for one forward), not bit-identity between a row
//! evaluated alone and the same row in a window; τ = 0 Picard bit-exactness is a CPU promise.

use cudarc::cublas::result::sgemm;
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::driver::CudaSlice;

use super::launch::c_int;
use super::{CudaBackend, DeviceResultExt};
use crate::error::{Error, Result};

/// A row-major matrix operand in a backend buffer: element (i, j) of the stored matrix is
/// `buf[off + i·ld + j]`. With `trans` the GEMM uses the stored matrix's transpose.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    /// The buffer.
    pub buf: &'a CudaSlice<f32>,
    /// Offset of element (0, 0).
    pub off: usize,
    /// Distance between stored rows (at least the stored row length).
    pub ld: usize,
    /// Use the transpose of the stored matrix.
    pub trans: bool,
}

/// The output of [`CudaBackend::gemm`]: row-major, element (i, j) at `buf[off + i·ld + j]`.
#[derive(Debug)]
pub struct MatMut<'a> {
    /// The buffer.
    pub buf: &'a mut CudaSlice<f32>,
    /// Offset of element (0, 0).
    pub off: usize,
    /// Distance between rows (at least n).
    pub ld: usize,
}

/// Values a stored `rows × cols` row-major matrix with rows `ld` apart spans from `off`, after
/// checking `ld ≥ cols`; 0 for an empty matrix.
fn extent(op: &str, what: &str, off: usize, rows: usize, cols: usize, ld: usize) -> Result<usize> {
    if ld < cols.max(1) {
        return Err(Error::shape(
            op,
            format!("{what}: leading dimension {ld} below the row length {cols}"),
        ));
    }
    if rows == 0 || cols == 0 {
        return Ok(off);
    }
    (rows - 1)
        .checked_mul(ld)
        .and_then(|v| v.checked_add(cols))
        .and_then(|v| v.checked_add(off))
        .ok_or_else(|| Error::shape(op, format!("{what}: {rows} × {cols} (ld {ld}) overflows")))
}

impl CudaBackend {
    /// `C[m × n] = op(A)[m × k] · op(B)[k × n] + beta · C`, all row-major (see the module docs):
    /// A is stored `m × k` (or `k × m` with `a.trans`), B `k × n` (or `n × k` with `b.trans`).
    /// `beta = 0` overwrites C (its old values, even NaN, are not read).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        op: &str,
        (m, n, k): (usize, usize, usize),
        a: MatRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        c: MatMut<'_>,
    ) -> Result<()> {
        if m == 0 || n == 0 {
            return Ok(());
        }
        let (ar, ac) = if a.trans { (k, m) } else { (m, k) };
        let (br, bc) = if b.trans { (n, k) } else { (k, n) };
        let need_a = extent(op, "left matrix", a.off, ar, ac, a.ld)?;
        let need_b = extent(op, "right matrix", b.off, br, bc, b.ld)?;
        let need_c = extent(op, "output matrix", c.off, m, n, c.ld)?;
        let ap = self.ptr(a.buf, need_a, op, "left matrix")? + 4 * a.off as u64;
        let bp = self.ptr(b.buf, need_b, op, "right matrix")? + 4 * b.off as u64;
        let cp = self.ptr_mut(c.buf, need_c, op, "output matrix")? + 4 * c.off as u64;
        let (mi, ni, ki) = (c_int(m, "rows")?, c_int(n, "cols")?, c_int(k, "inner")?);
        let (lda, ldb, ldc) = (
            c_int(a.ld, "lda")?,
            c_int(b.ld, "ldb")?,
            c_int(c.ld, "ldc")?,
        );
        let t = |tr: bool| {
            if tr {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        let alpha = 1.0f32;
        self.bind(op)?;
        let blas = self.blas();
        // SAFETY: A, B and C span need_a, need_b, need_c values of buffers of this backend's stream
        // (checked above, with ld ≥ row length), the stream the cuBLAS handle is bound to; with k = 0
        // cuBLAS reads neither A nor B. alpha and beta are host scalars (default pointer mode).
        unsafe {
            sgemm(
                *blas.handle(),
                t(b.trans),
                t(a.trans),
                ni,
                mi,
                ki,
                &alpha,
                bp as *const f32,
                ldb,
                ap as *const f32,
                lda,
                &beta,
                cp as *mut f32,
                ldc,
            )
        }
        .during(op)
    }
}
