//! `picardiff_model`: what a run evaluates — an exact Gaussian mixture or a C callback.

use std::ffi::{c_char, c_void};
use std::path::Path;

use super::args::{arg_out, arg_ref, free_handle, req_slice, req_str, write_handle};
use super::callback::{picardiff_eps_fn, CallbackModel};
use super::status::{ffi_boundary, picardiff_status, FfiError};
use crate::backend::cpu::CpuBackend;
use crate::model::{load_model, DiffusionPolicy, Mixture, MlpModel, ModelFile, ScoreModel};
use crate::schedule::ModelOutput;

/// What a callback model returns (passed as `uint32_t` to `picardiff_model_new_callback`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum picardiff_model_output {
    /// The noise ε.
    PICARDIFF_OUTPUT_EPSILON = 0,
    /// The score ∇ log q_t(x) (= −ε / σ_t).
    PICARDIFF_OUTPUT_SCORE = 1,
    /// The clean sample x̂0.
    PICARDIFF_OUTPUT_SAMPLE = 2,
    /// v = α_t ε − σ_t x0 (VP schedules).
    PICARDIFF_OUTPUT_V = 3,
    /// The rectified-flow velocity ε − x0 (the "flow" schedule).
    PICARDIFF_OUTPUT_VELOCITY = 4,
}

/// The kinds of model a handle holds; a new kind is a variant here, a constructor in this file and
/// one arm per device in `sampler::dispatch`.
pub(crate) enum ModelKind {
    /// The exact mixture; run under the sampler's schedule.
    Mixture(Mixture),
    /// A C callback.
    Callback(CallbackModel),
    /// A trained MLP; runs under its own schedule with the sampler's steps, spacing and rule.
    Mlp(Box<MlpModel>),
    /// A LeRobot Diffusion Policy; runs under its own scheduler (on the CPU or CUDA device).
    Policy(Box<DiffusionPolicy>),
}

/// A score model. Create with one of the `picardiff_model_new_*` functions, free with
/// `picardiff_model_free`. A model holds no device memory and may be used by any number of
/// samplers and contexts.
pub struct picardiff_model {
    pub(crate) kind: ModelKind,
}

impl picardiff_model {
    /// Elements per sample.
    pub(crate) fn dim(&self) -> usize {
        match &self.kind {
            ModelKind::Mixture(m) => m.dim,
            ModelKind::Callback(c) => ScoreModel::<CpuBackend>::dim(c),
            ModelKind::Mlp(m) => ScoreModel::<CpuBackend>::dim(m.as_ref()),
            ModelKind::Policy(m) => ScoreModel::<CpuBackend>::dim(m.as_ref()),
        }
    }

    /// Width of the per-sample conditioning (0: none).
    pub(crate) fn cond_dim(&self) -> usize {
        match &self.kind {
            ModelKind::Policy(m) => ScoreModel::<CpuBackend>::cond_dim(m.as_ref()),
            ModelKind::Mlp(m) => ScoreModel::<CpuBackend>::cond_dim(m.as_ref()),
            _ => 0,
        }
    }
}

fn output_kind(output: u32) -> Result<ModelOutput, FfiError> {
    use picardiff_model_output::*;
    Ok(match output {
        o if o == PICARDIFF_OUTPUT_EPSILON as u32 => ModelOutput::Epsilon,
        o if o == PICARDIFF_OUTPUT_SCORE as u32 => ModelOutput::Score,
        o if o == PICARDIFF_OUTPUT_SAMPLE as u32 => ModelOutput::Sample,
        o if o == PICARDIFF_OUTPUT_V as u32 => ModelOutput::V,
        o if o == PICARDIFF_OUTPUT_VELOCITY as u32 => ModelOutput::Velocity,
        o => {
            return Err(FfiError::invalid(format!(
                "unknown model output {o} (expected a PICARDIFF_OUTPUT_* value)"
            )))
        }
    })
}

/// The exact-score model of a Gaussian mixture given as JSON text (`json_len` bytes, no NUL needed):
/// `{"weights": [...], "means": [[...], ...], "stds": [...]}` (weights need not sum to 1). The
/// mixture is the data distribution at t = 0; a run uses the sampler's schedule.
///
/// # Safety
/// `json` must point to `json_len` readable bytes; `model_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_model_new_mixture_json(
    json: *const c_char,
    json_len: usize,
    model_out: *mut *mut picardiff_model,
) -> picardiff_status {
    ffi_boundary!("picardiff_model_new_mixture_json", {
        let out = arg_out(model_out, "model_out")?;
        // SAFETY: per the contract.
        let bytes = unsafe { req_slice(json.cast::<u8>(), json_len, "json") }?;
        let text = std::str::from_utf8(bytes)
            .map_err(|e| FfiError::invalid(format!("`json` is not valid UTF-8: {e}")))?;
        let mixture = Mixture::from_json(text)?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe {
            write_handle(
                out,
                picardiff_model {
                    kind: ModelKind::Mixture(mixture),
                },
            )
        };
        Ok(())
    })
}

/// The exact-score model of a Gaussian mixture read from a JSON file (format as
/// `picardiff_model_new_mixture_json`); `path` is NUL-terminated UTF-8.
///
/// # Safety
/// `path` must be a NUL-terminated string; `model_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_model_new_mixture_file(
    path: *const c_char,
    model_out: *mut *mut picardiff_model,
) -> picardiff_status {
    ffi_boundary!("picardiff_model_new_mixture_file", {
        let out = arg_out(model_out, "model_out")?;
        // SAFETY: per the contract.
        let path = unsafe { req_str(path, "path") }?;
        let mixture = Mixture::from_file(Path::new(path))?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe {
            write_handle(
                out,
                picardiff_model {
                    kind: ModelKind::Mixture(mixture),
                },
            )
        };
        Ok(())
    })
}

/// A model evaluated by `eps_fn` (see `picardiff_eps_fn`) on states of `dim` elements, predicting
/// `output` (a `picardiff_model_output` value). `user_data` is passed to every call unchanged; it
/// is not owned by picardiff and must outlive the model.
///
/// # Safety
/// `eps_fn` must honour the `picardiff_eps_fn` contract; `user_data` must stay valid while the
/// model is in use; `model_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_model_new_callback(
    eps_fn: picardiff_eps_fn,
    user_data: *mut c_void,
    dim: usize,
    output: u32,
    model_out: *mut *mut picardiff_model,
) -> picardiff_status {
    ffi_boundary!("picardiff_model_new_callback", {
        let out = arg_out(model_out, "model_out")?;
        let func = eps_fn.ok_or_else(|| FfiError::null("eps_fn"))?;
        let output = output_kind(output)?;
        // SAFETY: the caller's contract is `CallbackModel::new`'s.
        let model = unsafe { CallbackModel::new(func, user_data, dim, output) }?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe {
            write_handle(
                out,
                picardiff_model {
                    kind: ModelKind::Callback(model),
                },
            )
        };
        Ok(())
    })
}

/// A model read from `path` (NUL-terminated UTF-8), of any kind the CLI's `--model` takes: a
/// mixture JSON, an MLP `.safetensors` file (runs under its own schedule), or a LeRobot Diffusion
/// Policy directory (`config.json` + `model.safetensors`; runs under its own scheduler, with its
/// x̂0 clipping, and needs per-sample conditioning: `picardiff_sampler_run_cond`).
///
/// # Safety
/// `path` must be a NUL-terminated string; `model_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_model_new_file(
    path: *const c_char,
    model_out: *mut *mut picardiff_model,
) -> picardiff_status {
    ffi_boundary!("picardiff_model_new_file", {
        let out = arg_out(model_out, "model_out")?;
        // SAFETY: per the contract.
        let path = unsafe { req_str(path, "path") }?;
        let kind = match load_model(Path::new(path))? {
            ModelFile::Mixture(m) => ModelKind::Mixture(m),
            ModelFile::Mlp(m) => ModelKind::Mlp(m),
            ModelFile::Policy(p) => ModelKind::Policy(p),
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { write_handle(out, picardiff_model { kind }) };
        Ok(())
    })
}

/// Values of per-sample conditioning the model takes (`cond_len` = batch × this in
/// `picardiff_sampler_run_cond`); 0 for a model without conditioning.
///
/// # Safety
/// `model` must be NULL or a live model; `cond_dim_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_model_cond_dim(
    model: *const picardiff_model,
    cond_dim_out: *mut usize,
) -> picardiff_status {
    ffi_boundary!("picardiff_model_cond_dim", {
        // SAFETY: per the contract.
        let model = unsafe { arg_ref(model, "model") }?;
        let out = arg_out(cond_dim_out, "cond_dim_out")?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { *out = model.cond_dim() };
        Ok(())
    })
}

/// Elements per sample of the model (the `dim` of the `[batch][dim]` output).
///
/// # Safety
/// `model` must be NULL or a live model; `dim_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_model_dim(
    model: *const picardiff_model,
    dim_out: *mut usize,
) -> picardiff_status {
    ffi_boundary!("picardiff_model_dim", {
        // SAFETY: per the contract.
        let model = unsafe { arg_ref(model, "model") }?;
        let out = arg_out(dim_out, "dim_out")?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { *out = model.dim() };
        Ok(())
    })
}

/// Frees a model; NULL is a no-op.
///
/// # Safety
/// `model` must be NULL or a model from a `picardiff_model_new_*` function not freed before, and no
/// run may be using it.
#[no_mangle]
pub unsafe extern "C" fn picardiff_model_free(model: *mut picardiff_model) {
    // SAFETY: forwarded contract.
    super::status::boundary_or((), || unsafe { free_handle(model) })
}
