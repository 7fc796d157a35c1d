//! The C ABI (`include/picardiff.h`, generated from this module by cbindgen).
//!
//! Conventions (rustls-ffi's):
//! - Everything is prefixed `picardiff_`. Handles are opaque (`picardiff_context`, `picardiff_model`,
//!   `picardiff_sampler`), made by `_new*` functions that write `*x_out` and freed by `_free`, which
//!   accepts NULL. Freeing a handle twice, or using it after free, is undefined behaviour (as with
//!   `free`); set your pointer to NULL after freeing it.
//! - Every fallible function returns a `picardiff_status` (0 = `PICARDIFF_OK`; the numbers are fixed
//!   forever). On failure nothing is written to out-parameters, and the calling thread's last error
//!   message (`picardiff_last_error`) says what went wrong, starting with the function's name.
//!   `picardiff_status_str` gives a static description of a status.
//! - Every pointer argument is checked for NULL (`PICARDIFF_NULL_ARGUMENT`), every buffer is
//!   followed by its length in elements, and lengths are checked against the run's shape
//!   (`PICARDIFF_SHAPE_MISMATCH`). Names and paths are NUL-terminated UTF-8; data (JSON text) is a
//!   pointer and a byte length. Enumerations are passed as `uint32_t` so that an out-of-range value
//!   is an error (`PICARDIFF_INVALID_ARGUMENT`), not undefined behaviour.
//! - Every export runs inside `catch_unwind`: no panic crosses into C (a bug comes back as
//!   `PICARDIFF_PANIC`), and no input aborts the process.
//! - Threads: the handles are immutable after creation. On the CPU device any function may be called
//!   from any thread, and several threads may run the same sampler and model at once (a callback
//!   model then calls its function concurrently). A CUDA context orders all runs on one stream: run
//!   its samplers from one thread at a time.
//!
//! A minimal C program:
//! ```c
//! picardiff_context *ctx = NULL; picardiff_model *model = NULL; picardiff_sampler *s = NULL;
//! picardiff_sampler_config cfg;
//! picardiff_sampler_config_default(&cfg);
//! cfg.batch = 16; cfg.seed = 42;
//! const char *json = "{\"weights\":[1],\"means\":[[0,0]],\"stds\":[1]}";
//! if (picardiff_context_new(PICARDIFF_DEVICE_CPU, 0, &ctx) != PICARDIFF_OK ||
//!     picardiff_model_new_mixture_json(json, strlen(json), &model) != PICARDIFF_OK ||
//!     picardiff_sampler_new(ctx, &cfg, &s) != PICARDIFF_OK) { /* picardiff_last_error(...) */ }
//! float out[16 * 2]; picardiff_stats st;
//! picardiff_status rc = picardiff_sampler_run(s, model, out, 16 * 2, &st);
//! picardiff_sampler_free(s); picardiff_model_free(model); picardiff_context_free(ctx);
//! ```

// The exported names are C's (`picardiff_sampler`, `PICARDIFF_OK`).
#![allow(non_camel_case_types)]

mod args;
mod callback;
mod config;
mod context;
mod model;
mod sampler;

// Declared after `sampler` so that the header lists its function after the sampler's.
mod device_out;
pub(crate) mod status;

use std::ffi::c_char;

pub use callback::{picardiff_eps_fn, CallbackModel, EpsFn};
pub use config::{picardiff_sampler_config, picardiff_sampler_config_default};
pub use context::{
    picardiff_context, picardiff_context_device, picardiff_context_free, picardiff_context_new,
    picardiff_device,
};
pub use device_out::picardiff_sampler_run_device;
pub use model::{
    picardiff_model, picardiff_model_cond_dim, picardiff_model_dim, picardiff_model_free,
    picardiff_model_new_callback, picardiff_model_new_file, picardiff_model_new_mixture_file,
    picardiff_model_new_mixture_json, picardiff_model_output,
};
pub use sampler::{
    picardiff_sampler, picardiff_sampler_alpha_sigma, picardiff_sampler_free,
    picardiff_sampler_model_steps, picardiff_sampler_new, picardiff_sampler_run,
    picardiff_sampler_run_cond, picardiff_sampler_run_with_inputs, picardiff_sampler_shape,
    picardiff_stats,
};
pub use status::{
    picardiff_last_error, picardiff_last_error_len, picardiff_status, picardiff_status_str,
};

/// picardiff's version ("0.1.0"), a static NUL-terminated string. Never NULL; never free it.
#[no_mangle]
pub extern "C" fn picardiff_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
