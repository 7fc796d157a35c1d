//! The MLP forward on the CPU, in f32.
//!
//! Rows are split into chunks of [`ROWS`] evaluated in parallel (rayon); inside a chunk each layer is
//! one `matrixmultiply::sgemm` over the chunk's rows followed by a fused pass that adds the bias and
//! applies the activation (a residual block's second GEMM accumulates straight into the hidden state,
//! β = 1). The time path `τ(t)` (embedding → time MLP, plus the conditioning projection) does not
//! depend on the state: [`ScoreModel::prepare_times`] tabulates it once per distinct model time (as
//! f32) and `eval` looks each row's time up by exact f32 equality; a time missing from the table is
//! computed on the fly by the same function, so both paths give identical bits.

use std::sync::Arc;

use rayon::prelude::*;

use super::cache::RecentCache;
use super::cpu_math::{
    bias_act, gemm, layernorm, matvec, matvec_into, matvec_lanes_into, silu, TimeLanes, TIME_LANES,
};
use super::MlpModel;
use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::ScoreModel;
use crate::schedule::ModelOutput;
use crate::Field;

/// Rows per parallel task (one GEMM per layer per chunk).
const ROWS: usize = 64;

/// The per-sample conditioning projections a chunk of rows reads.
#[derive(Clone, Copy)]
struct RowCond<'a> {
    /// `[batch][H]`.
    table: &'a [f32],
    batch: usize,
    /// Evaluation row of the chunk's first row.
    row0: usize,
    h: usize,
}

impl RowCond<'_> {
    /// The projection of chunk row `r`'s sample.
    fn of(&self, r: usize) -> &[f32] {
        let b = (self.row0 + r) % self.batch;
        &self.table[b * self.h..(b + 1) * self.h]
    }
}

/// Scratch of one evaluation: per-chunk buffers and the time table.
#[derive(Debug, Clone, Default)]
pub struct MlpWorkspace {
    /// `chunks × chunk_len` f32: per chunk three `ROWS × H` buffers and `E + 2H` for the time path.
    scratch: Vec<f32>,
    chunk_len: usize,
    /// Rows the workspace was sized for.
    max_rows: usize,
    /// The time table of the last `prepare_times` (shared with the model's cache).
    time_table: Option<Arc<HostTimeTable>>,
    /// The model state (`MlpModel::id`) the table was computed for.
    table_id: u64,
    /// Per-sample conditioning of this run (`ScoreModel::set_condition`): `cond_proj · cond_b`
    /// (with bias) per sample, `[batch][H]`; empty when the model's own vector is used.
    row_cond: Vec<f32>,
    /// Samples of `row_cond` (evaluation row r belongs to sample r % batch).
    cond_batch: usize,
}

/// `τ(t)` on the host for a sorted set of distinct times.
#[derive(Debug)]
pub(super) struct HostTimeTable {
    /// Sorted distinct model times (f32).
    times: Vec<f32>,
    /// `τ(t)` per entry of `times`, `[times][H]`.
    table: Vec<f32>,
}

/// A model's host time tables, keyed by model state (`MlpModel::id`) and the times' bits: the last
/// four grids (tabulating 1000 times costs ~0.3 s at H = 1024 on a 2-core machine, about as much as
/// the 1000 sequential steps that follow).
pub(super) type HostTableCache = RecentCache<(u64, Vec<u32>), HostTimeTable, 4>;

impl MlpWorkspace {
    /// Number of tabulated times.
    pub fn table_len(&self) -> usize {
        self.time_table.as_ref().map_or(0, |t| t.times.len())
    }

    /// True when `t` has a table entry (exact f32 match).
    pub fn is_tabulated(&self, t: f32) -> bool {
        self.time_table
            .as_ref()
            .is_some_and(|tt| tt.times.binary_search_by(|p| p.total_cmp(&t)).is_ok())
    }

    /// Rows the workspace can evaluate at once.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }
}

impl MlpModel {
    /// Elements of one chunk's scratch.
    fn chunk_len(&self) -> usize {
        let c = &self.config;
        3 * ROWS * c.hidden + c.time_embed_dim + 2 * c.hidden
    }

    /// f32 values of the CPU workspace for `max_rows` rows (one scratch chunk per [`ROWS`] rows);
    /// `None` on overflow. Sizes both `workspace` and `workspace_bytes`.
    fn scratch_len(&self, max_rows: usize) -> Option<usize> {
        max_rows.div_ceil(ROWS).checked_mul(self.chunk_len())
    }

    /// `τ(t)` into `out` (`[H]`), with `emb` (`[E]`) and `hid` (`[H]`) as scratch. The one
    /// definition used by the table and by the on-the-fly fallback.
    /// The sinusoidal embedding of `t` into `emb` (`time_embed_dim` values; f64, rounded to f32).
    pub(super) fn embed_time(&self, t: f32, emb: &mut [f32]) {
        let c = &self.config;
        let half = c.time_embed_dim / 2;
        let ln_p = c.max_period.ln();
        let st = t as f64 * c.time_scale;
        for k in 0..half {
            let a = st * (-ln_p * k as f64 / half as f64).exp();
            emb[k] = a.cos() as f32;
            emb[half + k] = a.sin() as f32;
        }
    }

    /// The distinct model times of `times` as f32, sorted by `f32::total_cmp`: the table's rows.
    pub(super) fn distinct_times(times: &[f64]) -> Vec<f32> {
        let mut ts: Vec<f32> = times.iter().map(|&t| t as f32).collect();
        ts.sort_unstable_by(|a, b| a.total_cmp(b));
        ts.dedup_by(|a, b| a.to_bits() == b.to_bits());
        ts
    }

    /// [`Self::time_vector`] for up to [`TIME_LANES`] times `t` into `rows` (`t.len()` rows of H),
    /// with the same bits: the matvecs run over the times' interleaved vectors.
    fn time_vectors(&self, t: &[f32], s: &mut TimeLanes, rows: &mut [f32]) {
        const L: usize = TIME_LANES;
        let (e, h) = (self.config.time_embed_dim, self.config.hidden);
        for i in 0..L {
            // Missing lanes repeat the last time; their results are dropped.
            self.embed_time(t[i.min(t.len() - 1)], &mut s.one[..e]);
            for (k, &v) in s.one[..e].iter().enumerate() {
                s.emb[k * L + i] = v;
            }
        }
        let w = &self.weights;
        matvec_lanes_into(&w.time_fc1, &s.emb, &mut s.hid);
        s.hid.iter_mut().for_each(|v| *v = silu(*v));
        matvec_lanes_into(&w.time_fc2, &s.hid, &mut s.out);
        for (i, row) in rows.chunks_exact_mut(h).enumerate() {
            for (o, r) in row.iter_mut().enumerate() {
                *r = s.out[o * L + i];
            }
            if !self.cond_h.is_empty() {
                row.iter_mut().zip(&self.cond_h).for_each(|(o, c)| *o += c);
            }
        }
    }

    fn time_vector(&self, t: f32, emb: &mut [f32], hid: &mut [f32], out: &mut [f32]) {
        self.embed_time(t, emb);
        let w = &self.weights;
        matvec_into(&w.time_fc1, emb, hid);
        hid.iter_mut().for_each(|v| *v = silu(*v));
        matvec_into(&w.time_fc2, hid, out);
        if !self.cond_h.is_empty() {
            out.iter_mut().zip(&self.cond_h).for_each(|(o, c)| *o += c);
        }
    }

    /// The time table of `times`: the distinct times as f32, sorted (`f32::total_cmp`), and `τ(t)`
    /// for each, `[times][H]` row-major (time MLP output plus the conditioning projection). What
    /// `prepare_times` stores; public so that a device backend can upload the same table.
    /// Without the model's own conditioning vector (a run with per-sample conditioning) the
    /// table holds the time MLP alone.
    pub fn time_table(&self, times: &[f64]) -> Result<(Vec<f32>, Vec<f32>)> {
        let h = self.config.hidden;
        let ts = Self::distinct_times(times);
        let len = ts.len().checked_mul(h).ok_or_else(|| {
            Error::shape("mlp time table", format!("{} times overflow", ts.len()))
        })?;
        let mut table = CpuBackend.alloc(len)?;
        table
            .par_chunks_mut(TIME_LANES * h)
            .zip(ts.par_chunks(TIME_LANES))
            .for_each_init(
                || TimeLanes::new(self.config.time_embed_dim, h),
                |s, (rows, t)| self.time_vectors(t, s, rows),
            );
        Ok((ts, table))
    }

    /// Evaluates one chunk of at most [`ROWS`] rows.
    #[allow(clippy::too_many_arguments)]
    fn eval_chunk(
        &self,
        x: &[f32],
        times: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
        table: Option<(&[f32], &[f32])>,
        rows_cond: Option<RowCond<'_>>,
    ) {
        let (c, w) = (&self.config, &self.weights);
        let (h, rows) = (c.hidden, times.len());
        let (a, rest) = scratch.split_at_mut(ROWS * h);
        let (b, rest) = rest.split_at_mut(ROWS * h);
        let (n, rest) = rest.split_at_mut(ROWS * h);
        let (emb, rest) = rest.split_at_mut(c.time_embed_dim);
        let (hid, tvec) = rest.split_at_mut(h);
        let (mut a, mut b, n) = (&mut a[..rows * h], &mut b[..rows * h], &mut n[..rows * h]);

        gemm(rows, x, &w.input, 0.0, a);
        // (time bits, table index or None when the vector is in `tvec`) of the previous row.
        let mut last: Option<(u32, Option<usize>)> = None;
        for (r, &t) in times.iter().enumerate() {
            let bits = t.to_bits();
            let src = match last {
                Some((lb, s)) if lb == bits => s,
                _ => {
                    let s = table.and_then(|(ts, _)| ts.binary_search_by(|p| p.total_cmp(&t)).ok());
                    if s.is_none() {
                        self.time_vector(t, emb, hid, tvec);
                    }
                    last = Some((bits, s));
                    s
                }
            };
            let tv: &[f32] = match (src, table) {
                (Some(i), Some((_, tab))) => &tab[i * h..(i + 1) * h],
                _ => tvec,
            };
            let row = &mut a[r * h..(r + 1) * h];
            match rows_cond {
                // τ(t) + cond_proj·cond_b, rounded as the model's own vector is (time_vectors).
                Some(rc) => {
                    let c = rc.of(r);
                    for (((v, bi), tj), cj) in row.iter_mut().zip(&w.input.bias).zip(tv).zip(c) {
                        *v = (*v + bi) + (tj + cj);
                    }
                }
                None => {
                    for ((v, bi), tj) in row.iter_mut().zip(&w.input.bias).zip(tv) {
                        *v = (*v + bi) + tj;
                    }
                }
            }
        }
        for layer in &w.layers {
            let src: &[f32] = match &layer.norm {
                Some(norm) => {
                    layernorm(a, n, norm, c.layernorm_eps);
                    n
                }
                None => a,
            };
            gemm(rows, src, &layer.fc1, 0.0, b);
            bias_act(b, &layer.fc1.bias, Some(c.activation));
            match &layer.fc2 {
                Some(fc2) => {
                    gemm(rows, b, fc2, 1.0, a);
                    bias_act(a, &fc2.bias, None);
                }
                None => std::mem::swap(&mut a, &mut b),
            }
        }
        let src: &[f32] = match &w.norm_out {
            Some(norm) => {
                layernorm(a, n, norm, c.layernorm_eps);
                n
            }
            None => a,
        };
        gemm(rows, src, &w.output, 0.0, out);
        bias_act(out, &w.output.bias, None);
    }

    /// Evaluates `times.len()` rows of `x` into `out` with a fresh workspace and a table of the
    /// distinct times (a convenience for tests and tools; samplers go through [`ScoreModel`]).
    pub fn forward(&self, x: &[f32], times: &[f32], out: &mut [f32]) -> Result<()> {
        let rows = times.len();
        let be = CpuBackend;
        let mut ws = self.workspace(&be, rows.max(1))?;
        let ts: Vec<f64> = times.iter().map(|&t| t as f64).collect();
        self.prepare_times(&be, &mut ws, &ts)?;
        self.eval_slices(&mut ws, x, times, out)
    }

    /// Evaluates all rows of `x` (`times.len()` rows) into `out` with a prepared workspace.
    pub fn eval_slices(
        &self,
        ws: &mut MlpWorkspace,
        x: &[f32],
        times: &[f32],
        out: &mut [f32],
    ) -> Result<()> {
        self.eval_rows(ws, x, times, out, 0)
    }

    /// [`Self::eval_slices`] for rows that start at evaluation row `row0` (which sample's
    /// conditioning a row takes).
    fn eval_rows(
        &self,
        ws: &mut MlpWorkspace,
        x: &[f32],
        times: &[f32],
        out: &mut [f32],
        row0: usize,
    ) -> Result<()> {
        let (d, rows) = (self.config.dim, times.len());
        if x.len() != rows * d || out.len() != rows * d || rows > ws.max_rows {
            return Err(Error::shape(
                "mlp eval",
                format!(
                    "{rows} rows of dim {d} need x and out of {} values and a workspace of at \
                     least {rows} rows; got {}, {} and {}",
                    rows * d,
                    x.len(),
                    out.len(),
                    ws.max_rows
                ),
            ));
        }
        if ws.chunk_len != self.chunk_len() {
            return Err(Error::shape(
                "mlp eval",
                "the workspace was made for another model",
            ));
        }
        if self.config.cond_dim > 0 && self.cond.is_none() && ws.row_cond.is_empty() {
            return Err(cond_missing(self.config.cond_dim));
        }
        let h = self.config.hidden;
        let tt = ws.time_table.clone().filter(|_| ws.table_id == self.id);
        let table = tt
            .as_deref()
            .filter(|t| !t.times.is_empty())
            .map(|t| (t.times.as_slice(), t.table.as_slice()));
        let cl = ws.chunk_len;
        let (row_cond, cond_batch) = (&ws.row_cond, ws.cond_batch);
        out.par_chunks_mut(ROWS * d)
            .zip(x.par_chunks(ROWS * d))
            .zip(times.par_chunks(ROWS))
            .zip(ws.scratch.par_chunks_mut(cl))
            .enumerate()
            .for_each(|(k, (((o, xc), tc), s))| {
                let rc = (!row_cond.is_empty()).then_some(RowCond {
                    table: row_cond,
                    batch: cond_batch,
                    row0: row0 + k * ROWS,
                    h,
                });
                self.eval_chunk(xc, tc, o, s, table, rc)
            });
        if let Some(t) = &tt {
            debug_assert!(t.table.len() == t.times.len() * h);
        }
        Ok(())
    }
}

fn cond_missing(c: usize) -> Error {
    Error::config(
        Field::Cond,
        format!(
            "this model expects a conditioning vector of {c} values: one per sample \
             (RunInputs::cond, --cond) or its own (MlpModel::set_cond)"
        ),
    )
}

impl ScoreModel<CpuBackend> for MlpModel {
    type Workspace = MlpWorkspace;

    fn dim(&self) -> usize {
        self.config.dim
    }

    fn output(&self) -> ModelOutput {
        self.config.prediction
    }

    /// C when the model is conditioned and its own vector ([`MlpModel::set_cond`]) is not set:
    /// each run then takes one conditioning vector per sample.
    fn cond_dim(&self) -> usize {
        match self.cond {
            None => self.config.cond_dim,
            Some(_) => 0,
        }
    }

    /// Projects each sample's conditioning once per run (`cond_proj · cond_b`, as `set_cond`
    /// does for the model's own vector).
    fn set_condition(
        &self,
        _: &CpuBackend,
        ws: &mut MlpWorkspace,
        cond: &[f32],
        batch: usize,
    ) -> Result<()> {
        let c = ScoreModel::<CpuBackend>::cond_dim(self);
        let (Some(proj), true) = (&self.weights.cond_proj, c > 0) else {
            return Err(Error::config(
                Field::Cond,
                "this model takes no per-sample conditioning (cond_dim = 0, or its own vector is set)",
            ));
        };
        if Some(cond.len()) != batch.checked_mul(c) {
            return Err(Error::shape(
                "cond",
                format!("must be [{batch}, {c}], got {} values", cond.len()),
            ));
        }
        if let Some(i) = cond.iter().position(|v| !v.is_finite()) {
            return Err(Error::config(
                Field::Cond,
                format!("cond[{}][{}] = {} is not finite", i / c, i % c, cond[i]),
            ));
        }
        let mut rows = CpuBackend.alloc(batch.saturating_mul(self.config.hidden))?;
        for (row, cb) in rows
            .chunks_exact_mut(self.config.hidden)
            .zip(cond.chunks_exact(c))
        {
            row.copy_from_slice(&matvec(proj, cb));
        }
        ws.row_cond = rows;
        ws.cond_batch = batch;
        Ok(())
    }

    fn workspace(&self, _: &CpuBackend, max_rows: usize) -> Result<MlpWorkspace> {
        let chunk_len = self.chunk_len();
        let len = self
            .scratch_len(max_rows)
            .ok_or_else(|| Error::shape("mlp workspace", format!("{max_rows} rows overflow")))?;
        Ok(MlpWorkspace {
            scratch: CpuBackend.alloc(len)?,
            chunk_len,
            max_rows,
            ..Default::default()
        })
    }

    fn workspace_bytes(&self, max_rows: usize) -> usize {
        // Plus the per-sample conditioning projections (at most one per row).
        let cond = match ScoreModel::<CpuBackend>::cond_dim(self) {
            0 => 0,
            _ => max_rows.saturating_mul(self.config.hidden),
        };
        self.scratch_len(max_rows)
            .map_or(usize::MAX, |n| n.saturating_add(cond).saturating_mul(4))
    }

    /// Tabulates τ(t) for `times`, or takes the table of an earlier run with the same model state
    /// and times from the model's cache.
    fn prepare_times(&self, _: &CpuBackend, ws: &mut MlpWorkspace, times: &[f64]) -> Result<()> {
        let key = (
            self.id,
            Self::distinct_times(times)
                .iter()
                .map(|t| t.to_bits())
                .collect::<Vec<u32>>(),
        );
        let tt = self.host_tables.get_or_make(
            key,
            |_| true,
            |_, _| true,
            || {
                let (times, table) = self.time_table(times)?;
                Ok(HostTimeTable { times, table })
            },
        )?;
        ws.time_table = Some(tt);
        ws.table_id = self.id;
        Ok(())
    }

    fn eval(
        &self,
        _: &CpuBackend,
        ws: &mut MlpWorkspace,
        x: &Vec<f32>,
        times: &Vec<f32>,
        row0: usize,
        rows: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let d = self.config.dim;
        let end = row0.checked_add(rows);
        match end {
            Some(end)
                if x.len() >= end.saturating_mul(d)
                    && out.len() >= end.saturating_mul(d)
                    && times.len() >= end =>
            {
                self.eval_rows(
                    ws,
                    &x[row0 * d..end * d],
                    &times[row0..end],
                    &mut out[row0 * d..end * d],
                    row0,
                )
            }
            _ => Err(Error::shape(
                "mlp eval",
                format!("{rows} rows of dim {d} at row {row0} do not fit the buffers"),
            )),
        }
    }
}
