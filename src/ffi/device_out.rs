//! `picardiff_sampler_run_device`: a run whose samples go into the caller's GPU memory.

use std::ffi::c_void;

use super::args::{arg_out, arg_ref};
use super::context::Device;
use super::model::picardiff_model;
use super::sampler::{picardiff_sampler, picardiff_stats};
use super::status::{ffi_boundary, picardiff_status, FfiError};

/// Runs `sampler` with `model` and Philox noise from the config's seed, like
/// `picardiff_sampler_run`, but writes the samples (`[batch][dim]` row-major f32; `out_len` must be
/// exactly batch × dim, counted in floats) into GPU memory: `out_device` is a device address (a
/// `CUdeviceptr`, or a `cudaMalloc` / `torch::Tensor::data_ptr()` pointer, cast to `void *`) on the
/// sampler's CUDA device, allocated in that device's primary context (the one the CUDA runtime API
/// uses), or managed memory. The run's counters go to `*stats_out` (NULL when not wanted).
///
/// Ordering: picardiff copies the samples on its own stream and returns only after the copy has
/// completed, so on return any stream may read `out_device` without further synchronisation.
/// picardiff does not wait for the caller's streams: work that reads or writes `out_device` must
/// be complete before the call (e.g. `cudaStreamSynchronize` on the stream that wrote it last).
///
/// This version takes the samples through host memory (every run ends with a device-to-host read
/// of the final state, then a host-to-device copy of batch × dim floats into `out_device`); the
/// copy is not counted in `stats_out->wall_ms`.
///
/// Statuses: a CPU context gives `PICARDIFF_UNSUPPORTED` (use `picardiff_sampler_run` with a host
/// buffer); a NULL handle or `out_device` `PICARDIFF_NULL_ARGUMENT`; a wrong `out_len`
/// `PICARDIFF_SHAPE_MISMATCH`; an address that is not device memory of the context's device and
/// context (a host pointer, pinned or not, memory the driver does not know, another GPU's memory,
/// another context's) `PICARDIFF_INVALID_ARGUMENT`; device memory whose allocation, as the driver
/// reports its extent, ends before `out_device + out_len` floats `PICARDIFF_SHAPE_MISMATCH`; all
/// before anything runs. On failure `*stats_out` is not written, and `out_device` is not written
/// except when the final copy itself fails (`PICARDIFF_DEVICE`).
///
/// # Safety
/// `sampler` and `model` must be NULL or live handles; `stats_out` NULL or valid for a write;
/// `out_device` NULL or an address that, when the driver reports it as device memory of the
/// context, holds `out_len` floats: picardiff checks the kind of memory, its device and context,
/// and that the floats fit in the allocation that holds the address, but cannot see inside an
/// allocation the application divides itself (a caching allocator's segment).
#[no_mangle]
pub unsafe extern "C" fn picardiff_sampler_run_device(
    sampler: *const picardiff_sampler,
    model: *const picardiff_model,
    out_device: *mut c_void,
    out_len: usize,
    stats_out: *mut picardiff_stats,
) -> picardiff_status {
    ffi_boundary!("picardiff_sampler_run_device", {
        // SAFETY: per the contract.
        let s = unsafe { arg_ref(sampler, "sampler") }?;
        // SAFETY: per the contract.
        let model = unsafe { arg_ref(model, "model") }?;
        let out = arg_out(out_device, "out_device")?;
        match &*s.device {
            Device::Cpu(_) => {
                let _ = (model, out, out_len, stats_out);
                Err(FfiError::new(
                    picardiff_status::PICARDIFF_UNSUPPORTED,
                    "the sampler's context is the CPU: `out_device` needs a CUDA context \
                 (write samples to host memory with picardiff_sampler_run)",
                ))
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(be) => {
                // SAFETY: forwarded contract.
                unsafe { run_cuda(be, s, model, out as u64, out_len, stats_out) }
            }
        }
    })
}

/// The CUDA body of [`picardiff_sampler_run_device`].
///
/// # Safety
/// As [`picardiff_sampler_run_device`]; `be` is the sampler's backend.
#[cfg(feature = "cuda")]
unsafe fn run_cuda(
    be: &crate::backend::cuda::CudaBackend,
    s: &picardiff_sampler,
    model: &picardiff_model,
    out: u64,
    out_len: usize,
    stats_out: *mut picardiff_stats,
) -> Result<(), FfiError> {
    use super::sampler::{check_out_len, dispatch};
    use crate::backend::cuda::external::{
        check_device_ptr, upload_to_device_ptr, ExternalPtrError,
    };
    use crate::sampler::RunInputs;
    let need = check_out_len(s, model, out_len)?;
    check_device_ptr(be, out, need).map_err(|e| match e {
        ExternalPtrError::Invalid(msg) => FfiError::invalid(format!("`out_device`: {msg}")),
        ExternalPtrError::Extent(msg) => FfiError::new(
            picardiff_status::PICARDIFF_SHAPE_MISMATCH,
            format!("`out_device`: {msg} (out_len {out_len})"),
        ),
        ExternalPtrError::Device(e) => FfiError::from(e),
    })?;
    let inputs = RunInputs {
        batch: s.plan.batch,
        seed: s.plan.base.seed,
        sample0: s.plan.base.sample0,
        init: None,
        noise: None,
        ..Default::default()
    };
    // One lock over the run and the copy out: no other thread's work lands between them.
    let _exclusive = be.exclusive();
    let result = dispatch(s, model, &inputs)?;
    debug_assert_eq!(result.samples.len(), need);
    // SAFETY: `out` is device memory of this backend's device and context (checked above) holding
    // `out_len` = samples.len() floats per the contract.
    unsafe { upload_to_device_ptr(be, &result.samples, out) }?;
    // SAFETY: NULL or writable per the contract.
    if let Some(st) = unsafe { stats_out.as_mut() } {
        *st = picardiff_stats::from(&result.stats);
    }
    Ok(())
}
