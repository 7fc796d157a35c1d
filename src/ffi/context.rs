//! `picardiff_context`: the compute device samplers run on.

use std::sync::Arc;

use super::args::{arg_out, arg_ref, free_handle, write_handle};
use super::status::{ffi_boundary, picardiff_status, FfiError};
use crate::backend::cpu::CpuBackend;

/// Device choices for `picardiff_context_new` (passed as `uint32_t`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum picardiff_device {
    /// The pure-Rust CPU backend (always available).
    PICARDIFF_DEVICE_CPU = 0,
    /// The CUDA backend; `PICARDIFF_UNSUPPORTED` when picardiff was built without the `cuda`
    /// feature, `PICARDIFF_DEVICE` when the driver or the GPU is missing.
    PICARDIFF_DEVICE_CUDA = 1,
    /// CUDA when built with it and the GPU opens, else the CPU (ask `picardiff_context_device`).
    PICARDIFF_DEVICE_AUTO = 2,
}

/// An opened backend.
pub(crate) use crate::device::Device;

/// A compute device. Create with `picardiff_context_new`, free with `picardiff_context_free`.
/// Samplers keep their own reference to the device, so the context may be freed before them.
pub struct picardiff_context {
    pub(crate) device: Arc<Device>,
}

fn open(device: u32, ordinal: usize) -> Result<Device, FfiError> {
    use picardiff_device::*;
    match device {
        d if d == PICARDIFF_DEVICE_CPU as u32 => Ok(Device::Cpu(CpuBackend)),
        d if d == PICARDIFF_DEVICE_CUDA as u32 => open_cuda(ordinal),
        d if d == PICARDIFF_DEVICE_AUTO as u32 => {
            Ok(Device::open(crate::spec::DeviceName::Auto, ordinal)?.0)
        }
        d => Err(FfiError::invalid(format!(
            "unknown device {d} (expected PICARDIFF_DEVICE_CPU, _CUDA or _AUTO)"
        ))),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device, FfiError> {
    Ok(Device::Cuda(crate::backend::cuda::CudaBackend::new(
        ordinal,
    )?))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_ordinal: usize) -> Result<Device, FfiError> {
    Err(FfiError::new(
        picardiff_status::PICARDIFF_UNSUPPORTED,
        "picardiff was built without CUDA support (cargo feature `cuda`)",
    ))
}

/// Opens a device (`picardiff_device` value) into `*ctx_out`. `ordinal` is the CUDA device index
/// (ignored for the CPU). On failure `*ctx_out` is left unchanged.
///
/// # Safety
/// `ctx_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_context_new(
    device: u32,
    ordinal: usize,
    ctx_out: *mut *mut picardiff_context,
) -> picardiff_status {
    ffi_boundary!("picardiff_context_new", {
        let out = arg_out(ctx_out, "ctx_out")?;
        let device = Arc::new(open(device, ordinal)?);
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { write_handle(out, picardiff_context { device }) };
        Ok(())
    })
}

/// The device the context runs on (`PICARDIFF_DEVICE_CPU` or `_CUDA`, never `_AUTO`).
///
/// # Safety
/// `ctx` must be NULL or a live context; `device_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_context_device(
    ctx: *const picardiff_context,
    device_out: *mut u32,
) -> picardiff_status {
    ffi_boundary!("picardiff_context_device", {
        // SAFETY: NULL or live per the contract.
        let ctx = unsafe { arg_ref(ctx, "ctx") }?;
        let out = arg_out(device_out, "device_out")?;
        let d = match *ctx.device {
            Device::Cpu(_) => picardiff_device::PICARDIFF_DEVICE_CPU,
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => picardiff_device::PICARDIFF_DEVICE_CUDA,
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { *out = d as u32 };
        Ok(())
    })
}

/// Frees a context; NULL is a no-op. Samplers made from it stay usable.
///
/// # Safety
/// `ctx` must be NULL or a context from `picardiff_context_new` not freed before.
#[no_mangle]
pub unsafe extern "C" fn picardiff_context_free(ctx: *mut picardiff_context) {
    // SAFETY: forwarded contract.
    super::status::boundary_or((), || unsafe { free_handle(ctx) })
}
