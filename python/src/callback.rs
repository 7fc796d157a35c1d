//! A score model evaluated by a Python function: `fn(x[rows, dim], t[rows]) -> out[rows, dim]`.
//!
//! The sampler runs with the GIL released; each evaluation takes it, calls the function and
//! releases it again. An exception (or a result of the wrong shape or dtype, a `ValueError`) is
//! kept here and the evaluation fails with a picardiff error, which stops the run; the caller then
//! raises the kept exception as it is, traceback included ([`PyCallback::take_error`]).

use std::sync::Mutex;

use numpy::{
    PyArray1, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use picardiff::backend::cpu::CpuBackend;
use picardiff::model::ScoreModel;
use picardiff::schedule::ModelOutput;
use picardiff::{Error, Result};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::arrays::shape_str;

/// The model of one run: the function, its state width and output kind, and the first exception.
pub struct PyCallback<'a> {
    func: &'a Py<PyAny>,
    dim: usize,
    output: ModelOutput,
    error: Mutex<Option<PyErr>>,
}

impl<'a> PyCallback<'a> {
    pub fn new(func: &'a Py<PyAny>, dim: usize, output: ModelOutput) -> Self {
        PyCallback {
            func,
            dim,
            output,
            error: Mutex::new(None),
        }
    }

    /// The exception that stopped the last run, if one did (and forgets it).
    pub fn take_error(&self) -> Option<PyErr> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Calls the function on `rows` rows and copies its result into `out`.
    fn call(
        &self,
        py: Python<'_>,
        x: &[f32],
        t: &[f32],
        rows: usize,
        out: &mut [f32],
    ) -> PyResult<()> {
        let d = self.dim;
        let xa = PyArray1::from_slice(py, x).reshape([rows, d])?;
        let ta = PyArray1::from_slice(py, t);
        let res = self.func.bind(py).call1((xa, ta))?;
        let res = match res.cast::<PyUntypedArray>() {
            Ok(a) => a.clone(),
            // A tensor or list: np.asarray, without a dtype (a wrong one is refused below).
            Err(_) => py
                .import("numpy")?
                .call_method1("asarray", (&res,))?
                .cast_into::<PyUntypedArray>()
                .map_err(PyErr::from)?,
        };
        let ok_dtype = res.dtype().is_equiv_to(&numpy::dtype::<f32>(py));
        if !ok_dtype || res.shape() != [rows, d] {
            let dtype = res.dtype().str().map(|s| s.to_string()).unwrap_or_default();
            return Err(PyValueError::new_err(format!(
                "the model callback returned an array of shape {} and dtype {dtype}; expected \
                 float32 of shape {} (rows, dim)",
                shape_str(res.shape()),
                shape_str(&[rows, d])
            )));
        }
        let typed = res.cast::<PyArrayDyn<f32>>().map_err(PyErr::from)?;
        let ro = typed.try_readonly()?;
        match ro.as_slice() {
            Ok(s) if res.is_c_contiguous() => out.copy_from_slice(s),
            // Other strides (Fortran order too, for which `as_slice` is column-major): the
            // logical, row-major order.
            _ => out
                .iter_mut()
                .zip(ro.as_array().iter())
                .for_each(|(o, v)| *o = *v),
        }
        Ok(())
    }
}

impl ScoreModel<CpuBackend> for PyCallback<'_> {
    type Workspace = ();

    fn dim(&self) -> usize {
        self.dim
    }

    fn output(&self) -> ModelOutput {
        self.output
    }

    fn workspace(&self, _: &CpuBackend, _: usize) -> Result<()> {
        Ok(())
    }

    fn eval(
        &self,
        _: &CpuBackend,
        _: &mut (),
        x: &Vec<f32>,
        times: &Vec<f32>,
        row0: usize,
        rows: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let d = self.dim;
        let (lo, hi) = (row0 * d, (row0 + rows) * d);
        picardiff::model::check_rows("x", x.len(), hi)?;
        picardiff::model::check_rows("out", out.len(), hi)?;
        picardiff::model::check_rows("times", times.len(), row0 + rows)?;
        let (x, t, o) = (&x[lo..hi], &times[row0..row0 + rows], &mut out[lo..hi]);
        if let Err(e) = Python::attach(|py| self.call(py, x, t, rows, o)) {
            let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(e);
            // The exception itself is raised to the caller; this only stops the run.
            return Err(Error::CallbackPanicked {
                msg: "the Python model callback raised an exception".into(),
            });
        }
        if let Some(i) = o.iter().position(|v| !v.is_finite()) {
            return Err(Error::CallbackOutput {
                value: o[i],
                row: i / d,
                element: i % d,
                t: t[i / d],
            });
        }
        Ok(())
    }
}
