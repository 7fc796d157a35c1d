//! The crate's one error type. Every variant names the operation that failed and carries a message a
//! user can act on; no user input ever panics.

/// Errors returned by every fallible picardiff operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent (names the field).
    #[error("invalid config `{field}`: {msg}")]
    Config {
        /// The offending field or option.
        field: String,
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
    },
    /// A Picard sampler reached its iteration cap before its window passed the last step.
    #[error(
        "not converged after {iters} iterations (window at step {step}); raise max-iters or tol"
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
         {residual:.3e} > tol {tol:e}; raise iters or shorten block-len (or tol 0 for exactly \
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
    pub fn config(field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
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
    /// A [`Error::Device`] for operation `op`.
    pub fn device(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Device {
            op: op.into(),
            msg: msg.into(),
        }
    }
}
