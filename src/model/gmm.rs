//! The exact score of a Gaussian mixture under the forward process (`docs/algorithms.md` §6): an
//! honest GEMM workload with a known answer.
//!
//! `q_0 = Σ_k w_k N(μ_k, s_k² I)` stays a mixture: `q_t = Σ_k w_k N(α_t μ_k, v_k I)`, `v_k = α_t² s_k² + σ_t²`,
//! and `ε̂(x, t) = σ_t Σ_k r_k (x − α_t μ_k) / v_k` with softmax responsibilities `r_k`. Per batch:
//! one GEMM `x·μᵀ` for the distances, a softmax, one GEMM `(r/v)·μ`.
//!
//! On the flow schedule the model predicts the velocity `v = E[ε − x0 | x_t]` instead
//! (`docs/algorithms.md` §8): `v = x·Σ_k c_k − Σ_k g_k μ_k` with `c_k = r_k (σ − α s_k²)/v_k` and
//! `g_k = r_k + α c_k`, the same two GEMMs with other coefficients, finite at σ = 1.

use std::path::Path;

use rayon::prelude::*;
use serde::Deserialize;

use super::ScoreModel;
use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::files::{self, ReadError};
use crate::schedule::{ModelOutput, Schedule};

/// A Gaussian mixture with isotropic components, as read from JSON
/// `{"weights": [...], "means": [[...], ...], "stds": [...]}` (weights need not sum to 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Mixture {
    /// Normalised weights (sum 1).
    pub weights: Vec<f64>,
    /// Component means, K × D row-major.
    pub means: Vec<f64>,
    /// Component standard deviations.
    pub stds: Vec<f64>,
    /// Dimension D.
    pub dim: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MixtureFile {
    weights: Vec<f64>,
    means: Vec<Vec<f64>>,
    stds: Vec<f64>,
}

impl Mixture {
    /// The largest mixture JSON [`Mixture::from_file`] reads (256 MiB: ~10^7 mean values).
    pub const MAX_FILE_BYTES: u64 = 256 << 20;

    /// Validates and normalises a mixture: equal non-zero lengths, one dimension ≥ 1, finite values,
    /// weights ≥ 0 with a positive sum, stds ≥ 0. Errors name the field.
    pub fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, stds: Vec<f64>) -> Result<Self> {
        let k = weights.len();
        if k == 0 {
            return Err(Error::model("weights", "the mixture has no components"));
        }
        if means.len() != k {
            return Err(Error::model(
                "means",
                format!("{} means for {k} weights", means.len()),
            ));
        }
        if stds.len() != k {
            return Err(Error::model(
                "stds",
                format!("{} stds for {k} weights", stds.len()),
            ));
        }
        let dim = means[0].len();
        if dim == 0 {
            return Err(Error::model("means", "means have dimension 0"));
        }
        if let Some(i) = means.iter().position(|m| m.len() != dim) {
            return Err(Error::model(
                "means",
                format!(
                    "means[{i}] has {} values, means[0] has {dim}",
                    means[i].len()
                ),
            ));
        }
        if let Some(i) = weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::model(
                "weights",
                format!("weights[{i}] = {} must be finite and >= 0", weights[i]),
            ));
        }
        if let Some(i) = stds.iter().position(|s| !s.is_finite() || *s < 0.0) {
            return Err(Error::model(
                "stds",
                format!("stds[{i}] = {} must be finite and >= 0", stds[i]),
            ));
        }
        if let Some(i) = means.iter().position(|m| m.iter().any(|v| !v.is_finite())) {
            return Err(Error::model(
                "means",
                format!("means[{i}] has a non-finite value"),
            ));
        }
        let total: f64 = weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(Error::model(
                "weights",
                "weights must have a positive, finite sum",
            ));
        }
        Ok(Mixture {
            weights: weights.iter().map(|w| w / total).collect(),
            means: means.concat(),
            stds,
            dim,
        })
    }

    /// Parses the JSON format above.
    pub fn from_json(text: &str) -> Result<Self> {
        let f: MixtureFile =
            serde_json::from_str(text).map_err(|e| Error::model("json", e.to_string()))?;
        Self::new(f.weights, f.means, f.stds)
    }

    /// Reads a mixture JSON file.
    /// Refuses anything but a regular file of at most [`Mixture::MAX_FILE_BYTES`] before reading it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let io = |msg: String| Error::Io {
            op: "reading model".into(),
            path: path.display().to_string(),
            msg,
        };
        let bytes = files::read_regular(path, Self::MAX_FILE_BYTES).map_err(|e| match e {
            ReadError::TooLarge(len) => io(format!(
                "{len} bytes is larger than the {} byte limit for a mixture JSON",
                Self::MAX_FILE_BYTES
            )),
            e => io(e.to_string()),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| io(e.to_string()))?;
        Self::from_json(&text).map_err(|e| match e {
            Error::Model { field, msg } => Error::Model {
                field,
                msg: format!("{msg} (in {})", path.display()),
            },
            e => e,
        })
    }

    /// Number of components K.
    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// Mean of component k.
    pub fn mean(&self, k: usize) -> &[f64] {
        &self.means[k * self.dim..(k + 1) * self.dim]
    }

    /// Log-responsibilities-free assignment: the component with the largest posterior of `x` under
    /// `q_t` with (α, σ). Used to measure sample quality.
    pub fn assign(&self, x: &[f32], alpha: f64, sigma: f64) -> usize {
        let mut best = (f64::NEG_INFINITY, 0);
        for k in 0..self.components() {
            let v = alpha * alpha * self.stds[k] * self.stds[k] + sigma * sigma;
            let d2: f64 = x
                .iter()
                .zip(self.mean(k))
                .map(|(&xi, &m)| (xi as f64 - alpha * m).powi(2))
                .sum();
            let logp = self.weights[k].ln() - 0.5 * self.dim as f64 * v.ln() - d2 / (2.0 * v);
            if logp > best.0 {
                best = (logp, k);
            }
        }
        best.1
    }
}

/// The exact ε-prediction of a mixture under a schedule, on the CPU (and the host-side data the CUDA
/// backend uploads).
#[derive(Debug, Clone)]
pub struct GmmModel {
    /// The target mixture.
    pub mixture: Mixture,
    /// The forward process.
    pub schedule: Schedule,
    /// Means in f32, K × D.
    pub means_f32: Vec<f32>,
    /// ‖μ_k‖².
    pub mean_norm2: Vec<f32>,
}

impl GmmModel {
    /// The exact model of `mixture` under `schedule`.
    pub fn new(mixture: Mixture, schedule: Schedule) -> Self {
        let means_f32: Vec<f32> = mixture.means.iter().map(|&m| m as f32).collect();
        let mean_norm2 = (0..mixture.components())
            .map(|k| mixture.mean(k).iter().map(|m| m * m).sum::<f64>() as f32)
            .collect();
        GmmModel {
            mixture,
            schedule,
            means_f32,
            mean_norm2,
        }
    }

    /// What the exact model predicts: ε, or the velocity on the flow schedule.
    pub fn output_kind(&self) -> ModelOutput {
        if self.schedule.is_flow() {
            ModelOutput::Velocity
        } else {
            ModelOutput::Epsilon
        }
    }

    /// Rows per parallel task.
    const ROWS: usize = 32;

    /// f32 values of the CPU workspace for `max_rows` rows (one per row and component, whole
    /// tasks of [`Self::ROWS`]); `None` on overflow. Sizes both `workspace` and `workspace_bytes`.
    fn scratch_len(&self, max_rows: usize) -> Option<usize> {
        max_rows
            .div_ceil(Self::ROWS)
            .checked_mul(Self::ROWS)?
            .checked_mul(self.mixture.components())
    }

    /// Evaluates a row chunk: `x` rows × D, `dots` rows × K scratch, writes `out`.
    fn eval_chunk(&self, x: &[f32], times: &[f32], dots: &mut [f32], out: &mut [f32]) {
        let (d, k, rows) = (self.mixture.dim, self.mixture.components(), times.len());
        // SAFETY: the slices hold rows×D, K×D and rows×K f32 with the given row-major strides.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                d,
                k,
                1.0,
                x.as_ptr(),
                d as isize,
                1,
                self.means_f32.as_ptr(),
                1,
                d as isize,
                0.0,
                dots.as_mut_ptr(),
                k as isize,
                1,
            );
        }
        let flow = self.schedule.is_flow();
        let mut sum_coef = [0f64; Self::ROWS];
        let mut scale = [(0f32, 0f32); Self::ROWS];
        for r in 0..rows {
            let (alpha, sigma) = self.schedule.alpha_sigma(times[r] as f64);
            let xr = &x[r * d..(r + 1) * d];
            let x2: f64 = xr.iter().map(|&v| (v as f64) * (v as f64)).sum();
            let row = &mut dots[r * k..(r + 1) * k];
            let logit = |j: usize, dot: f32| {
                let v = alpha * alpha * self.mixture.stds[j].powi(2) + sigma * sigma;
                let d2 = (x2 - 2.0 * alpha * dot as f64
                    + alpha * alpha * self.mean_norm2[j] as f64)
                    .max(0.0);
                self.mixture.weights[j].ln() - 0.5 * d as f64 * v.ln() - d2 / (2.0 * v)
            };
            let maxl = (0..k)
                .map(|j| logit(j, row[j]))
                .fold(f64::NEG_INFINITY, f64::max);
            let mut z = 0f64;
            for (j, r) in row.iter_mut().enumerate() {
                let e = (logit(j, *r) - maxl).exp();
                *r = e as f32;
                z += e;
            }
            let mut sc = 0f64;
            if flow {
                // v = Σ_k r_k [((σ − α s_k²)/v_k)(x − α μ_k) − μ_k] = x·Σ c_k − Σ (r_k + α c_k) μ_k.
                for (r, s) in row.iter_mut().zip(&self.mixture.stds) {
                    let v = alpha * alpha * s * s + sigma * sigma;
                    let resp = *r as f64 / z;
                    let c = resp * (sigma - alpha * (s * s)) / v;
                    *r = (resp + alpha * c) as f32;
                    sc += c;
                }
                sum_coef[r] = sc;
                // out = 1·(x·Σc − 1·G): the finish below with σ = α = 1, exactly x·Σc − G.
                scale[r] = (1.0, 1.0);
                continue;
            }
            for (r, s) in row.iter_mut().zip(&self.mixture.stds) {
                let v = alpha * alpha * s * s + sigma * sigma;
                let c = *r as f64 / z / v;
                *r = c as f32;
                sc += c;
            }
            sum_coef[r] = sc;
            scale[r] = (sigma as f32, alpha as f32);
        }
        // SAFETY: as above; `out` is rows × D.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                d,
                1.0,
                dots.as_ptr(),
                k as isize,
                1,
                self.means_f32.as_ptr(),
                d as isize,
                1,
                0.0,
                out.as_mut_ptr(),
                d as isize,
                1,
            );
        }
        for r in 0..rows {
            let (sigma, alpha) = scale[r];
            let sc = sum_coef[r] as f32;
            for (o, &xv) in out[r * d..(r + 1) * d]
                .iter_mut()
                .zip(&x[r * d..(r + 1) * d])
            {
                *o = sigma * (xv * sc - alpha * *o);
            }
        }
    }
}

impl ScoreModel<CpuBackend> for GmmModel {
    type Workspace = Vec<f32>;

    fn dim(&self) -> usize {
        self.mixture.dim
    }

    fn output(&self) -> ModelOutput {
        self.output_kind()
    }

    fn workspace(&self, be: &CpuBackend, max_rows: usize) -> Result<Vec<f32>> {
        let len = self
            .scratch_len(max_rows)
            .ok_or_else(|| Error::shape("gmm workspace", format!("{max_rows} rows overflow")))?;
        be.alloc(len)
    }

    fn workspace_bytes(&self, max_rows: usize) -> usize {
        self.scratch_len(max_rows)
            .map_or(usize::MAX, |n| n.saturating_mul(4))
    }

    fn eval(
        &self,
        _: &CpuBackend,
        ws: &mut Vec<f32>,
        x: &Vec<f32>,
        times: &Vec<f32>,
        row0: usize,
        rows: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let (d, k) = (self.mixture.dim, self.mixture.components());
        if x.len() < (row0 + rows) * d
            || out.len() < (row0 + rows) * d
            || times.len() < row0 + rows
            || ws.len() < rows.div_ceil(Self::ROWS) * Self::ROWS * k
        {
            return Err(Error::shape(
                "gmm eval",
                format!("{rows} rows of dim {d} at row {row0} do not fit the buffers"),
            ));
        }
        let xs = &x[row0 * d..(row0 + rows) * d];
        let ts = &times[row0..row0 + rows];
        let outs = &mut out[row0 * d..(row0 + rows) * d];
        outs.par_chunks_mut(Self::ROWS * d)
            .zip(xs.par_chunks(Self::ROWS * d))
            .zip(ts.par_chunks(Self::ROWS))
            .zip(ws.par_chunks_mut(Self::ROWS * k))
            .for_each(|(((o, xc), tc), dots)| {
                self.eval_chunk(xc, tc, &mut dots[..tc.len() * k], o)
            });
        Ok(())
    }
}
