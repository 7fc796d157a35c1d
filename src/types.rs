//! Backend-neutral value types shared by the models and the backends: a hidden layer's
//! [`Activation`] and a weight's [`WeightDtype`]. They sit below both `model` and `backend` (they
//! import only `error`), so a device backend can name them without importing a model.

use crate::error::{Error, Result};
use crate::Field;

/// The nonlinearity of the hidden layers (the time MLP always uses SiLU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `v·sigmoid(v) = v / (1 + e^{−v})`.
    Silu,
    /// `0.5·v·(1 + tanh(√(2/π)·(v + 0.044715·v³)))`.
    GeluTanh,
}

impl Activation {
    /// Parses `silu`, `gelu_tanh` (or `gelu`, meaning the tanh approximation).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "silu" => Ok(Activation::Silu),
            "gelu_tanh" | "gelu" => Ok(Activation::GeluTanh),
            o => Err(Error::model(
                "activation",
                format!("unknown activation `{o}` (expected silu or gelu_tanh)"),
            )),
        }
    }

    /// The canonical name.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::GeluTanh => "gelu_tanh",
        }
    }
}

/// A weight dtype: what a file stores, and what `--dtype` asks of the GPU GEMMs (on the CPU the
/// computation is f32 whatever the file holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightDtype {
    /// IEEE single precision.
    #[default]
    F32,
    /// bfloat16 (8-bit exponent, 7-bit mantissa).
    Bf16,
    /// IEEE half precision.
    F16,
}

impl WeightDtype {
    /// Parses `f32`, `bf16`, `f16` (also the safetensors spellings `F32`, `BF16`, `F16`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "f32" | "F32" => Ok(WeightDtype::F32),
            "bf16" | "BF16" => Ok(WeightDtype::Bf16),
            "f16" | "F16" => Ok(WeightDtype::F16),
            o => Err(Error::config(
                Field::Dtype,
                format!("unknown dtype `{o}` (expected f32, bf16 or f16)"),
            )),
        }
    }

    /// The lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            WeightDtype::F32 => "f32",
            WeightDtype::Bf16 => "bf16",
            WeightDtype::F16 => "f16",
        }
    }

    /// Bytes per element.
    pub fn size(&self) -> usize {
        match self {
            WeightDtype::F32 => 4,
            _ => 2,
        }
    }
}
