//! The crate's one error type. Every variant names the operation that failed and carries a message a
//! user can act on; no user input ever panics.

pub use crate::field::Field;

/// Errors returned by every fallible picardiff operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent (names the field).
    #[error("invalid config `{field}`: {msg}")]
    Config {
        /// The offending setting, by the library's name for it.
        field: Field,
        /// What is wrong and what is allowed.
        msg: String,
    },
    /// A model file or model parameters are malformed (names the field).
    #[error("invalid model ({field}): {msg}")]
    Model {
        /// The offending field.
        field: String,
        /// What is wrong.
        msg: String,
    },
    /// Buffer or array shapes do not match.
    #[error("shape mismatch in {op}: {msg}")]
    Shape {
        /// The operation that checked the shape.
        op: String,
        /// Expected and found sizes.
        msg: String,
    },
    /// Reading or writing a file failed.
    #[error("{op} `{path}`: {msg}")]
    Io {
        /// What was being done.
        op: String,
        /// The file.
        path: String,
        /// The underlying error.
        msg: String,
    },
    /// A state or model output became NaN or infinite.
    #[error("non-finite value in {op} at step {step}")]
    NonFinite {
        /// Where it was detected.
        op: String,
        /// The grid step whose result was non-finite (step j maps point j to point j + 1).
        step: usize,
    },
    /// A device (CUDA) is unavailable or a device operation failed.
    #[error("device error in {op}: {msg}")]
    Device {
        /// The device operation.
        op: String,
        /// The driver's or runtime's message.
        msg: String,
        /// The device's own status code, when it gave one (out of memory is matchable).
        code: DeviceCode,
    },
    /// A Picard sampler reached its iteration cap before its window passed the last step.
    #[error(
        "not converged after {iters} iterations (window at step {step}); raise max_iters or tol"
    )]
    NotConverged {
        /// The iteration cap that was reached (`max-iters`).
        iters: usize,
        /// The first step of the window when the cap was reached.
        step: usize,
    },
    /// A block of the blocks sampler ended after its K iterations with an error above the
    /// tolerance: its result is not the sequential one, and every later block starts from it.
    #[error(
        "block {block} (steps up to {end}) did not converge in {iters} iterations: residual \
         {residual:.3e} > tol {tol:e}; raise iters or shorten block_len (or tol 0 for exactly \
         {iters} iterations per block)"
    )]
    BlockNotConverged {
        /// The block's index (0 = the first block).
        block: usize,
        /// The block's end point (grid point index).
        end: usize,
        /// Its residual: the root of the worst normalised squared point error of its last
        /// iteration (the quantity compared with τ).
        residual: f64,
        /// The tolerance τ.
        tol: f64,
        /// Iterations per block K.
        iters: usize,
    },
    /// A user-supplied model callback (the C ABI's `picardiff_eps_fn`) returned a non-zero code.
    #[error("the model callback returned {code} (non-zero: failure)")]
    Callback {
        /// The code the callback returned.
        code: i32,
    },
    /// A user-supplied model callback panicked (or raised, in a binding's terms).
    #[error("the model callback panicked: {msg}")]
    CallbackPanicked {
        /// The panic's message.
        msg: String,
    },
    /// A user-supplied model callback wrote a NaN or an infinity.
    #[error("the model callback wrote {value} at row {row} element {element} (t = {t})")]
    CallbackOutput {
        /// The value written.
        value: f32,
        /// Its row of the evaluation.
        row: usize,
        /// Its element within the row.
        element: usize,
        /// The row's model time.
        t: f32,
    },
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Config`] for `field`.
    pub fn config(field: Field, msg: impl Into<String>) -> Self {
        Error::Config {
            field,
            msg: msg.into(),
        }
    }
    /// A [`Error::Model`] for `field`.
    pub fn model(field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Model {
            field: field.into(),
            msg: msg.into(),
        }
    }
    /// A [`Error::Shape`] for operation `op`.
    pub fn shape(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Shape {
            op: op.into(),
            msg: msg.into(),
        }
    }
    /// A [`Error::Device`] for operation `op` with no device status code.
    pub fn device(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::device_code(op, msg, DeviceCode::None)
    }
    /// A [`Error::Device`] for operation `op` carrying the device's status `code`.
    pub fn device_code(op: impl Into<String>, msg: impl Into<String>, code: DeviceCode) -> Self {
        Error::Device {
            op: op.into(),
            msg: msg.into(),
            code,
        }
    }
    /// True when the run failed for want of memory: refused before allocating (host or device),
    /// or an allocation the device itself failed.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, Error::Device { code, .. } if code.is_out_of_memory())
    }
}

/// The status code behind an [`Error::Device`], as the device's driver or library gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceCode {
    /// No device status: no device, an unsupported operation, a size past a kernel's limits.
    None,
    /// Refused before anything was allocated: the run needs more memory than is free.
    InsufficientMemory,
    /// A CUDA driver `CUresult`.
    Driver(u32),
    /// A CUDA runtime `cudaError_t` (returned by a kernel launcher).
    Runtime(i32),
    /// A cuBLAS `cublasStatus_t`.
    Blas(u32),
}

impl DeviceCode {
    /// `CUDA_ERROR_OUT_OF_MEMORY`, `cudaErrorMemoryAllocation`.
    const CUDA_OUT_OF_MEMORY: u32 = 2;
    /// `CUBLAS_STATUS_ALLOC_FAILED`.
    const CUBLAS_ALLOC_FAILED: u32 = 3;

    /// True for the codes that mean out of memory.
    pub fn is_out_of_memory(self) -> bool {
        match self {
            DeviceCode::InsufficientMemory => true,
            DeviceCode::Driver(c) => c == Self::CUDA_OUT_OF_MEMORY,
            DeviceCode::Runtime(c) => c as u32 == Self::CUDA_OUT_OF_MEMORY,
            DeviceCode::Blas(c) => c == Self::CUBLAS_ALLOC_FAILED,
            DeviceCode::None => false,
        }
    }
}
