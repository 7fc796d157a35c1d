//! Window 1, and any window at τ = 0, reproduce the sequential sampler; a window of W at τ = 0
//! converges in at most W iterations per position; blocks with K ≥ block size equal sequential.

mod common;

use common::*;
use picardiff::prelude::*;

fn seq(model: &GmmModel, grid: &Grid, rule: StepRule, batch: usize) -> RunOutput {
    run(
        &CpuBackend,
        model,
        grid,
        rule,
        &SamplerKind::Sequential,
        &RunInputs {
            batch,
            seed: 11,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn window_one_equals_sequential() {
    let (s, g) = ddpm_grid(200);
    let model = GmmModel::new(mixture_2d(), s);
    for rule in ["ddpm", "ddim"] {
        let rule = StepRule::from_name(rule, None).unwrap();
        let reference = seq(&model, &g, rule, 5);
        let inputs = RunInputs {
            batch: 5,
            seed: 11,
            ..Default::default()
        };
        let out = run(
            &CpuBackend,
            &model,
            &g,
            rule,
            &SamplerKind::picard(1, 0.1, PicardForm::Scan),
            &inputs,
        )
        .unwrap();
        assert_eq!(out.stats.rounds, 200);
        assert_eq!(out.stats.nfe, 200);
        assert!(
            max_abs_diff(&out.samples, &reference.samples) <= 1e-5,
            "{}",
            max_abs_diff(&out.samples, &reference.samples)
        );
    }
}

#[test]
fn any_window_with_zero_tolerance_equals_sequential() {
    let (s, g) = ddpm_grid(200);
    let model = GmmModel::new(mixture_64d(), s);
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let reference = seq(&model, &g, rule, 3);
    for (w, form) in [
        (7, PicardForm::Scan),
        (50, PicardForm::Scan),
        (200, PicardForm::Scan),
        (50, PicardForm::Drift),
    ] {
        let inputs = RunInputs {
            batch: 3,
            seed: 11,
            ..Default::default()
        };
        let out = run(
            &CpuBackend,
            &model,
            &g,
            rule,
            &SamplerKind::picard(w, 0.0, form),
            &inputs,
        )
        .unwrap();
        let diff = max_abs_diff(&out.samples, &reference.samples);
        assert!(diff <= 1e-5, "window {w} {form:?}: diff {diff}");
        // With τ = 0 the window moves at least one point per iteration and all W points of a window
        // are exact after W iterations, so rounds ≤ N; in practice far fewer.
        assert!(
            out.stats.rounds <= 200,
            "window {w}: {} rounds",
            out.stats.rounds
        );
        println!(
            "window {w} {form:?}: rounds {} nfe {} diff {diff}",
            out.stats.rounds, out.stats.nfe
        );
    }
}
