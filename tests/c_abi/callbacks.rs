//! Callback models: exact parity with the built-in model, output kinds, a failing callback (7), a
//! panicking one, NaN outputs.

use std::ffi::CString;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Calls the exact mixture model (`user_data` = `*const GmmModel`) on the callback's rows.
unsafe extern "C-unwind" fn gmm_eps(
    x: *const f32,
    t: *const f32,
    n: usize,
    dim: usize,
    out: *mut f32,
    ud: *mut c_void,
    stream: *mut c_void,
) -> c_int {
    if !stream.is_null() {
        return 99;
    }
    let model = unsafe { &*(ud as *const GmmModel) };
    let xs = unsafe { std::slice::from_raw_parts(x, n * dim) }.to_vec();
    let ts = unsafe { std::slice::from_raw_parts(t, n) }.to_vec();
    let mut o = vec![0f32; n * dim];
    let mut ws = ScoreModel::<CpuBackend>::workspace(model, &CpuBackend, n).unwrap();
    model
        .eval(&CpuBackend, &mut ws, &xs, &ts, 0, n, &mut o)
        .unwrap();
    unsafe { std::ptr::copy_nonoverlapping(o.as_ptr(), out, n * dim) };
    0
}

/// The mixture's score −ε/σ (`user_data` = `*const GmmModel`).
unsafe extern "C-unwind" fn gmm_score(
    x: *const f32,
    t: *const f32,
    n: usize,
    dim: usize,
    out: *mut f32,
    ud: *mut c_void,
    stream: *mut c_void,
) -> c_int {
    let rc = unsafe { gmm_eps(x, t, n, dim, out, ud, stream) };
    let model = unsafe { &*(ud as *const GmmModel) };
    for i in 0..n {
        let (_, sigma) = model.schedule.alpha_sigma(unsafe { *t.add(i) } as f64);
        for d in 0..dim {
            unsafe { *out.add(i * dim + d) *= -(1.0 / sigma) as f32 };
        }
    }
    rc
}

/// Counts its calls in `user_data` (`*const AtomicUsize`) and fails with 7.
unsafe extern "C-unwind" fn fails_with_7(
    _: *const f32,
    _: *const f32,
    _: usize,
    _: usize,
    _: *mut f32,
    ud: *mut c_void,
    _: *mut c_void,
) -> c_int {
    unsafe { &*(ud as *const AtomicUsize) }.fetch_add(1, Ordering::SeqCst);
    7
}

pub(crate) unsafe extern "C-unwind" fn panics(
    _: *const f32,
    _: *const f32,
    _: usize,
    _: usize,
    _: *mut f32,
    _: *mut c_void,
    _: *mut c_void,
) -> c_int {
    panic!("callback boom")
}

unsafe extern "C-unwind" fn writes_nan(
    _: *const f32,
    _: *const f32,
    n: usize,
    dim: usize,
    out: *mut f32,
    _: *mut c_void,
    _: *mut c_void,
) -> c_int {
    for i in 0..n * dim {
        unsafe { *out.add(i) = if i == 3 { f32::NAN } else { 0.0 } };
    }
    0
}

fn callback_model(
    f: EpsFn,
    ud: *const c_void,
    dim: usize,
    output: picardiff_model_output,
) -> *mut picardiff_model {
    let mut m = null_mut();
    let st = unsafe {
        picardiff_model_new_callback(Some(f), ud as *mut c_void, dim, output as u32, &mut m)
    };
    assert_eq!(st, PICARDIFF_OK, "{}", last_error());
    m
}

#[test]
fn callback_models() {
    let model = gmm();
    let ud = &model as *const GmmModel as *const c_void;
    let want = rust_picard(50, 4, 9, None, None);
    // ε through the callback is the same arithmetic as the built-in model: identical samples.
    let h = handles(
        callback_model(
            gmm_eps,
            ud,
            2,
            picardiff_model_output::PICARDIFF_OUTPUT_EPSILON,
        ),
        &config(),
    );
    let (out, st) = run_ffi(&h, 8).unwrap();
    assert_eq!(out, want.samples);
    assert_eq!(st.rounds, want.stats.rounds);
    // The score (−ε/σ) is converted back to ε by the step tables.
    let h = handles(
        callback_model(
            gmm_score,
            ud,
            2,
            picardiff_model_output::PICARDIFF_OUTPUT_SCORE,
        ),
        &config(),
    );
    let (out, _) = run_ffi(&h, 8).unwrap();
    let d = out
        .iter()
        .zip(&want.samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-4, "score callback deviates by {d}");
    // A model of the wrong dimension is a shape error before any call.
    let h = handles(
        callback_model(
            gmm_eps,
            ud,
            3,
            picardiff_model_output::PICARDIFF_OUTPUT_EPSILON,
        ),
        &config(),
    );
    assert_eq!(run_ffi(&h, 8).unwrap_err(), PICARDIFF_SHAPE_MISMATCH);
    assert!(run_ffi(&h, 12).is_ok());
}

#[test]
fn failing_callback_stops_the_run() {
    let calls = AtomicUsize::new(0);
    let h = handles(
        callback_model(
            fails_with_7,
            &calls as *const _ as *const c_void,
            2,
            picardiff_model_output::PICARDIFF_OUTPUT_EPSILON,
        ),
        &config(),
    );
    let st = run_ffi(&h, 8).unwrap_err();
    let msg = expect_err(
        st,
        PICARDIFF_CALLBACK_FAILED,
        &["picardiff_sampler_run", "returned 7"],
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "{msg}");
    // The same for the sequential sampler and the blocks sampler with its corrector.
    for name in ["sequential", "blocks"] {
        let sampler = CString::new(name).unwrap();
        let c = picardiff_sampler_config {
            sampler: sampler.as_ptr(),
            corrector: 1,
            ..config()
        };
        let h2 = handles(
            callback_model(
                fails_with_7,
                &calls as *const _ as *const c_void,
                2,
                picardiff_model_output::PICARDIFF_OUTPUT_EPSILON,
            ),
            &c,
        );
        expect_err(
            run_ffi(&h2, 8).unwrap_err(),
            PICARDIFF_CALLBACK_FAILED,
            &["7"],
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn panicking_callback_is_a_status_not_an_abort() {
    let h = handles(
        callback_model(
            panics,
            null(),
            2,
            picardiff_model_output::PICARDIFF_OUTPUT_EPSILON,
        ),
        &config(),
    );
    let st = run_ffi(&h, 8).unwrap_err();
    expect_err(
        st,
        PICARDIFF_CALLBACK_FAILED,
        &["panicked", "callback boom"],
    );
    // Everything still works afterwards.
    let h2 = handles(mixture_model(), &config());
    assert!(run_ffi(&h2, 8).is_ok());
}

#[test]
fn non_finite_callback_output() {
    let h = handles(
        callback_model(
            writes_nan,
            null(),
            2,
            picardiff_model_output::PICARDIFF_OUTPUT_EPSILON,
        ),
        &config(),
    );
    expect_err(
        run_ffi(&h, 8).unwrap_err(),
        PICARDIFF_NON_FINITE,
        &["NaN", "row 1 element 1"],
    );
}

#[test]
fn not_converged_has_its_own_status() {
    let c = picardiff_sampler_config {
        max_iters: 2,
        tol: 0.0,
        ..config()
    };
    let h = handles(mixture_model(), &c);
    expect_err(
        run_ffi(&h, 8).unwrap_err(),
        PICARDIFF_NOT_CONVERGED,
        &["not converged after 2"],
    );
}
