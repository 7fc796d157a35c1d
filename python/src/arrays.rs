//! numpy inputs: float32 and C-contiguous, read in place (no copy). Anything else is refused with
//! a `ValueError` that says how to convert it; nothing is converted implicitly.

use numpy::{
    PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::error::{PdError, PdResult};

/// `[2, 3]` for messages (the CLI's `shape_str`).
pub fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// Borrows `obj` (argument `what`) as a float32 C-contiguous array, or refuses it. `None` and a
/// missing argument are `None`.
pub fn input<'py>(
    obj: Option<&Bound<'py, PyAny>>,
    what: &str,
) -> PdResult<Option<PyReadonlyArrayDyn<'py, f32>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let py = obj.py();
    let Ok(arr) = obj.cast::<PyUntypedArray>() else {
        let ty = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        return Err(PdError::arg(
            what,
            format!(
                "expected a numpy.ndarray of float32, got {ty} (convert it with \
                 np.ascontiguousarray(x, dtype=np.float32))"
            ),
        ));
    };
    let dtype = arr.dtype();
    if !dtype.is_equiv_to(&numpy::dtype::<f32>(py)) {
        let name = dtype.str().map(|s| s.to_string()).unwrap_or_default();
        return Err(PdError::arg(
            what,
            format!(
                "expected dtype float32, got {name} of shape {} (nothing is converted implicitly: \
                 pass np.ascontiguousarray(x, dtype=np.float32))",
                shape_str(arr.shape())
            ),
        ));
    }
    if !arr.is_c_contiguous() {
        return Err(PdError::arg(
            what,
            format!(
                "the float32 array of shape {} is not C-contiguous (pass np.ascontiguousarray(x))",
                shape_str(arr.shape())
            ),
        ));
    }
    let typed = arr
        .cast::<PyArrayDyn<f32>>()
        .map_err(|e| PdError::arg(what, e))?;
    let ro = typed
        .try_readonly()
        .map_err(|e| PdError::arg(what, format!("cannot borrow the array: {e}")))?;
    Ok(Some(ro))
}

/// A checked input: its values (borrowed from the numpy array) and shape.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub shape: &'a [usize],
}

impl<'a> View<'a> {
    /// The view of a checked array (C-contiguous, so `as_slice` succeeds).
    pub fn of(arr: &'a PyReadonlyArrayDyn<'_, f32>) -> PdResult<View<'a>> {
        let data = arr
            .as_slice()
            .map_err(|e| PdError::Value(format!("array is not contiguous: {e}")))?;
        Ok(View {
            data,
            shape: arr.shape(),
        })
    }
}

/// The three optional inputs of a run.
#[derive(Clone, Copy, Default)]
pub struct Inputs<'a> {
    /// x_T.
    pub init: Option<View<'a>>,
    /// Step noise.
    pub noise: Option<View<'a>>,
    /// Per-sample conditioning.
    pub cond: Option<View<'a>>,
}

/// Refuses `view` unless its shape is `expected` (the CLI's `expect_shape`).
pub fn expect_shape(view: &View<'_>, expected: &[usize], what: &str, hint: &str) -> PdResult<()> {
    if view.shape != expected {
        return Err(PdError::arg(
            what,
            format!(
                "expected a float32 array of shape {} ({hint}), got {}",
                shape_str(expected),
                shape_str(view.shape)
            ),
        ));
    }
    Ok(())
}
