//! Step tables in device memory: the packed coefficient rows the Picard and step kernels read,
//! the clip columns, a multistep rule's earlier-point coefficients, the model times and error
//! normalisers (`PicardTables` in `kernels/picardiff_kernels.h`).

use cudarc::driver::CudaSlice;

use super::launch::c_int;
use super::{CudaBackend, DeviceResultExt};
use crate::backend::{check_multistep, Backend};
use crate::error::{Error, Result};
use crate::schedule::StepTable;
use crate::Field;

/// Floats per step in the packed coefficient table (two 16-byte loads in the kernels).
pub(super) const COEF_ROW: usize = 8;

/// A step table in device memory (f32, like the CPU's), plus the model times on the host.
#[derive(Debug)]
pub struct CudaTables {
    /// `steps × COEF_ROW`: row j = (a, b, c, p, q, u, v, f) of step j (`PicardTables::coef`; u, v, f
    /// the clip columns, 0 without clipping).
    pub(super) coef: CudaSlice<f32>,
    /// The clamp range of the clipped-x̂0 step (f32, as the CPU's), or 0: no clipping.
    pub(super) clip_range: f32,
    pub(super) t: CudaSlice<f32>,
    pub(super) var: CudaSlice<f32>,
    pub(super) t_host: Vec<f32>,
    pub(super) steps: usize,
    /// Whether any step has noise (c ≠ 0 in f32); the sweep compiles the noise path out otherwise.
    pub(super) noisy: bool,
    /// A multistep rule's `steps × 2` coefficients (b1, b2) of the earlier points' directions
    /// (`PicardTables::hist_coef`), and how many earlier points it reads (0: a one-step rule).
    pub(super) hist_coef: Option<CudaSlice<f32>>,
    pub(super) history: usize,
    /// The first sequential step whose result was non-finite (i32::MAX: none).
    pub(super) status: CudaSlice<i32>,
}

impl CudaBackend {
    /// [`Backend::upload_tables`] (the caller holds the backend exclusively).
    pub(super) fn tables_new(&self, t: &StepTable) -> Result<CudaTables> {
        let steps = t.a.len();
        c_int(steps, "steps")?;
        check_multistep(t, "CUDA")?;
        let f = |v: &[f64]| -> Result<CudaSlice<f32>> {
            let host: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            self.upload(&host)
        };
        if let Some(c) = &t.clip {
            if [c.u.len(), c.v.len(), c.f.len()]
                .iter()
                .any(|&n| n != steps)
            {
                return Err(Error::shape(
                    "upload_tables",
                    format!("the clip columns must have {steps} values (one per step)"),
                ));
            }
        }
        let mut coef = vec![0.0f32; steps * COEF_ROW];
        for (j, row) in coef.chunks_exact_mut(COEF_ROW).enumerate() {
            row[..5].copy_from_slice(&[t.a[j], t.b[j], t.c[j], t.p[j], t.q[j]].map(|x| x as f32));
            if let Some(c) = &t.clip {
                row[5..].copy_from_slice(&[c.u[j], c.v[j], c.f[j]].map(|x| x as f32));
            }
        }
        let clip_range = t.clip.as_ref().map_or(0.0, |c| c.range as f32);
        if t.clip.is_some() && !(clip_range > 0.0 && clip_range.is_finite()) {
            return Err(Error::config(
                Field::ModelConfig("clip_sample_range"),
                format!("must be finite and > 0 in f32, got {clip_range}"),
            ));
        }
        Ok(CudaTables {
            coef: self.upload(&coef)?,
            clip_range,
            t: f(&t.t)?,
            var: f(&t.var)?,
            t_host: t.t.iter().map(|&x| x as f32).collect(),
            steps,
            noisy: t.c.iter().any(|&c| c as f32 != 0.0),
            hist_coef: match &t.multistep {
                Some(m) => {
                    let pairs: Vec<f32> =
                        m.b1.iter()
                            .zip(&m.b2)
                            .flat_map(|(&b1, &b2)| [b1 as f32, b2 as f32])
                            .collect();
                    Some(self.upload(&pairs)?)
                }
                None => None,
            },
            history: t.multistep.as_ref().map_or(0, |m| m.history),
            status: self
                .stream
                .clone_htod(&[i32::MAX])
                .during("upload_tables")?,
        })
    }
}
