//! The clipped-x̂0 step (`docs/algorithms.md` §7) in every sampler: window 1 and τ = 0 reproduce
//! the sequential sampler bit for bit, an inactive clip changes nothing, and an active one does.

mod common;

use common::*;
use picardiff::prelude::*;
use picardiff::schedule::{ClipKeep, ClipSample};

fn run_with(
    model: &GmmModel,
    grid: &Grid,
    rule: StepRule,
    kind: &SamplerKind,
    clip: Option<ClipSample>,
) -> RunOutput {
    let inputs = RunInputs {
        batch: 6,
        seed: 5,
        clip,
        ..Default::default()
    };
    run(&CpuBackend, model, grid, rule, kind, &inputs).unwrap()
}

/// Both scheduler styles, both rules: window 1 and scan at τ = 0 equal sequential exactly; blocks
/// with K ≥ block length too.
#[test]
fn clipped_picard_fixed_point_is_the_clipped_sequential_sampler() {
    let (s, g) = ddpm_grid(60);
    let model = GmmModel::new(mixture_2d(), s);
    for (rule, keep) in [
        ("ddpm", ClipKeep::State),
        ("ddim", ClipKeep::Epsilon),
        ("ddpm", ClipKeep::Epsilon),
    ] {
        let rule = StepRule::from_name(rule, None).unwrap();
        let clip = Some(ClipSample { range: 1.0, keep });
        let seq = run_with(&model, &g, rule, &SamplerKind::Sequential, clip);
        let plain = run_with(&model, &g, rule, &SamplerKind::Sequential, None);
        assert!(
            max_abs_diff(&seq.samples, &plain.samples) > 1e-2,
            "{rule:?} {keep:?}: clipping at 1 must change samples of a mixture with means at ±2"
        );
        for (name, kind) in [
            ("window 1", SamplerKind::picard(1, 0.1, PicardForm::Scan)),
            ("scan tau 0", SamplerKind::picard(17, 0.0, PicardForm::Scan)),
            (
                "blocks K = len",
                SamplerKind::Blocks {
                    block_len: 10.0,
                    iters: 10,
                    tol: 0.0,
                    form: PicardForm::Scan,
                    corrector: None,
                    anderson: None,
                    final_tol: None,
                },
            ),
        ] {
            let par = run_with(&model, &g, rule, &kind, clip);
            assert_eq!(par.samples, seq.samples, "{rule:?} {keep:?} {name}");
        }
        // The drift form reaches the same fixed point up to rounding (its linear part lags).
        let drift = run_with(
            &model,
            &g,
            rule,
            &SamplerKind::picard(1, 0.1, PicardForm::Drift),
            clip,
        );
        assert!(max_abs_diff(&drift.samples, &seq.samples) < 1e-5);
        // At the default tolerance the window converges close to the clipped trajectory.
        let par = run_with(
            &model,
            &g,
            rule,
            &SamplerKind::picard(60, rule.default_tolerance(), PicardForm::Scan),
            clip,
        );
        let d = max_abs_diff(&par.samples, &seq.samples);
        assert!(
            d < 5e-2,
            "{rule:?} {keep:?}: picard at the default tolerance is {d} off"
        );
        assert!(par.stats.rounds < 60);
    }
}

/// A clip range no x̂0 reaches leaves every bit as without clipping.
#[test]
fn an_inactive_clip_changes_nothing() {
    let (s, g) = ddpm_grid(40);
    let model = GmmModel::new(mixture_2d(), s);
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let wide = Some(ClipSample {
        range: 1e30,
        keep: ClipKeep::State,
    });
    for kind in [
        SamplerKind::Sequential,
        SamplerKind::picard(16, 0.1, PicardForm::Scan),
    ] {
        assert_eq!(
            run_with(&model, &g, rule, &kind, wide).samples,
            run_with(&model, &g, rule, &kind, None).samples
        );
    }
}

/// With clipping the final samples lie in the clip range (DDPM's last step returns x̂0 itself).
#[test]
fn clipped_ddpm_ends_inside_the_range() {
    let (s, g) = ddpm_grid(50);
    let model = GmmModel::new(mixture_2d(), s);
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let clip = Some(ClipSample::for_rule(rule, 0.5));
    let out = run_with(&model, &g, rule, &SamplerKind::Sequential, clip);
    assert!(
        out.samples.iter().all(|v| v.abs() <= 0.5 + 1e-5),
        "{:?}",
        out.samples
    );
}

#[test]
fn bad_clip_ranges_are_errors() {
    let (s, g) = ddpm_grid(10);
    let model = GmmModel::new(mixture_2d(), s);
    let rule = StepRule::from_name("ddpm", None).unwrap();
    for range in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let inputs = RunInputs {
            batch: 1,
            clip: Some(ClipSample {
                range,
                keep: ClipKeep::State,
            }),
            ..Default::default()
        };
        let e = run(
            &CpuBackend,
            &model,
            &g,
            rule,
            &SamplerKind::Sequential,
            &inputs,
        )
        .unwrap_err();
        assert!(e.to_string().contains("clip_sample_range"), "{e}");
    }
}
