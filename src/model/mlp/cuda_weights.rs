//! The MLP's weights on a CUDA backend, uploaded once per (model, backend, dtype) and shared by
//! every workspace made there: a run used to upload them in `workspace` and `prepare_times`, which
//! cost more than the sampling itself for small runs (H = 4096: ~480 MB per run).

use std::sync::{Arc, Weak};

use cudarc::driver::CudaSlice;

use super::cache::RecentCache;
use super::{Linear, MlpModel, Norm, WeightDtype};
use crate::backend::cuda::DevWeight;
use crate::backend::cuda::{CudaBackend, DeviceResultExt};
use crate::backend::Backend;
use crate::error::Result;

/// A Linear layer on the device.
#[derive(Debug)]
pub(super) struct DevLinear {
    pub(super) w: DevWeight,
    pub(super) bias: CudaSlice<f32>,
    pub(super) out_dim: usize,
    pub(super) in_dim: usize,
}

/// LayerNorm parameters on the device.
#[derive(Debug)]
pub(super) struct DevNorm {
    pub(super) weight: CudaSlice<f32>,
    pub(super) bias: CudaSlice<f32>,
}

#[derive(Debug)]
pub(super) struct DevLayer {
    pub(super) norm: Option<DevNorm>,
    pub(super) fc1: DevLinear,
    pub(super) fc2: Option<DevLinear>,
}
/// Every weight of the network on the device: the main path in the compute dtype, the time MLP in
/// f32 (its table is computed in f32 whatever the dtype).
#[derive(Debug)]
pub(super) struct DevWeights {
    pub(super) input: DevLinear,
    pub(super) layers: Vec<DevLayer>,
    pub(super) norm_out: Option<DevNorm>,
    pub(super) output: DevLinear,
    pub(super) time_fc1: DevLinear,
    pub(super) time_fc2: DevLinear,
}

/// τ(t) for a sorted set of distinct times: `[n][H]` f32 and the times, on the device.
#[derive(Debug)]
pub(super) struct DevTimeTable {
    pub(super) table: CudaSlice<f32>,
    pub(super) times: CudaSlice<f32>,
    pub(super) n: usize,
}

/// A backend's liveness token ([`CudaBackend::liveness`]) as a cache key: equal when it is the same
/// backend's; its address is never reused while a key holds it; dead once the backend is dropped.
#[derive(Debug)]
pub(super) struct BackendKey(Weak<()>);

impl PartialEq for BackendKey {
    fn eq(&self, other: &Self) -> bool {
        Weak::ptr_eq(&self.0, &other.0)
    }
}

impl BackendKey {
    fn of(be: &CudaBackend) -> Self {
        BackendKey(be.liveness())
    }

    fn alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

/// A model's device weights per (backend, dtype) and its device time tables per (backend, model
/// state, times' bits: the last four grids; re-tabulating costs the host ~100k f64 sin/cos/exp for
/// 1000 times at E = 64, plus uploads and two GEMMs), at most 8 and 4 per backend. The entries of a
/// dropped backend are removed (their device memory freed) at the model's next lookup; the rest are
/// freed with the model. Lookups run inside the backend's run lock (`workspace`, `prepare_times`).
#[derive(Debug, Default, Clone)]
pub(crate) struct DeviceWeightCache {
    weights: RecentCache<(BackendKey, WeightDtype), DevWeights, 8>,
    tables: RecentCache<(BackendKey, u64, Vec<u32>), DevTimeTable, 4>,
}

impl DeviceWeightCache {
    /// The cached table for `times` (sorted distinct, as f32) of model state `id` on `be`, or a new
    /// one from `make`.
    pub(super) fn time_table(
        &self,
        be: &CudaBackend,
        id: u64,
        times: &[f32],
        make: impl FnOnce() -> Result<DevTimeTable>,
    ) -> Result<Arc<DevTimeTable>> {
        let key = (
            BackendKey::of(be),
            id,
            times.iter().map(|t| t.to_bits()).collect(),
        );
        self.tables
            .get_or_make(key, |k| k.0.alive(), |a, b| a.0 == b.0, make)
    }
}

impl MlpModel {
    /// The weights on `be` in `dtype`, uploaded on first use.
    pub(super) fn device_weights(
        &self,
        be: &CudaBackend,
        dtype: WeightDtype,
    ) -> Result<Arc<DevWeights>> {
        let key = (BackendKey::of(be), dtype);
        self.device_cache.weights.get_or_make(
            key,
            |k| k.0.alive(),
            |a, b| a.0 == b.0,
            || self.upload_weights(be, dtype),
        )
    }

    /// Uploads every weight to `be`: the main path in `dtype`, the time MLP in f32.
    fn upload_weights(&self, be: &CudaBackend, dtype: WeightDtype) -> Result<DevWeights> {
        let w = &self.weights;
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
        Ok(DevWeights {
            input: up_linear(be, &w.input, dtype)?,
            layers,
            norm_out: w.norm_out.as_ref().map(|n| up_norm(be, n)).transpose()?,
            output: up_linear(be, &w.output, dtype)?,
            time_fc1: up_linear(be, &w.time_fc1, WeightDtype::F32)?,
            time_fc2: up_linear(be, &w.time_fc2, WeightDtype::F32)?,
        })
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

fn up_norm(be: &CudaBackend, n: &Norm) -> Result<DevNorm> {
    Ok(DevNorm {
        weight: up_f32(be, &n.weight)?,
        bias: up_f32(be, &n.bias)?,
    })
}
