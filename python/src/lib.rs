//! `picardiff._picardiff`: the native half of the `picardiff` Python package.
//!
//! Layout: `error` maps picardiff's errors onto Python's exceptions; `arrays` checks numpy inputs
//! (float32, C-contiguous, borrowed without a copy); `config` turns `Model.sample`'s keyword
//! arguments into a validated problem and sampler exactly as the CLI turns its options into a run
//! (`src/cli/config.rs`, `src/cli/policy.rs`: the same defaults and checks); `callback` is a
//! [`picardiff::model::ScoreModel`] that calls a Python function; `model` is the `Model` class.
//!
//! The GIL is released while native code runs and taken again only around a Python callback; no
//! Rust panic reaches Python (it becomes a `PicardiffError`).

mod arrays;
mod callback;
mod config;
mod error;
mod model;

use std::path::PathBuf;

use pyo3::prelude::*;

use error::PicardiffError;

/// `picardiff.load(path)`: a mixture JSON, an MLP `.safetensors` file or a LeRobot Diffusion
/// Policy directory, as the CLI's `--model` accepts them.
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<model::Model> {
    model::Model::load(py, path)
}

/// `picardiff.info(path)`: the text of `picardiff info PATH`.
#[pyfunction]
fn info(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let file = model::load_file(py, &path)?;
    Ok(file.summary())
}

/// `picardiff.callback_model(fn, dim, output="epsilon", *, schedule, train_steps=None)`.
#[pyfunction]
#[pyo3(signature = (r#fn, dim, output = "epsilon", *, schedule, train_steps = None))]
fn callback_model(
    r#fn: Bound<'_, PyAny>,
    dim: usize,
    output: &str,
    schedule: &str,
    train_steps: Option<usize>,
) -> PyResult<model::Model> {
    model::Model::callback(r#fn, dim, output, schedule, train_steps)
}

#[pymodule]
fn _picardiff(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("PicardiffError", m.py().get_type::<PicardiffError>())?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    m.add_function(wrap_pyfunction!(callback_model, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEFAULT_WINDOW", picardiff::defaults::WINDOW)?;
    m.add("cuda_available", cfg!(feature = "cuda"))?;
    Ok(())
}
