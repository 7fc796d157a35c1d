//! Per-sample conditioning of the MLP family (CPU): one conditioning vector per sample through
//! `RunInputs::cond` gives, for each sample, exactly the run of the model with that vector set as
//! its own (`MlpModel::set_cond`, checked against PyTorch in tests/mlp.rs), sequentially and with
//! Picard; bad conditioning is an error.

mod cli_common;

use cli_common::{picardiff, write_npy, TempDir};
use picardiff::model::MlpModel;
use picardiff::prelude::*;

const VARIANT_A: &str = "tests/data/mlp_variant_a.safetensors";

fn model() -> MlpModel {
    MlpModel::from_file(std::path::Path::new(VARIANT_A)).unwrap()
}

/// Samples of the runs: more than the MLP's small-row GEMM path takes (4 rows), so that every
/// call below, sequential or Picard, uses the one batch-invariant GEMM (`src/model/mlp/cpu.rs`).
const BATCH: usize = 5;

/// The samples' conditioning vectors (cond_dim 5).
fn conds() -> Vec<f32> {
    (0..BATCH * 5)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.2)
        .collect()
}

fn problem(m: &MlpModel) -> (Grid, StepRule) {
    let schedule = m.schedule().unwrap();
    (
        Grid::discrete(&schedule, 20, Spacing::Leading).unwrap(),
        StepRule::from_name("ddpm", None).unwrap(),
    )
}

#[test]
fn each_sample_equals_the_model_with_its_vector() {
    let m = model();
    let (grid, rule) = problem(&m);
    let c = m.config().cond_dim;
    assert_eq!(c, 5);
    assert_eq!(ScoreModel::<CpuBackend>::cond_dim(&m), c);
    let cond = conds();
    let inputs = RunInputs {
        batch: BATCH,
        seed: 4,
        cond: Some(&cond),
        ..Default::default()
    };
    let seq = run(
        &CpuBackend,
        &m,
        &grid,
        rule,
        &SamplerKind::Sequential,
        &inputs,
    )
    .unwrap();
    let d = m.config().dim;
    for b in 0..BATCH {
        // The same batch with sample b's vector as the model's own: its sample b is the same.
        let own = model().with_cond(&cond[b * c..(b + 1) * c]).unwrap();
        assert_eq!(ScoreModel::<CpuBackend>::cond_dim(&own), 0);
        let plain = RunInputs {
            batch: BATCH,
            seed: 4,
            ..Default::default()
        };
        let alone = run(
            &CpuBackend,
            &own,
            &grid,
            rule,
            &SamplerKind::Sequential,
            &plain,
        )
        .unwrap();
        let r = b * d..(b + 1) * d;
        assert_eq!(&seq.samples[r.clone()], &alone.samples[r], "sample {b}");
    }
    // Picard at τ = 0 (and any window) reproduces the sequential run bit for bit.
    for window in [1, 7, 20] {
        let picard = SamplerKind::Picard {
            window,
            tol: 0.0,
            max_iters: None,
            form: PicardForm::Scan,
            anderson: None,
            final_tol: None,
        };
        let par = run(&CpuBackend, &m, &grid, rule, &picard, &inputs).unwrap();
        assert_eq!(par.samples, seq.samples, "window {window}");
    }
    // Different conditioning gives different samples (the vectors are used).
    assert_ne!(&seq.samples[..d], &seq.samples[d..2 * d]);
}

#[test]
fn bad_or_missing_conditioning_is_an_error() {
    let m = model();
    let (grid, rule) = problem(&m);
    let kind = SamplerKind::Sequential;
    let with = |cond: Option<&[f32]>, batch: usize| {
        let inputs = RunInputs {
            batch,
            cond,
            ..Default::default()
        };
        run(&CpuBackend, &m, &grid, rule, &kind, &inputs)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let e = with(None, 2).unwrap_err();
    assert!(e.contains("conditioning"), "{e}");
    let e = with(Some(&[0.0; 9]), 2).unwrap_err();
    assert!(e.contains("cond"), "{e}");
    let mut nan = vec![0.0f32; 10];
    nan[7] = f32::NAN;
    let e = with(Some(&nan), 2).unwrap_err();
    assert!(e.contains("cond[1][2]") && e.contains("not finite"), "{e}");
    assert!(with(Some(&[0.5; 10]), 2).is_ok());
    // A model whose own vector is set takes no per-sample conditioning.
    let own = model().with_cond(&[0.1; 5]).unwrap();
    let inputs = RunInputs {
        batch: 2,
        cond: Some(&[0.5; 10]),
        ..Default::default()
    };
    let e = run(&CpuBackend, &own, &grid, rule, &kind, &inputs)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no per-sample conditioning"), "{e}");
}

#[test]
fn the_cli_takes_one_vector_per_sample() {
    let dir = TempDir::new("mlp-cond");
    let cond = conds();
    write_npy(&dir.path("cond.npy"), &[BATCH as u64, 5], &cond);
    let (c, out) = (dir.arg("cond.npy"), dir.arg("x.npy"));
    let path = std::fs::canonicalize(VARIANT_A)
        .unwrap()
        .display()
        .to_string();
    let args = [
        "sample",
        "--model",
        &path,
        "--cond",
        &c,
        "--steps",
        "20",
        "--rule",
        "ddpm",
        "--seed",
        "4",
        "--sampler",
        "sequential",
        "--device",
        "cpu",
        "--out",
        &out,
    ];
    let o = picardiff(&args, &dir.0);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = model();
    let (grid, rule) = problem(&m);
    let inputs = RunInputs {
        batch: BATCH,
        seed: 4,
        cond: Some(&cond),
        ..Default::default()
    };
    let lib = run(
        &CpuBackend,
        &m,
        &grid,
        rule,
        &SamplerKind::Sequential,
        &inputs,
    )
    .unwrap();
    let (shape, file) = cli_common::read_npy(std::path::Path::new(&out));
    assert_eq!(shape, [BATCH as u64, m.config().dim as u64]);
    assert_eq!(file, lib.samples);
    // Without --cond the run is refused, naming the width.
    let o = picardiff(
        &args[..3]
            .iter()
            .chain(&args[5..])
            .copied()
            .collect::<Vec<_>>(),
        &dir.0,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("[batch, 5]"), "{err}");
}
