//! A LeRobot Diffusion Policy's config.json: the scheduler, the observation features and the
//! U-Net's architecture, each field checked (the checkpoint's values, never LeRobot's defaults).

use serde_json::Value;

use super::UnetConfig;
use crate::error::{Error, Result};
use crate::schedule::{ClipSample, Grid, ModelOutput, Schedule, Spacing, StepRule};

/// The largest `model.safetensors` read (4 GiB; LeRobot's image policy is ~1 GB in f32).
pub const MAX_POLICY_BYTES: u64 = 4 << 30;
/// The largest config.json read.
pub(super) const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest width accepted for any channel count, horizon or embedding (products stay small).
const MAX_WIDTH: usize = 1 << 16;

/// Which diffusers scheduler the policy samples with (`noise_scheduler_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerType {
    /// `DDPMScheduler` (variance `fixed_small`): the `ddpm` rule.
    Ddpm,
    /// `DDIMScheduler` (η = 0, `set_alpha_to_one`): the `ddim` rule.
    Ddim,
}

/// A policy's scheduler settings (LeRobot's config fields of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct DpScheduler {
    /// `noise_scheduler_type`.
    pub kind: SchedulerType,
    /// `num_train_timesteps`.
    pub train_steps: usize,
    /// `num_inference_steps` (None: the training steps).
    pub inference_steps: Option<usize>,
    /// `beta_schedule` (diffusers' name).
    pub beta_schedule: String,
    /// `beta_start`.
    pub beta_start: f64,
    /// `beta_end`.
    pub beta_end: f64,
    /// `prediction_type`.
    pub prediction: ModelOutput,
    /// `clip_sample`: the clamp range of x̂0 (`clip_sample_range`), None when off.
    pub clip: Option<f64>,
}

impl DpScheduler {
    /// The noise schedule.
    pub fn schedule(&self) -> Result<Schedule> {
        Schedule::diffusers(
            &self.beta_schedule,
            self.train_steps,
            self.beta_start,
            self.beta_end,
        )
    }

    /// Sampling steps: `num_inference_steps`, or every training step.
    pub fn steps(&self) -> usize {
        self.inference_steps.unwrap_or(self.train_steps)
    }

    /// The grid diffusers' scheduler walks (leading spacing, steps_offset 0, clean end α = 1).
    pub fn grid(&self, schedule: &Schedule) -> Result<Grid> {
        Grid::discrete(schedule, self.steps(), Spacing::Leading)
    }

    /// The step rule: DDPM is `ddim` with η = 1, DDIM has η = 0.
    pub fn rule(&self) -> StepRule {
        match self.kind {
            SchedulerType::Ddpm => StepRule::Ddim { eta: 1.0 },
            SchedulerType::Ddim => StepRule::Ddim { eta: 0.0 },
        }
    }

    /// The clipping of x̂0 the scheduler applies, if any.
    pub fn clip_sample(&self) -> Option<ClipSample> {
        self.clip.map(|r| ClipSample::for_rule(self.rule(), r))
    }
}

/// The observation inputs a checkpoint's config names, which make up its global conditioning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// `observation.state` width.
    pub state: usize,
    /// `observation.environment_state` width.
    pub env_state: usize,
    /// Image inputs (cameras).
    pub cameras: usize,
    /// Features per camera from the image encoder (2 × `spatial_softmax_num_keypoints`).
    pub image_features: usize,
    /// `n_obs_steps`.
    pub n_obs_steps: usize,
    /// True when the checkpoint carries the image encoder (`diffusion.rgb_encoder.*`).
    pub has_rgb_encoder: bool,
}

impl Features {
    /// The conditioning width the config implies.
    pub fn width(&self) -> usize {
        (self.state + self.env_state + self.cameras * self.image_features) * self.n_obs_steps
    }

    /// How a conditioning vector of width `g` is made up, for messages: per observation frame
    /// LeRobot concatenates `[state, image features camera by camera, environment_state]`, and the
    /// `n_obs_steps` frames oldest first.
    pub fn describe(&self, g: usize) -> String {
        let mut parts = vec![format!("state {}", self.state)];
        if self.cameras > 0 {
            parts.push(format!(
                "{} camera(s) × {} image features",
                self.cameras, self.image_features
            ));
        }
        if self.env_state > 0 {
            parts.push(format!("environment_state {}", self.env_state));
        }
        format!(
            "{g} = ({}) × n_obs_steps {}: per frame the normalised observation features in that order, frames oldest first",
            parts.join(" + "),
            self.n_obs_steps
        )
    }
}

pub(super) fn cfg_err(field: &str, msg: impl Into<String>) -> Error {
    Error::model(format!("config.json: {field}"), msg)
}

fn get<'a>(cfg: &'a Value, field: &str) -> Result<&'a Value> {
    cfg.get(field)
        .ok_or_else(|| cfg_err(field, "missing (the policy's config must state it)"))
}

fn uint(cfg: &Value, field: &str, min: usize) -> Result<usize> {
    let v = get(cfg, field)?;
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| (min..=MAX_WIDTH).contains(&n))
        .ok_or_else(|| {
            cfg_err(
                field,
                format!("{v} is not an integer in {min}..={MAX_WIDTH}"),
            )
        })
}

fn float(cfg: &Value, field: &str) -> Result<f64> {
    let v = get(cfg, field)?;
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| cfg_err(field, format!("{v} is not a finite number")))
}

fn boolean(cfg: &Value, field: &str) -> Result<bool> {
    let v = get(cfg, field)?;
    v.as_bool()
        .ok_or_else(|| cfg_err(field, format!("{v} is not true or false")))
}

fn string<'a>(cfg: &'a Value, field: &str) -> Result<&'a str> {
    let v = get(cfg, field)?;
    v.as_str()
        .ok_or_else(|| cfg_err(field, format!("{v} is not a string")))
}

/// The width of a 1-D feature (`{"type": ..., "shape": [w]}`).
fn feature_width(name: &str, f: &Value) -> Result<usize> {
    let shape = f.get("shape").and_then(Value::as_array);
    match shape.map(|s| s.as_slice()) {
        Some([w]) => w
            .as_u64()
            .and_then(|w| usize::try_from(w).ok())
            .filter(|&w| (1..=MAX_WIDTH).contains(&w))
            .ok_or_else(|| cfg_err(name, format!("shape {w} is not a width"))),
        _ => Err(cfg_err(name, "shape must be [width]")),
    }
}

/// The scheduler fields of a policy config.
pub(super) fn scheduler(cfg: &Value) -> Result<DpScheduler> {
    let kind = match string(cfg, "noise_scheduler_type")? {
        "DDPM" => SchedulerType::Ddpm,
        "DDIM" => SchedulerType::Ddim,
        o => {
            return Err(cfg_err(
                "noise_scheduler_type",
                format!("`{o}` is not supported (expected DDPM or DDIM)"),
            ))
        }
    };
    let train_steps = uint(cfg, "num_train_timesteps", 2)?;
    let inference_steps = match cfg.get("num_inference_steps") {
        None | Some(Value::Null) => None,
        Some(_) => Some(uint(cfg, "num_inference_steps", 1)?),
    };
    let prediction = match string(cfg, "prediction_type")? {
        "epsilon" => ModelOutput::Epsilon,
        "sample" => ModelOutput::Sample,
        o => {
            return Err(cfg_err(
                "prediction_type",
                format!("`{o}` is not supported (expected epsilon or sample)"),
            ))
        }
    };
    let clip = if boolean(cfg, "clip_sample")? {
        let r = float(cfg, "clip_sample_range")?;
        if r <= 0.0 {
            return Err(cfg_err(
                "clip_sample_range",
                format!("must be > 0, got {r}"),
            ));
        }
        Some(r)
    } else {
        None
    };
    let s = DpScheduler {
        kind,
        train_steps,
        inference_steps,
        beta_schedule: string(cfg, "beta_schedule")?.to_string(),
        beta_start: float(cfg, "beta_start")?,
        beta_end: float(cfg, "beta_end")?,
        prediction,
        clip,
    };
    s.schedule()?;
    if s.steps() > s.train_steps {
        return Err(cfg_err(
            "num_inference_steps",
            format!(
                "{} exceeds num_train_timesteps {}",
                s.steps(),
                s.train_steps
            ),
        ));
    }
    Ok(s)
}

impl Features {
    /// The observation features a policy config names (`input_features`, `n_obs_steps`,
    /// `spatial_softmax_num_keypoints`), and its action width (`output_features`).
    pub fn from_config(cfg: &Value) -> Result<(Features, usize)> {
        features(cfg)
    }
}

/// The observation features and the action width from `input_features`/`output_features`.
pub(super) fn features(cfg: &Value) -> Result<(Features, usize)> {
    let empty = serde_json::Map::new();
    let inputs = get(cfg, "input_features")?.as_object().unwrap_or(&empty);
    let mut f = Features {
        n_obs_steps: uint(cfg, "n_obs_steps", 1)?,
        ..Features::default()
    };
    for (name, feat) in inputs {
        match feat.get("type").and_then(Value::as_str) {
            Some("STATE") => f.state += feature_width(name, feat)?,
            Some("ENV") => f.env_state += feature_width(name, feat)?,
            Some("VISUAL") => f.cameras += 1,
            _ => {}
        }
    }
    if f.cameras > 0 {
        f.image_features = 2 * uint(cfg, "spatial_softmax_num_keypoints", 1)?;
    }
    let outputs = get(cfg, "output_features")?.as_object().unwrap_or(&empty);
    let action = outputs
        .iter()
        .find(|(_, v)| v.get("type").and_then(Value::as_str) == Some("ACTION"))
        .ok_or_else(|| cfg_err("output_features", "no ACTION feature"))?;
    Ok((f, feature_width(action.0, action.1)?))
}

/// The architecture fields; the conditioning width is checked against the tensors later.
pub(super) fn architecture(cfg: &Value, action_dim: usize) -> Result<UnetConfig> {
    let dims = get(cfg, "down_dims")?
        .as_array()
        .filter(|a| !a.is_empty() && a.len() <= 8)
        .ok_or_else(|| cfg_err("down_dims", "must be a list of 1 to 8 channel counts"))?;
    let down_dims = dims
        .iter()
        .map(|d| {
            d.as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .filter(|&d| (1..=MAX_WIDTH).contains(&d))
                .ok_or_else(|| cfg_err("down_dims", format!("{d} is not a channel count")))
        })
        .collect::<Result<Vec<_>>>()?;
    let c = UnetConfig {
        action_dim,
        horizon: uint(cfg, "horizon", 1)?,
        kernel_size: uint(cfg, "kernel_size", 1)?,
        n_groups: uint(cfg, "n_groups", 1)?,
        step_embed_dim: uint(cfg, "diffusion_step_embed_dim", 4)?,
        film_scale: boolean(cfg, "use_film_scale_modulation")?,
        global_cond_dim: 0,
        down_dims,
    };
    if c.kernel_size.is_multiple_of(2) {
        return Err(cfg_err(
            "kernel_size",
            format!(
                "{} is even: the U-Net's convolutions keep the length only for odd kernels",
                c.kernel_size
            ),
        ));
    }
    if !c.step_embed_dim.is_multiple_of(2) {
        return Err(cfg_err("diffusion_step_embed_dim", "must be even"));
    }
    let levels = c.down_dims.len();
    if !c.horizon.is_multiple_of(1 << (levels - 1)) {
        return Err(cfg_err(
            "horizon",
            format!(
                "{} is not divisible by 2^(levels − 1) = {} ({levels} down_dims)",
                c.horizon,
                1 << (levels - 1)
            ),
        ));
    }
    if let Some(d) = c.down_dims.iter().find(|&&d| d % c.n_groups != 0) {
        return Err(cfg_err(
            "n_groups",
            format!("{} does not divide the channel count {d}", c.n_groups),
        ));
    }
    Ok(c)
}
