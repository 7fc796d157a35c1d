//! A score model implemented by a C function: [`CallbackModel`].

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::backend::cpu::CpuBackend;
use crate::error::{Error, Result};
use crate::model::ScoreModel;
use crate::schedule::ModelOutput;

/// A model callback: evaluates `n` rows of `dim` values at `x` (row-major), row i at model time
/// `t[i]` (a timestep index for the discrete schedules, t itself for continuous ones), and writes
/// the model's prediction (the kind given at creation: ε, score, x̂0 or v) for each row to `out`
/// (`n × dim`). Returns 0 on success; any other value stops the run with
/// `PICARDIFF_CALLBACK_FAILED` and a message quoting the value.
///
/// On a CPU context `x`, `t` and `out` are host pointers and `stream` is NULL. On a CUDA context
/// (picardiff built with `cuda`) they are device pointers and `stream` is the `CUstream` the run is
/// ordered on: order the callback's work after it (or synchronise it first) and have `out` written
/// on it, or before returning; picardiff does not synchronise around the call.
///
/// picardiff calls it from the thread that called `picardiff_sampler_run`, one call at a time per
/// run, and never keeps the pointers after it returns. It must not unwind: a C++ callback must
/// catch its exceptions (make it `noexcept`) and return non-zero instead. (A Rust callback declared
/// `extern "C-unwind"` that panics is caught and reported as `PICARDIFF_CALLBACK_FAILED`.)
pub type picardiff_eps_fn = Option<
    unsafe extern "C-unwind" fn(
        x: *const f32,
        t: *const f32,
        n: usize,
        dim: usize,
        out: *mut f32,
        user_data: *mut c_void,
        stream: *mut c_void,
    ) -> c_int,
>;

/// The non-NULL callback type.
pub type EpsFn = unsafe extern "C-unwind" fn(
    *const f32,
    *const f32,
    usize,
    usize,
    *mut f32,
    *mut c_void,
    *mut c_void,
) -> c_int;

/// A [`ScoreModel`] whose evaluation is a C callback ([`picardiff_eps_fn`]).
#[derive(Debug)]
pub struct CallbackModel {
    func: EpsFn,
    user_data: *mut c_void,
    dim: usize,
    output: ModelOutput,
}

// SAFETY: `user_data` is opaque to picardiff and only handed back to `func`; the creator of the model
// promises (see `CallbackModel::new`) that `func` may be called with it from any thread that runs
// the model, one call at a time per run.
unsafe impl Send for CallbackModel {}
// SAFETY: as above; picardiff never dereferences `user_data`.
unsafe impl Sync for CallbackModel {}

impl CallbackModel {
    /// A model of `dim` elements per state predicting `output`, evaluated by `func(…, user_data, …)`.
    ///
    /// # Safety
    /// `func` must follow the contract of [`picardiff_eps_fn`] for every call with valid pointers,
    /// and `user_data` must stay valid for it as long as the model is used, from whichever thread
    /// runs the model.
    pub unsafe fn new(
        func: EpsFn,
        user_data: *mut c_void,
        dim: usize,
        output: ModelOutput,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(Error::model("dim", "a callback model needs dim >= 1"));
        }
        Ok(CallbackModel {
            func,
            user_data,
            dim,
            output,
        })
    }

    /// Calls the callback on `rows` rows at the given pointers and checks its result.
    ///
    /// # Safety
    /// `x` and `out` must be valid for `rows × dim` values and `t` for `rows` values, in the memory
    /// the callback expects for `stream`.
    unsafe fn call(
        &self,
        x: *const f32,
        t: *const f32,
        rows: usize,
        out: *mut f32,
        stream: *mut c_void,
    ) -> Result<()> {
        let (func, ud, dim) = (self.func, self.user_data, self.dim);
        // SAFETY: forwarded contract; the callback's own contract is its creator's promise.
        let code = catch_unwind(AssertUnwindSafe(|| unsafe {
            func(x, t, rows, dim, out, ud, stream)
        }));
        match code {
            Ok(0) => Ok(()),
            Ok(code) => Err(Error::Callback { code }),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(non-string payload)");
                Err(Error::CallbackPanicked {
                    msg: msg.to_string(),
                })
            }
        }
    }
}

impl ScoreModel<CpuBackend> for CallbackModel {
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
        crate::model::check_rows("x", x.len(), hi)?;
        crate::model::check_rows("out", out.len(), hi)?;
        crate::model::check_rows("times", times.len(), row0 + rows)?;
        let (x, t, o) = (&x[lo..hi], &times[row0..row0 + rows], &mut out[lo..hi]);
        // SAFETY: the slices hold rows × dim, rows and rows × dim values (checked above), in host
        // memory, which is what the callback gets on the CPU (stream NULL).
        unsafe {
            self.call(
                x.as_ptr(),
                t.as_ptr(),
                rows,
                o.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }?;
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

/// Device pointers and the backend's `CUstream` (see [`picardiff_eps_fn`]). Outputs are not checked
/// for NaN per call on the device (the run's final check is).
#[cfg(feature = "cuda")]
impl ScoreModel<crate::backend::cuda::CudaBackend> for CallbackModel {
    type Workspace = ();

    fn dim(&self) -> usize {
        self.dim
    }

    fn output(&self) -> ModelOutput {
        self.output
    }

    fn workspace(&self, _: &crate::backend::cuda::CudaBackend, _: usize) -> Result<()> {
        Ok(())
    }

    fn eval(
        &self,
        be: &crate::backend::cuda::CudaBackend,
        _: &mut (),
        x: &cudarc::driver::CudaSlice<f32>,
        times: &cudarc::driver::CudaSlice<f32>,
        row0: usize,
        rows: usize,
        out: &mut cudarc::driver::CudaSlice<f32>,
    ) -> Result<()> {
        use crate::backend::cuda::DeviceResultExt;
        use cudarc::driver::{DevicePtr, DevicePtrMut};
        let d = self.dim;
        let hi = (row0 + rows) * d;
        crate::model::check_rows("x", x.len(), hi)?;
        crate::model::check_rows("out", out.len(), hi)?;
        crate::model::check_rows("times", times.len(), row0 + rows)?;
        let stream = be.stream();
        be.context()
            .bind_to_thread()
            .during("callback model (bind context)")?;
        let f = size_of::<f32>() as u64;
        // The guards record no event (the backend disables event tracking); the pointers stay valid
        // while the borrows of the buffers last, i.e. for the call.
        let (xp, _gx) = x.device_ptr(stream);
        let (tp, _gt) = times.device_ptr(stream);
        let (op, _go) = out.device_ptr_mut(stream);
        let (xp, tp, op) = (
            xp + (row0 * d) as u64 * f,
            tp + row0 as u64 * f,
            op + (row0 * d) as u64 * f,
        );
        // SAFETY: the device ranges hold rows × dim, rows and rows × dim f32 (checked above); the
        // callback gets device pointers and the stream they are ordered on, as its contract says.
        unsafe {
            self.call(
                xp as *const f32,
                tp as *const f32,
                rows,
                op as *mut f32,
                stream.cu_stream() as *mut std::ffi::c_void,
            )
        }
    }
}
