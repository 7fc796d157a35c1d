//! Reading named tensors out of a safetensors file as checked f32 values, for every model family.

use std::collections::BTreeSet;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::WeightDtype;
use crate::error::{Error, Result};

/// A parse failure of the safetensors container as an [`Error`].
pub(crate) fn st_err(e: safetensors::SafeTensorError) -> Error {
    Error::model("safetensors", format!("not a valid safetensors file: {e}"))
}

/// Reads tensors by name from one file, recording which were used (so that a loader can refuse or
/// report tensors it did not expect).
pub(crate) struct TensorReader<'a> {
    /// The parsed file.
    pub st: SafeTensors<'a>,
    /// Names read so far.
    pub used: BTreeSet<String>,
}

impl<'a> TensorReader<'a> {
    /// Parses the container (the crate checks header length, offsets and per-tensor byte counts).
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        Ok(TensorReader {
            st: SafeTensors::deserialize(bytes).map_err(st_err)?,
            used: BTreeSet::new(),
        })
    }

    /// The tensor `name` as f32 with its stored dtype, checked for shape, dtype and finiteness;
    /// `why` says in an error what the tensor is for.
    pub fn tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        why: &str,
    ) -> Result<(Vec<f32>, WeightDtype)> {
        let view: TensorView<'_> = self.st.tensor(name).map_err(|_| {
            Error::model(
                name,
                format!("missing tensor (expected shape {shape:?}: {why})"),
            )
        })?;
        if view.shape() != shape {
            return Err(Error::model(
                name,
                format!("shape {:?}, expected {shape:?} ({why})", view.shape()),
            ));
        }
        let dtype = match view.dtype() {
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
        let data = view.data();
        let values: Vec<f32> = match dtype {
            WeightDtype::F32 => bytemuck::pod_collect_to_vec::<u8, u32>(data)
                .into_iter()
                .map(|b| f32::from_bits(u32::from_le(b)))
                .collect(),
            WeightDtype::Bf16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                .collect(),
            WeightDtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                .collect(),
        };
        if values.len() != shape.iter().product::<usize>() {
            // The safetensors crate already checks this; never trust it silently.
            return Err(Error::model(
                name,
                format!("{} bytes do not hold shape {shape:?}", data.len()),
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
