//! Loading a model of any supported kind from a path ([`load_model`]).

use std::path::Path;

use super::mlp::sniff_safetensors;
use super::{DiffusionPolicy, Mixture, MlpModel};
use crate::error::{Error, Result};

/// A model of any kind the crate reads.
#[derive(Debug, Clone)]
pub enum ModelFile {
    /// A Gaussian mixture JSON (the exact model; the caller supplies the schedule).
    Mixture(Mixture),
    /// An MLP safetensors file (carries its own schedule).
    Mlp(Box<MlpModel>),
    /// A LeRobot Diffusion Policy directory (carries its own scheduler).
    Policy(Box<DiffusionPolicy>),
}

impl ModelFile {
    /// Elements per state.
    pub fn dim(&self) -> usize {
        match self {
            ModelFile::Mixture(m) => m.dim,
            ModelFile::Mlp(m) => m.config().dim,
            ModelFile::Policy(p) => p.config.horizon * p.config.action_dim,
        }
    }

    /// One line describing the model.
    pub fn summary(&self) -> String {
        match self {
            ModelFile::Mixture(m) => format!(
                "Gaussian mixture (exact score): dim {}, {} components",
                m.dim,
                m.components()
            ),
            ModelFile::Mlp(m) => m.summary(),
            ModelFile::Policy(p) => p.summary(),
        }
    }
}

/// Reads a model: a directory is a LeRobot Diffusion Policy (`config.json` + `model.safetensors`),
/// `*.safetensors` an MLP, `*.json` a mixture; other file names are told apart by their first bytes
/// (a safetensors file starts with an 8-byte header length and then `{`).
pub fn load_model(path: &Path) -> Result<ModelFile> {
    if path.is_dir() {
        return if path.join("config.json").is_file() && path.join("model.safetensors").is_file() {
            Ok(ModelFile::Policy(Box::new(DiffusionPolicy::from_dir(
                path,
            )?)))
        } else {
            Err(Error::model(
                "file",
                format!(
                    "{} is a directory without config.json and model.safetensors (a LeRobot policy directory has both)",
                    path.display()
                ),
            ))
        };
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let is_mlp = match ext.as_deref() {
        Some("safetensors") => true,
        Some("json") => false,
        _ => sniff_safetensors(path)?,
    };
    if is_mlp {
        Ok(ModelFile::Mlp(Box::new(MlpModel::from_file(path)?)))
    } else {
        Ok(ModelFile::Mixture(Mixture::from_file(path)?))
    }
}
