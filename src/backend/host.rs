//! Host memory allocated fallibly: what does not fit is an out-of-memory error, never an abort.

use crate::error::{DeviceCode, Error, Result};

/// `len` copies of `value`, or an out-of-memory [`Error::Device`] naming `what` when the host
/// cannot hold them.
pub fn filled<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| {
        Error::device_code(
            "allocate",
            format!("cannot allocate the {len}-value {what} on the host"),
            DeviceCode::InsufficientMemory,
        )
    })?;
    out.resize(len, value);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_impossible_size_is_an_out_of_memory_error() {
        let e = super::filled(usize::MAX / 2, 0f32, "test buffer").unwrap_err();
        assert!(e.is_out_of_memory(), "{e}");
        assert!(e.to_string().contains("test buffer"), "{e}");
        assert_eq!(super::filled(3, 1u8, "x").unwrap(), vec![1, 1, 1]);
    }
}
