//! The C ABI (`picardiff::ffi`, `include/picardiff.h`): the `extern "C"` functions called directly
//! (NULLs, wrong lengths, bad configs, failing and panicking callbacks, free(NULL)), the committed
//! header against a fresh cbindgen run, and `examples/cpp/main.cpp` built with the system `c++`
//! against the built library, whose samples must equal the Rust API's.
// Every unsafe block here calls the C ABI with pointers and lengths made just before from Rust
// values that outlive the call (the tested contract itself), so the blocks carry no notes.
#![allow(clippy::undocumented_unsafe_blocks)]

#[path = "c_abi/callbacks.rs"]
mod callbacks;
#[path = "c_abi/calls.rs"]
mod calls;
#[path = "c_abi/cpp.rs"]
mod cpp;
#[path = "c_abi/header.rs"]
mod header;

use std::ffi::{c_int, c_void};
use std::path::Path;
use std::ptr::{null, null_mut};

use picardiff::ffi::picardiff_status::*;
use picardiff::ffi::*;
use picardiff::prelude::*;

/// `Mixture::example_2d` as the C side sees it: the example file.
const MIXTURE_JSON: &str = include_str!("../examples/mixture_2d.json");

// ---- helpers -------------------------------------------------------------------------------------

fn last_error() -> String {
    let mut buf = vec![0u8; picardiff_last_error_len() + 1];
    let mut written = usize::MAX;
    let st = unsafe { picardiff_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut written) };
    assert_eq!(st, PICARDIFF_OK);
    assert_eq!(buf[written], 0, "not NUL-terminated");
    String::from_utf8(buf[..written].to_vec()).unwrap()
}

/// Asserts `st` is `want` and the last error mentions every one of `words`; returns the message.
fn expect_err(st: picardiff_status, want: picardiff_status, words: &[&str]) -> String {
    assert_eq!(st, want, "last error: {}", last_error());
    let msg = last_error();
    for w in words {
        assert!(msg.contains(w), "message {msg:?} does not mention {w:?}");
    }
    msg
}

/// Handles freed on drop.
struct Handles {
    ctx: *mut picardiff_context,
    model: *mut picardiff_model,
    sampler: *mut picardiff_sampler,
}

impl Drop for Handles {
    fn drop(&mut self) {
        unsafe {
            picardiff_sampler_free(self.sampler);
            picardiff_model_free(self.model);
            picardiff_context_free(self.ctx);
        }
    }
}

fn cpu() -> *mut picardiff_context {
    let mut ctx = null_mut();
    let st = unsafe {
        picardiff_context_new(picardiff_device::PICARDIFF_DEVICE_CPU as u32, 0, &mut ctx)
    };
    assert_eq!(st, PICARDIFF_OK);
    assert!(!ctx.is_null());
    ctx
}

fn mixture_model() -> *mut picardiff_model {
    let mut m = null_mut();
    let st = unsafe {
        picardiff_model_new_mixture_json(MIXTURE_JSON.as_ptr().cast(), MIXTURE_JSON.len(), &mut m)
    };
    assert_eq!(st, PICARDIFF_OK, "{}", last_error());
    m
}

fn config() -> picardiff_sampler_config {
    let mut c = std::mem::MaybeUninit::uninit();
    assert_eq!(
        unsafe { picardiff_sampler_config_default(c.as_mut_ptr()) },
        PICARDIFF_OK
    );
    let mut c = unsafe { c.assume_init() };
    c.steps = 50;
    c.batch = 4;
    c.seed = 9;
    // The tests check picard's runs; the default, auto, picks per machine (`auto_default_*`).
    c.sampler = c"picard".as_ptr();
    c
}

fn new_sampler(
    ctx: *const picardiff_context,
    c: &picardiff_sampler_config,
) -> Result<*mut picardiff_sampler, picardiff_status> {
    let mut s = null_mut();
    match unsafe { picardiff_sampler_new(ctx, c, &mut s) } {
        PICARDIFF_OK => Ok(s),
        st => {
            assert!(s.is_null(), "out-pointer written on failure");
            Err(st)
        }
    }
}

fn handles(model: *mut picardiff_model, c: &picardiff_sampler_config) -> Handles {
    let ctx = cpu();
    let sampler = new_sampler(ctx, c).unwrap_or_else(|st| panic!("{st:?}: {}", last_error()));
    Handles {
        ctx,
        model,
        sampler,
    }
}

fn run_ffi(h: &Handles, len: usize) -> Result<(Vec<f32>, picardiff_stats), picardiff_status> {
    let mut out = vec![f32::NAN; len];
    let mut st = picardiff_stats::default();
    match unsafe { picardiff_sampler_run(h.sampler, h.model, out.as_mut_ptr(), len, &mut st) } {
        PICARDIFF_OK => Ok((out, st)),
        s => {
            assert!(out.iter().all(|v| v.is_nan()), "out written on failure");
            Err(s)
        }
    }
}

fn schedule() -> Schedule {
    Schedule::from_name("ddpm-linear", 1000).unwrap()
}

fn gmm() -> GmmModel {
    GmmModel::new(Mixture::from_json(MIXTURE_JSON).unwrap(), schedule())
}

/// The Rust API's run of a ddpm-linear/leading/ddpm config with the picard sampler and its
/// defaults (the window holds every step: drift at τ = 0 with the final-sample stop).
fn rust_picard(
    steps: usize,
    batch: usize,
    seed: u64,
    init: Option<&[f32]>,
    noise: Option<&[f32]>,
) -> RunOutput {
    let grid = Grid::discrete(&schedule(), steps, Spacing::Leading).unwrap();
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let kind = SamplerKind::picard(steps, 0.0, picardiff::defaults::PICARD_FORM_FINAL_STOP)
        .with_final_tol(Some(picardiff::defaults::FINAL_TOL));
    let inputs = RunInputs {
        batch,
        seed,
        sample0: 0,
        init,
        noise,
        ..Default::default()
    };
    run(&CpuBackend, &gmm(), &grid, rule, &kind, &inputs).unwrap()
}

/// The crate root (for include/, examples/, src/ffi).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
