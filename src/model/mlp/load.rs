//! Reading and validating MLP safetensors files. Hostile input is the normal case here: every
//! failure is an `Error::Model` naming the tensor or the configuration field, and nothing is
//! allocated from a size the file claims before that size has been checked against the file.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::{
    Activation, Layer, Linear, MlpConfig, MlpWeights, Norm, WeightDtype, MLP_FORMAT_VERSION,
    MLP_METADATA_KEY,
};
use crate::error::{Error, Result};
use crate::files::{self, ReadError};
use crate::model::tensors::{self, TensorReader};
use crate::schedule::{ModelOutput, Schedule};

/// The largest model file [`super::MlpModel::from_file`] reads (1 GiB), checked against the file's
/// length before any byte is read.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Largest value accepted for any one width (D, H, E, C): far beyond an MLP denoiser, small enough
/// that products of two widths cannot overflow.
const MAX_WIDTH: usize = 1 << 24;

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        op: "reading model".into(),
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// A refused or failed read of model file `path` as an [`Error`].
fn file_err(path: &Path, max_bytes: u64, e: ReadError) -> Error {
    let p = path.display();
    match e {
        // A device or pipe has no length to check (/dev/zero would fill memory).
        ReadError::NotRegular => Error::model("file", format!("{p} is not a regular file")),
        ReadError::TooLarge(len) => Error::model(
            "file",
            format!("{p} is {len} bytes, more than the {max_bytes}-byte limit for model files"),
        ),
        ReadError::Changed => Error::model("file", format!("{p} changed size while being read")),
        ReadError::Io(e) => io_err(path, e),
    }
}

/// Reads `path` whole after checking that it is a regular file of at most `max_bytes` (and reads no
/// more than its length said, even if it grows meanwhile).
pub(super) fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    files::read_regular(path, max_bytes).map_err(|e| file_err(path, max_bytes, e))
}

/// True when the file's first bytes look like safetensors (8-byte header length, then `{`).
pub(crate) fn sniff_safetensors(path: &Path) -> Result<bool> {
    let mut head = [0u8; 9];
    let mut file = files::open_regular(path).map_err(|e| file_err(path, MAX_FILE_BYTES, e))?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]).map_err(|e| io_err(path, e))? {
            0 => break,
            k => n += k,
        }
    }
    if n == head.len() && head[8] == b'{' {
        return Ok(true);
    }
    if head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
    {
        return Ok(false);
    }
    Err(Error::model(
        "file",
        format!(
            "{} is neither a safetensors MLP nor a mixture JSON (name it *.safetensors or *.json)",
            path.display()
        ),
    ))
}

/// The configuration as written in the file, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    format_version: u32,
    dim: usize,
    hidden: usize,
    layers: usize,
    time_embed_dim: usize,
    activation: String,
    residual: bool,
    layernorm: bool,
    #[serde(default)]
    layernorm_eps: Option<f64>,
    #[serde(default)]
    cond_dim: usize,
    prediction: String,
    schedule: String,
    #[serde(default)]
    train_steps: Option<usize>,
    #[serde(default)]
    time_scale: Option<f64>,
    #[serde(default)]
    max_period: Option<f64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    training: Option<serde_json::Value>,
}

fn width(field: &str, v: usize, min: usize) -> Result<usize> {
    if v < min || v > MAX_WIDTH {
        return Err(Error::model(
            field,
            format!("{v} is out of range ({min} ..= {MAX_WIDTH})"),
        ));
    }
    Ok(v)
}

fn positive(field: &str, v: Option<f64>, default: f64, min_exclusive: f64) -> Result<f64> {
    let v = v.unwrap_or(default);
    if !(v.is_finite() && v > min_exclusive) {
        return Err(Error::model(
            field,
            format!("{v} must be finite and > {min_exclusive}"),
        ));
    }
    Ok(v)
}

/// Validates the metadata JSON into a config.
fn parse_config(text: &str) -> Result<MlpConfig> {
    let raw: RawConfig = serde_json::from_str(text).map_err(|e| {
        Error::model(
            format!("__metadata__.{MLP_METADATA_KEY}"),
            format!("not a valid configuration: {e}"),
        )
    })?;
    if raw.format_version != MLP_FORMAT_VERSION {
        return Err(Error::model(
            "format_version",
            format!(
                "version {} is not supported (this build reads version {MLP_FORMAT_VERSION})",
                raw.format_version
            ),
        ));
    }
    let time_embed_dim = width("time_embed_dim", raw.time_embed_dim, 2)?;
    if time_embed_dim % 2 != 0 {
        return Err(Error::model(
            "time_embed_dim",
            format!("{time_embed_dim} must be even (cos and sin halves)"),
        ));
    }
    let prediction = ModelOutput::from_name(&raw.prediction).map_err(|_| {
        Error::model(
            "prediction",
            format!(
                "unknown prediction `{}` (expected epsilon, sample, v, score or velocity)",
                raw.prediction
            ),
        )
    })?;
    let train_steps = raw.train_steps.unwrap_or(1000);
    Schedule::from_name(&raw.schedule, train_steps).map_err(|e| match e {
        Error::Config {
            field: crate::Field::TrainSteps,
            msg,
        } => Error::model("train_steps", msg),
        Error::Config { msg, .. } => Error::model("schedule", msg),
        e => e,
    })?;
    if raw.layers > MAX_WIDTH {
        return Err(Error::model(
            "layers",
            format!("{} is out of range (0 ..= {MAX_WIDTH})", raw.layers),
        ));
    }
    Ok(MlpConfig {
        dim: width("dim", raw.dim, 1)?,
        hidden: width("hidden", raw.hidden, 1)?,
        layers: raw.layers,
        time_embed_dim,
        activation: Activation::from_name(&raw.activation)?,
        residual: raw.residual,
        layernorm: raw.layernorm,
        layernorm_eps: positive("layernorm_eps", raw.layernorm_eps, 1e-5, 0.0)?,
        cond_dim: if raw.cond_dim == 0 {
            0
        } else {
            width("cond_dim", raw.cond_dim, 1)?
        },
        prediction,
        schedule: raw.schedule,
        train_steps,
        time_scale: positive("time_scale", raw.time_scale, 1.0, 0.0)?,
        max_period: positive("max_period", raw.max_period, 10000.0, 1.0)?,
        description: raw.description,
    })
}

/// Parameters the configuration calls for, in u128 (cannot overflow for widths ≤ 2²⁴ and any
/// `layers` ≤ 2²⁴).
fn declared_params(c: &MlpConfig) -> u128 {
    let (d, h, e, k) = (
        c.dim as u128,
        c.hidden as u128,
        c.time_embed_dim as u128,
        c.cond_dim as u128,
    );
    let lin = |i: u128, o: u128| i * o + o;
    let cond = if k > 0 { lin(k, h) } else { 0 };
    let per_layer =
        lin(h, h) + if c.residual { lin(h, h) } else { 0 } + if c.layernorm { 2 * h } else { 0 };
    let norm_out = if c.residual && c.layernorm { 2 * h } else { 0 };
    lin(e, h) + lin(h, h) + cond + lin(d, h) + c.layers as u128 * per_layer + norm_out + lin(h, d)
}

/// Reads tensors by name (the shared [`TensorReader`]), recording the Linear weights' dtype.
struct Reader<'a> {
    inner: TensorReader<'a>,
    gemm_dtype: Option<(WeightDtype, String)>,
}

impl Reader<'_> {
    /// The tensor `name` as f32, checked for shape, dtype and finiteness; every 2-D `.weight`
    /// (a Linear) must share one dtype.
    fn tensor(&mut self, name: &str, shape: &[usize], why: &str) -> Result<Vec<f32>> {
        let (values, dtype) = self.inner.tensor(name, shape, why)?;
        if name.ends_with(".weight") && shape.len() == 2 {
            match &self.gemm_dtype {
                None => self.gemm_dtype = Some((dtype, name.to_string())),
                Some((d, first)) if *d != dtype => {
                    return Err(Error::model(
                        name,
                        format!(
                            "dtype {} differs from {first} ({}): all Linear weights must share one dtype",
                            dtype.name(),
                            d.name()
                        ),
                    ))
                }
                _ => {}
            }
        }
        Ok(values)
    }

    fn linear(&mut self, prefix: &str, in_dim: usize, out_dim: usize, why: &str) -> Result<Linear> {
        Ok(Linear {
            weight: self.tensor(&format!("{prefix}.weight"), &[out_dim, in_dim], why)?,
            bias: self.tensor(&format!("{prefix}.bias"), &[out_dim], why)?,
            out_dim,
            in_dim,
        })
    }

    fn norm(&mut self, prefix: &str, h: usize, why: &str) -> Result<Norm> {
        Ok(Norm {
            weight: self.tensor(&format!("{prefix}.weight"), &[h], why)?,
            bias: self.tensor(&format!("{prefix}.bias"), &[h], why)?,
        })
    }
}

/// Parses a whole safetensors file: the configuration, then every tensor it calls for.
pub(super) fn parse(bytes: &[u8]) -> Result<(MlpConfig, MlpWeights, WeightDtype)> {
    // `tensors::metadata` checks the header length against the buffer and the crate's limit, that
    // the offsets tile the data from 0 to the end of the buffer, and that each tensor's bytes match
    // its shape and dtype (tests/mlp.rs checks each of these on crafted files).
    let meta = tensors::metadata(bytes)?;
    let text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(MLP_METADATA_KEY))
        .ok_or_else(|| {
            Error::model(
                format!("__metadata__.{MLP_METADATA_KEY}"),
                "missing: not a picardiff MLP file (its __metadata__ has no configuration)",
            )
        })?;
    let c = parse_config(text)?;
    let params = declared_params(&c);
    let max_params = (bytes.len() / 2) as u128;
    if params > max_params {
        return Err(Error::model(
            MLP_METADATA_KEY,
            format!(
                "the configuration declares {params} parameters but a {}-byte file holds at most \
                 {max_params}",
                bytes.len()
            ),
        ));
    }
    let mut r = Reader {
        inner: TensorReader::new(bytes)?,
        gemm_dtype: None,
    };
    let (d, h, e, k) = (c.dim, c.hidden, c.time_embed_dim, c.cond_dim);
    let why_h = format!("hidden = {h}");
    let time_fc1 = r.linear(
        "time_fc1",
        e,
        h,
        &format!("time_embed_dim = {e}, hidden = {h}"),
    )?;
    let time_fc2 = r.linear("time_fc2", h, h, &why_h)?;
    let cond_proj = if k > 0 {
        Some(r.linear("cond_proj", k, h, &format!("cond_dim = {k}, hidden = {h}"))?)
    } else {
        None
    };
    let input = r.linear("input", d, h, &format!("dim = {d}, hidden = {h}"))?;
    let mut layers = Vec::with_capacity(c.layers);
    for l in 0..c.layers {
        let why = format!("layer {l} of {}, hidden = {h}", c.layers);
        let norm = if c.layernorm {
            Some(r.norm(&format!("layers.{l}.norm"), h, &format!("{why}, layernorm"))?)
        } else {
            None
        };
        let fc1 = r.linear(&format!("layers.{l}.fc1"), h, h, &why)?;
        let fc2 = if c.residual {
            Some(r.linear(
                &format!("layers.{l}.fc2"),
                h,
                h,
                &format!("{why}, residual"),
            )?)
        } else {
            None
        };
        layers.push(Layer { norm, fc1, fc2 });
    }
    let norm_out = if c.residual && c.layernorm {
        Some(r.norm("norm_out", h, "residual with layernorm")?)
    } else {
        None
    };
    let output = r.linear("output", h, d, &format!("hidden = {h}, dim = {d}"))?;
    let mut names = r.inner.names();
    names.sort_unstable();
    if let Some(extra) = names.iter().find(|n| !r.inner.used.contains(**n)) {
        return Err(Error::model(
            *extra,
            format!(
                "unexpected tensor: the configuration (layers = {}, residual = {}, layernorm = {}, \
                 cond_dim = {k}) does not use it",
                c.layers, c.residual, c.layernorm
            ),
        ));
    }
    let dtype = r.gemm_dtype.map(|(d, _)| d).unwrap_or_default();
    Ok((
        c,
        MlpWeights {
            time_fc1,
            time_fc2,
            cond_proj,
            input,
            layers,
            norm_out,
            output,
        },
        dtype,
    ))
}
