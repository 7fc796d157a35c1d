//! The `Model` class: a loaded model (mixture, MLP, Diffusion Policy or Python callback) and its
//! `sample` and `compare` methods.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use numpy::{PyArray1, PyArrayDyn, PyArrayMethods};
use picardiff::model::{load_model, ModelFile};
use picardiff::prelude::*;
use picardiff::metrics::Deviation;
use picardiff::sampler::auto::Choice;
use pyo3::exceptions::{PyTypeError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{json, Map, Value};

use crate::arrays::{self, Inputs, View};
use crate::config::{self, Loaded, Net, Problem, Sampler};
use crate::error::{panic_error, PdError, PdResult};
use picardiff::spec::{ConfigOverride, DeviceName, RunSpec, SamplerName};

/// The samples of each run and the stats dict.
type Outputs<'py> = (Vec<Bound<'py, PyArrayDyn<f32>>>, Bound<'py, PyDict>);

/// Loads a model file or policy directory with the GIL released (a large checkpoint takes a
/// while); a missing path is a `FileNotFoundError`.
pub fn load_file(py: Python<'_>, path: &Path) -> PdResult<ModelFile> {
    if !path.exists() {
        return Err(PdError::NotFound(
            format!("no such model file or directory: {}", path.display()),
            path.display().to_string(),
        ));
    }
    py.detach(|| catch_unwind(AssertUnwindSafe(|| load_model(path))))
        .map_err(panic_error)?
        .map_err(PdError::from)
}

/// A model picardiff samples from: `picardiff.load(path)` or `picardiff.callback_model(...)`.
#[pyclass(frozen, module = "picardiff", name = "Model")]
pub struct Model {
    inner: Loaded,
    path: Option<PathBuf>,
}

impl Model {
    pub fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
        let inner = match load_file(py, &path)? {
            ModelFile::Mixture(m) => Loaded::Mixture(m),
            ModelFile::Mlp(m) => Loaded::Mlp(m),
            ModelFile::Policy(p) => Loaded::Policy {
                dir: path.clone(),
                policy: p,
            },
        };
        Ok(Model {
            inner,
            path: Some(path),
        })
    }

    pub fn callback(
        func: Bound<'_, PyAny>,
        dim: usize,
        output: &str,
        schedule: &str,
        train_steps: Option<usize>,
    ) -> PyResult<Model> {
        if !func.is_callable() {
            return Err(PdError::arg("fn", "must be callable: fn(x, t) -> array").into());
        }
        if dim == 0 {
            return Err(PdError::arg("dim", "must be at least 1, got 0").into());
        }
        let output = ModelOutput::from_name(output).map_err(PdError::from)?;
        let train_steps = train_steps.unwrap_or(picardiff::schedule::DEFAULT_TRAIN_STEPS);
        // Validates the name and the training steps now rather than at the first sample.
        Schedule::from_name(schedule, train_steps).map_err(PdError::from)?;
        Ok(Model {
            inner: Loaded::Callback {
                func: func.unbind(),
                dim,
                output,
                schedule: schedule.to_string(),
                train_steps,
            },
            path: None,
        })
    }

    fn policy(&self) -> Option<&picardiff::model::DiffusionPolicy> {
        match &self.inner {
            Loaded::Policy { policy, .. } => Some(policy),
            _ => None,
        }
    }

    /// Validates the arguments and borrows the arrays, then runs `kinds` on the same inputs.
    #[allow(clippy::too_many_arguments)]
    fn prepare_and_run<'py>(
        &self,
        py: Python<'py>,
        opts: &RunSpec,
        init: Option<&Bound<'py, PyAny>>,
        noise: Option<&Bound<'py, PyAny>>,
        cond: Option<&Bound<'py, PyAny>>,
        compare: bool,
    ) -> PyResult<Outputs<'py>> {
        let init_g = arrays::input(init, "init")?;
        let noise_g = arrays::input(noise, "noise")?;
        let cond_g = arrays::input(cond, "cond")?;
        let inputs = Inputs {
            init: view(&init_g)?,
            noise: view(&noise_g)?,
            cond: view(&cond_g)?,
        };
        let device = opts.device.unwrap_or(picardiff::defaults::DEVICE);
        check_device(device, &self.inner)?;
        let mut warnings = Vec::new();
        let (problem, mut sampler) = config::problem(&self.inner, opts, inputs, &mut warnings)?;
        for w in &warnings {
            let msg = std::ffi::CString::new(w.as_str()).unwrap_or_default();
            PyErr::warn(py, &py.get_type::<PyUserWarning>(), &msg, 2)?;
        }
        let kinds: Vec<&SamplerKind> = if compare {
            vec![&SamplerKind::Sequential, &sampler.kind]
        } else {
            vec![&sampler.kind]
        };
        // compare runs a parallel sampler: auto compares picard.
        let auto = sampler.auto && !compare;
        let (outs, device, choice) = run_native(py, device, &problem, &kinds, auto)?;
        if sampler.auto && compare {
            sampler.info.insert("sampler".into(), json!("picard"));
        } else if sampler.auto {
            // Which ran: the choice, or (a callback model) the picard candidate.
            let chosen = choice.as_ref().map_or(json!({"chosen": "picard"}), |c| c.stats());
            sampler.info.insert("auto".into(), chosen);
        }
        let arrays: Vec<Bound<'py, PyArrayDyn<f32>>> = outs
            .iter()
            .map(|o| PyArray1::from_slice(py, &o.samples).reshape(problem.sample_shape.clone()))
            .collect::<PyResult<_>>()?;
        let par = outs.last().expect("one run at least");
        let mut stats = stats_json(
            if compare { "compare" } else { "sample" },
            device,
            &sampler,
            &problem,
            &par.stats,
        );
        if compare {
            let seq = &outs[0];
            let dim = problem.dim();
            stats.extend(Deviation::of(&par.samples, &seq.samples, dim).json());
            stats.insert("sequential_rounds".into(), json!(seq.stats.rounds));
            stats.insert("sequential_nfe".into(), json!(seq.stats.nfe));
            stats.insert("sequential_wall_ms".into(), json!(seq.stats.wall_ms));
            stats.insert("sequential_host_syncs".into(), json!(seq.stats.host_syncs));
        }
        let dict = to_py(py, &Value::Object(stats))?.cast_into::<PyDict>()?;
        Ok((arrays, dict))
    }
}

/// The view of an optional checked array.
fn view<'a>(g: &'a Option<numpy::PyReadonlyArrayDyn<'_, f32>>) -> PdResult<Option<View<'a>>> {
    g.as_ref().map(View::of).transpose()
}

/// Refuses an unknown device name, and CUDA for a callback model, before anything runs.
fn check_device(name: DeviceName, model: &Loaded) -> PdResult<()> {
    match name {
        DeviceName::Cuda if matches!(model, Loaded::Callback { .. }) => Err(PdError::arg(
            "device",
            "a callback model runs on the CPU only (device='cpu')",
        )),
        _ => Ok(()),
    }
}

/// Runs `kinds` on `problem` on the device `name`, with the GIL released and panics caught; a
/// callback's exception is raised as it is.
fn run_native(
    py: Python<'_>,
    name: DeviceName,
    problem: &Problem<'_>,
    kinds: &[&SamplerKind],
    auto: bool,
) -> PyResult<(Vec<RunOutput>, &'static str, Option<Choice>)> {
    let res = py.detach(|| {
        catch_unwind(AssertUnwindSafe(|| {
            device::run_all(name, problem, kinds, auto)
        }))
    });
    match res {
        Err(payload) => Err(panic_error(payload).into()),
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => {
            if let Net::Callback(cb) = &problem.net {
                if let Some(err) = cb.take_error() {
                    return Err(err);
                }
            }
            Err(e.into())
        }
    }
}

/// Backend selection over the library's one dispatch (`picardiff::device`).
mod device {
    use super::*;
    use picardiff::device::{Device, ModelRef};

    #[cfg(not(feature = "cuda"))]
    const NO_CUDA: &str = "built without CUDA support: reinstall with \
        MATURIN_PEP517_ARGS=\"--features cuda\" pip install ./python";

    /// Runs each of `kinds` in turn on one opened backend; the backend's name. With `auto`, the
    /// last kind (the picard candidate) is first resolved by auto's choice (a callback model is
    /// not run for measurement: it runs the candidate), which is returned too.
    pub fn run_all(
        name: DeviceName,
        problem: &Problem<'_>,
        kinds: &[&SamplerKind],
        auto: bool,
    ) -> PdResult<(Vec<RunOutput>, &'static str, Option<Choice>)> {
        // A Python function gets host arrays: the CPU backend whatever `auto` would pick.
        let name = match problem.net {
            Net::Callback(_) => DeviceName::Cpu,
            _ => name,
        };
        let device = match Device::open(name, 0) {
            Ok((d, _)) => d,
            #[cfg(not(feature = "cuda"))]
            Err(_) => return Err(PdError::Picard(format!("device: {NO_CUDA}"))),
            #[cfg(feature = "cuda")]
            Err(e) => return Err(PdError::Picard(format!("cannot open CUDA device 0: {e}"))),
        };
        let choice = match (auto, kinds.last()) {
            (true, Some(k)) => choose(&device, problem, k)?,
            _ => None,
        };
        let chosen: Vec<&SamplerKind> = match &choice {
            Some(c) => vec![&c.kind],
            None => kinds.to_vec(),
        };
        let outs = chosen
            .iter()
            .map(|k| run_one(&device, problem, k))
            .collect::<PdResult<_>>()?;
        Ok((outs, device.name(), choice))
    }

    /// Auto's choice for `problem` (None for a callback model).
    fn choose(d: &Device, p: &Problem<'_>, picard: &SamplerKind) -> PdResult<Option<Choice>> {
        let (g, inputs) = (&p.grid, p.inputs());
        let m = match &p.net {
            Net::Gmm(m) => ModelRef::Gmm(m),
            Net::Mlp(m) => ModelRef::Mlp(m),
            Net::Policy(m) => ModelRef::Policy(m),
            Net::Callback(_) => return Ok(None),
        };
        Ok(Some(m.choose(d, g, p.rule, picard, &inputs)?))
    }

    fn run_one(d: &Device, p: &Problem<'_>, kind: &SamplerKind) -> PdResult<RunOutput> {
        let (g, inputs) = (&p.grid, p.inputs());
        Ok(match &p.net {
            Net::Gmm(m) => ModelRef::Gmm(m).run(d, g, p.rule, kind, &inputs),
            Net::Mlp(m) => ModelRef::Mlp(m).run(d, g, p.rule, kind, &inputs),
            Net::Policy(m) => ModelRef::Policy(m).run(d, g, p.rule, kind, &inputs),
            Net::Callback(m) => d.run_cpu_only("callback models", m, g, p.rule, kind, &inputs),
        }?)
    }
}

/// The stats of one run (the CLI's stats JSON: the problem, the sampler's settings, the counters).
fn stats_json(
    command: &str,
    device: &str,
    sampler: &Sampler,
    problem: &Problem<'_>,
    stats: &RunStats,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("command".into(), json!(command));
    m.insert("device".into(), json!(device));
    m.extend(sampler.info.clone());
    m.extend(problem.info.clone());
    m.extend(stats.json(&sampler.kind));
    m
}

/// A JSON value as the Python object `json.loads` would give.
fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, Some(i)) => i.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

#[pymethods]
impl Model {
    /// Elements per sample (a policy's horizon × action_dim).
    #[getter]
    fn dim(&self) -> usize {
        match &self.inner {
            Loaded::Mixture(m) => m.dim,
            Loaded::Mlp(m) => m.config().dim,
            Loaded::Policy { policy, .. } => policy.config.horizon * policy.config.action_dim,
            Loaded::Callback { dim, .. } => *dim,
        }
    }

    /// "mixture", "mlp", "policy" or "callback".
    #[getter]
    fn kind(&self) -> &'static str {
        match &self.inner {
            Loaded::Mixture(_) => "mixture",
            Loaded::Mlp(_) => "mlp",
            Loaded::Policy { .. } => "policy",
            Loaded::Callback { .. } => "callback",
        }
    }

    /// Width of the per-sample conditioning `cond` (a policy's global_cond_dim; 0: none).
    #[getter]
    fn cond_dim(&self) -> usize {
        self.policy().map_or(0, |p| p.config.global_cond_dim)
    }

    /// A policy's action horizon T (None for other models).
    #[getter]
    fn horizon(&self) -> Option<usize> {
        self.policy().map(|p| p.config.horizon)
    }

    /// A policy's action dimension A (None for other models).
    #[getter]
    fn action_dim(&self) -> Option<usize> {
        self.policy().map(|p| p.config.action_dim)
    }

    /// The schedule the model names (an MLP's or a callback's; a policy's as picardiff names it);
    /// None for a mixture, which takes `schedule=` in `sample`.
    #[getter]
    fn schedule(&self) -> Option<String> {
        match &self.inner {
            Loaded::Mixture(_) => None,
            Loaded::Mlp(m) => Some(m.config().schedule.clone()),
            Loaded::Policy { policy, .. } => policy
                .scheduler
                .schedule()
                .ok()
                .map(|s| s.name().to_string()),
            Loaded::Callback { schedule, .. } => Some(schedule.clone()),
        }
    }

    /// What the model predicts: "epsilon", "score", "sample" or "v".
    #[getter]
    fn output(&self) -> &'static str {
        let out = match &self.inner {
            // GmmModel predicts ε exactly.
            Loaded::Mixture(_) => ModelOutput::Epsilon,
            Loaded::Mlp(m) => m.config().prediction,
            Loaded::Policy { policy, .. } => policy.scheduler.prediction,
            Loaded::Callback { output, .. } => *output,
        };
        match out {
            ModelOutput::Epsilon => "epsilon",
            ModelOutput::Score => "score",
            ModelOutput::Sample => "sample",
            ModelOutput::V => "v",
            ModelOutput::Velocity => "velocity",
        }
    }

    /// The file or directory the model was loaded from (None for a callback model).
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    /// `picardiff info`'s text (callback models: one line).
    fn summary(&self) -> String {
        match &self.inner {
            Loaded::Mixture(m) => ModelFile::Mixture(m.clone()).summary(),
            Loaded::Mlp(m) => m.summary(),
            Loaded::Policy { policy, .. } => policy.summary(),
            Loaded::Callback {
                dim,
                schedule,
                train_steps,
                ..
            } => format!(
                "Python callback model: dim {dim}, output {}, schedule {schedule} ({train_steps} train steps)",
                self.output()
            ),
        }
    }

    fn __repr__(&self) -> String {
        match &self.path {
            Some(p) => format!(
                "picardiff.Model(kind={:?}, dim={}, path={:?})",
                self.kind(),
                self.dim(),
                p.display().to_string()
            ),
            None => format!(
                "picardiff.Model(kind={:?}, dim={})",
                self.kind(),
                self.dim()
            ),
        }
    }

    /// Runs one sampler; returns `(samples, stats)`. See the type stubs for the arguments: every
    /// keyword but the arrays and `set` is a field of picardiff's run specification.
    #[pyo3(signature = (*, init = None, noise = None, cond = None, set = None, **spec))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        init: Option<Bound<'py, PyAny>>,
        noise: Option<Bound<'py, PyAny>>,
        cond: Option<Bound<'py, PyAny>>,
        set: Option<Bound<'py, PyDict>>,
        spec: Option<Bound<'py, PyDict>>,
    ) -> PyResult<(Bound<'py, PyArrayDyn<f32>>, Bound<'py, PyDict>)> {
        let opts = run_spec(py, spec, set)?;
        let (mut arrays, stats) = self.prepare_and_run(
            py,
            &opts,
            init.as_ref(),
            noise.as_ref(),
            cond.as_ref(),
            false,
        )?;
        Ok((arrays.remove(0), stats))
    }

    /// Runs the sequential sampler and `sampler` (picard or blocks) on the same noise; returns
    /// `(samples, sequential_samples, stats)`.
    #[pyo3(signature = (*, init = None, noise = None, cond = None, set = None, **spec))]
    #[allow(clippy::type_complexity)]
    fn compare<'py>(
        &self,
        py: Python<'py>,
        init: Option<Bound<'py, PyAny>>,
        noise: Option<Bound<'py, PyAny>>,
        cond: Option<Bound<'py, PyAny>>,
        set: Option<Bound<'py, PyDict>>,
        spec: Option<Bound<'py, PyDict>>,
    ) -> PyResult<(
        Bound<'py, PyArrayDyn<f32>>,
        Bound<'py, PyArrayDyn<f32>>,
        Bound<'py, PyDict>,
    )> {
        let opts = run_spec(py, spec, set)?;
        if opts.sampler == Some(SamplerName::Sequential) {
            return Err(PyValueError::new_err(
                "sampler: compare runs the sequential sampler against picard or blocks; choose one of those",
            ));
        }
        let (mut arrays, stats) = self.prepare_and_run(
            py,
            &opts,
            init.as_ref(),
            noise.as_ref(),
            cond.as_ref(),
            true,
        )?;
        let par = arrays.pop().expect("two runs");
        let seq = arrays.pop().expect("two runs");
        Ok((par, seq, stats))
    }
}

/// `set={"key": value}` as (key, JSON value) pairs, values through Python's `json.dumps`.
fn run_spec(
    py: Python<'_>,
    spec: Option<Bound<'_, PyDict>>,
    set: Option<Bound<'_, PyDict>>,
) -> PyResult<RunSpec> {
    let dumps = py.import("json")?.getattr("dumps")?;
    let mut out = RunSpec::default();
    for (k, v) in spec.iter().flat_map(|d| d.iter()) {
        let key: String = k.extract()?;
        if !RunSpec::FIELDS.contains(&key.as_str()) || key == "set" {
            return Err(PyTypeError::new_err(format!(
                "got an unexpected keyword argument '{key}'"
            )));
        }
        if let Ok(x) = v.extract::<f64>() {
            if !x.is_finite() && !v.is_instance_of::<pyo3::types::PyInt>() {
                return Err(PdError::arg(&key, format!("must be finite, got {x}")).into());
            }
        }
        let text: String = dumps.call1((&v,))?.extract()?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| PdError::arg(&key, format!("not a JSON value: {e}")))?;
        let one: RunSpec = serde_json::from_value(json!({ key.as_str(): value }))
            .map_err(|e| PdError::arg(&key, e))?;
        out = out.overlaid(&one);
    }
    if let Some(set) = set {
        for (k, v) in set.iter() {
            let key: String = k.extract().map_err(|_| {
                PdError::arg("set", "keys must be strings (config.json field names)")
            })?;
            let text: String = dumps.call1((&v,))?.extract()?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| PdError::arg("set", format!("`{key}`: {e}")))?;
            out.set.push(ConfigOverride { key, value });
        }
    }
    Ok(out)
}
