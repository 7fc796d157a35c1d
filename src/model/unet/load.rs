//! Reading a LeRobot Diffusion Policy directory (`config.json` + `model.safetensors`, as
//! `DiffusionPolicy.save_pretrained` writes them) without conversion. The architecture and the
//! scheduler come from the checkpoint's own config, never from LeRobot's defaults; every tensor the
//! config calls for must be there with its shape, finite, and no unexpected U-Net tensor may be.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::config::{
    architecture, cfg_err, features, scheduler, MAX_CONFIG_BYTES, MAX_POLICY_BYTES,
};
use super::weights::{ConvBlock, DownLevel, ResBlock, UnetWeights, UpLevel};
use super::{DiffusionPolicy, UnetConfig};
use crate::backend::ops::{Conv, ConvShape, ConvTranspose, GroupNorm, HostTensor, Linear};
use crate::error::{Error, Result};
use crate::files;
use crate::model::tensors::TensorReader;

/// GroupNorm groups of the final conv block (LeRobot passes no `n_groups` there: the default, 8).
const FINAL_GROUPS: usize = 8;
/// The U-Net's tensors' key prefix in a policy's state dict.
const PREFIX: &str = "diffusion.unet.";

/// The prefix of a checkpoint saved from a `torch.compile`d U-Net (LeRobot's `compile_model`).
const COMPILED_PREFIX: &str = "diffusion.unet._orig_mod.";

/// Where a [`UnetReader`]'s tensors come from.
enum Source<'r, 'a> {
    /// A checkpoint's tensors under `prefix` ([`PREFIX`], or [`COMPILED_PREFIX`] when the
    /// checkpoint has it).
    File {
        r: &'r mut TensorReader<'a>,
        prefix: &'static str,
    },
    /// Random values (see [`DiffusionPolicy::with_random_weights`]).
    Random(RandomInit),
}

/// PyTorch's default initialisation, drawn from the project's Philox stream (`crate::rng`,
/// counter = value index, key = seed): weights uniform in ±1/√fan_in (fan_in = all dimensions
/// but the first), a bias uniform in the bound of the weight read before it, GroupNorm scales 1
/// and shifts 0.
struct RandomInit {
    key: [u32; 2],
    /// Values drawn so far (the next counter).
    drawn: u64,
    bound: f32,
}

impl RandomInit {
    fn tensor(&mut self, key: &str, shape: &[usize]) -> Vec<f32> {
        let len = shape.iter().product();
        if shape.len() > 1 {
            self.bound = 1.0 / (shape[1..].iter().product::<usize>().max(1) as f32).sqrt();
        } else if key.ends_with("block.1.weight") {
            return vec![1.0; len];
        } else if key.ends_with("block.1.bias") {
            return vec![0.0; len];
        }
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let c = self.drawn;
            self.drawn += 1;
            let words = crate::rng::philox4x32_10([c as u32, (c >> 32) as u32, 0, 0], self.key);
            for w in words.into_iter().take(len - out.len()) {
                let unit = (w >> 8) as f32 / (1u32 << 24) as f32;
                out.push((2.0 * unit - 1.0) * self.bound);
            }
        }
        out
    }
}

/// Reads tensors under the U-Net prefix into canonical layouts.
struct UnetReader<'r, 'a> {
    src: Source<'r, 'a>,
}

impl UnetReader<'_, '_> {
    fn raw(&mut self, key: &str, shape: &[usize], why: &str) -> Result<Vec<f32>> {
        match &mut self.src {
            Source::File { r, prefix } => Ok(r.tensor(&format!("{prefix}{key}"), shape, why)?.0),
            Source::Random(init) => Ok(init.tensor(key, shape)),
        }
    }

    fn vector(&mut self, key: &str, n: usize, why: &str) -> Result<HostTensor> {
        Ok(Arc::from(self.raw(key, &[n], why)?))
    }

    fn linear(
        &mut self,
        key: &str,
        in_dim: usize,
        out_dim: usize,
        why: &str,
    ) -> Result<Linear<HostTensor>> {
        Ok(Linear {
            in_dim,
            out_dim,
            weight: Arc::from(self.raw(&format!("{key}.weight"), &[out_dim, in_dim], why)?),
            bias: self.vector(&format!("{key}.bias"), out_dim, why)?,
        })
    }

    /// PyTorch `[cout][cin][k]` → `[k][cin][cout]`.
    fn conv(&mut self, key: &str, shape: ConvShape, why: &str) -> Result<Conv<HostTensor>> {
        let ConvShape { cin, cout, k, .. } = shape;
        let w = self.raw(&format!("{key}.weight"), &[cout, cin, k], why)?;
        let mut p = vec![0f32; w.len()];
        // In blocks of 16 output channels, so that writes fill whole cache lines and the 16
        // source rows being read stay in cache (element by element it is most of a load).
        for co0 in (0..cout).step_by(16) {
            let block = co0..(co0 + 16).min(cout);
            for ci in 0..cin {
                for kk in 0..k {
                    let dst = &mut p[(kk * cin + ci) * cout..][block.clone()];
                    for (d, co) in dst.iter_mut().zip(block.clone()) {
                        *d = w[(co * cin + ci) * k + kk];
                    }
                }
            }
        }
        Ok(Conv {
            shape,
            weight: Arc::from(p),
            bias: self.vector(&format!("{key}.bias"), cout, why)?,
        })
    }

    /// PyTorch `[cin][cout][k]` → `[cin][k][cout]`.
    fn conv_transpose(
        &mut self,
        key: &str,
        shape: ConvShape,
        why: &str,
    ) -> Result<ConvTranspose<HostTensor>> {
        let ConvShape { cin, cout, k, .. } = shape;
        let w = self.raw(&format!("{key}.weight"), &[cin, cout, k], why)?;
        let mut p = vec![0f32; w.len()];
        for ci in 0..cin {
            for co in 0..cout {
                for kk in 0..k {
                    p[(ci * k + kk) * cout + co] = w[(ci * cout + co) * k + kk];
                }
            }
        }
        Ok(ConvTranspose {
            shape,
            weight: Arc::from(p),
            bias: self.vector(&format!("{key}.bias"), cout, why)?,
        })
    }

    fn conv_block(
        &mut self,
        key: &str,
        cin: usize,
        cout: usize,
        c: &UnetConfig,
        why: &str,
    ) -> Result<ConvBlock<HostTensor>> {
        self.conv_block_groups(key, cin, cout, c, c.n_groups, why)
    }

    fn conv_block_groups(
        &mut self,
        key: &str,
        cin: usize,
        cout: usize,
        c: &UnetConfig,
        groups: usize,
        why: &str,
    ) -> Result<ConvBlock<HostTensor>> {
        let k = c.kernel_size;
        let shape = ConvShape {
            cin,
            cout,
            k,
            stride: 1,
            pad: k / 2,
        };
        Ok(ConvBlock {
            conv: self.conv(&format!("{key}.block.0"), shape, why)?,
            norm: GroupNorm {
                groups,
                ch: cout,
                gamma: self.vector(&format!("{key}.block.1.weight"), cout, why)?,
                beta: self.vector(&format!("{key}.block.1.bias"), cout, why)?,
                eps: 1e-5,
            },
        })
    }

    fn res_block(
        &mut self,
        key: &str,
        cin: usize,
        cout: usize,
        c: &UnetConfig,
    ) -> Result<ResBlock<HostTensor>> {
        let why = format!("residual block {cin} → {cout} channels");
        let film_out = if c.film_scale { 2 * cout } else { cout };
        let residual = (cin != cout)
            .then(|| {
                let shape = ConvShape {
                    cin,
                    cout,
                    k: 1,
                    stride: 1,
                    pad: 0,
                };
                self.conv(&format!("{key}.residual_conv"), shape, &why)
            })
            .transpose()?;
        Ok(ResBlock {
            cin,
            cout,
            conv1: self.conv_block(&format!("{key}.conv1"), cin, cout, c, &why)?,
            film: self.linear(
                &format!("{key}.cond_encoder.1"),
                c.cond_dim(),
                film_out,
                &format!("{why}, FiLM"),
            )?,
            conv2: self.conv_block(&format!("{key}.conv2"), cout, cout, c, &why)?,
            residual,
        })
    }
}

/// Reads every U-Net tensor `c` calls for.
fn read_weights(r: &mut UnetReader<'_, '_>, c: &UnetConfig) -> Result<UnetWeights<HostTensor>> {
    let e = c.step_embed_dim;
    let d = &c.down_dims;
    let why = format!("diffusion_step_embed_dim = {e}");
    let time1 = r.linear("diffusion_step_encoder.1", e, 4 * e, &why)?;
    let time2 = r.linear("diffusion_step_encoder.3", 4 * e, e, &why)?;
    let mut down = Vec::new();
    for (i, &ch) in d.iter().enumerate() {
        let cin = if i == 0 { c.action_dim } else { d[i - 1] };
        let blocks = [
            r.res_block(&format!("down_modules.{i}.0"), cin, ch, c)?,
            r.res_block(&format!("down_modules.{i}.1"), ch, ch, c)?,
        ];
        let down_conv = (i + 1 < d.len())
            .then(|| {
                let shape = ConvShape {
                    cin: ch,
                    cout: ch,
                    k: 3,
                    stride: 2,
                    pad: 1,
                };
                r.conv(&format!("down_modules.{i}.2"), shape, "downsampling")
            })
            .transpose()?;
        down.push(DownLevel {
            blocks,
            down: down_conv,
        });
    }
    let last = d[d.len() - 1];
    let mid = [
        r.res_block("mid_modules.0", last, last, c)?,
        r.res_block("mid_modules.1", last, last, c)?,
    ];
    let mut up = Vec::new();
    for u in 0..d.len() - 1 {
        let i = d.len() - 1 - u;
        let (hi, lo) = (d[i], d[i - 1]);
        let blocks = [
            r.res_block(&format!("up_modules.{u}.0"), 2 * hi, lo, c)?,
            r.res_block(&format!("up_modules.{u}.1"), lo, lo, c)?,
        ];
        let shape = ConvShape {
            cin: lo,
            cout: lo,
            k: 4,
            stride: 2,
            pad: 1,
        };
        up.push(UpLevel {
            blocks,
            up: r.conv_transpose(&format!("up_modules.{u}.2"), shape, "upsampling")?,
        });
    }
    // Upstream builds the final conv block with GroupNorm's default 8 groups, whatever n_groups is.
    if !d[0].is_multiple_of(FINAL_GROUPS) {
        return Err(cfg_err("down_dims", format!("the first level's {} channels are not divisible by the final block's {FINAL_GROUPS} GroupNorm groups (LeRobot cannot build this U-Net either)", d[0])));
    }
    let final_block = r.conv_block_groups(
        "final_conv.0",
        d[0],
        d[0],
        c,
        FINAL_GROUPS,
        "final conv block",
    )?;
    let shape = ConvShape {
        cin: d[0],
        cout: c.action_dim,
        k: 1,
        stride: 1,
        pad: 0,
    };
    let final_conv = r.conv("final_conv.1", shape, "final 1×1 convolution")?;
    Ok(UnetWeights {
        time1,
        time2,
        down,
        mid,
        up,
        final_block,
        final_conv,
    })
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        op: "reading policy".into(),
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

fn read(path: &Path, max: u64) -> Result<Vec<u8>> {
    files::read_regular(path, max).map_err(|e| read_err(path, max, e))
}

/// A refused or failed read of `path` (limit `max` bytes) as an [`Error`].
fn read_err(path: &Path, max: u64, e: files::ReadError) -> Error {
    match e {
        files::ReadError::TooLarge(len) => Error::model(
            "file",
            format!(
                "{} is {len} bytes, more than the {max}-byte limit",
                path.display()
            ),
        ),
        files::ReadError::NotRegular => {
            Error::model("file", format!("{} is not a regular file", path.display()))
        }
        files::ReadError::Changed => Error::model(
            "file",
            format!("{} changed size while being read", path.display()),
        ),
        files::ReadError::Io(e) => io_err(path, e),
    }
}

impl DiffusionPolicy {
    /// True when `dir` looks like a LeRobot Diffusion Policy directory (a config.json whose
    /// `type` is `diffusion`, or which has `down_dims` and `noise_scheduler_type`).
    pub fn is_policy_dir(dir: &Path) -> bool {
        let Ok(bytes) = read(&dir.join("config.json"), MAX_CONFIG_BYTES) else {
            return false;
        };
        serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| {
            v.get("type").and_then(Value::as_str) == Some("diffusion")
                || (v.get("down_dims").is_some() && v.get("noise_scheduler_type").is_some())
        })
    }

    /// Loads `dir/config.json` and `dir/model.safetensors`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_dir_with(dir, &[])
    }

    /// [`DiffusionPolicy::from_dir`] with config fields replaced first (`num_inference_steps`,
    /// `noise_scheduler_type`, `clip_sample`, …: any top-level field of config.json), so that an
    /// override is validated exactly as the checkpoint's own value would be.
    pub fn from_dir_with(dir: &Path, overrides: &[(String, Value)]) -> Result<Self> {
        let text = read(&dir.join("config.json"), MAX_CONFIG_BYTES)?;
        let mut cfg: Value = serde_json::from_slice(&text)
            .map_err(|e| cfg_err("file", format!("not valid JSON: {e}")))?;
        let Some(obj) = cfg.as_object_mut() else {
            return Err(cfg_err("file", "not a JSON object"));
        };
        for (k, v) in overrides {
            if !obj.contains_key(k) {
                return Err(cfg_err(
                    k,
                    "no such field in the policy's config (overrides replace existing fields)",
                ));
            }
            obj.insert(k.clone(), v.clone());
        }
        match cfg.get("type").and_then(Value::as_str) {
            None | Some("diffusion") => {}
            Some(t) => {
                return Err(cfg_err(
                    "type",
                    format!("`{t}` policies are not supported (expected diffusion)"),
                ))
            }
        }
        // Read tensor by tensor from the file: the whole file is never in memory beside the
        // converted weights.
        let path = dir.join("model.safetensors");
        let (file, len) = files::open_limited(&path, MAX_POLICY_BYTES)
            .map_err(|e| read_err(&path, MAX_POLICY_BYTES, e))?;
        Self::from_reader(&cfg, TensorReader::from_file(file, len)?)
    }

    /// Builds the policy from a parsed config and the bytes of its safetensors file (in memory;
    /// [`DiffusionPolicy::from_dir`] reads the file tensor by tensor instead).
    pub fn from_parts(cfg: &Value, bytes: &[u8]) -> Result<Self> {
        Self::from_reader(cfg, TensorReader::new(bytes)?)
    }

    /// Builds the policy from a parsed config and its checkpoint's tensors.
    fn from_reader(cfg: &Value, mut tr: TensorReader<'_>) -> Result<Self> {
        let scheduler = scheduler(cfg)?;
        let (mut features, action_dim) = features(cfg)?;
        let mut config = architecture(cfg, action_dim)?;
        let compiled = tr.names().iter().any(|n| n.starts_with(COMPILED_PREFIX));
        let prefix = if compiled { COMPILED_PREFIX } else { PREFIX };
        // The conditioning width from the first FiLM layer's input, checked against the config.
        let film_key = format!("{prefix}down_modules.0.0.cond_encoder.1.weight");
        let film_shape = tr.shape(&film_key).ok_or_else(|| {
            Error::model(
                &film_key,
                "missing tensor: not a Diffusion Policy U-Net checkpoint",
            )
        })?;
        let g = match film_shape.as_slice() {
            [_, w] if *w >= config.step_embed_dim => w - config.step_embed_dim,
            s => {
                return Err(Error::model(
                    &film_key,
                    format!(
                        "shape {s:?} does not fit diffusion_step_embed_dim {}",
                        config.step_embed_dim
                    ),
                ))
            }
        };
        features.has_rgb_encoder = tr
            .names()
            .iter()
            .any(|n| n.starts_with("diffusion.rgb_encoder."));
        if g != features.width() {
            return Err(Error::model(
                &film_key,
                format!(
                    "the checkpoint conditions on {g} values but its config implies {}",
                    features.describe(features.width())
                ),
            ));
        }
        config.global_cond_dim = g;
        let src = Source::File { r: &mut tr, prefix };
        let weights = read_weights(&mut UnetReader { src }, &config)?;
        let mut other = Vec::new();
        for name in tr.names() {
            if tr.used.contains(name) {
                continue;
            }
            if name.starts_with(PREFIX) {
                return Err(Error::model(
                    name,
                    "unexpected U-Net tensor: the config's architecture does not use it",
                ));
            }
            other.push(name.to_string());
        }
        other.sort();
        Ok(DiffusionPolicy {
            config,
            scheduler,
            features,
            other_tensors: other,
            weights,
        })
    }

    /// A policy of the architecture and scheduler `cfg` (a LeRobot config.json) describes, with
    /// random weights drawn as PyTorch initialises a new model (seeded, reproducible): for
    /// latency benchmarks of real architectures where no checkpoint is at hand (its samples mean
    /// nothing). The conditioning width is the config's (`Features::width`).
    pub fn with_random_weights(cfg: &Value, seed: u64) -> Result<Self> {
        let scheduler = scheduler(cfg)?;
        let (features, action_dim) = features(cfg)?;
        let mut config = architecture(cfg, action_dim)?;
        config.global_cond_dim = features.width();
        let init = RandomInit {
            key: [seed as u32, (seed >> 32) as u32],
            drawn: 0,
            bound: 1.0,
        };
        let src = Source::Random(init);
        let weights = read_weights(&mut UnetReader { src }, &config)?;
        Ok(DiffusionPolicy {
            config,
            scheduler,
            features,
            other_tensors: Vec::new(),
            weights,
        })
    }

    /// One paragraph describing the policy (`picardiff info`).
    pub fn summary(&self) -> String {
        let c = &self.config;
        let s = &self.scheduler;
        let params: usize = self.weights_len();
        let mut text = format!(
            "LeRobot Diffusion Policy U-Net: action chunk {} × {} (horizon × action_dim), down_dims {:?}, kernel {}, \
             {} groups, step embedding {}, FiLM {}, {:.2}M parameters\n\
             scheduler: {:?}, {} train steps, {} sampling steps, beta_schedule {} ({}, {}), prediction {:?}, clip_sample {}\n\
             conditioning (--cond): {}",
            c.horizon, c.action_dim, c.down_dims, c.kernel_size, c.n_groups, c.step_embed_dim,
            if c.film_scale { "scale + bias" } else { "bias only" },
            params as f64 / 1e6,
            s.kind, s.train_steps, s.steps(), s.beta_schedule, s.beta_start, s.beta_end, s.prediction,
            s.clip.map_or("off".to_string(), |r| format!("[-{r}, {r}]")),
            self.features.describe(c.global_cond_dim),
        );
        if self.features.has_rgb_encoder {
            text.push_str(
                "\nimage encoder: present in the checkpoint but not run by picardiff; compute the image \
                 features with LeRobot (once per action chunk, outside the sampling loop) and pass the \
                 whole observation vector with --cond",
            );
        }
        text
    }

    /// Parameters of the U-Net.
    fn weights_len(&self) -> usize {
        let mut n = 0;
        let _ = crate::model::unet::MapWeights::map(&self.weights, &mut |t: &HostTensor| {
            n += t.len();
            Ok(())
        });
        n
    }
}
