//! Checked conversions of the raw arguments C passes in: every pointer is NULL-checked and every
//! length is checked before a reference or slice is formed.

use std::ffi::{c_char, CStr};

use super::status::FfiError;

/// `&*p`, or a NULL-argument error naming `name`.
///
/// # Safety
/// `p` must be NULL or valid for reads of a `T` for `'a`.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, FfiError> {
    // SAFETY: non-NULL pointers are valid per the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| FfiError::null(name))
}

/// Checks an out-pointer for NULL.
pub(crate) fn arg_out<T>(p: *mut T, name: &str) -> Result<*mut T, FfiError> {
    if p.is_null() {
        Err(FfiError::null(name))
    } else {
        Ok(p)
    }
}

/// A NUL-terminated UTF-8 string, `None` for NULL.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn opt_str<'a>(
    p: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, FfiError> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(Some)
        .map_err(|_| FfiError::invalid(format!("`{name}` is not valid UTF-8")))
}

/// A required NUL-terminated UTF-8 string.
///
/// # Safety
/// As [`opt_str`].
pub(crate) unsafe fn req_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    // SAFETY: forwarded contract.
    unsafe { opt_str(p, name) }?.ok_or_else(|| FfiError::null(name))
}

fn check_len<T>(len: usize, name: &str) -> Result<(), FfiError> {
    let fits = matches!(len.checked_mul(size_of::<T>()), Some(b) if b <= isize::MAX as usize);
    if !fits {
        return Err(FfiError::invalid(format!(
            "`{name}_len` = {len} is larger than any buffer can be"
        )));
    }
    Ok(())
}

/// An optional input buffer: NULL with length 0 is `None`; NULL with a non-zero length is an error.
///
/// # Safety
/// `p` must be NULL or point to `len` initialised `T` valid for reads for `'a`.
pub(crate) unsafe fn opt_slice<'a, T>(
    p: *const T,
    len: usize,
    name: &str,
) -> Result<Option<&'a [T]>, FfiError> {
    if p.is_null() {
        return if len == 0 {
            Ok(None)
        } else {
            Err(FfiError::invalid(format!(
                "`{name}` is NULL but `{name}_len` is {len}"
            )))
        };
    }
    check_len::<T>(len, name)?;
    // SAFETY: non-NULL, `len` elements valid per the caller's contract, size checked above.
    Ok(Some(unsafe { std::slice::from_raw_parts(p, len) }))
}

/// A required input buffer (may be empty, but not NULL).
///
/// # Safety
/// As [`opt_slice`].
pub(crate) unsafe fn req_slice<'a, T>(
    p: *const T,
    len: usize,
    name: &str,
) -> Result<&'a [T], FfiError> {
    if p.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: forwarded contract.
    unsafe { opt_slice(p, len, name) }.map(|s| s.unwrap_or_default())
}

/// Moves `value` into a new heap handle and stores its pointer in `*out`.
///
/// # Safety
/// `out` must be valid for a write (checked non-NULL by the caller with [`arg_out`]).
pub(crate) unsafe fn write_handle<T>(out: *mut *mut T, value: T) {
    // SAFETY: the caller checked `out` and guarantees it is writable.
    unsafe { *out = Box::into_raw(Box::new(value)) };
}

/// Frees a handle made by [`write_handle`]; NULL is a no-op.
///
/// # Safety
/// `p` must be NULL or a pointer returned by the matching `_new` that was not freed yet.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: per the caller's contract, `p` came from `Box::into_raw` and is freed once.
        drop(unsafe { Box::from_raw(p) });
    }
}
