//! The functions called directly: NULLs, free(NULL), wrong lengths, bad configs and models, the
//! last-error buffer.

use std::ffi::{c_char, c_int, CString};
use std::path::Path;

use super::*;

#[test]
fn version_and_status_strings() {
    let v = unsafe { std::ffi::CStr::from_ptr(picardiff_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    let s = |c: c_int| {
        unsafe { std::ffi::CStr::from_ptr(picardiff_status_str(c)) }
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(s(0), "ok");
    assert_eq!(
        s(PICARDIFF_CALLBACK_FAILED as c_int),
        "the model callback failed"
    );
    assert_eq!(
        s(PICARDIFF_PANIC as c_int),
        "internal error (a panic was caught)"
    );
    assert_eq!(s(PICARDIFF_OUT_OF_MEMORY as c_int), "out of memory");
    assert_eq!(s(-1), "unknown status");
    assert_eq!(s(1000), "unknown status");
    // The numbers are ABI: never renumbered.
    let fixed = [
        (PICARDIFF_OK, 0),
        (PICARDIFF_NULL_ARGUMENT, 1),
        (PICARDIFF_INVALID_ARGUMENT, 2),
        (PICARDIFF_INVALID_CONFIG, 3),
        (PICARDIFF_INVALID_MODEL, 4),
        (PICARDIFF_SHAPE_MISMATCH, 5),
        (PICARDIFF_IO, 6),
        (PICARDIFF_NON_FINITE, 7),
        (PICARDIFF_DEVICE, 8),
        (PICARDIFF_CALLBACK_FAILED, 9),
        (PICARDIFF_UNSUPPORTED, 10),
        (PICARDIFF_BUFFER_TOO_SMALL, 11),
        (PICARDIFF_NOT_CONVERGED, 12),
        (PICARDIFF_PANIC, 13),
        (PICARDIFF_OUT_OF_MEMORY, 14),
    ];
    for (st, n) in fixed {
        assert_eq!(st as c_int, n, "{st:?}");
    }
}

#[test]
fn null_arguments_are_statuses() {
    unsafe {
        expect_err(
            picardiff_context_new(0, 0, null_mut()),
            PICARDIFF_NULL_ARGUMENT,
            &["picardiff_context_new", "ctx_out"],
        );
        expect_err(
            picardiff_context_device(null(), &mut 0),
            PICARDIFF_NULL_ARGUMENT,
            &["ctx"],
        );
        expect_err(
            picardiff_sampler_config_default(null_mut()),
            PICARDIFF_NULL_ARGUMENT,
            &["config_out"],
        );
        let mut m = null_mut();
        expect_err(
            picardiff_model_new_mixture_json(null(), 10, &mut m),
            PICARDIFF_NULL_ARGUMENT,
            &["json"],
        );
        expect_err(
            picardiff_model_new_mixture_json(
                MIXTURE_JSON.as_ptr().cast(),
                MIXTURE_JSON.len(),
                null_mut(),
            ),
            PICARDIFF_NULL_ARGUMENT,
            &["model_out"],
        );
        expect_err(
            picardiff_model_new_mixture_file(null(), &mut m),
            PICARDIFF_NULL_ARGUMENT,
            &["path"],
        );
        expect_err(
            picardiff_model_new_callback(None, null_mut(), 2, 0, &mut m),
            PICARDIFF_NULL_ARGUMENT,
            &["eps_fn"],
        );
        expect_err(
            picardiff_model_dim(null(), &mut 0),
            PICARDIFF_NULL_ARGUMENT,
            &["model"],
        );
        assert!(m.is_null());

        let h = handles(mixture_model(), &config());
        let c = config();
        let mut s = null_mut();
        expect_err(
            picardiff_sampler_new(null(), &c, &mut s),
            PICARDIFF_NULL_ARGUMENT,
            &["picardiff_sampler_new", "ctx"],
        );
        expect_err(
            picardiff_sampler_new(h.ctx, null(), &mut s),
            PICARDIFF_NULL_ARGUMENT,
            &["config"],
        );
        expect_err(
            picardiff_sampler_new(h.ctx, &c, null_mut()),
            PICARDIFF_NULL_ARGUMENT,
            &["sampler_out"],
        );
        assert!(s.is_null());
        let mut out = vec![0f32; 8];
        expect_err(
            picardiff_sampler_run(null(), h.model, out.as_mut_ptr(), 8, null_mut()),
            PICARDIFF_NULL_ARGUMENT,
            &["sampler"],
        );
        expect_err(
            picardiff_sampler_run(h.sampler, null(), out.as_mut_ptr(), 8, null_mut()),
            PICARDIFF_NULL_ARGUMENT,
            &["model"],
        );
        expect_err(
            picardiff_sampler_run(h.sampler, h.model, null_mut(), 8, null_mut()),
            PICARDIFF_NULL_ARGUMENT,
            &["out"],
        );
        expect_err(
            picardiff_sampler_alpha_sigma(h.sampler, 10.0, null_mut(), &mut 0.0),
            PICARDIFF_NULL_ARGUMENT,
            &["alpha_out"],
        );
        expect_err(
            picardiff_sampler_shape(null(), null_mut(), null_mut()),
            PICARDIFF_NULL_ARGUMENT,
            &["sampler"],
        );
        // Stats are optional.
        assert_eq!(
            picardiff_sampler_run(h.sampler, h.model, out.as_mut_ptr(), 8, null_mut()),
            PICARDIFF_OK
        );
        expect_err(
            picardiff_last_error(null_mut(), 4, null_mut()),
            PICARDIFF_NULL_ARGUMENT,
            &[],
        );
    }
}

#[test]
fn free_null_is_a_noop_and_handles_outlive_their_context() {
    unsafe {
        picardiff_context_free(null_mut());
        picardiff_model_free(null_mut());
        picardiff_sampler_free(null_mut());
        picardiff_context_free(null_mut());
    }
    // The sampler keeps the device: freeing the context first is fine.
    let mut h = handles(mixture_model(), &config());
    unsafe { picardiff_context_free(h.ctx) };
    h.ctx = null_mut();
    let (a, _) = run_ffi(&h, 8).unwrap();
    assert_eq!(a, rust_picard(50, 4, 9, None, None).samples);
}

#[test]
fn ffi_samples_equal_the_rust_api() {
    let h = handles(mixture_model(), &config());
    let (out, st) = run_ffi(&h, 8).unwrap();
    let want = rust_picard(50, 4, 9, None, None);
    assert_eq!(out, want.samples);
    assert_eq!(
        (st.rounds, st.nfe, st.host_syncs),
        (want.stats.rounds, want.stats.nfe, want.stats.host_syncs)
    );
    assert!(st.rounds < 50 && st.wall_ms > 0.0, "{st:?}");
    let (mut steps, mut batch, mut dim) = (0, 0, 0);
    unsafe {
        assert_eq!(
            picardiff_sampler_shape(h.sampler, &mut steps, &mut batch),
            PICARDIFF_OK
        );
        assert_eq!(picardiff_model_dim(h.model, &mut dim), PICARDIFF_OK);
    }
    assert_eq!((steps, batch, dim), (50, 4, 2));
    let (mut a, mut s) = (0.0, 0.0);
    assert_eq!(
        unsafe { picardiff_sampler_alpha_sigma(h.sampler, 999.0, &mut a, &mut s) },
        PICARDIFF_OK
    );
    assert_eq!((a, s), schedule().alpha_sigma(999.0));
}

#[test]
fn caller_inputs_and_sample0() {
    let h = handles(mixture_model(), &config());
    let init: Vec<f32> = (0..8).map(|i| (i as f32 - 3.5) * 0.4).collect();
    let noise: Vec<f32> = (0..50 * 8)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let want = rust_picard(50, 4, 9, Some(&init), Some(&noise)).samples;
    // `out` may alias `x_T`.
    let mut buf = init.clone();
    let st = unsafe {
        picardiff_sampler_run_with_inputs(
            h.sampler,
            h.model,
            buf.as_ptr(),
            8,
            noise.as_ptr(),
            noise.len(),
            buf.as_mut_ptr(),
            8,
            null_mut(),
        )
    };
    assert_eq!(st, PICARDIFF_OK, "{}", last_error());
    assert_eq!(buf, want);
    // Wrong lengths are shape errors; a NULL with a length is an argument error.
    let mut out = vec![0f32; 8];
    unsafe {
        let st = picardiff_sampler_run_with_inputs(
            h.sampler,
            h.model,
            init.as_ptr(),
            7,
            null(),
            0,
            out.as_mut_ptr(),
            8,
            null_mut(),
        );
        expect_err(
            st,
            PICARDIFF_SHAPE_MISMATCH,
            &["x_T must be [4, 2]", "got 7"],
        );
        let st = picardiff_sampler_run_with_inputs(
            h.sampler,
            h.model,
            null(),
            0,
            noise.as_ptr(),
            399,
            out.as_mut_ptr(),
            8,
            null_mut(),
        );
        expect_err(st, PICARDIFF_SHAPE_MISMATCH, &["[50, 4, 2]", "got 399"]);
        let st = picardiff_sampler_run_with_inputs(
            h.sampler,
            h.model,
            null(),
            8,
            null(),
            0,
            out.as_mut_ptr(),
            8,
            null_mut(),
        );
        expect_err(
            st,
            PICARDIFF_INVALID_ARGUMENT,
            &["`x_T` is NULL but `x_T_len` is 8"],
        );
        let st = picardiff_sampler_run_with_inputs(
            h.sampler,
            h.model,
            init.as_ptr(),
            usize::MAX,
            null(),
            0,
            out.as_mut_ptr(),
            8,
            null_mut(),
        );
        expect_err(st, PICARDIFF_INVALID_ARGUMENT, &["larger than any buffer"]);
    }
    for bad in [0, 7, 9, 16] {
        assert_eq!(run_ffi(&h, bad).unwrap_err(), PICARDIFF_SHAPE_MISMATCH);
        let msg = last_error();
        assert!(
            msg.contains(&format!("`out_len` is {bad}")) && msg.contains("= 8 floats"),
            "{msg}"
        );
    }
    // Two runs of batch 2 with sample0 = 0 and 2 reproduce one run of batch 4 (sequential sampler:
    // samples are independent; with ignored sample0 the halves would repeat samples 0 and 1).
    let sequential = CString::new("sequential").unwrap();
    let seq = |batch, sample0| picardiff_sampler_config {
        sampler: sequential.as_ptr(),
        batch,
        sample0,
        ..config()
    };
    let full = run_ffi(&handles(mixture_model(), &seq(4, 0)), 8).unwrap().0;
    let mut halves = run_ffi(&handles(mixture_model(), &seq(2, 0)), 4).unwrap().0;
    halves.extend(run_ffi(&handles(mixture_model(), &seq(2, 2)), 4).unwrap().0);
    assert_eq!(halves, full);
    assert_ne!(halves[..4], halves[4..]);
}

#[test]
fn invalid_configs_are_statuses_with_messages() {
    let ctx = cpu();
    let s = |v: &str| CString::new(v).unwrap();
    let (unknown, bogus, paper, nope) = (s("nope-schedule"), s("bogus"), s("paper"), s("zigzag"));
    let (ou, blocks) = (s("ou"), s("blocks"));
    let cases: Vec<(picardiff_sampler_config, &[&str])> = vec![
        // Issue 17: SIZE_MAX training steps panicked ("capacity overflow").
        (
            picardiff_sampler_config {
                train_steps: usize::MAX,
                ..config()
            },
            &["train_steps", "10000000"],
        ),
        (
            picardiff_sampler_config {
                schedule: unknown.as_ptr(),
                ..config()
            },
            &["schedule", "nope-schedule", "ddpm-linear"],
        ),
        (
            picardiff_sampler_config {
                sampler: bogus.as_ptr(),
                ..config()
            },
            &["sampler", "bogus"],
        ),
        (
            picardiff_sampler_config {
                rule: bogus.as_ptr(),
                ..config()
            },
            &["rule", "bogus"],
        ),
        (
            picardiff_sampler_config {
                spacing: nope.as_ptr(),
                ..config()
            },
            &["spacing", "zigzag"],
        ),
        (
            picardiff_sampler_config {
                picard_form: nope.as_ptr(),
                ..config()
            },
            &["picard_form", "zigzag"],
        ),
        (
            picardiff_sampler_config {
                steps: 5000,
                ..config()
            },
            &["steps", "1..=1000"],
        ),
        (
            picardiff_sampler_config {
                eta: f64::NAN,
                ..config()
            },
            &["eta"],
        ),
        (
            picardiff_sampler_config {
                schedule: ou.as_ptr(),
                grid: nope.as_ptr(),
                ..config()
            },
            &["grid", "zigzag"],
        ),
        (
            picardiff_sampler_config {
                schedule: ou.as_ptr(),
                grid: paper.as_ptr(),
                t_end: -1.0,
                ..config()
            },
            &["t_end"],
        ),
        (
            picardiff_sampler_config {
                sampler: blocks.as_ptr(),
                corrector: 1,
                corrector_gamma: -2.0,
                ..config()
            },
            &["corrector_gamma"],
        ),
    ];
    for (c, words) in &cases {
        let st = new_sampler(ctx, c).unwrap_err();
        expect_err(st, PICARDIFF_INVALID_CONFIG, words);
        assert!(last_error().starts_with("picardiff_sampler_new: "));
    }
    // Not UTF-8.
    let latin1 = [0xE9u8, b'a', 0];
    let c = picardiff_sampler_config {
        schedule: latin1.as_ptr() as *const c_char,
        ..config()
    };
    expect_err(
        new_sampler(ctx, &c).unwrap_err(),
        PICARDIFF_INVALID_ARGUMENT,
        &["schedule", "UTF-8"],
    );
    // Unknown enum values.
    let mut out = null_mut();
    expect_err(
        unsafe { picardiff_context_new(7, 0, &mut out) },
        PICARDIFF_INVALID_ARGUMENT,
        &["unknown device 7"],
    );
    let mut m = null_mut();
    let st = unsafe {
        picardiff_model_new_callback(Some(super::callbacks::panics), null_mut(), 2, 9, &mut m)
    };
    expect_err(st, PICARDIFF_INVALID_ARGUMENT, &["unknown model output 9"]);
    unsafe { picardiff_context_free(ctx) };
}

#[test]
fn devices() {
    let mut ctx = null_mut();
    let st = unsafe {
        picardiff_context_new(picardiff_device::PICARDIFF_DEVICE_AUTO as u32, 0, &mut ctx)
    };
    assert_eq!(st, PICARDIFF_OK);
    let mut d = u32::MAX;
    assert_eq!(
        unsafe { picardiff_context_device(ctx, &mut d) },
        PICARDIFF_OK
    );
    assert_ne!(d, picardiff_device::PICARDIFF_DEVICE_AUTO as u32);
    unsafe { picardiff_context_free(ctx) };
    if !cfg!(feature = "cuda") {
        assert_eq!(d, picardiff_device::PICARDIFF_DEVICE_CPU as u32);
        let mut ctx = null_mut();
        let st = unsafe {
            picardiff_context_new(picardiff_device::PICARDIFF_DEVICE_CUDA as u32, 0, &mut ctx)
        };
        expect_err(st, PICARDIFF_UNSUPPORTED, &["without CUDA support"]);
        assert!(ctx.is_null());
    }
}

#[test]
fn invalid_models() {
    let mut m = null_mut();
    unsafe {
        let bad = r#"{"weights": [1.0], "means": [[0.0, 1.0]], "stds": [-1]}"#;
        expect_err(
            picardiff_model_new_mixture_json(bad.as_ptr().cast(), bad.len(), &mut m),
            PICARDIFF_INVALID_MODEL,
            &["stds"],
        );
        // Only json_len bytes are read: a truncated length is a parse error, not an overread.
        expect_err(
            picardiff_model_new_mixture_json(MIXTURE_JSON.as_ptr().cast(), 20, &mut m),
            PICARDIFF_INVALID_MODEL,
            &["json"],
        );
        let path = CString::new("/nonexistent/mixture.json").unwrap();
        expect_err(
            picardiff_model_new_mixture_file(path.as_ptr(), &mut m),
            PICARDIFF_IO,
            &["/nonexistent/mixture.json"],
        );
        expect_err(
            picardiff_model_new_callback(Some(super::callbacks::panics), null_mut(), 0, 0, &mut m),
            PICARDIFF_INVALID_MODEL,
            &["dim"],
        );
    }
    assert!(m.is_null());
    let path = CString::new(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/mixture_2d.json")
            .to_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        unsafe { picardiff_model_new_mixture_file(path.as_ptr(), &mut m) },
        PICARDIFF_OK,
        "{}",
        last_error()
    );
    let h = handles(m, &config());
    assert_eq!(
        run_ffi(&h, 8).unwrap().0,
        rust_picard(50, 4, 9, None, None).samples
    );
}

#[test]
fn last_error_buffer_semantics() {
    let ctx = cpu();
    let unknown = CString::new("ünknown").unwrap();
    let c = picardiff_sampler_config {
        schedule: unknown.as_ptr(),
        ..config()
    };
    assert!(new_sampler(ctx, &c).is_err());
    let full = last_error();
    assert_eq!(picardiff_last_error_len(), full.len());
    // Success leaves the message alone.
    assert!(new_sampler(ctx, &config())
        .map(|s| unsafe { picardiff_sampler_free(s) })
        .is_ok());
    assert_eq!(last_error(), full);
    // Truncation at a character boundary: "ü" is 2 bytes, find where it starts.
    let at = full.find('ü').unwrap();
    let mut buf = [0x55u8; 512];
    let mut w = 0;
    let st = unsafe { picardiff_last_error(buf.as_mut_ptr().cast(), at + 2, &mut w) };
    assert_eq!(st, PICARDIFF_BUFFER_TOO_SMALL);
    assert_eq!((w, buf[w]), (at, 0));
    assert_eq!(&buf[..w], &full.as_bytes()[..at]);
    let st = unsafe { picardiff_last_error(null_mut(), 0, &mut w) };
    assert_eq!((st, w), (PICARDIFF_BUFFER_TOO_SMALL, 0));
    // Thread-local: another thread has no error.
    std::thread::spawn(|| {
        assert_eq!(
            (picardiff_last_error_len(), last_error()),
            (0, String::new())
        )
    })
    .join()
    .unwrap();
    unsafe { picardiff_context_free(ctx) };
}

#[test]
fn device_output_needs_a_cuda_context() {
    let h = handles(mixture_model(), &config());
    let mut out = vec![f32::NAN; 8];
    let mut st = picardiff_stats {
        rounds: 77,
        ..Default::default()
    };
    unsafe {
        let dev = out.as_mut_ptr().cast::<c_void>();
        expect_err(
            picardiff_sampler_run_device(null(), h.model, dev, 8, &mut st),
            PICARDIFF_NULL_ARGUMENT,
            &["picardiff_sampler_run_device", "sampler"],
        );
        expect_err(
            picardiff_sampler_run_device(h.sampler, null(), dev, 8, &mut st),
            PICARDIFF_NULL_ARGUMENT,
            &["model"],
        );
        expect_err(
            picardiff_sampler_run_device(h.sampler, h.model, null_mut(), 8, &mut st),
            PICARDIFF_NULL_ARGUMENT,
            &["out_device"],
        );
        // A CPU context has no device memory: a status, nothing written.
        for len in [8, 3] {
            expect_err(
                picardiff_sampler_run_device(h.sampler, h.model, dev, len, &mut st),
                PICARDIFF_UNSUPPORTED,
                &["CUDA context", "picardiff_sampler_run"],
            );
        }
    }
    assert!(out.iter().all(|v| v.is_nan()));
    assert_eq!(st.rounds, 77, "stats written on failure");
}

/// Issue 17: run-time size edges are statuses, not caught panics: batch × dim overflowing
/// (`check_out_len`), sample0 + batch past 2^32 (the noise counter would wrap).
#[test]
fn size_edges_are_statuses_not_panics() {
    for (batch, sample0, out_len, words) in [
        (usize::MAX, 0, 4, &["overflows"][..]),
        (3, u32::MAX - 1, 6, &["sample0"][..]),
    ] {
        let c = picardiff_sampler_config {
            batch,
            sample0,
            ..config()
        };
        let h = handles(mixture_model(), &c);
        let st = run_ffi(&h, out_len).unwrap_err();
        expect_err(st, PICARDIFF_INVALID_CONFIG, words);
    }
}

#[test]
fn flow_schedule_runs_euler_with_the_shift_field() {
    // schedule "flow", rule NULL (euler on flow), grid NULL (diffusers'), shift 3.
    let flow = CString::new("flow").unwrap();
    let c = picardiff_sampler_config {
        schedule: flow.as_ptr(),
        steps: 12,
        shift: 3.0,
        ..config()
    };
    let (out, stats) = run_ffi(&handles(mixture_model(), &c), 8).unwrap();
    let s = Schedule::from_name("flow", 1000).unwrap();
    let grid = Grid::flow(&s, 12, FlowShift::Static(3.0)).unwrap();
    let rule = StepRule::from_name("euler", None).unwrap();
    // The defaults with a window holding every step: drift at τ = 0, the final-sample stop.
    let kind = SamplerKind::picard(12, 0.0, picardiff::defaults::PICARD_FORM_FINAL_STOP)
        .with_final_tol(Some(picardiff::defaults::FINAL_TOL));
    let inputs = RunInputs {
        batch: 4,
        seed: 9,
        ..Default::default()
    };
    let model = GmmModel::new(Mixture::from_json(MIXTURE_JSON).unwrap(), s.clone());
    let want = run(&CpuBackend, &model, &grid, rule, &kind, &inputs).unwrap();
    assert_eq!(out, want.samples);
    assert_eq!(stats.rounds, want.stats.rounds);
    // The shift is the grid's: shift 0 is the default 1, and differs from shift 3.
    let c1 = picardiff_sampler_config { shift: 0.0, ..c };
    assert_ne!(run_ffi(&handles(mixture_model(), &c1), 8).unwrap().0, out);
    // VP rules are refused on flow; a negative shift is refused.
    let ddim = CString::new("ddim").unwrap();
    let bad = picardiff_sampler_config {
        rule: ddim.as_ptr(),
        ..c
    };
    let st = new_sampler(cpu(), &bad).unwrap_err();
    expect_err(st, PICARDIFF_INVALID_CONFIG, &["euler"]);
    let bad = picardiff_sampler_config { shift: -1.0, ..c };
    let st = new_sampler(cpu(), &bad).unwrap_err();
    expect_err(st, PICARDIFF_INVALID_CONFIG, &["shift"]);
}

#[test]
fn dpm_solver_runs_by_name_with_its_spacing() {
    // rule "dpmpp-2m" and spacing "dpm-linspace" go through the library's from_name functions.
    let (rule_s, spacing_s, form_s) = (
        CString::new("dpmpp-2m").unwrap(),
        CString::new("dpm-linspace").unwrap(),
        // The scan form (the default with the final-sample stop is drift).
        CString::new("scan").unwrap(),
    );
    let c = picardiff_sampler_config {
        steps: 20,
        rule: rule_s.as_ptr(),
        spacing: spacing_s.as_ptr(),
        picard_form: form_s.as_ptr(),
        ..config()
    };
    let (out, stats) = run_ffi(&handles(mixture_model(), &c), 8).unwrap();
    let grid = Grid::discrete(&schedule(), 20, Spacing::DpmLinspace).unwrap();
    let rule = StepRule::from_name("dpmpp-2m", None).unwrap();
    let kind = SamplerKind::picard(20, 0.0, PicardForm::Scan)
        .with_final_tol(Some(picardiff::defaults::FINAL_TOL));
    let inputs = RunInputs {
        batch: 4,
        seed: 9,
        ..Default::default()
    };
    let want = run(&CpuBackend, &gmm(), &grid, rule, &kind, &inputs).unwrap();
    assert_eq!(out, want.samples);
    assert_eq!(stats.rounds, want.stats.rounds);
    assert!(stats.rounds < 20, "{} rounds", stats.rounds);
}

#[test]
fn anderson_field_accelerates_and_refuses_bad_histories() {
    // anderson 3 on a 50-step DDIM run: the library's samples, and a history of 7 is refused.
    let ddim = CString::new("ddim").unwrap();
    let c = picardiff_sampler_config {
        rule: ddim.as_ptr(),
        anderson: 3,
        // The per-step test at the rule's τ (scan), where Anderson cuts rounds.
        tol: 1e-3,
        ..config()
    };
    let (out, stats) = run_ffi(&handles(mixture_model(), &c), 8).unwrap();
    let rule = StepRule::from_name("ddim", None).unwrap();
    let kind = SamplerKind::Picard {
        window: 50,
        tol: rule.default_tolerance(),
        max_iters: None,
        form: PicardForm::Scan,
        anderson: Some(3),
        final_tol: None,
    };
    let inputs = RunInputs {
        batch: 4,
        seed: 9,
        ..Default::default()
    };
    let grid = Grid::discrete(&schedule(), 50, Spacing::Leading).unwrap();
    let want = run(&CpuBackend, &gmm(), &grid, rule, &kind, &inputs).unwrap();
    assert_eq!(out, want.samples);
    assert_eq!(stats.rounds, want.stats.rounds);
    let plain = picardiff_sampler_config { anderson: 0, ..c };
    assert_ne!(
        run_ffi(&handles(mixture_model(), &plain), 8).unwrap().0,
        out
    );
    let bad = picardiff_sampler_config { anderson: 7, ..c };
    let st = new_sampler(cpu(), &bad).unwrap_err();
    expect_err(st, PICARDIFF_INVALID_CONFIG, &["anderson", "2 to 5"]);
}

/// The default sampler is auto: on a grid Picard cannot win (R̂ = N) it is the sequential
/// sampler; otherwise one of the two exactly (which one depends on the machine's costs).
#[test]
fn auto_default_runs_sequential_or_picard_exactly() {
    let seq = |steps: usize| {
        let grid = Grid::discrete(&schedule(), steps, Spacing::Leading).unwrap();
        let rule = StepRule::from_name("ddpm", None).unwrap();
        let inputs = RunInputs {
            batch: 4,
            seed: 9,
            ..Default::default()
        };
        run(
            &CpuBackend,
            &gmm(),
            &grid,
            rule,
            &SamplerKind::Sequential,
            &inputs,
        )
        .unwrap()
    };
    for steps in [10, 50] {
        let mut c = config();
        c.sampler = std::ptr::null();
        c.steps = steps;
        let h = handles(mixture_model(), &c);
        let (a, st) = run_ffi(&h, 8).unwrap();
        if steps == 10 || st.rounds == steps {
            assert_eq!(
                a,
                seq(steps).samples,
                "{steps} steps: the sequential sampler"
            );
            assert_eq!(st.rounds, steps);
        } else {
            assert_eq!(a, rust_picard(steps, 4, 9, None, None).samples);
        }
    }
}
