//! Reading input files that a user names (model files, `.npy` inputs) without trusting them: only
//! regular files, a size limit checked before reading, and never more bytes than the size said.
//! A device or pipe has no length and may never end (`/dev/zero` would fill memory), and opening a
//! named pipe blocks until a writer comes, so both are refused before opening.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Why [`read_regular`] or [`open_regular`] refused a file. Callers turn it into their own error
/// (an [`Error`](crate::Error) variant, a CLI message) with the path and the limit's meaning.
#[derive(Debug)]
pub enum ReadError {
    /// Not a regular file (a directory, device, pipe or socket).
    NotRegular,
    /// Larger than the limit: the file's length in bytes.
    TooLarge(u64),
    /// The file grew or shrank while it was read.
    Changed,
    /// The operating system's error (missing file, permissions, out of memory).
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotRegular => f.write_str("not a regular file"),
            ReadError::TooLarge(len) => write!(f, "{len} bytes is over the size limit"),
            ReadError::Changed => f.write_str("changed size while being read"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Opens `path` if it is a regular file: checked before opening and again on the open file (the
/// path may have changed in between).
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    if !std::fs::metadata(path).map_err(ReadError::Io)?.is_file() {
        return Err(ReadError::NotRegular);
    }
    let file = File::open(path).map_err(ReadError::Io)?;
    if !file.metadata().map_err(ReadError::Io)?.is_file() {
        return Err(ReadError::NotRegular);
    }
    Ok(file)
}

/// Opens the regular file `path` if it holds at most `max_bytes`, with its length in bytes.
pub fn open_limited(path: &Path, max_bytes: u64) -> Result<(File, u64), ReadError> {
    let file = open_regular(path)?;
    let len = file.metadata().map_err(ReadError::Io)?.len();
    if len > max_bytes {
        return Err(ReadError::TooLarge(len));
    }
    Ok((file, len))
}

/// The bytes of the regular file `path`, at most `max_bytes` of them (checked before reading).
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let (file, len) = open_limited(path, max_bytes)?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(usize::try_from(len).unwrap_or(usize::MAX))
        .map_err(|_| ReadError::Io(std::io::ErrorKind::OutOfMemory.into()))?;
    file.take(len + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 != len {
        return Err(ReadError::Changed);
    }
    Ok(bytes)
}
