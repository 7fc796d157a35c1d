//! Soak test of the C ABI in one process: thousands of consecutive runs on one sampler, with a
//! LeRobot policy (per-sample conditioning) and with a callback model, keep the resident memory
//! flat and the results identical. Alone in its binary, so that other tests' memory does not count.
//! Also: a policy run through `picardiff_sampler_run_cond` equals the library's own run bit for bit.
// Every unsafe block here calls the C ABI with pointers and lengths made just before from Rust
// values that outlive the call (the tested contract itself), so the blocks carry no notes.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::ffi::{c_int, c_void, CString};
use std::path::Path;
use std::ptr::{null, null_mut};

use picardiff::ffi::picardiff_status::*;
use picardiff::ffi::*;
use picardiff::model::DiffusionPolicy;
use picardiff::prelude::*;

/// Resident set size in bytes (Linux `/proc/self/statm`, pages × 4096).
fn rss() -> usize {
    let text = std::fs::read_to_string("/proc/self/statm").unwrap();
    text.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 4096
}

fn policy_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lerobot/film_bias_k3_g4")
}

/// ε = 0.5·x: a model whose callback allocates nothing.
unsafe extern "C-unwind" fn half(
    x: *const f32,
    _t: *const f32,
    n: usize,
    dim: usize,
    out: *mut f32,
    _user: *mut c_void,
    _stream: *mut c_void,
) -> c_int {
    for i in 0..n * dim {
        // SAFETY: picardiff passes n × dim readable and writable values.
        unsafe { *out.add(i) = 0.5 * *x.add(i) };
    }
    0
}

/// Runs `runs` times, checking every result equals the first; returns the RSS growth after a warm-up.
fn soak(runs: usize, mut once: impl FnMut() -> Vec<f32>) -> isize {
    let first = once();
    for _ in 0..20 {
        assert_eq!(once(), first);
    }
    let before = rss();
    for i in 0..runs {
        let out = once();
        assert!(out == first, "run {i} differs");
    }
    rss() as isize - before as isize
}

#[test]
fn thousands_of_runs_keep_memory_flat() {
    unsafe {
        let mut ctx = null_mut();
        assert_eq!(
            picardiff_context_new(picardiff_device::PICARDIFF_DEVICE_CPU as u32, 0, &mut ctx),
            PICARDIFF_OK
        );
        // The picard sampler in the scan form, which the library run below names (the default
        // sampler, auto, would choose per machine).
        let scan = CString::new("scan").unwrap();
        let cfg = picardiff_sampler_config {
            batch: 2,
            seed: 3,
            sampler: c"picard".as_ptr(),
            picard_form: scan.as_ptr(),
            ..Default::default()
        };
        let mut sampler = null_mut();
        assert_eq!(picardiff_sampler_new(ctx, &cfg, &mut sampler), PICARDIFF_OK);

        // A LeRobot policy with per-sample conditioning (its own DDIM-10 scheduler, clipping on).
        let path = CString::new(policy_dir().to_str().unwrap()).unwrap();
        let mut policy = null_mut();
        assert_eq!(
            picardiff_model_new_file(path.as_ptr(), &mut policy),
            PICARDIFF_OK
        );
        let (mut dim, mut g, mut steps) = (0, 0, 0);
        assert_eq!(picardiff_model_dim(policy, &mut dim), PICARDIFF_OK);
        assert_eq!(picardiff_model_cond_dim(policy, &mut g), PICARDIFF_OK);
        assert_eq!(
            picardiff_sampler_model_steps(sampler, policy, &mut steps),
            PICARDIFF_OK
        );
        assert_eq!((dim, g, steps), (24, 7, 10));
        let cond: Vec<f32> = (0..2 * g).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut out = vec![0f32; 2 * dim];
        let mut buf = vec![0f32; 2 * dim];
        let cond_c = cond.clone();
        let mut run_policy = move || {
            let st = picardiff_sampler_run_cond(
                sampler,
                policy,
                cond_c.as_ptr(),
                cond_c.len(),
                null(),
                0,
                null(),
                0,
                buf.as_mut_ptr(),
                buf.len(),
                null_mut(),
            );
            assert_eq!(st, PICARDIFF_OK);
            buf.clone()
        };
        // The C ABI's run is the library's run with the policy's own scheduler.
        let got = run_policy();
        let p = DiffusionPolicy::from_dir(&policy_dir()).unwrap();
        let s = &p.scheduler;
        let schedule = s.schedule().unwrap();
        let grid = s.grid(&schedule).unwrap();
        // The defaults with a window holding every step (τ = 0, the final-sample stop), in the
        // scan form the config names.
        let kind = SamplerKind::picard(10, 0.0, PicardForm::Scan)
            .with_final_tol(Some(picardiff::defaults::FINAL_TOL));
        let inputs = RunInputs {
            batch: 2,
            seed: 3,
            cond: Some(&cond),
            clip: s.clip_sample(),
            ..Default::default()
        };
        let want = run(&CpuBackend, &p, &grid, s.rule(), &kind, &inputs).unwrap();
        assert_eq!(got, want.samples);

        // Wrong conditioning: a status, and the output untouched.
        let before = out.clone();
        let st = picardiff_sampler_run_cond(
            sampler,
            policy,
            cond.as_ptr(),
            cond.len() - 1,
            null(),
            0,
            null(),
            0,
            out.as_mut_ptr(),
            out.len(),
            null_mut(),
        );
        assert_ne!(st, PICARDIFF_OK);
        assert_eq!(out, before);

        let grew = soak(1000, &mut run_policy);
        assert!(
            grew < 4 << 20,
            "policy runs: RSS grew by {grew} bytes over 1000 runs"
        );

        // A callback model on the same sampler (the config's 100-step DDPM on ddpm-linear).
        let mut callback = null_mut();
        assert_eq!(
            picardiff_model_new_callback(Some(half), null_mut(), 8, 0, &mut callback),
            PICARDIFF_OK
        );
        let mut out8 = vec![0f32; 2 * 8];
        let grew = soak(3000, || {
            let st =
                picardiff_sampler_run(sampler, callback, out8.as_mut_ptr(), out8.len(), null_mut());
            assert_eq!(st, PICARDIFF_OK);
            out8.clone()
        });
        assert!(
            grew < 4 << 20,
            "callback runs: RSS grew by {grew} bytes over 3000 runs"
        );

        picardiff_model_free(callback);
        picardiff_model_free(policy);
        picardiff_sampler_free(sampler);
        picardiff_context_free(ctx);
    }
}
