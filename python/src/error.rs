//! picardiff's errors as Python exceptions: bad arguments are `ValueError`, files `OSError`, and
//! everything else (not converged, non-finite, a device, a malformed model) `PicardiffError`.

use std::any::Any;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::PyErr;

create_exception!(
    picardiff,
    PicardiffError,
    PyException,
    "A picardiff run or model failed: not converged (raise max_iters or tol), a non-finite \
     value, a device error, a malformed model file, or an internal error. Bad arguments raise \
     ValueError and unreadable files OSError instead."
);

/// An error on its way to Python.
#[derive(Debug)]
pub enum PdError {
    /// A bad argument (`ValueError`).
    Value(String),
    /// A file that cannot be read (`OSError`).
    Os(String),
    /// A file that does not exist (`FileNotFoundError`, an `OSError`).
    NotFound(String, String),
    /// Everything else (`PicardiffError`).
    Picard(String),
    /// A Python exception, raised as it is (a callback's, with its traceback).
    Py(PyErr),
}

/// Result of the binding layer.
pub type PdResult<T> = Result<T, PdError>;

impl PdError {
    /// A `ValueError` for argument `arg`.
    pub fn arg(arg: &str, msg: impl std::fmt::Display) -> Self {
        PdError::Value(format!("{arg}: {msg}"))
    }
}

impl From<picardiff::Error> for PdError {
    fn from(e: picardiff::Error) -> Self {
        use picardiff::Error as E;
        match e {
            // Fields of the run spec read `window: ...`, as the CLI's read `--window: ...`.
            E::Config { field, msg } if field.is_spec() => {
                PdError::Value(format!("{}: {msg}", field.name()))
            }
            e @ (E::Config { .. } | E::Shape { .. }) => PdError::Value(e.to_string()),
            e @ E::Io { .. } => PdError::Os(e.to_string()),
            e => PdError::Picard(e.to_string()),
        }
    }
}

impl From<PyErr> for PdError {
    fn from(e: PyErr) -> Self {
        PdError::Py(e)
    }
}

impl From<PdError> for PyErr {
    fn from(e: PdError) -> Self {
        match e {
            PdError::Value(m) => PyValueError::new_err(m),
            PdError::Os(m) => PyOSError::new_err(m),
            PdError::NotFound(m, path) => PyFileNotFoundError::new_err((2, m, path)),
            PdError::Picard(m) => PicardiffError::new_err(m),
            PdError::Py(e) => e,
        }
    }
}

/// A caught panic as a `PicardiffError` (a bug in picardiff: no input should panic).
pub fn panic_error(payload: Box<dyn Any + Send>) -> PdError {
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string payload)");
    PdError::Picard(format!(
        "internal error: picardiff panicked ({msg}); please report it"
    ))
}
