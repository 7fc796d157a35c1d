//! The MLP forward on the CUDA backend (feature `cuda`), mirroring `cpu.rs` operation for operation.
//!
//! [`ScoreModel::workspace`] uploads every weight once, in [`MlpModel::compute_dtype`]: f32, or
//! bf16/f16 for the Linear weights (biases, LayerNorm parameters and the time table stay f32). Each
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
//! [`ScoreModel::prepare_times`] uploads the CPU's [`MlpModel::time_table`] (τ(t) per distinct time,
//! time MLP plus conditioning projection, computed on the host in f64-accumulated f32 exactly as the
//! CPU does) and the sorted times. The times of a call stay on the device: `mlp_time_add` finds each
//! row's entry by binary search (bitwise equality, `total_cmp` order). A time missing from the table
//! (which the samplers never produce: they tabulate every grid point and block end) is NOT computed
//! on the device: the kernel sets a device flag and fills the row with NaN, so the sampler's
//! non-finite checks stop the run with [`Error::NonFinite`]; [`MlpCudaWorkspace::missing_times`]
//! reads the flag (one synchronising copy) for callers that want the precise cause.

use cudarc::driver::CudaSlice;

use super::{Activation, Linear, MlpModel, Norm, WeightDtype};
use crate::backend::cuda::mlp::{DevWeight, GemmIn};
use crate::backend::cuda::{CudaBackend, DeviceResultExt};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::ScoreModel;
use crate::schedule::ModelOutput;

/// A Linear layer on the device.
#[derive(Debug)]
struct DevLinear {
    w: DevWeight,
    bias: CudaSlice<f32>,
    out_dim: usize,
    in_dim: usize,
}

/// LayerNorm parameters on the device.
#[derive(Debug)]
struct DevNorm {
    weight: CudaSlice<f32>,
    bias: CudaSlice<f32>,
}

#[derive(Debug)]
struct DevLayer {
    norm: Option<DevNorm>,
    fc1: DevLinear,
    fc2: Option<DevLinear>,
}

/// The MLP's weights, scratch and time table on one CUDA backend (see the module docs).
#[derive(Debug)]
pub struct MlpCudaWorkspace {
    dtype: WeightDtype,
    input: DevLinear,
    layers: Vec<DevLayer>,
    norm_out: Option<DevNorm>,
    output: DevLinear,
    /// `max_rows × H` f32 each: hidden state, layer output, LayerNorm output.
    h: CudaSlice<f32>,
    b: CudaSlice<f32>,
    n: CudaSlice<f32>,
    /// Their 16-bit copies (empty for f32), and `max_rows × D` for the input.
    h16: CudaSlice<u16>,
    b16: CudaSlice<u16>,
    n16: CudaSlice<u16>,
    x16: CudaSlice<u16>,
    /// `[n_times][H]` τ(t), and the sorted times.
    table: CudaSlice<f32>,
    table_times: CudaSlice<f32>,
    n_times: usize,
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
        self.n_times
    }

    /// Whether any evaluation since the last `prepare_times` met a time missing from the table (its
    /// rows were NaN). Synchronises with the stream.
    pub fn missing_times(&self, be: &CudaBackend) -> Result<bool> {
        let mut flag = [0i32];
        be.stream()
            .memcpy_dtoh(&self.status, &mut flag)
            .during("mlp time status")?;
        be.synchronize()?;
        Ok(flag[0] != 0)
    }
}

fn up_f32(be: &CudaBackend, v: &[f32]) -> Result<CudaSlice<f32>> {
    be.upload(v)
}

fn up_linear(be: &CudaBackend, l: &Linear, dtype: WeightDtype) -> Result<DevLinear> {
    let w = match dtype {
        WeightDtype::F32 => DevWeight::F32(up_f32(be, &l.weight)?),
        WeightDtype::Bf16 => {
            let bits: Vec<u16> = l.weight_bf16().iter().map(|v| v.to_bits()).collect();
            DevWeight::Half(up_u16(be, &bits)?)
        }
        WeightDtype::F16 => {
            let bits: Vec<u16> = l.weight_f16().iter().map(|v| v.to_bits()).collect();
            DevWeight::Half(up_u16(be, &bits)?)
        }
    };
    Ok(DevLinear {
        w,
        bias: up_f32(be, &l.bias)?,
        out_dim: l.out_dim,
        in_dim: l.in_dim,
    })
}

fn up_u16(be: &CudaBackend, v: &[u16]) -> Result<CudaSlice<u16>> {
    if v.is_empty() {
        return be.stream().null().during("mlp workspace (upload)");
    }
    be.stream().clone_htod(v).during("mlp workspace (upload)")
}

fn alloc_u16(be: &CudaBackend, n: usize) -> Result<CudaSlice<u16>> {
    if n == 0 {
        return be.stream().null().during("mlp workspace (alloc)");
    }
    be.stream().alloc_zeros(n).during("mlp workspace (alloc)")
}

fn up_norm(be: &CudaBackend, n: &Norm) -> Result<DevNorm> {
    Ok(DevNorm {
        weight: up_f32(be, &n.weight)?,
        bias: up_f32(be, &n.bias)?,
    })
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
    fn cond_check(&self) -> Result<()> {
        if self.config.cond_dim > 0 && self.cond.is_none() {
            return Err(Error::config(
                "cond",
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

    /// GEMMs and kernels on the backend's stream, nothing on the host: recordable.
    fn recordable(&self) -> bool {
        true
    }

    fn workspace(&self, be: &CudaBackend, max_rows: usize) -> Result<MlpCudaWorkspace> {
        self.cond_check()?;
        let (c, w) = (&self.config, &self.weights);
        let dtype = self.compute_dtype;
        let rows = max_rows.max(1);
        let rh = rows
            .checked_mul(c.hidden)
            .ok_or_else(|| Error::shape("mlp workspace", format!("{max_rows} rows overflow")))?;
        let rd = rows
            .checked_mul(c.dim)
            .ok_or_else(|| Error::shape("mlp workspace", format!("{max_rows} rows overflow")))?;
        let half = |n: usize| alloc_u16(be, if dtype == WeightDtype::F32 { 0 } else { n });
        let layers = w
            .layers
            .iter()
            .map(|l| {
                Ok(DevLayer {
                    norm: l.norm.as_ref().map(|n| up_norm(be, n)).transpose()?,
                    fc1: up_linear(be, &l.fc1, dtype)?,
                    fc2: l
                        .fc2
                        .as_ref()
                        .map(|f| up_linear(be, f, dtype))
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MlpCudaWorkspace {
            dtype,
            input: up_linear(be, &w.input, dtype)?,
            layers,
            norm_out: w.norm_out.as_ref().map(|n| up_norm(be, n)).transpose()?,
            output: up_linear(be, &w.output, dtype)?,
            h: be.alloc(rh)?,
            b: be.alloc(rh)?,
            n: be.alloc(rh)?,
            h16: half(rh)?,
            b16: half(rh)?,
            n16: half(rh)?,
            x16: half(rd)?,
            table: be.alloc(0)?,
            table_times: be.alloc(0)?,
            n_times: 0,
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
        // ~1e-6 relative of the host table.
        self.cond_check()?;
        let (c, w) = (&self.config, &self.weights);
        let (h, e) = (c.hidden, c.time_embed_dim);
        let ts = Self::distinct_times(times);
        let n = ts.len();
        let mut emb = vec![0f32; n * e];
        for (row, &t) in emb.chunks_mut(e.max(1)).zip(&ts) {
            self.embed_time(t, row);
        }
        let f32_ = WeightDtype::F32;
        let (fc1, fc2) = (
            up_linear(be, &w.time_fc1, f32_)?,
            up_linear(be, &w.time_fc2, f32_)?,
        );
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
        ws.table = table;
        ws.table_times = be.upload(&ts)?;
        ws.n_times = n;
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
            &ws.input.w,
            dt,
            dims(&ws.input),
            xin,
            x_off,
            rows,
            0.0,
            &mut ws.h,
            0,
        )?;
        be.mlp_time_add(
            &mut ws.h,
            &ws.input.bias,
            &ws.table,
            &ws.table_times,
            ws.n_times,
            times,
            row0,
            rows,
            h,
            &mut ws.status,
            half_of(dt, &mut ws.h16),
            dt,
        )?;

        for layer in &ws.layers {
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

        let src = match &ws.norm_out {
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
            &ws.output.w,
            dt,
            dims(&ws.output),
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
            &ws.output.bias,
            rows,
            d,
            None,
            None,
            WeightDtype::F32,
        )
    }
}
