//! The exact mixture score on the GPU (`ScoreModel<CudaBackend>` for [`GmmModel`]): two GEMMs
//! through [`CudaBackend::gemm`] and the two kernels of `kernels/gmm.cu`
//! ([`CudaBackend::gmm_coef`], [`CudaBackend::gmm_finish`]). The CPU twin is `GmmModel::eval_chunk`.
//!
//! With X rows × D, M (means) K × D and coef rows × K, all row-major: `dots = X·Mᵀ` (rows × K),
//! then `G = coef·M` (rows × D).

use cudarc::driver::CudaSlice;

use super::{GmmModel, ScoreModel};
use crate::backend::cuda::{
    schedule_table, CudaBackend, DeviceResultExt, MatMut, MatRef, MixtureBuffers,
};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::schedule::ModelOutput;

/// The mixture uploaded once per run, plus per-row scratch.
#[derive(Debug)]
pub struct GmmWorkspace {
    mix: MixtureBuffers,
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
        let k = self.mixture.components();
        let rows = max_rows.max(1);
        let up64 = |v: &[f64]| -> Result<CudaSlice<f64>> {
            be.stream().clone_htod(v).during("gmm workspace (upload)")
        };
        let log_w: Vec<f64> = self.mixture.weights.iter().map(|w| w.ln()).collect();
        let std2: Vec<f64> = self.mixture.stds.iter().map(|s| s.powi(2)).collect();
        let per_row = |w: usize| {
            rows.checked_mul(w)
                .ok_or_else(|| Error::shape("gmm workspace", format!("{max_rows} rows overflow")))
        };
        Ok(GmmWorkspace {
            mix: MixtureBuffers {
                means: be.upload(&self.means_f32)?,
                mean_norm2: be.upload(&self.mean_norm2)?,
                log_w: up64(&log_w)?,
                std2: up64(&std2)?,
                table: up64(&schedule_table(&self.schedule)?)?,
                components: k,
            },
            coef: be.alloc(per_row(k)?)?,
            scale: be.alloc(per_row(3)?)?,
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
        let (d, k) = (self.mixture.dim, self.mixture.components());
        if rows > ws.max_rows {
            return Err(Error::shape(
                "gmm eval",
                format!("{rows} rows exceed the workspace's {}", ws.max_rows),
            ));
        }
        if rows == 0 {
            return Ok(());
        }
        let means = |trans| MatRef {
            buf: &ws.mix.means,
            off: 0,
            ld: d,
            trans,
        };
        let xs = MatRef {
            buf: x,
            off: row0 * d,
            ld: d,
            trans: false,
        };
        let dots = MatMut {
            buf: &mut ws.coef,
            off: 0,
            ld: k,
        };
        be.gemm("gmm eval (x·μᵀ)", (rows, k, d), xs, means(true), 0.0, dots)?;
        let shape = (row0, rows, d);
        be.gmm_coef(
            &ws.mix,
            &self.schedule,
            x,
            times,
            shape,
            &mut ws.coef,
            &mut ws.scale,
        )?;
        let coef = MatRef {
            buf: &ws.coef,
            off: 0,
            ld: k,
            trans: false,
        };
        let g = MatMut {
            buf: out,
            off: row0 * d,
            ld: d,
        };
        be.gemm(
            "gmm eval (coef·μ)",
            (rows, d, k),
            coef,
            means(false),
            0.0,
            g,
        )?;
        be.gmm_finish(x, &ws.scale, out, shape)
    }
}
