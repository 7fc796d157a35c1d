//! Hardening on the CPU: non-finite detection naming the step, bit-identical results across thread
//! counts, and samplers run from several threads. (Memory bounds: tests/memory.rs.)

mod common;

use common::*;
use picardiff::prelude::*;

/// A mixture model that returns NaN at one model time.
struct Poisoned {
    inner: GmmModel,
    at: f32,
}

impl ScoreModel<CpuBackend> for Poisoned {
    type Workspace = Vec<f32>;
    fn dim(&self) -> usize {
        ScoreModel::<CpuBackend>::dim(&self.inner)
    }
    fn output(&self) -> ModelOutput {
        ModelOutput::Epsilon
    }
    fn workspace(&self, b: &CpuBackend, rows: usize) -> Result<Vec<f32>> {
        self.inner.workspace(b, rows)
    }
    fn eval(
        &self,
        b: &CpuBackend,
        ws: &mut Vec<f32>,
        x: &Vec<f32>,
        t: &Vec<f32>,
        row0: usize,
        rows: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        self.inner.eval(b, ws, x, t, row0, rows, out)?;
        let d = self.dim();
        for r in row0..row0 + rows {
            if t[r] == self.at {
                out[r * d] = f32::NAN;
            }
        }
        Ok(())
    }
}

#[test]
fn a_nan_model_output_stops_every_sampler_naming_the_step() {
    let (s, g) = ddpm_grid(100);
    // Step 37 evaluates the model at grid point 37.
    let at = g.points[37].t as f32;
    let model = Poisoned {
        inner: GmmModel::new(mixture_2d(), s),
        at,
    };
    let inputs = RunInputs {
        batch: 3,
        seed: 1,
        ..Default::default()
    };
    let kinds = [
        SamplerKind::Sequential,
        SamplerKind::Picard {
            window: 100,
            tol: 0.1,
            max_iters: None,
            form: PicardForm::Scan,
            anderson: None,
            final_tol: None,
        },
        SamplerKind::Picard {
            window: 8,
            tol: 0.1,
            max_iters: None,
            form: PicardForm::Drift,
            anderson: None,
            final_tol: None,
        },
        SamplerKind::Blocks {
            block_len: 200.0,
            iters: 4,
            tol: 0.1,
            form: PicardForm::Scan,
            corrector: None,
            anderson: None,
            final_tol: None,
        },
    ];
    // A one-step rule and a multistep one (whose later steps also read point 37's output).
    for rule in ["ddpm", "dpmpp-2m"] {
        let rule = StepRule::from_name(rule, None).unwrap();
        for kind in &kinds {
            match run(&CpuBackend, &model, &g, rule, kind, &inputs) {
                Err(Error::NonFinite { step, .. }) => assert_eq!(step, 37, "{rule:?} {kind:?}"),
                other => panic!("{rule:?} {kind:?}: expected a non-finite error, got {other:?}"),
            }
        }
    }
}

#[test]
fn same_seed_is_bit_identical_across_runs_and_thread_counts() {
    let (s, g) = ddpm_grid(200);
    let model = GmmModel::new(mixture_64d(), s);
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let kind = SamplerKind::Picard {
        window: 50,
        tol: 0.1,
        max_iters: None,
        form: PicardForm::Scan,
        anderson: None,
        final_tol: None,
    };
    let inputs = RunInputs {
        batch: 5,
        seed: 9,
        ..Default::default()
    };
    let in_pool = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| run(&CpuBackend, &model, &g, rule, &kind, &inputs).unwrap())
    };
    let one = in_pool(1);
    for threads in [1, 2, 3] {
        let other = in_pool(threads);
        assert_eq!(other.samples, one.samples, "{threads} threads");
        assert_eq!(other.stats.rounds, one.stats.rounds);
    }
    // The multistep rule's step and sweep (its direction ring) too, sequential and Picard.
    let dpm = StepRule::from_name("dpmpp-3m", None).unwrap();
    for kind in [SamplerKind::Sequential, kind.clone()] {
        let in_pool = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| run(&CpuBackend, &model, &g, dpm, &kind, &inputs).unwrap())
        };
        let one = in_pool(1);
        for threads in [2, 3] {
            let other = in_pool(threads);
            assert_eq!(
                other.samples, one.samples,
                "dpmpp-3m {kind:?} {threads} threads"
            );
            assert_eq!(other.stats.rounds, one.stats.rounds);
        }
    }
}

#[test]
fn samplers_from_several_threads_match_running_alone() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GmmModel>();
    assert_send_sync::<CpuBackend>();
    let (s, g) = ddpm_grid(100);
    let model = GmmModel::new(mixture_2d(), s);
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let kind = SamplerKind::Picard {
        window: 100,
        tol: 0.1,
        max_iters: None,
        form: PicardForm::Scan,
        anderson: None,
        final_tol: None,
    };
    let alone: Vec<Vec<f32>> = (0..4)
        .map(|seed| {
            run(
                &CpuBackend,
                &model,
                &g,
                rule,
                &kind,
                &RunInputs {
                    batch: 4,
                    seed,
                    ..Default::default()
                },
            )
            .unwrap()
            .samples
        })
        .collect();
    let together: Vec<Vec<f32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|seed| {
                let (model, g, kind) = (&model, &g, &kind);
                scope.spawn(move || {
                    run(
                        &CpuBackend,
                        model,
                        g,
                        rule,
                        kind,
                        &RunInputs {
                            batch: 4,
                            seed,
                            ..Default::default()
                        },
                    )
                    .unwrap()
                    .samples
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
}

#[test]
fn a_run_larger_than_free_memory_fails_before_allocating_with_the_amount() {
    let s = Schedule::from_name("ou", 0).unwrap();
    let g = Grid::uniform(&s, 100_000, 10.0, 1e-3).unwrap();
    let mix = Mixture::new(vec![1.0], vec![vec![0.0; 4096]], vec![1.0]).unwrap();
    let model = GmmModel::new(mix, s);
    // 100 000-point window × 4096 samples × 4096 elements ≈ 13 PB.
    let kind = SamplerKind::Picard {
        window: 100_000,
        tol: 0.1,
        max_iters: None,
        form: PicardForm::Scan,
        anderson: None,
        final_tol: None,
    };
    let err = run(
        &CpuBackend,
        &model,
        &g,
        StepRule::ExpSde,
        &kind,
        &RunInputs {
            batch: 4096,
            seed: 1,
            ..Default::default()
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("MiB") && msg.contains("needs"), "{msg}");
    assert!(
        err.is_out_of_memory(),
        "matchable as out of memory: {err:?}"
    );
}

#[test]
fn mixture_files_must_be_regular_and_bounded() {
    let dir = std::env::temp_dir().join(format!("picardiff-hardening-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = Mixture::from_file(&dir).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    let big = dir.join("big.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(Mixture::MAX_FILE_BYTES + 1).unwrap(); // sparse: no disk used
    let err = Mixture::from_file(&big).unwrap_err().to_string();
    assert!(err.contains("byte limit"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17: the memory check counts the model's workspace (`ScoreModel::workspace_bytes`), not
/// only the sampler's rings. The mix64d MLP (H = 192, ~2.3 KiB of scratch per row) at a window of
/// 1000 and a batch whose workspace is twice the free memory, while the rings alone fit, used to
/// pass the check and abort in the workspace allocation; now it fails before allocating.
#[test]
fn the_memory_check_counts_the_model_workspace() {
    use picardiff::model::{load_model, ModelFile};
    let Some(free) = CpuBackend.free_memory() else {
        println!("skipped: the backend cannot tell its free memory here");
        return;
    };
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/mix64d.safetensors");
    let ModelFile::Mlp(model) = load_model(&path).unwrap() else {
        panic!("mix64d is an MLP file")
    };
    let rows = 1 << 20;
    let per_row = ScoreModel::<CpuBackend>::workspace_bytes(model.as_ref(), rows) / rows;
    assert!(per_row >= 3 * 192 * 4, "{per_row} bytes per row");
    let (steps, ring) = (1000, 1001);
    let batch = (2 * free).div_ceil(per_row * ring);
    // The iterate and output rings alone (64 f32 per row each) fit in the free memory.
    assert!(ring * batch * 2 * 64 * 4 < free);
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let g = Grid::discrete(&s, steps, Spacing::Leading).unwrap();
    let kind = SamplerKind::Picard {
        window: steps,
        tol: 0.1,
        max_iters: None,
        form: PicardForm::Scan,
        anderson: None,
        final_tol: None,
    };
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let inputs = RunInputs {
        batch,
        seed: 1,
        ..Default::default()
    };
    let err = run(&CpuBackend, model.as_ref(), &g, rule, &kind, &inputs).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("MiB") && msg.contains("needs"), "{msg}");
}

/// A model of any dimension whose workspace is never allocated (the sampler refuses the run first).
struct Huge(usize);

impl ScoreModel<CpuBackend> for Huge {
    type Workspace = ();
    fn dim(&self) -> usize {
        self.0
    }
    fn output(&self) -> ModelOutput {
        ModelOutput::Epsilon
    }
    fn workspace(&self, _: &CpuBackend, _: usize) -> Result<()> {
        panic!("the run should have been refused before allocating")
    }
    fn eval(
        &self,
        _: &CpuBackend,
        _: &mut (),
        _: &Vec<f32>,
        _: &Vec<f32>,
        _: usize,
        _: usize,
        _: &mut Vec<f32>,
    ) -> Result<()> {
        unreachable!()
    }
}

/// Issue 17: integer edges are errors, not panics ("capacity overflow", debug-build overflow
/// checks: the test profile keeps them) or wrapped arithmetic.
#[test]
fn integer_edges_are_errors_not_panics_or_wraps() {
    // Training steps: capped (usize::MAX used to panic allocating the table).
    for n in [usize::MAX, picardiff::schedule::MAX_TRAIN_STEPS + 1] {
        let e = Schedule::from_name("ddpm-linear", n).unwrap_err();
        assert!(e.to_string().contains("train_steps"), "{e}");
    }
    assert!(Schedule::from_name("cosine", 1_000_000).is_ok());
    let (s, g) = ddpm_grid(10);
    let model = GmmModel::new(mixture_2d(), s);
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let picard = SamplerKind::Picard {
        window: 10,
        tol: 0.1,
        max_iters: None,
        form: PicardForm::Scan,
        anderson: None,
        final_tol: None,
    };
    // sample0 + batch past 2^32 would wrap the noise counter and reuse sample 0's noise.
    let inputs = |sample0, batch| RunInputs {
        batch,
        seed: 1,
        sample0,
        ..Default::default()
    };
    let e = run(
        &CpuBackend,
        &model,
        &g,
        rule,
        &picard,
        &inputs(u32::MAX - 1, 3),
    )
    .unwrap_err();
    assert!(e.to_string().contains("sample0"), "{e}");
    let last = run(
        &CpuBackend,
        &model,
        &g,
        rule,
        &picard,
        &inputs(u32::MAX - 1, 2),
    )
    .unwrap();
    assert_eq!(last.samples.len(), 4);
    // batch × dim (× the ring) overflowing usize.
    for (dim, batch) in [(usize::MAX / 2, 3), (1 << 40, 1 << 20), (1 << 30, 1 << 20)] {
        for kind in [SamplerKind::Sequential, picard.clone()] {
            let e = run(&CpuBackend, &Huge(dim), &g, rule, &kind, &inputs(0, batch)).unwrap_err();
            assert!(
                e.to_string().contains("overflows") || e.to_string().contains("MiB"),
                "dim {dim} batch {batch}: {e}"
            );
        }
    }
    // A huge K per block: the plan's iteration cap saturates instead of overflowing.
    let plan =
        picardiff::backend::WindowPlan::blocks(10, vec![5, 10], usize::MAX, 0.1, PicardForm::Scan)
            .unwrap();
    assert_eq!(plan.max_iters, usize::MAX);
    let blocks = SamplerKind::Blocks {
        block_len: 50.0,
        iters: usize::MAX,
        tol: 0.1,
        form: PicardForm::Scan,
        corrector: None,
        anderson: None,
        final_tol: None,
    };
    let out = run(&CpuBackend, &model, &g, rule, &blocks, &inputs(0, 2)).unwrap();
    assert!(out.stats.rounds <= 10);
    // A non-finite tolerance.
    let inf = SamplerKind::Picard {
        window: 10,
        tol: f64::INFINITY,
        max_iters: None,
        form: PicardForm::Scan,
        anderson: None,
        final_tol: None,
    };
    let e = run(&CpuBackend, &model, &g, rule, &inf, &inputs(0, 2)).unwrap_err();
    assert!(e.to_string().contains("tol"), "{e}");
}

/// Issue 13: the CPU backend's copy, fill and download refuse a range outside the buffer with an
/// error, as the CUDA backend's do (they used to panic on a slice index).
#[test]
fn cpu_buffer_ops_refuse_bad_ranges() {
    let b = CpuBackend;
    let src = b.alloc(4).unwrap();
    let mut dst = b.alloc(4).unwrap();
    assert!(b.copy(&src, 2, &mut dst, 0, 3).is_err());
    assert!(b.copy(&src, 0, &mut dst, usize::MAX, 2).is_err());
    assert!(b.fill(&mut dst, 3, 2, 1.0).is_err());
    assert!(b.fill(&mut dst, usize::MAX, 2, 1.0).is_err());
    let mut out = [0f32; 5];
    assert!(b.download(&src, 0, &mut out).is_err());
    let e = b.copy(&src, 1, &mut dst, 0, 4).unwrap_err().to_string();
    assert!(e.contains("copy (source)") && e.contains("1..1+4"), "{e}");
    assert!(b.copy(&src, 0, &mut dst, 0, 4).is_ok());
    assert!(b.fill(&mut dst, 1, 3, 2.0).is_ok());
}

/// A 2-D model that asks for an absurdly wide conditioning vector (never evaluated).
struct WideCond;

impl ScoreModel<CpuBackend> for WideCond {
    type Workspace = ();
    fn dim(&self) -> usize {
        2
    }
    fn output(&self) -> ModelOutput {
        ModelOutput::Epsilon
    }
    fn cond_dim(&self) -> usize {
        usize::MAX / 2 + 1
    }
    fn workspace(&self, _: &CpuBackend, _: usize) -> Result<()> {
        panic!("the run should have been refused before allocating")
    }
    fn eval(
        &self,
        _: &CpuBackend,
        _: &mut (),
        _: &Vec<f32>,
        _: &Vec<f32>,
        _: usize,
        _: usize,
        _: &mut Vec<f32>,
    ) -> Result<()> {
        unreachable!()
    }
}

/// batch × cond_dim past usize: a shape error, not an overflow panic (debug) or a wrapped length
/// that a short slice could match (release: 2 × 2^63 wraps to 0).
#[test]
fn a_conditioning_size_that_overflows_is_an_error() {
    let (_, g) = ddpm_grid(10);
    let rule = StepRule::from_name("ddim", None).unwrap();
    let inputs = RunInputs {
        batch: 2,
        cond: Some(&[]),
        ..Default::default()
    };
    let e = run(
        &CpuBackend,
        &WideCond,
        &g,
        rule,
        &SamplerKind::Sequential,
        &inputs,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("cond") && e.to_string().contains("more than 2^64"),
        "{e}"
    );
}

/// The hostile and hardening tests (this file, `*_hostile.rs`, `cli_errors.rs`) are meant to run in
/// a build where an unchecked size computation that overflows panics instead of wrapping to a small
/// number: `cargo test`'s profile has debug assertions and overflow checks on, for this test crate,
/// the library and the `picardiff` binary the CLI tests run (one profile for all three). Fails if a
/// profile setting (`overflow-checks = false`, `debug-assertions = false`) turns them off.
#[test]
fn the_hostile_tests_run_with_overflow_checks() {
    let debug_assertions = std::hint::black_box(cfg!(debug_assertions));
    assert!(
        debug_assertions,
        "cargo test must keep debug assertions on (Cargo.toml [profile.test]/[profile.dev])"
    );
    let here = std::panic::catch_unwind(|| std::hint::black_box(usize::MAX) + 1);
    assert!(
        here.is_err(),
        "the test crate was built without overflow checks"
    );
    assert!(
        picardiff::bench_internals::overflow_checks(),
        "the library was built without overflow checks"
    );
    // Settings that would turn them off for some build only (a package override, say) are refused
    // in the profiles `cargo test` uses.
    let toml = std::fs::read_to_string("Cargo.toml").unwrap();
    let mut section = String::new();
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
        } else if section.starts_with("[profile.dev") || section.starts_with("[profile.test") {
            let off = line.replace(' ', "");
            assert!(
                off != "overflow-checks=false" && off != "debug-assertions=false",
                "Cargo.toml {section} sets `{line}`: the hostile tests would miss overflows"
            );
        }
    }
}
