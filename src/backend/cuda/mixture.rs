//! Safe wrappers of the mixture-score kernels (`kernels/gmm.cu`): the softmax coefficients and the
//! finishing pass around the two GEMMs of `crate::model`'s mixture on CUDA. They take buffers and a
//! [`Schedule`], never a model: the caller uploads the mixture ([`MixtureBuffers`]).

use cudarc::driver::CudaSlice;

use super::launch::c_int;
use super::{check, ffi, CudaBackend};
use crate::error::{Error, Result};
use crate::schedule::Schedule;

/// A mixture of K components resident on the device (uploaded once per run by its owner).
#[derive(Debug)]
pub struct MixtureBuffers {
    /// `[K][dim]` means (f32).
    pub means: CudaSlice<f32>,
    /// `[K]` squared norms of the means.
    pub mean_norm2: CudaSlice<f32>,
    /// `[K]` log weights.
    pub log_w: CudaSlice<f64>,
    /// `[K]` component variances s_k².
    pub std2: CudaSlice<f64>,
    /// The schedule's `alphas_cumprod` (discrete), else one unused value.
    pub table: CudaSlice<f64>,
    /// K.
    pub components: usize,
}

/// The `alphas_cumprod` table [`CudaBackend::gmm_coef`] needs for `schedule` (one 0 for the
/// formula schedules, which have none).
pub fn schedule_table(schedule: &Schedule) -> Result<Vec<f64>> {
    let table = match schedule {
        Schedule::Discrete { alphas_cumprod, .. } => alphas_cumprod.clone(),
        _ => vec![0.0],
    };
    if table.is_empty() {
        return Err(Error::model("schedule", "empty alphas_cumprod table"));
    }
    c_int(table.len(), "train steps")?;
    Ok(table)
}

impl CudaBackend {
    fn gmm_schedule(
        &self,
        s: &Schedule,
        table: &CudaSlice<f64>,
        op: &str,
    ) -> Result<ffi::GmmSchedule> {
        let (kind, n, b0, b1) = match s {
            Schedule::Discrete { alphas_cumprod, .. } => (
                ffi::PICARDIFF_SCHED_DISCRETE,
                alphas_cumprod.len(),
                0.0,
                0.0,
            ),
            Schedule::Ou => (ffi::PICARDIFF_SCHED_OU, 0, 0.0, 0.0),
            Schedule::VpLinear { beta_min, beta_max } => {
                (ffi::PICARDIFF_SCHED_VP_LINEAR, 0, *beta_min, *beta_max)
            }
            // n_train is the divisor of the model time (σ = t / n_train); no table.
            Schedule::Flow { train_steps } => (ffi::PICARDIFF_SCHED_FLOW, *train_steps, 0.0, 0.0),
        };
        let need = if kind == ffi::PICARDIFF_SCHED_DISCRETE {
            n
        } else {
            0
        };
        Ok(ffi::GmmSchedule {
            kind: kind as i32,
            n_train: c_int(n, "train steps")?,
            alphas_cumprod: self.ptr(table, need.max(1), op, "alphas_cumprod")? as *const f64,
            beta_min: b0,
            beta_max: b1,
        })
    }

    /// Softmax coefficients of the mixture score for rows `row0 .. row0 + rows` of `x` (`dim` per
    /// row) at `times[row0 ..]`: on entry `coef` holds the dots `x·μ_k` (rows × K from element 0),
    /// on exit the coefficients, and `scale` rows × 3 (see `kernels/gmm.cu`).
    #[allow(clippy::too_many_arguments)]
    pub fn gmm_coef(
        &self,
        mix: &MixtureBuffers,
        schedule: &Schedule,
        x: &CudaSlice<f32>,
        times: &CudaSlice<f32>,
        (row0, rows, dim): (usize, usize, usize),
        coef: &mut CudaSlice<f32>,
        scale: &mut CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "gmm coefficients";
        let _exclusive = self.exclusive();
        if rows == 0 {
            return Ok(());
        }
        let k = mix.components;
        let end = row0
            .checked_add(rows)
            .ok_or_else(|| Error::shape(OP, "row range overflows"))?;
        let over = || Error::shape(OP, "rows × dim overflows");
        let x_end = end.checked_mul(dim).ok_or_else(over)?;
        let rk = rows.checked_mul(k).ok_or_else(over)?;
        let params = ffi::GmmParams {
            x: (self.ptr(x, x_end, OP, "states")? + 4 * (row0 * dim) as u64) as *const f32,
            times: (self.ptr(times, end, OP, "times")? + 4 * row0 as u64) as *const f32,
            coef: self.ptr_mut(coef, rk, OP, "coefficients")? as *mut f32,
            scale: self.ptr_mut(scale, rows * 3, OP, "row scales")? as *mut f32,
            log_w: self.ptr(&mix.log_w, k, OP, "log weights")? as *const f64,
            std2: self.ptr(&mix.std2, k, OP, "variances")? as *const f64,
            mean_norm2: self.ptr(&mix.mean_norm2, k, OP, "mean norms")? as *const f32,
            sched: self.gmm_schedule(schedule, &mix.table, OP)?,
            dim: dim as i64,
            components: c_int(k, "components")?,
            rows: c_int(rows, "rows")?,
        };
        self.bind(OP)?;
        // SAFETY: x holds rows × dim values from row0, times rows from row0, coef rows × K, scale
        // rows × 3, the K-vectors K values and the schedule table its n_train entries (all checked).
        let code = unsafe { ffi::launch_gmm_coef_f32(params, self.cu_stream()) };
        check(code, OP)
    }

    /// `out = σ (x Σcoef − α out)` per row, rows `row0 ..` of `x` and `out` (see `kernels/gmm.cu`).
    pub fn gmm_finish(
        &self,
        x: &CudaSlice<f32>,
        scale: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
        (row0, rows, dim): (usize, usize, usize),
    ) -> Result<()> {
        const OP: &str = "gmm finish";
        let _exclusive = self.exclusive();
        let end = row0
            .checked_add(rows)
            .and_then(|e| e.checked_mul(dim))
            .ok_or_else(|| Error::shape(OP, "rows × dim overflows"))?;
        if rows == 0 {
            return Ok(());
        }
        let shift = 4 * (row0 * dim) as u64;
        let xp = (self.ptr(x, end, OP, "states")? + shift) as *const f32;
        let sp = self.ptr(scale, rows * 3, OP, "row scales")? as *const f32;
        let op = (self.ptr_mut(out, end, OP, "model output")? + shift) as *mut f32;
        let (r, d) = (c_int(rows, "rows")?, dim as i64);
        self.bind(OP)?;
        // SAFETY: x and out hold rows × dim values from row0, scale rows × 3 (checked).
        let code = unsafe { ffi::launch_gmm_finish_f32(xp, sp, op, r, d, self.cu_stream()) };
        check(code, OP)
    }
}
