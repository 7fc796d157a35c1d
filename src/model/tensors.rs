//! Reading named tensors out of a safetensors file as checked f32 values, for every model family:
//! from bytes in memory, or straight from an open file one tensor at a time (so that loading a
//! large checkpoint holds the converted weights and one small buffer, not also the whole file).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use safetensors::SafeTensors;

use super::WeightDtype;
use crate::error::{Error, Result};

/// The safetensors header-length prefix, in bytes.
const LEN_PREFIX: u64 = 8;
/// The largest header accepted (the safetensors crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Bytes read from a file per call while a tensor is converted (a multiple of every dtype's size).
const READ_CHUNK: usize = 1 << 20;

/// A parse failure of the safetensors container as an [`Error`].
pub(crate) fn st_err(e: safetensors::SafeTensorError) -> Error {
    Error::model("safetensors", format!("not a valid safetensors file: {e}"))
}

fn header_err(msg: impl std::fmt::Display) -> Error {
    Error::model(
        "safetensors",
        format!("not a valid safetensors file: {msg}"),
    )
}

/// Where a [`TensorReader`]'s tensor bytes are.
enum Container<'a> {
    /// The whole file in memory, parsed by the safetensors crate.
    Bytes(SafeTensors<'a>),
    /// An open file of `len` bytes whose tensor data starts at `data_start`.
    File {
        file: File,
        len: u64,
        data_start: u64,
        meta: Metadata,
        /// Every tensor's name, in file order.
        names: Vec<String>,
    },
}

/// Reads tensors by name from one file, recording which were used (so that a loader can refuse or
/// report tensors it did not expect).
pub(crate) struct TensorReader<'a> {
    src: Container<'a>,
    /// Names read so far.
    pub used: BTreeSet<String>,
}

impl<'a> TensorReader<'a> {
    /// Parses the container (the crate checks header length, offsets and per-tensor byte counts).
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        Ok(TensorReader {
            src: Container::Bytes(SafeTensors::deserialize(bytes).map_err(st_err)?),
            used: BTreeSet::new(),
        })
    }
}

impl TensorReader<'static> {
    /// Reads and checks the header of the open regular file `file` of `len` bytes, as the crate
    /// checks a buffer: the header within the file and under the crate's limit, offsets that tile
    /// the data, each tensor's byte count matching its shape and dtype, and the data ending where
    /// the file ends. Tensors are read later, one at a time.
    pub fn from_file(mut file: File, len: u64) -> Result<Self> {
        let io = |e: std::io::Error| header_err(format!("reading the header: {e}"));
        let mut prefix = [0u8; LEN_PREFIX as usize];
        if len < LEN_PREFIX {
            return Err(header_err("the header is too small"));
        }
        file.read_exact(&mut prefix).map_err(io)?;
        let n = u64::from_le_bytes(prefix);
        if n > MAX_HEADER_BYTES {
            return Err(header_err("the header is too large"));
        }
        if n > len - LEN_PREFIX {
            return Err(header_err(
                "the header length runs past the end of the file",
            ));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(io)?;
        let meta: Metadata = serde_json::from_slice(&header)
            .map_err(|e| header_err(format!("invalid header: {e}")))?;
        let data_start = LEN_PREFIX + n;
        if data_start + meta.data_len() as u64 != len {
            return Err(header_err(format!(
                "the tensors' data ends at byte {} but the file has {len}",
                data_start + meta.data_len() as u64
            )));
        }
        Ok(TensorReader {
            src: Container::File {
                file,
                len,
                data_start,
                names: meta.offset_keys(),
                meta,
            },
            used: BTreeSet::new(),
        })
    }
}

impl TensorReader<'_> {
    /// Every tensor name in the file.
    pub fn names(&self) -> Vec<&str> {
        match &self.src {
            Container::Bytes(st) => st.names(),
            Container::File { names, .. } => names.iter().map(String::as_str).collect(),
        }
    }

    /// The shape of tensor `name`, if the file has it.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        match &self.src {
            Container::Bytes(st) => st.tensor(name).ok().map(|v| v.shape().to_vec()),
            Container::File { meta, .. } => meta.info(name).map(|i| i.shape.clone()),
        }
    }

    /// The tensor `name` as f32 with its stored dtype, checked for shape, dtype and finiteness;
    /// `why` says in an error what the tensor is for.
    pub fn tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        why: &str,
    ) -> Result<(Vec<f32>, WeightDtype)> {
        let missing = || {
            Error::model(
                name,
                format!("missing tensor (expected shape {shape:?}: {why})"),
            )
        };
        let (stored, found) = match &self.src {
            Container::Bytes(st) => {
                let v = st.tensor(name).map_err(|_| missing())?;
                (v.shape().to_vec(), v.dtype())
            }
            Container::File { meta, .. } => {
                let i = meta.info(name).ok_or_else(missing)?;
                (i.shape.clone(), i.dtype)
            }
        };
        if stored != shape {
            return Err(Error::model(
                name,
                format!("shape {stored:?}, expected {shape:?} ({why})"),
            ));
        }
        let dtype = match found {
            Dtype::F32 => WeightDtype::F32,
            Dtype::BF16 => WeightDtype::Bf16,
            Dtype::F16 => WeightDtype::F16,
            other => {
                return Err(Error::model(
                    name,
                    format!("dtype {other:?} is not supported (expected F32, BF16 or F16)"),
                ))
            }
        };
        let count: usize = shape.iter().product();
        let mut values = Vec::new();
        values
            .try_reserve_exact(count)
            .map_err(|_| Error::model(name, format!("cannot allocate {count} f32 values")))?;
        match &mut self.src {
            Container::Bytes(st) => {
                let view = st.tensor(name).map_err(|_| missing())?;
                decode(dtype, view.data(), &mut values);
            }
            Container::File {
                file,
                len,
                data_start,
                meta,
                ..
            } => {
                let info = meta.info(name).ok_or_else(missing)?;
                read_file_tensor(file, *len, *data_start, info, dtype, &mut values)
                    .map_err(|e| Error::model(name, e))?;
            }
        }
        if values.len() != count {
            // The header checks already ensure this; never trust them silently.
            return Err(Error::model(
                name,
                format!("the stored bytes do not hold shape {shape:?}"),
            ));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::model(
                name,
                format!("element {i} is {} (weights must be finite)", values[i]),
            ));
        }
        self.used.insert(name.to_string());
        Ok((values, dtype))
    }
}

/// Appends the little-endian values of `bytes` (whole elements of `dtype`) to `out` as f32.
fn decode(dtype: WeightDtype, bytes: &[u8], out: &mut Vec<f32>) {
    match dtype {
        WeightDtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        WeightDtype::Bf16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        WeightDtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
    }
}

/// Reads one tensor's bytes from `file` in [`READ_CHUNK`] pieces and decodes them into `out`;
/// a file that is no longer `len` bytes long is an error (it changed while being read).
fn read_file_tensor(
    file: &mut File,
    len: u64,
    data_start: u64,
    info: &TensorInfo,
    dtype: WeightDtype,
    out: &mut Vec<f32>,
) -> std::result::Result<(), String> {
    let changed = "the file changed while being read";
    let io = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            changed.to_string()
        } else {
            format!("reading its data: {e}")
        }
    };
    let (start, end) = info.data_offsets;
    file.seek(SeekFrom::Start(data_start + start as u64))
        .map_err(io)?;
    let mut left = end - start;
    let mut buf = vec![0u8; left.min(READ_CHUNK)];
    while left > 0 {
        let k = left.min(READ_CHUNK);
        file.read_exact(&mut buf[..k]).map_err(io)?;
        decode(dtype, &buf[..k], out);
        left -= k;
    }
    if file.metadata().map_err(io)?.len() != len {
        return Err(changed.to_string());
    }
    Ok(())
}
