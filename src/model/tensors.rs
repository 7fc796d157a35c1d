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
fn st_err(e: safetensors::SafeTensorError) -> Error {
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

/// The header length `n` from a file's first 8 bytes, checked against the crate's limit and the
/// file's length `len`.
fn header_length(prefix: [u8; LEN_PREFIX as usize], len: u64) -> Result<u64> {
    let n = u64::from_le_bytes(prefix);
    if n > MAX_HEADER_BYTES {
        return Err(header_err("the header is too large"));
    }
    if n > len - LEN_PREFIX {
        return Err(header_err(
            "the header length runs past the end of the file",
        ));
    }
    Ok(n)
}

/// Parses and checks the `n`-byte JSON header of a `len`-byte file as the crate checks a buffer:
/// offsets that tile the data, each tensor's byte count matching its shape and dtype, and the data
/// ending where the file ends (summed with a checked add: the crate's own sum overflows, and
/// panics in a debug build, on a header whose offsets reach near 2^64).
fn parse_header(header: &[u8], n: u64, len: u64) -> Result<Metadata> {
    let meta: Metadata =
        serde_json::from_slice(header).map_err(|e| header_err(format!("invalid header: {e}")))?;
    let end = (LEN_PREFIX + n).checked_add(meta.data_len() as u64);
    if end != Some(len) {
        return Err(header_err(format!(
            "the tensors' data ends {} but the file has {len} bytes",
            end.map_or("past 2^64".to_string(), |e| format!("at byte {e}"))
        )));
    }
    Ok(meta)
}

/// The checked header of the safetensors file `bytes` (see [`parse_header`]).
pub(crate) fn metadata(bytes: &[u8]) -> Result<Metadata> {
    let len = bytes.len() as u64;
    let Some(prefix) = bytes.first_chunk::<{ LEN_PREFIX as usize }>() else {
        return Err(header_err("the header is too small"));
    };
    let n = header_length(*prefix, len)?;
    let start = LEN_PREFIX as usize;
    parse_header(&bytes[start..start + n as usize], n, len)
}

impl<'a> TensorReader<'a> {
    /// Checks the header ([`metadata`]), then parses the container with the crate.
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        metadata(bytes)?;
        Ok(TensorReader {
            src: Container::Bytes(SafeTensors::deserialize(bytes).map_err(st_err)?),
            used: BTreeSet::new(),
        })
    }
}

impl TensorReader<'static> {
    /// Reads and checks the header of the open regular file `file` of `len` bytes (see
    /// [`parse_header`]); tensors are read later, one at a time.
    pub fn from_file(mut file: File, len: u64) -> Result<Self> {
        let io = |e: std::io::Error| header_err(format!("reading the header: {e}"));
        let mut prefix = [0u8; LEN_PREFIX as usize];
        if len < LEN_PREFIX {
            return Err(header_err("the header is too small"));
        }
        file.read_exact(&mut prefix).map_err(io)?;
        let n = header_length(prefix, len)?;
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(io)?;
        let meta = parse_header(&header, n, len)?;
        Ok(TensorReader {
            src: Container::File {
                file,
                len,
                data_start: LEN_PREFIX + n,
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

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    /// A file whose tensors span several read chunks reads as the same values from the open file
    /// as from its bytes, for f32 and bf16.
    #[test]
    fn chunked_file_reads_equal_the_bytes_path() {
        let n32 = 3 * READ_CHUNK / 4 + 5; // 3 MiB + 20 bytes: four chunks, the last partial
        let f32s: Vec<u8> = (0..n32)
            .flat_map(|i| ((i as f32) * 0.25 - 7.0).to_le_bytes())
            .collect();
        let n16 = READ_CHUNK + 3;
        let bf16s: Vec<u8> = (0..n16)
            .flat_map(|i| half::bf16::from_f32(i as f32 / 64.0).to_le_bytes())
            .collect();
        let views = [
            ("a", TensorView::new(Dtype::F32, vec![n32], &f32s).unwrap()),
            (
                "b",
                TensorView::new(Dtype::BF16, vec![n16], &bf16s).unwrap(),
            ),
        ];
        let bytes = safetensors::serialize(views, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let mut from_bytes = TensorReader::new(&bytes).unwrap();
        let file = File::open(&path).unwrap();
        let mut from_file = TensorReader::from_file(file, bytes.len() as u64).unwrap();
        for (name, len) in [("a", n32), ("b", n16)] {
            let x = from_bytes.tensor(name, &[len], "test").unwrap();
            let y = from_file.tensor(name, &[len], "test").unwrap();
            assert_eq!(x.1, y.1, "{name}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&x.0), bits(&y.0), "{name}");
        }
        assert_eq!(
            from_file.tensor("a", &[n32], "test").unwrap().0[n32 - 1],
            (n32 - 1) as f32 * 0.25 - 7.0
        );
    }
}
