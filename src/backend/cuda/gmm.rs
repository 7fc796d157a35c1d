//! The exact mixture score on the GPU: two cuBLAS GEMMs and the kernels of `kernels/gmm.cu`.
//!
//! cuBLAS is column-major; a row-major `C = A·B` is the column-major `Cᵀ = Bᵀ·Aᵀ`. With X rows × D,
//! M (means) K × D and coef rows × K, all row-major:
//! - `dots = X·Mᵀ` (rows × K) is column-major `dotsᵀ (K × rows) = M_cm(D × K)ᵀ · X_cm(D × rows)`:
//!   `transa = T, transb = N, m = K, n = rows, k = D, lda = D, ldb = D, ldc = K`;
//! - `G = coef·M` (rows × D) is column-major `Gᵀ (D × rows) = M_cm(D × K) · coef_cm(K × rows)`:
//!   `transa = N, transb = N, m = D, n = rows, k = K, lda = D, ldb = K, ldc = D`.

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::CudaSlice;

use super::launch::c_int;
use super::{ffi, CudaBackend, DeviceResultExt};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{GmmModel, ScoreModel};
use crate::schedule::{ModelOutput, Schedule};

/// The mixture uploaded once per run, plus per-row scratch.
#[derive(Debug)]
pub struct GmmWorkspace {
    means: CudaSlice<f32>,
    mean_norm2: CudaSlice<f32>,
    log_w: CudaSlice<f64>,
    std2: CudaSlice<f64>,
    alphas_cumprod: CudaSlice<f64>,
    sched: (u32, usize, f64, f64),
    /// rows × K: the dots, then the coefficients.
    coef: CudaSlice<f32>,
    /// rows × 3: Σ coef, σ, α.
    scale: CudaSlice<f32>,
    max_rows: usize,
}

impl ScoreModel<CudaBackend> for GmmModel {
    type Workspace = GmmWorkspace;

    fn dim(&self) -> usize {
        self.mixture.dim
    }

    fn output(&self) -> ModelOutput {
        self.output_kind()
    }

    /// Two GEMMs and kernels on the backend's stream, nothing on the host: recordable.
    fn recordable(&self) -> bool {
        true
    }

    fn workspace(&self, be: &CudaBackend, max_rows: usize) -> Result<GmmWorkspace> {
        let _exclusive = be.exclusive();
        let (k, d) = (self.mixture.components(), self.mixture.dim);
        c_int(k, "components")?;
        c_int(d, "dim")?;
        c_int(max_rows, "rows")?;
        let up64 = |v: &[f64]| -> Result<CudaSlice<f64>> {
            be.stream.clone_htod(v).during("gmm workspace (upload)")
        };
        let (sched, table) = match &self.schedule {
            Schedule::Discrete { alphas_cumprod, .. } => (
                (
                    ffi::PICARDIFF_SCHED_DISCRETE,
                    alphas_cumprod.len(),
                    0.0,
                    0.0,
                ),
                alphas_cumprod.clone(),
            ),
            Schedule::Ou => ((ffi::PICARDIFF_SCHED_OU, 0, 0.0, 0.0), vec![0.0]),
            Schedule::VpLinear { beta_min, beta_max } => (
                (ffi::PICARDIFF_SCHED_VP_LINEAR, 0, *beta_min, *beta_max),
                vec![0.0],
            ),
            // n_train is the divisor of the model time (σ = t / n_train); no table.
            Schedule::Flow { train_steps } => (
                (ffi::PICARDIFF_SCHED_FLOW, *train_steps, 0.0, 0.0),
                vec![0.0],
            ),
        };
        if table.is_empty() {
            return Err(Error::model("schedule", "empty alphas_cumprod table"));
        }
        c_int(table.len(), "train-steps")?;
        let log_w: Vec<f64> = self.mixture.weights.iter().map(|w| w.ln()).collect();
        let std2: Vec<f64> = self.mixture.stds.iter().map(|s| s.powi(2)).collect();
        Ok(GmmWorkspace {
            means: be.upload(&self.means_f32)?,
            mean_norm2: be.upload(&self.mean_norm2)?,
            log_w: up64(&log_w)?,
            std2: up64(&std2)?,
            alphas_cumprod: up64(&table)?,
            sched,
            coef: be.alloc(max_rows.max(1) * k)?,
            scale: be.alloc(max_rows.max(1) * 3)?,
            max_rows,
        })
    }

    fn eval(
        &self,
        be: &CudaBackend,
        ws: &mut GmmWorkspace,
        x: &CudaSlice<f32>,
        times: &CudaSlice<f32>,
        row0: usize,
        rows: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "gmm eval";
        let _exclusive = be.exclusive();
        let (d, k) = (self.mixture.dim, self.mixture.components());
        let end = row0
            .checked_add(rows)
            .ok_or_else(|| Error::shape(OP, "row range overflows"))?;
        if x.len() < end * d || out.len() < end * d || times.len() < end || rows > ws.max_rows {
            return Err(Error::shape(
                OP,
                format!(
                    "{rows} rows of dim {d} at row {row0} do not fit the buffers (workspace: {} rows)",
                    ws.max_rows
                ),
            ));
        }
        if rows == 0 {
            return Ok(());
        }
        let (ki, di, ri) = (
            c_int(k, "components")?,
            c_int(d, "dim")?,
            c_int(rows, "rows")?,
        );
        be.bind(OP)?;
        let xs = x.slice(row0 * d..end * d);
        {
            let mut dots = ws.coef.slice_mut(0..rows * k);
            let cfg = GemmConfig {
                transa: cublasOperation_t::CUBLAS_OP_T,
                transb: cublasOperation_t::CUBLAS_OP_N,
                m: ki,
                n: ri,
                k: di,
                alpha: 1.0f32,
                lda: di,
                ldb: di,
                beta: 0.0f32,
                ldc: ki,
            };
            // SAFETY: means is K × D, xs rows × D, dots rows × K (sizes checked above), all on the
            // backend's stream, which is the cuBLAS handle's stream.
            unsafe { be.blas().gemm(cfg, &ws.means, &xs, &mut dots) }.during("gmm eval (x·μᵀ)")?;
        }
        let params = ffi::GmmParams {
            x: be.ptr(x, end * d, OP, "states")? as *const f32,
            times: be.ptr(times, end, OP, "times")? as *const f32,
            coef: be.ptr_mut(&mut ws.coef, rows * k, OP, "coefficients")? as *mut f32,
            scale: be.ptr_mut(&mut ws.scale, rows * 3, OP, "row scales")? as *mut f32,
            log_w: be.ptr(&ws.log_w, k, OP, "log weights")? as *const f64,
            std2: be.ptr(&ws.std2, k, OP, "variances")? as *const f64,
            mean_norm2: be.ptr(&ws.mean_norm2, k, OP, "mean norms")? as *const f32,
            sched: ffi::GmmSchedule {
                kind: ws.sched.0 as i32,
                n_train: c_int(ws.sched.1, "train-steps")?,
                alphas_cumprod: be.ptr(
                    &ws.alphas_cumprod,
                    ws.alphas_cumprod.len(),
                    OP,
                    "alphas_cumprod",
                )? as *const f64,
                beta_min: ws.sched.2,
                beta_max: ws.sched.3,
            },
            dim: d as i64,
            components: ki,
            rows: ri,
        };
        // The kernel reads rows from row0: shift the row pointers.
        let params = ffi::GmmParams {
            x: params.x.wrapping_add(row0 * d),
            times: params.times.wrapping_add(row0),
            ..params
        };
        be.launch_gmm_coef(params)?;
        {
            let coef = ws.coef.slice(0..rows * k);
            let mut g = out.slice_mut(row0 * d..end * d);
            let cfg = GemmConfig {
                transa: cublasOperation_t::CUBLAS_OP_N,
                transb: cublasOperation_t::CUBLAS_OP_N,
                m: di,
                n: ri,
                k: ki,
                alpha: 1.0f32,
                lda: di,
                ldb: ki,
                beta: 0.0f32,
                ldc: di,
            };
            // SAFETY: means is K × D, coef rows × K, g rows × D (checked above), one stream.
            unsafe { be.blas().gemm(cfg, &ws.means, &coef, &mut g) }.during("gmm eval (coef·μ)")?;
        }
        be.launch_gmm_finish(x, &ws.scale, out, row0, rows, d)
    }
}
