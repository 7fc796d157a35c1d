//! Caller-owned device memory: checking a raw `CUdeviceptr` that an application hands to picardiff
//! (through the C ABI, say) and copying results into it on the backend's stream.
//!
//! An application that keeps its tensors on the GPU (PyTorch, its own CUDA code) gives picardiff a
//! bare address. Nothing in the type says whether it is device memory, of which device, or how
//! long it is; [`check_device_ptr`] asks the driver (`cuPointerGetAttributes`) and refuses a NULL
//! pointer, host memory (pageable or pinned), an address the driver does not know, memory of
//! another device and memory of another context on this device, so that a wrong pointer is an
//! error and not a crash or a silent write into someone else's memory. The length cannot be checked
//! in general (pool and virtual-memory allocations report no reliable extent): the caller's
//! promise stands for it.
//!
//! The copies ([`upload_to_device_ptr`], [`copy_to_device_ptr`]) are enqueued on the backend's one
//! stream and waited for before they return: once they return, the data are in the caller's memory
//! and any stream may read them. They do not wait for the caller's streams: work of the caller
//! that reads or writes the destination must be complete before the call.

use std::ffi::c_void;
use std::sync::Arc;

use cudarc::driver::sys::{self, CUmemorytype, CUpointer_attribute};
use cudarc::driver::{result, CudaSlice, DevicePtr, DriverError};

use super::{CudaBackend, DeviceResultExt};
use crate::error::{Error, Result};

/// Why [`check_device_ptr`] refused an address.
#[derive(Debug)]
pub enum ExternalPtrError {
    /// The address cannot be the destination: NULL, not device memory of this backend's device and
    /// context, or a length whose byte size overflows. The message says which.
    Invalid(String),
    /// The driver failed to answer (a broken context, an unloaded driver).
    Device(Error),
}

impl std::fmt::Display for ExternalPtrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExternalPtrError::Invalid(msg) => f.write_str(msg),
            ExternalPtrError::Device(e) => write!(f, "{e}"),
        }
    }
}

impl From<ExternalPtrError> for Error {
    fn from(e: ExternalPtrError) -> Self {
        match e {
            ExternalPtrError::Invalid(msg) => Error::device("check device pointer", msg),
            ExternalPtrError::Device(e) => e,
        }
    }
}

/// What the driver says about an address (`cuPointerGetAttributes`, which answers "nothing known"
/// with zeros instead of an error for an address it does not know).
#[derive(Debug, Clone, Copy)]
struct PointerInfo {
    /// `CUmemorytype` as a number (0: not a CUDA address).
    memory_type: u32,
    /// The context the memory was allocated in (NULL for pool and virtual-memory allocations).
    context: sys::CUcontext,
    /// The device the memory lives on.
    ordinal: i32,
    /// Managed (unified) memory, reachable from every device.
    managed: bool,
}

fn pointer_info(ptr: u64) -> std::result::Result<PointerInfo, DriverError> {
    let mut attrs = [
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_CONTEXT,
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_IS_MANAGED,
    ];
    // One zeroed 8-byte cell per attribute: the driver writes a 4-byte enum or int, a pointer, or a
    // boolean into each, and a zeroed little-endian cell reads back the same value whichever width
    // it wrote. Reading the memory type as a number (not as the Rust enum) keeps an unknown or
    // zero value defined.
    let mut cells = [0u64; 4];
    let mut data: [*mut c_void; 4] = [std::ptr::null_mut(); 4];
    for (d, c) in data.iter_mut().zip(cells.iter_mut()) {
        *d = (c as *mut u64).cast();
    }
    // SAFETY: `attrs` and `data` hold 4 entries each, every data pointer points to a writable,
    // 8-aligned 8-byte cell that outlives the call, which is large enough for each attribute's
    // value; the driver only reads the address `ptr`, never dereferences it on the host.
    unsafe {
        sys::cuPointerGetAttributes(
            attrs.len() as u32,
            attrs.as_mut_ptr(),
            data.as_mut_ptr(),
            ptr,
        )
    }
    .result()?;
    Ok(PointerInfo {
        memory_type: cells[0] as u32,
        context: cells[1] as usize as sys::CUcontext,
        ordinal: cells[2] as u32 as i32,
        managed: cells[3] != 0,
    })
}

fn memory_type_name(t: u32) -> &'static str {
    match t {
        t if t == CUmemorytype::CU_MEMORYTYPE_HOST as u32 => "pinned host memory",
        t if t == CUmemorytype::CU_MEMORYTYPE_DEVICE as u32 => "device memory",
        t if t == CUmemorytype::CU_MEMORYTYPE_ARRAY as u32 => "a CUDA array",
        t if t == CUmemorytype::CU_MEMORYTYPE_UNIFIED as u32 => "unified memory",
        _ => "not memory the CUDA driver knows (a host pointer?)",
    }
}

/// Checks that `ptr` can receive `len` f32 from `be`: not NULL, `len × 4` bytes addressable, and
/// device memory of `be`'s device in `be`'s context (memory from a stream-ordered pool or the
/// virtual-memory API, which carries no context, is accepted on the device's ordinal; managed memory
/// is accepted from any device). The length itself is the caller's promise: the driver gives no
/// reliable extent for every kind of allocation.
pub fn check_device_ptr(
    be: &CudaBackend,
    ptr: u64,
    len: usize,
) -> std::result::Result<(), ExternalPtrError> {
    if ptr == 0 {
        return Err(ExternalPtrError::Invalid(
            "the device pointer is NULL".into(),
        ));
    }
    let fits = len
        .checked_mul(size_of::<f32>())
        .and_then(|b| u64::try_from(b).ok())
        .and_then(|b| ptr.checked_add(b));
    if fits.is_none() {
        return Err(ExternalPtrError::Invalid(format!(
            "{len} floats at {ptr:#x} run past the end of the address space"
        )));
    }
    if !ptr.is_multiple_of(size_of::<f32>() as u64) {
        return Err(ExternalPtrError::Invalid(format!(
            "the device pointer {ptr:#x} is not aligned to 4 bytes (a float)"
        )));
    }
    be.context()
        .bind_to_thread()
        .during("check device pointer (bind context)")
        .map_err(ExternalPtrError::Device)?;
    let info = pointer_info(ptr)
        .during("check device pointer (cuPointerGetAttributes)")
        .map_err(ExternalPtrError::Device)?;
    if info.managed {
        return Ok(());
    }
    if info.memory_type != CUmemorytype::CU_MEMORYTYPE_DEVICE as u32 {
        return Err(ExternalPtrError::Invalid(format!(
            "{ptr:#x} is {}, not device memory",
            memory_type_name(info.memory_type)
        )));
    }
    let ordinal = be.context().ordinal();
    if usize::try_from(info.ordinal).ok() != Some(ordinal) {
        return Err(ExternalPtrError::Invalid(format!(
            "{ptr:#x} is memory of CUDA device {}, this context runs on device {ordinal}",
            info.ordinal
        )));
    }
    if !info.context.is_null() && info.context != be.context().cu_ctx() {
        return Err(ExternalPtrError::Invalid(format!(
            "{ptr:#x} was allocated in another CUDA context of device {ordinal} (picardiff uses \
             the device's primary context, the one the CUDA runtime API uses)"
        )));
    }
    Ok(())
}

/// Copies `src` into the device memory at `dst` on `be`'s stream and waits for the copy.
///
/// # Safety
/// `dst` must be device memory that [`check_device_ptr`] accepts for `src.len()` floats and that
/// holds at least `src.len()` floats, with no other work reading or writing it until this returns.
pub unsafe fn upload_to_device_ptr(be: &CudaBackend, src: &[f32], dst: u64) -> Result<()> {
    if src.is_empty() {
        return Ok(());
    }
    let _exclusive = be.exclusive();
    be.context()
        .bind_to_thread()
        .during("copy to device pointer (bind context)")?;
    // SAFETY: `dst` holds src.len() floats of device memory per the contract; `src` stays borrowed
    // (and so alive and unmoved) until the synchronisation below has waited for the copy.
    unsafe { result::memcpy_htod_async(dst, src, be.stream().cu_stream()) }
        .during("copy to device pointer")?;
    be.synchronize()
}

/// Copies `len` floats of `src` from element `offset` into the device memory at `dst`, device to
/// device on `be`'s stream, and waits for the copy. `src` must be a buffer of `be`.
///
/// # Safety
/// As [`upload_to_device_ptr`], for `len` floats; `dst` must not overlap `src`.
pub unsafe fn copy_to_device_ptr(
    be: &CudaBackend,
    src: &CudaSlice<f32>,
    offset: usize,
    len: usize,
    dst: u64,
) -> Result<()> {
    let _exclusive = be.exclusive();
    if !Arc::ptr_eq(src.stream(), be.stream()) && **src.stream() != **be.stream() {
        return Err(Error::device(
            "copy to device pointer",
            "the source buffer was not allocated by this CUDA backend",
        ));
    }
    match offset.checked_add(len) {
        Some(end) if end <= src.len() => {}
        _ => {
            return Err(Error::shape(
                "copy to device pointer",
                format!(
                    "range {offset}..{} out of bounds of a buffer of {}",
                    offset.saturating_add(len),
                    src.len()
                ),
            ))
        }
    }
    if len == 0 {
        return Ok(());
    }
    be.context()
        .bind_to_thread()
        .during("copy to device pointer (bind context)")?;
    // The guard records no event (the backend's context tracks none).
    let (base, _guard) = src.device_ptr(be.stream());
    let from = base + (offset * size_of::<f32>()) as u64;
    // SAFETY: `from` addresses `len` floats inside `src` (checked above), alive while it is
    // borrowed; `dst` holds `len` floats of device memory per the contract and does not overlap.
    unsafe {
        result::memcpy_dtod_async(dst, from, len * size_of::<f32>(), be.stream().cu_stream())
    }
    .during("copy to device pointer")?;
    be.synchronize()
}
