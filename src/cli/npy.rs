//! float32 `.npy` files through the `npyz` crate: the noise inputs (`--init`, `--noise`) and the
//! sample output (`--out`).

use std::io::Read;
use std::path::Path;

use npyz::{DType, Order, TypeChar, WriterBuilder};
use picardiff::backend::Backend;
use picardiff::files::{self, ReadError};
use picardiff::prelude::CpuBackend;

use super::{output, CliError, CliResult};

/// A float32 array read from a `.npy` file, in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// `[a, b, c]`.
pub fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// Counts the bytes read through it (the `.npy` header's length).
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads a float32 array from `path`; `what` names the option in error messages (`--init`).
/// Any endianness and Fortran order are accepted; other dtypes are an error. The header is read
/// and checked first (magic, dtype, shape, and that the file's length is the header's plus the
/// data the shape declares), then exactly the declared data: a large file that is not a float32
/// `.npy` is refused without reading it.
pub fn read_f32(path: &Path, what: &str) -> CliResult<Array> {
    let err = |msg: String| CliError::new(format!("{what} `{}`: {msg}", path.display()));
    let file = files::open_regular(path).map_err(|e| {
        err(match e {
            ReadError::NotRegular => "not a regular file".to_string(),
            e => format!("cannot read: {e}"),
        })
    })?;
    let file_len = file
        .metadata()
        .map_err(|e| err(format!("cannot read: {e}")))?
        .len();
    let mut counted = Counted {
        inner: file,
        read: 0,
    };
    let npy = npyz::NpyFile::new(&mut counted)
        .map_err(|e| err(format!("not a valid .npy file ({e})")))?;
    let is_f32 = match npy.dtype() {
        DType::Plain(ts) => ts.type_char() == TypeChar::Float && ts.size_field() == 4,
        _ => false,
    };
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| err("shape does not fit in memory".into()))?;
    if !is_f32 {
        return Err(err(format!(
            "expected dtype float32 ('<f4'), got {} with shape {} (convert with .astype(np.float32))",
            npy.dtype().descr(),
            shape_str(&shape)
        )));
    }
    let order = npy.order();
    let header = npy.header().clone();
    drop(npy);
    let header_bytes = counted.read;
    let data_bytes = shape
        .iter()
        .try_fold(4u64, |n, &d| n.checked_mul(d as u64))
        .ok_or_else(|| err(format!("shape {} overflows", shape_str(&shape))))?;
    if header_bytes.checked_add(data_bytes) != Some(file_len) {
        return Err(err(format!(
            "the file has {file_len} bytes, but its {header_bytes}-byte header declares shape {} \
             ({data_bytes} bytes of float32 data)",
            shape_str(&shape)
        )));
    }
    // The values (and a C-order copy of a Fortran array) must fit in memory: an allocation
    // failure would abort.
    let copies = if order == Order::Fortran { 2 } else { 1 };
    if let Some(free) = CpuBackend.free_memory() {
        if u128::from(data_bytes) * copies > free as u128 {
            return Err(err(format!(
                "{:.1} MiB of data do not fit in the {:.1} MiB of free memory",
                data_bytes as f64 / 1048576.0,
                free as f64 / 1048576.0
            )));
        }
    }
    let data: Vec<f32> = npyz::NpyFile::with_header(header, counted.take(data_bytes))
        .into_vec()
        .map_err(|e| err(format!("truncated or unreadable data ({e})")))?;
    let data = match order {
        Order::C => data,
        Order::Fortran => fortran_to_c(&shape, &data),
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(err(format!("value {i} (row-major) is not finite")));
    }
    Ok(Array { shape, data })
}

/// Reorders a Fortran-order (column-major) array to C order.
fn fortran_to_c(shape: &[usize], data: &[f32]) -> Vec<f32> {
    let n = data.len();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        // Column-major offset of the multi-index `idx`.
        let mut off = 0;
        let mut stride = 1;
        for (i, &d) in idx.iter().zip(shape) {
            off += i * stride;
            stride *= d;
        }
        out.push(data[off]);
        // Next multi-index in row-major order.
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// Checks that `arr` has `expected` shape; `what` names the option.
pub fn expect_shape(arr: &Array, expected: &[usize], what: &str, hint: &str) -> CliResult<()> {
    if arr.shape != expected {
        return Err(CliError::new(format!(
            "{what}: expected a float32 array of shape {} ({hint}), got {}",
            shape_str(expected),
            shape_str(&arr.shape)
        )));
    }
    Ok(())
}

/// Writes `data` as a little-endian float32 `.npy` of `shape` (C order) to `path`, atomically
/// ([`output::write_atomic`]: a failed write leaves an existing file as it was).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32], what: &str) -> CliResult<()> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    output::write_atomic(path, what, |buf| {
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape)
            .writer(buf)
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_is_transposed() {
        // [[1, 2, 3], [4, 5, 6]] stored column-major.
        let f = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        assert_eq!(
            fortran_to_c(&[2, 3], &f),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
    }

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("picardiff-npy-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.npy");
        let data: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
        write_f32(&path, &[2, 3], &data, "--out").unwrap();
        let back = read_f32(&path, "--init").unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        assert_eq!(back.data, data);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
