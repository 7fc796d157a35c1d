//! Status codes, the thread-local last-error message and the panic boundary every export runs in.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::Error;

/// The result of every fallible picardiff function. The numbers are part of the ABI: they are never
/// changed or reused, and new codes are only ever appended.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum picardiff_status {
    /// Success.
    PICARDIFF_OK = 0,
    /// A required pointer argument was NULL.
    PICARDIFF_NULL_ARGUMENT = 1,
    /// An argument is malformed: an unknown enum value, a string that is not UTF-8, a length that
    /// does not fit in memory, a NULL buffer with a non-zero length.
    PICARDIFF_INVALID_ARGUMENT = 2,
    /// A sampler setting is out of range or inconsistent (unknown schedule name, zero steps, ...).
    PICARDIFF_INVALID_CONFIG = 3,
    /// A model description is malformed (bad mixture JSON, zero dimension, ...).
    PICARDIFF_INVALID_MODEL = 4,
    /// A buffer's length does not match the run's shape (`batch × dim`, `steps × batch × dim`).
    PICARDIFF_SHAPE_MISMATCH = 5,
    /// Reading a file failed.
    PICARDIFF_IO = 6,
    /// A state or model output became NaN or infinite.
    PICARDIFF_NON_FINITE = 7,
    /// A device is unavailable or a device operation failed.
    PICARDIFF_DEVICE = 8,
    /// A callback model's function returned non-zero (the message names the code) or panicked.
    PICARDIFF_CALLBACK_FAILED = 9,
    /// The operation is not available in this build or on this device.
    PICARDIFF_UNSUPPORTED = 10,
    /// The output buffer was too small; what fitted was written.
    PICARDIFF_BUFFER_TOO_SMALL = 11,
    /// A Picard sampler reached its iteration cap before converging: the picard sampler its
    /// `max_iters`, or a block of the blocks sampler its `iters` with an error above `tol`.
    PICARDIFF_NOT_CONVERGED = 12,
    /// A bug: picardiff panicked. The panic was caught at the boundary; the handles passed to the
    /// call are still valid and may be freed.
    PICARDIFF_PANIC = 13,
    /// The run needs more memory than the host or device has free (refused before allocating),
    /// or the device failed an allocation. Smaller batches or windows may fit.
    PICARDIFF_OUT_OF_MEMORY = 14,
}

use picardiff_status::*;

/// Every status with its static description, in numeric order.
const STATUS_STRINGS: &[(picardiff_status, &str)] = &[
    (PICARDIFF_OK, "ok\0"),
    (
        PICARDIFF_NULL_ARGUMENT,
        "a required pointer argument was NULL\0",
    ),
    (PICARDIFF_INVALID_ARGUMENT, "invalid argument\0"),
    (PICARDIFF_INVALID_CONFIG, "invalid sampler configuration\0"),
    (PICARDIFF_INVALID_MODEL, "invalid model\0"),
    (
        PICARDIFF_SHAPE_MISMATCH,
        "buffer length does not match the run's shape\0",
    ),
    (PICARDIFF_IO, "i/o error\0"),
    (PICARDIFF_NON_FINITE, "non-finite value (NaN or infinity)\0"),
    (PICARDIFF_DEVICE, "device error\0"),
    (PICARDIFF_CALLBACK_FAILED, "the model callback failed\0"),
    (
        PICARDIFF_UNSUPPORTED,
        "not supported by this build or device\0",
    ),
    (PICARDIFF_BUFFER_TOO_SMALL, "buffer too small\0"),
    (
        PICARDIFF_NOT_CONVERGED,
        "the sampler did not converge within its iteration cap (max_iters, or iters per block)\0",
    ),
    (PICARDIFF_PANIC, "internal error (a panic was caught)\0"),
    (PICARDIFF_OUT_OF_MEMORY, "out of memory\0"),
];

/// A static, NUL-terminated description of `status` ("unknown status" for numbers this version
/// does not know). Never NULL; never free it.
#[no_mangle]
pub extern "C" fn picardiff_status_str(status: c_int) -> *const c_char {
    let text = STATUS_STRINGS
        .iter()
        .find(|(s, _)| *s as c_int == status)
        .map_or("unknown status\0", |(_, t)| t);
    text.as_ptr().cast()
}

/// A failed call: the status to return and the message for [`picardiff_last_error`].
#[derive(Debug)]
pub(crate) struct FfiError {
    pub status: picardiff_status,
    pub msg: String,
}

impl FfiError {
    pub fn new(status: picardiff_status, msg: impl Into<String>) -> Self {
        FfiError {
            status,
            msg: msg.into(),
        }
    }
    pub fn null(arg: &str) -> Self {
        Self::new(PICARDIFF_NULL_ARGUMENT, format!("argument `{arg}` is NULL"))
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(PICARDIFF_INVALID_ARGUMENT, msg)
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::NotConverged { .. } | Error::BlockNotConverged { .. } => PICARDIFF_NOT_CONVERGED,
            Error::Callback { .. } | Error::CallbackPanicked { .. } => PICARDIFF_CALLBACK_FAILED,
            Error::CallbackOutput { .. } => PICARDIFF_NON_FINITE,
            Error::Config { .. } => PICARDIFF_INVALID_CONFIG,
            Error::Model { .. } => PICARDIFF_INVALID_MODEL,
            Error::Shape { .. } => PICARDIFF_SHAPE_MISMATCH,
            Error::Io { .. } => PICARDIFF_IO,
            Error::NonFinite { .. } => PICARDIFF_NON_FINITE,
            e @ Error::Device { .. } if e.is_out_of_memory() => PICARDIFF_OUT_OF_MEMORY,
            Error::Device { .. } => PICARDIFF_DEVICE,
        };
        FfiError::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(msg: String) {
    // `try_with` fails only while the thread is being torn down; the status still reports the error.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = msg);
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

/// Runs an export's body: a panic becomes [`picardiff_status::PICARDIFF_PANIC`], an error its
/// status; both set the thread's last-error message to `"{func}: {message}"`.
pub(crate) fn boundary(
    func: &str,
    body: impl FnOnce() -> Result<(), FfiError>,
) -> picardiff_status {
    let (status, msg) = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return PICARDIFF_OK,
        Ok(Err(e)) => (e.status, e.msg),
        Err(payload) => (
            PICARDIFF_PANIC,
            format!(
                "panic: {} (please report this bug)",
                panic_message(&*payload)
            ),
        ),
    };
    set_last_error(format!("{func}: {msg}"));
    status
}

/// Runs a body that cannot report a status (`_free`, getters of static data): a panic is caught and
/// `fallback` returned.
pub(crate) fn boundary_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// The panic boundary of an export returning `picardiff_status` (rustls-ffi's
/// `ffi_panic_boundary!`): `ffi_boundary!("picardiff_x", { ...; Ok(()) })`. `?` works inside the
/// block, on anything convertible into `FfiError`.
macro_rules! ffi_boundary {
    ($func:literal, $body:block) => {
        $crate::ffi::status::boundary(
            $func,
            move || -> Result<(), $crate::ffi::status::FfiError> { $body },
        )
    };
}
pub(crate) use ffi_boundary;

/// Copies this thread's last error message into `buf` (`len` bytes) as a NUL-terminated UTF-8
/// string, and its length in bytes (without the NUL) into `*written` when `written` is not NULL.
///
/// The message describes the most recent call on this thread that returned a status other than
/// `PICARDIFF_OK` (successful calls leave it unchanged; "" before any failure); it starts with the
/// failing function's name. A message longer than `len - 1` bytes is cut at a character boundary
/// and `PICARDIFF_BUFFER_TOO_SMALL` is returned; `buf` may be NULL when `len` is 0 (`*written` is
/// then 0 and the status tells whether a message exists: OK for none, BUFFER_TOO_SMALL otherwise).
/// This function never changes the last error itself. 512 bytes hold every message picardiff
/// writes except ones quoting long file paths; `picardiff_last_error_len() + 1` bytes hold any.
///
/// # Safety
/// `buf` must be NULL or point to `len` writable bytes; `written` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn picardiff_last_error(
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> picardiff_status {
    boundary_or(PICARDIFF_PANIC, || {
        let msg = LAST_ERROR
            .try_with(|e| e.borrow().clone())
            .unwrap_or_default();
        if buf.is_null() && len > 0 {
            return PICARDIFF_NULL_ARGUMENT;
        }
        let mut n = msg.len().min(len.saturating_sub(1));
        while !msg.is_char_boundary(n) {
            n -= 1;
        }
        if len > 0 {
            // SAFETY: the caller guarantees `len` writable bytes at `buf`; n + 1 <= len, and
            // `msg` is a separate Rust allocation.
            unsafe {
                std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        if !written.is_null() {
            // SAFETY: non-NULL, and the caller guarantees it is valid for a write.
            unsafe { *written = n };
        }
        if n < msg.len() {
            PICARDIFF_BUFFER_TOO_SMALL
        } else {
            PICARDIFF_OK
        }
    })
}

/// The length in bytes (without the NUL) of this thread's last error message; 0 when there is none.
#[no_mangle]
pub extern "C" fn picardiff_last_error_len() -> usize {
    boundary_or(0, || LAST_ERROR.try_with(|e| e.borrow().len()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DeviceCode;

    #[test]
    fn status_strings_cover_every_status_in_order() {
        for (i, (s, text)) in STATUS_STRINGS.iter().enumerate() {
            assert_eq!(*s as usize, i, "status table out of order at {s:?}");
            assert!(text.ends_with('\0') && !text[..text.len() - 1].contains('\0'));
        }
        assert_eq!(STATUS_STRINGS.len(), PICARDIFF_OUT_OF_MEMORY as usize + 1);
    }

    #[test]
    fn library_errors_map_to_their_statuses() {
        let e = FfiError::from(Error::NotConverged { iters: 3, step: 0 });
        assert_eq!(e.status, PICARDIFF_NOT_CONVERGED);
        assert!(
            e.msg.contains("not converged after 3 iterations"),
            "{}",
            e.msg
        );
        let e = Error::device_code("alloc", "no room", DeviceCode::InsufficientMemory);
        assert_eq!(FfiError::from(e).status, PICARDIFF_OUT_OF_MEMORY);
        let e = Error::device_code("alloc", "cuMemAlloc", DeviceCode::Driver(2));
        assert_eq!(FfiError::from(e).status, PICARDIFF_OUT_OF_MEMORY);
        let e = Error::device_code("launch", "bad", DeviceCode::Runtime(1));
        assert_eq!(FfiError::from(e).status, PICARDIFF_DEVICE);
        assert_eq!(
            FfiError::from(Error::device("open", "no GPU")).status,
            PICARDIFF_DEVICE
        );
        let e = Error::config(crate::Field::MaxIters, "must be at least 1");
        assert_eq!(FfiError::from(e).status, PICARDIFF_INVALID_CONFIG);
        let e = FfiError::from(Error::Callback { code: -5 });
        assert_eq!(e.status, PICARDIFF_CALLBACK_FAILED);
        assert!(e.msg.contains("returned -5"), "{}", e.msg);
        let e = Error::CallbackPanicked { msg: "boom".into() };
        assert_eq!(FfiError::from(e).status, PICARDIFF_CALLBACK_FAILED);
        let e = Error::CallbackOutput {
            value: f32::NAN,
            row: 0,
            element: 1,
            t: 3.0,
        };
        assert_eq!(FfiError::from(e).status, PICARDIFF_NON_FINITE);
        let e = Error::model("means", "empty");
        assert_eq!(FfiError::from(e).status, PICARDIFF_INVALID_MODEL);
    }
}
