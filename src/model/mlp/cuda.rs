//! The MLP forward on the CUDA backend (feature `cuda`), mirroring `cpu.rs` operation for operation.
//!
//! The weights are uploaded once per (model, backend, dtype) and shared by every workspace made there
//! (`cuda_weights.rs`), in [`MlpModel::compute_dtype`]: f32, or bf16/f16 for the Linear weights
//! (biases, LayerNorm parameters and the time path stay f32). Each
//! Linear layer is then ONE cuBLAS GEMM over all the rows of the call (SGEMM; GemmEx with 16-bit
//! inputs and f32 accumulation for bf16/f16), followed by one fused kernel (`kernels/mlp.cu`):
//!
//! ```text
//! h  = x·Wᵢᵀ                        GEMM (x first rounded to 16 bits for bf16/f16)
//! h  = (h + bᵢ) + τ[index(t_row)]   mlp_time_add: binary search of the row's time on the device
//! per layer:  u = LayerNorm(h) | h   mlp_layernorm (one warp per row, f64 statistics)
//!             b = act(u·W₁ᵀ + b₁)     GEMM + mlp_epilogue
//!             residual: h = h + b·W₂ᵀ (GEMM with β = 1) then h += b₂ (mlp_epilogue)
//!             else:     h = b (buffers swapped)
//! out = (norm_out(h) | h)·Wₒᵀ + bₒ    GEMM + mlp_epilogue, straight into the caller's rows
//! ```
//!
//! With bf16/f16 every kernel that writes an activation also writes its 16-bit copy, the next GEMM's
//! input; the f32 activations carry the residual stream and the LayerNorm statistics.
//!
//! # The time path
//!
//! [`ScoreModel::prepare_times`] tabulates τ(t) per distinct time (time MLP plus conditioning
//! projection) with two f32 GEMMs on the device (within ~1e-6 relative of the CPU's f64-accumulated
//! [`MlpModel::time_table`]) and uploads the sorted times. The times of a call stay on the device: `mlp_time_add` finds each
//! row's entry by binary search (bitwise equality, `total_cmp` order). A time missing from the table
//! (which the samplers never produce: they tabulate every grid point and block end) is NOT computed
//! on the device: the kernel sets a device flag and fills the row with NaN, so the sampler's
//! non-finite checks stop the run with [`Error::NonFinite`]; [`MlpCudaWorkspace::missing_times`]
//! reads the flag (one synchronising copy) for callers that want the precise cause.

use std::sync::Arc;

use cudarc::driver::CudaSlice;

use super::cuda_weights::{DevLinear, DevTimeTable, DevWeights};
use super::{Activation, MlpModel, WeightDtype};
use crate::backend::cuda::GemmIn;
use crate::backend::cuda::{CudaBackend, DeviceResultExt};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::ScoreModel;
use crate::schedule::ModelOutput;
use crate::Field;

/// The MLP's weights, scratch and time table on one CUDA backend (see the module docs).
#[derive(Debug)]
pub struct MlpCudaWorkspace {
    dtype: WeightDtype,
    /// The model's weights on this backend (shared with its other workspaces).
    weights: Arc<DevWeights>,
    /// `max_rows × H` f32 each: hidden state, layer output, LayerNorm output.
    h: CudaSlice<f32>,
    b: CudaSlice<f32>,
    n: CudaSlice<f32>,
    /// Their 16-bit copies (empty for f32), and `max_rows × D` for the input.
    h16: CudaSlice<u16>,
    b16: CudaSlice<u16>,
    n16: CudaSlice<u16>,
    x16: CudaSlice<u16>,
    /// τ(t) for the run's times (shared with the model's other workspaces on this backend).
    time_table: Option<Arc<DevTimeTable>>,
    /// 1 once a row's time was not in the table.
    status: CudaSlice<i32>,
    /// `MlpModel::id` of the weights and of the table (0: no table yet).
    model_id: u64,
    table_id: u64,
    max_rows: usize,
}

impl MlpCudaWorkspace {
    /// Rows the workspace can evaluate at once.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// The weight / GEMM-input dtype the workspace was made with.
    pub fn dtype(&self) -> WeightDtype {
        self.dtype
    }

    /// Number of tabulated times.
    pub fn table_len(&self) -> usize {
        self.time_table.as_ref().map_or(0, |t| t.n)
    }

    /// Whether any evaluation since the last `prepare_times` met a time missing from the table (its
    /// rows were NaN). Synchronises with the stream.
    pub fn missing_times(&self, be: &CudaBackend) -> Result<bool> {
        let _exclusive = be.exclusive();
        let mut flag = [0i32];
        be.stream()
            .memcpy_dtoh(&self.status, &mut flag)
            .during("mlp time status")?;
        be.synchronize()?;
        Ok(flag[0] != 0)
    }
}

impl MlpModel {
    /// `(rows × H, rows × D)` of the device workspace for `max_rows` rows (at least one); `None` on
    /// overflow. Sizes both `workspace` and `workspace_bytes`.
    fn workspace_lens(&self, max_rows: usize) -> Option<(usize, usize)> {
        let rows = max_rows.max(1);
        Some((
            rows.checked_mul(self.config.hidden)?,
            rows.checked_mul(self.config.dim)?,
        ))
    }
}

fn alloc_u16(be: &CudaBackend, n: usize) -> Result<CudaSlice<u16>> {
    if n == 0 {
        return be.stream().null().during("mlp workspace (alloc)");
    }
    be.stream().alloc_zeros(n).during("mlp workspace (alloc)")
}

/// The GEMM input for an activation buffer: f32, or its 16-bit copy.
fn gemm_in<'a>(dtype: WeightDtype, f: &'a CudaSlice<f32>, h: &'a CudaSlice<u16>) -> GemmIn<'a> {
    match dtype {
        WeightDtype::F32 => GemmIn::F32(f),
        _ => GemmIn::Half(h),
    }
}

/// The 16-bit copy to write, `None` for f32.
fn half_of(dtype: WeightDtype, h: &mut CudaSlice<u16>) -> Option<&mut CudaSlice<u16>> {
    (dtype != WeightDtype::F32).then_some(h)
}

impl MlpModel {
    /// τ(t) for the sorted distinct `ts`: the embedding on the host, the time MLP as two batched
    /// f32 GEMMs on the device, one row per time.
    fn make_time_table(
        &self,
        be: &CudaBackend,
        dev: &DevWeights,
        ts: &[f32],
    ) -> Result<DevTimeTable> {
        let (c, w) = (&self.config, &self.weights);
        let (h, e) = (c.hidden, c.time_embed_dim);
        let n = ts.len();
        let mut emb = vec![0f32; n * e];
        for (row, &t) in emb.chunks_mut(e.max(1)).zip(ts) {
            self.embed_time(t, row);
        }
        let f32_ = WeightDtype::F32;
        let (fc1, fc2) = (&dev.time_fc1, &dev.time_fc2);
        // The second layer's bias plus the constant conditioning projection.
        let mut bias2 = w.time_fc2.bias.clone();
        bias2
            .iter_mut()
            .zip(&self.cond_h)
            .for_each(|(b, c)| *b += c);
        let bias2 = be.upload(&bias2)?;
        let emb = be.upload(&emb)?;
        let mut hid = be.alloc(n * h)?;
        let mut table = be.alloc(n * h)?;
        if n > 0 {
            be.mlp_gemm(
                &fc1.w,
                f32_,
                (h, e),
                GemmIn::F32(&emb),
                0,
                n,
                0.0,
                &mut hid,
                0,
            )?;
            be.mlp_epilogue(
                &mut hid,
                0,
                &fc1.bias,
                n,
                h,
                Some(Activation::Silu),
                None,
                f32_,
            )?;
            be.mlp_gemm(
                &fc2.w,
                f32_,
                (h, h),
                GemmIn::F32(&hid),
                0,
                n,
                0.0,
                &mut table,
                0,
            )?;
            be.mlp_epilogue(&mut table, 0, &bias2, n, h, None, None, f32_)?;
        }
        Ok(DevTimeTable {
            table,
            times: be.upload(ts)?,
            n,
        })
    }

    fn cond_check(&self) -> Result<()> {
        if self.config.cond_dim > 0 && self.cond.is_none() {
            return Err(Error::config(
                Field::Cond,
                format!(
                    "this model expects a conditioning vector of {} values: call MlpModel::set_cond",
                    self.config.cond_dim
                ),
            ));
        }
        Ok(())
    }
}

impl ScoreModel<CudaBackend> for MlpModel {
    type Workspace = MlpCudaWorkspace;

    fn dim(&self) -> usize {
        self.config.dim
    }

    fn output(&self) -> ModelOutput {
        self.config.prediction
    }

    /// As on the CPU: C when the model's own vector is not set (so that a run without
    /// conditioning is refused by the sampler, and one with it by `set_condition`).
    fn cond_dim(&self) -> usize {
        match self.cond {
            None => self.config.cond_dim,
            Some(_) => 0,
        }
    }

    /// Per-sample conditioning of an MLP is implemented on the CPU backend only.
    fn set_condition(
        &self,
        _: &CudaBackend,
        _: &mut MlpCudaWorkspace,
        _: &[f32],
        _: usize,
    ) -> Result<()> {
        Err(crate::error::Error::device(
            "mlp",
            "per-sample conditioning of an MLP runs on the CPU backend only for now (or set the \
             model's own vector with MlpModel::set_cond)",
        ))
    }

    /// GEMMs and kernels on the backend's stream, nothing on the host: recordable.
    fn recordable(&self) -> bool {
        true
    }

    fn workspace_bytes(&self, max_rows: usize) -> usize {
        // Three f32 buffers of rows × H and, for a 16-bit dtype, three u16 ones and x16 (rows × D).
        let Some((rh, rd)) = self.workspace_lens(max_rows) else {
            return usize::MAX;
        };
        let half = if self.compute_dtype == WeightDtype::F32 {
            0
        } else {
            rh.saturating_mul(3).saturating_add(rd).saturating_mul(2)
        };
        rh.saturating_mul(12).saturating_add(half)
    }

    fn workspace(&self, be: &CudaBackend, max_rows: usize) -> Result<MlpCudaWorkspace> {
        let _exclusive = be.exclusive();
        self.cond_check()?;
        let dtype = self.compute_dtype;
        let (rh, rd) = self
            .workspace_lens(max_rows)
            .ok_or_else(|| Error::shape("mlp workspace", format!("{max_rows} rows overflow")))?;
        let half = |n: usize| alloc_u16(be, if dtype == WeightDtype::F32 { 0 } else { n });
        Ok(MlpCudaWorkspace {
            dtype,
            weights: self.device_weights(be, dtype)?,
            h: be.alloc(rh)?,
            b: be.alloc(rh)?,
            n: be.alloc(rh)?,
            h16: half(rh)?,
            b16: half(rh)?,
            n16: half(rh)?,
            x16: half(rd)?,
            time_table: None,
            status: be
                .stream()
                .clone_htod(&[0i32])
                .during("mlp workspace (status)")?,
            model_id: self.id,
            table_id: 0,
            max_rows,
        })
    }

    fn prepare_times(
        &self,
        be: &CudaBackend,
        ws: &mut MlpCudaWorkspace,
        times: &[f64],
    ) -> Result<()> {
        // The time path as two batched GEMMs on the device, one row per distinct time: on the host
        // (f64 matvecs, `time_table`) it cost ~1.3 s per run at H = 4096 and dominated the sampler's
        // wall time (measured on an H200, docs/perf/2026-11-26-h200-run2). f32 GEMMs here: within
        // ~1e-6 relative of the host table. Cached per (backend, model state, times): a run on the
        // same grid reuses it.
        let _exclusive = be.exclusive();
        self.cond_check()?;
        let ts = Self::distinct_times(times);
        let dev = ws.weights.clone();
        ws.time_table = Some(
            self.device_cache
                .time_table(be, self.id, &ts, || self.make_time_table(be, &dev, &ts))?,
        );
        be.stream()
            .memcpy_htod(&[0i32], &mut ws.status)
            .during("mlp prepare_times (status)")?;
        ws.table_id = self.id;
        Ok(())
    }

    fn eval(
        &self,
        be: &CudaBackend,
        ws: &mut MlpCudaWorkspace,
        x: &CudaSlice<f32>,
        times: &CudaSlice<f32>,
        row0: usize,
        rows: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "mlp eval";
        let _exclusive = be.exclusive();
        let c = &self.config;
        let (d, h) = (c.dim, c.hidden);
        let end = row0
            .checked_add(rows)
            .ok_or_else(|| Error::shape(OP, "row range overflows"))?;
        if x.len() < end.saturating_mul(d)
            || out.len() < end.saturating_mul(d)
            || times.len() < end
            || rows > ws.max_rows
        {
            return Err(Error::shape(
                OP,
                format!(
                    "{rows} rows of dim {d} at row {row0} do not fit the buffers (workspace: {} rows)",
                    ws.max_rows
                ),
            ));
        }
        self.cond_check()?;
        if ws.model_id != self.id || ws.table_id != self.id {
            return Err(Error::shape(
                OP,
                "the workspace was made (or its times prepared) for another model or conditioning: \
                 call workspace and prepare_times with this model",
            ));
        }
        if rows == 0 {
            return Ok(());
        }
        let dt = ws.dtype;
        let wts = ws.weights.clone();
        let tt = ws
            .time_table
            .clone()
            .ok_or_else(|| Error::shape(OP, "no time table: call prepare_times first"))?;
        let dims = |l: &DevLinear| (l.out_dim, l.in_dim);

        // Input layer and time path.
        let xin = if dt == WeightDtype::F32 {
            GemmIn::F32(x)
        } else {
            be.mlp_to_half(x, row0 * d, rows * d, &mut ws.x16, dt)?;
            GemmIn::Half(&ws.x16)
        };
        let x_off = if dt == WeightDtype::F32 { row0 * d } else { 0 };
        be.mlp_gemm(
            &wts.input.w,
            dt,
            dims(&wts.input),
            xin,
            x_off,
            rows,
            0.0,
            &mut ws.h,
            0,
        )?;
        be.mlp_time_add(
            &mut ws.h,
            &wts.input.bias,
            &tt.table,
            &tt.times,
            tt.n,
            times,
            row0,
            rows,
            h,
            &mut ws.status,
            half_of(dt, &mut ws.h16),
            dt,
        )?;

        for layer in &wts.layers {
            let use_norm = match &layer.norm {
                Some(norm) => {
                    be.mlp_layernorm(
                        &ws.h,
                        &mut ws.n,
                        &norm.weight,
                        &norm.bias,
                        rows,
                        h,
                        c.layernorm_eps,
                        half_of(dt, &mut ws.n16),
                        dt,
                    )?;
                    true
                }
                None => false,
            };
            let src = if use_norm {
                gemm_in(dt, &ws.n, &ws.n16)
            } else {
                gemm_in(dt, &ws.h, &ws.h16)
            };
            be.mlp_gemm(
                &layer.fc1.w,
                dt,
                dims(&layer.fc1),
                src,
                0,
                rows,
                0.0,
                &mut ws.b,
                0,
            )?;
            be.mlp_epilogue(
                &mut ws.b,
                0,
                &layer.fc1.bias,
                rows,
                h,
                Some(c.activation),
                half_of(dt, &mut ws.b16),
                dt,
            )?;
            match &layer.fc2 {
                Some(fc2) => {
                    be.mlp_gemm(
                        &fc2.w,
                        dt,
                        dims(fc2),
                        gemm_in(dt, &ws.b, &ws.b16),
                        0,
                        rows,
                        1.0,
                        &mut ws.h,
                        0,
                    )?;
                    be.mlp_epilogue(
                        &mut ws.h,
                        0,
                        &fc2.bias,
                        rows,
                        h,
                        None,
                        half_of(dt, &mut ws.h16),
                        dt,
                    )?;
                }
                None => {
                    std::mem::swap(&mut ws.h, &mut ws.b);
                    std::mem::swap(&mut ws.h16, &mut ws.b16);
                }
            }
        }

        let src = match &wts.norm_out {
            Some(norm) => {
                be.mlp_layernorm(
                    &ws.h,
                    &mut ws.n,
                    &norm.weight,
                    &norm.bias,
                    rows,
                    h,
                    c.layernorm_eps,
                    half_of(dt, &mut ws.n16),
                    dt,
                )?;
                gemm_in(dt, &ws.n, &ws.n16)
            }
            None => gemm_in(dt, &ws.h, &ws.h16),
        };
        be.mlp_gemm(
            &wts.output.w,
            dt,
            dims(&wts.output),
            src,
            0,
            rows,
            0.0,
            out,
            row0 * d,
        )?;
        be.mlp_epilogue(
            out,
            row0 * d,
            &wts.output.bias,
            rows,
            d,
            None,
            None,
            WeightDtype::F32,
        )
    }
}
