//! Caller-owned device memory: checking a raw `CUdeviceptr` that an application hands to picardiff
//! (through the C ABI, say) and copying results into it on the backend's stream.
//!
//! An application that keeps its tensors on the GPU (PyTorch, its own CUDA code) gives picardiff a
//! bare address. Nothing in the type says whether it is device memory, of which device, or how
//! long it is; [`check_device_ptr`] asks the driver (`cuPointerGetAttributes`) and refuses a NULL
//! pointer, host memory (pageable or pinned), an address the driver does not know, memory of
//! another device and memory of another context on this device, so that a wrong pointer is an
//! error and not a crash or a silent write into someone else's memory. It also checks the length
//! against the allocation's extent as the driver reports it (`CU_POINTER_ATTRIBUTE_RANGE_START_ADDR`
//! and `_RANGE_SIZE`): the bytes to write must lie inside the one allocation the pointer is in
//! ([`check_extent`]). What this cannot catch: a pointer into a larger allocation that the
//! application sub-allocates itself (PyTorch's caching allocator hands out pieces of big segments),
//! where the extent is the segment's; and for virtual-memory mappings (`cuMemMap`, PyTorch's
//! expandable segments), whose range is one physical handle's, the check follows contiguous
//! mappings of the same device, so two reservations that happen to be adjacent read as one.
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
    /// The address is device memory, but the floats to write do not fit in its allocation (as
    /// far as the driver reports it; see [`check_extent`]). The message gives both sizes.
    Extent(String),
    /// The driver failed to answer (a broken context, an unloaded driver).
    Device(Error),
}

impl std::fmt::Display for ExternalPtrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExternalPtrError::Invalid(msg) | ExternalPtrError::Extent(msg) => f.write_str(msg),
            ExternalPtrError::Device(e) => write!(f, "{e}"),
        }
    }
}

impl From<ExternalPtrError> for Error {
    fn from(e: ExternalPtrError) -> Self {
        match e {
            ExternalPtrError::Invalid(msg) => Error::device("check device pointer", msg),
            ExternalPtrError::Extent(msg) => Error::shape("check device pointer", msg),
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
    /// The stream-ordered pool the memory came from (NULL if none).
    mempool: sys::CUmemoryPool,
    /// The allocation that holds the address (for a virtual-memory mapping: the mapped handle).
    range: AddrRange,
    /// Whether the address is mapped (false for a reserved but unmapped virtual address).
    mapped: bool,
}

impl PointerInfo {
    /// Memory of the virtual-memory API (`cuMemCreate` + `cuMemMap`): neither a context nor a pool.
    fn is_vmm(&self) -> bool {
        self.context.is_null() && self.mempool.is_null() && !self.managed
    }
}

const ATTRS: usize = 8;

fn pointer_info(ptr: u64) -> std::result::Result<PointerInfo, DriverError> {
    let mut attrs: [CUpointer_attribute; ATTRS] = [
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_CONTEXT,
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_IS_MANAGED,
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE,
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_RANGE_SIZE,
        CUpointer_attribute::CU_POINTER_ATTRIBUTE_MAPPED,
    ];
    // One zeroed 8-byte cell per attribute: the driver writes a 4-byte enum or int, a pointer, a
    // size, an address or a boolean into each, and a zeroed little-endian cell reads back the same
    // value whichever width it wrote. Reading the memory type as a number (not as the Rust enum)
    // keeps an unknown or zero value defined.
    let mut cells = [0u64; ATTRS];
    let mut data: [*mut c_void; ATTRS] = [std::ptr::null_mut(); ATTRS];
    for (d, c) in data.iter_mut().zip(cells.iter_mut()) {
        *d = (c as *mut u64).cast();
    }
    // SAFETY: `attrs` and `data` hold ATTRS entries each, every data pointer points to a writable,
    // 8-aligned 8-byte cell that outlives the call, which is large enough for each attribute's
    // value (at most a pointer or a size_t); the driver only reads the address `ptr`, never
    // dereferences it on the host.
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
        mempool: cells[4] as usize as sys::CUmemoryPool,
        range: AddrRange {
            start: cells[5],
            size: cells[6],
        },
        mapped: cells[7] != 0,
    })
}

/// An address range `[start, start + size)` (an allocation's extent as the driver reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    /// First byte.
    pub start: u64,
    /// Bytes (0: the driver reports none).
    pub size: u64,
}

/// The most consecutive virtual-memory mappings [`check_extent`] follows (each at least the
/// driver's allocation granularity, 2 MiB on current GPUs, so far more than any sample buffer).
pub const MAX_MAPPINGS: usize = 4096;

/// Whether `bytes` bytes from `ptr` lie inside the allocation `first` that the driver reports for
/// `ptr`: `Ok(Ok(()))` if they do, `Ok(Err(why))` if they do not (every sum is checked, so an
/// overflowing range is refused, never wrapped). With `follow` (virtual-memory mappings, where one
/// reservation can hold several physical handles and the driver reports only the handle's range),
/// a range that ends too early is continued by asking `next` for the range at its end: it must
/// start exactly there (`None`: nothing mapped there, or memory of another kind), at most
/// [`MAX_MAPPINGS`] times. `next`'s errors (the driver's) pass through as `Err`.
pub fn check_extent<E>(
    ptr: u64,
    bytes: u64,
    first: AddrRange,
    follow: bool,
    mut next: impl FnMut(u64) -> std::result::Result<Option<AddrRange>, E>,
) -> std::result::Result<std::result::Result<(), String>, E> {
    let Some(end) = ptr.checked_add(bytes) else {
        return Ok(Err(format!(
            "{bytes} bytes at {ptr:#x} run past the end of the address space"
        )));
    };
    if first.size == 0 {
        return Ok(Err(format!(
            "the driver reports no allocation extent for {ptr:#x}"
        )));
    }
    let Some(first_end) = first.start.checked_add(first.size) else {
        return Ok(Err(format!(
            "the driver reports an allocation of {} bytes at {:#x}, past the end of the address \
             space",
            first.size, first.start
        )));
    };
    if ptr < first.start || ptr >= first_end {
        return Ok(Err(format!(
            "{ptr:#x} lies outside the allocation the driver reports for it ({} bytes at {:#x})",
            first.size, first.start
        )));
    }
    if end <= first_end {
        return Ok(Ok(()));
    }
    let short = |upto: u64, what: &str| {
        format!(
            "{bytes} bytes at {ptr:#x} do not fit: {what} ends at {upto:#x}, {} bytes from the \
             pointer ({} bytes short)",
            upto - ptr,
            end - upto
        )
    };
    if !follow {
        return Ok(Err(short(
            first_end,
            &format!(
                "its allocation ({} bytes at {:#x})",
                first.size, first.start
            ),
        )));
    }
    let mut upto = first_end;
    for _ in 0..MAX_MAPPINGS {
        let Some(r) = next(upto)? else {
            return Ok(Err(short(upto, "the mapped memory")));
        };
        if r.start != upto || r.size == 0 {
            return Ok(Err(short(upto, "the mapped memory")));
        }
        let Some(r_end) = r.start.checked_add(r.size) else {
            return Ok(Err(short(upto, "the mapped memory")));
        };
        upto = r_end;
        if end <= upto {
            return Ok(Ok(()));
        }
    }
    Ok(Err(format!(
        "{bytes} bytes at {ptr:#x} span more than {MAX_MAPPINGS} virtual-memory mappings; \
         not checked"
    )))
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
/// is accepted from any device), and the `len × 4` bytes inside the allocation that holds `ptr`
/// ([`check_extent`]; [`ExternalPtrError::Extent`] otherwise). Within an allocation the length is
/// still the caller's promise (see the module docs).
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
    if !info.managed {
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
                "{ptr:#x} was allocated in another CUDA context of device {ordinal} (picardiff \
                 uses the device's primary context, the one the CUDA runtime API uses)"
            )));
        }
    }
    // `len × 4` fits in a u64 (checked above).
    let bytes = (len * size_of::<f32>()) as u64;
    // Virtual-memory mappings: the next mapped handle of the same device, right after this one.
    let next = |at: u64| -> Result<Option<AddrRange>> {
        let n = pointer_info(at).during("check device pointer (cuPointerGetAttributes)")?;
        let same = n.memory_type == CUmemorytype::CU_MEMORYTYPE_DEVICE as u32
            && n.mapped
            && n.is_vmm()
            && n.ordinal == info.ordinal;
        Ok(same.then_some(n.range))
    };
    match check_extent(ptr, bytes, info.range, info.is_vmm(), next) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(ExternalPtrError::Extent(why)),
        Err(e) => Err(ExternalPtrError::Device(e)),
    }
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

#[cfg(test)]
mod tests {
    use super::{check_extent, AddrRange, MAX_MAPPINGS};

    const A: AddrRange = AddrRange {
        start: 0x1000,
        size: 0x100,
    };

    /// No further mapping (an ordinary allocation is never followed).
    fn none(_: u64) -> Result<Option<AddrRange>, ()> {
        Ok(None)
    }

    fn check(ptr: u64, bytes: u64, first: AddrRange, follow: bool) -> Result<(), String> {
        check_extent(ptr, bytes, first, follow, none).unwrap()
    }

    #[test]
    fn inside_one_allocation() {
        assert_eq!(check(0x1000, 0x100, A, false), Ok(())); // the whole allocation
        assert_eq!(check(0x10fc, 4, A, false), Ok(())); // the last float
        assert_eq!(check(0x1080, 0, A, false), Ok(()));
        // One float too many, at the start and at an offset: the message gives both sizes.
        let e = check(0x1000, 0x104, A, false).unwrap_err();
        assert!(
            e.contains("260 bytes") && e.contains("4 bytes short"),
            "{e}"
        );
        assert!(e.contains("256 bytes at 0x1000"), "{e}");
        let e = check(0x1080, 0x84, A, false).unwrap_err();
        assert!(e.contains("128 bytes from the pointer"), "{e}");
        // An address outside the reported range, and no range at all.
        assert!(check(0x1100, 4, A, false).unwrap_err().contains("outside"));
        assert!(check(0xfff, 4, A, false).unwrap_err().contains("outside"));
        let none = AddrRange { start: 0, size: 0 };
        assert!(check(0x1000, 4, none, false)
            .unwrap_err()
            .contains("no allocation extent"));
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        let top = AddrRange {
            start: u64::MAX - 0xff,
            size: 0x100,
        };
        // An end of exactly 2^64 is not representable: refused like any overflow.
        let e = check(u64::MAX - 3, 4, top, false).unwrap_err();
        assert!(e.contains("address space"), "{e}");
        let e = check(u64::MAX - 3, 8, top, false).unwrap_err();
        assert!(e.contains("address space"), "{e}");
        let e = check(0x1000, u64::MAX, A, false).unwrap_err();
        assert!(e.contains("address space"), "{e}");
        let wraps = AddrRange {
            start: u64::MAX - 0xff,
            size: 0x200,
        };
        let e = check(u64::MAX - 0xff, 4, wraps, false).unwrap_err();
        assert!(e.contains("an allocation of 512 bytes"), "{e}");
        // A following mapping whose end overflows ends the walk.
        let r = check_extent(0x1000, 0x200, A, true, |at| {
            Ok::<_, ()>(Some(AddrRange {
                start: at,
                size: u64::MAX,
            }))
        });
        assert!(r.unwrap().is_err());
    }

    #[test]
    fn virtual_memory_follows_contiguous_mappings() {
        // Three 0x100-byte handles mapped back to back from 0x1000, nothing after 0x1300.
        let map = |at: u64| -> Result<Option<AddrRange>, ()> {
            Ok((0x1000..0x1300).contains(&at).then_some(AddrRange {
                start: at & !0xff,
                size: 0x100,
            }))
        };
        assert_eq!(check_extent(0x1080, 0x280, A, true, map).unwrap(), Ok(()));
        let e = check_extent(0x1080, 0x284, A, true, map)
            .unwrap()
            .unwrap_err();
        assert!(e.contains("mapped memory ends at 0x1300"), "{e}");
        // Without following, the first handle's end is the limit.
        assert!(check_extent(0x1080, 0x100, A, false, map).unwrap().is_err());
        // A range that does not start where the last one ended is a gap.
        let gap = |at: u64| -> Result<Option<AddrRange>, ()> {
            Ok(Some(AddrRange {
                start: at + 0x10,
                size: 0x100,
            }))
        };
        assert!(check_extent(0x1000, 0x104, A, true, gap).unwrap().is_err());
        // The driver's errors pass through.
        assert_eq!(
            check_extent(0x1000, 0x104, A, true, |_| Err::<Option<AddrRange>, _>(7)),
            Err(7)
        );
        // The walk is bounded.
        let mut calls = 0;
        let endless = |at: u64| -> Result<Option<AddrRange>, ()> {
            calls += 1;
            Ok(Some(AddrRange {
                start: at,
                size: 0x100,
            }))
        };
        let e = check_extent(0x1000, 1 << 40, A, true, endless)
            .unwrap()
            .unwrap_err();
        assert!(e.contains("more than"), "{e}");
        assert_eq!(calls, MAX_MAPPINGS);
    }
}
