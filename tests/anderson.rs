//! Anderson acceleration of the Picard iteration (`docs/algorithms.md` §11): at τ = 0 and with
//! window 1 it reproduces the sequential sampler bit for bit, it does not depend on the thread
//! count, it is refused outside 2..=5, and at the default τ it cuts the scan form's rounds while
//! staying as close to the sequential samples as the issue asks.

mod common;

use common::*;
use picardiff::metrics::{per_sample_deviation, quantile};
use picardiff::prelude::*;

fn picard(window: usize, tol: f64, form: PicardForm, anderson: Option<usize>) -> SamplerKind {
    SamplerKind::Picard {
        window,
        tol,
        max_iters: None,
        form,
        anderson,
        final_tol: None,
    }
}

fn sample(model: &GmmModel, grid: &Grid, rule: &str, kind: &SamplerKind, seed: u64) -> RunOutput {
    let rule = StepRule::from_name(rule, None).unwrap();
    let inputs = RunInputs {
        batch: 4,
        seed,
        ..Default::default()
    };
    run(&CpuBackend, model, grid, rule, kind, &inputs).unwrap()
}

/// τ = 0: every accepted point is a plain Picard value computed from an exact one (the frontier
/// takes the plain update), so the result is the sequential one to the bit, for scan windows of
/// every size, DDPM and DDIM, every history, and blocks with K ≥ their length.
#[test]
fn zero_tolerance_equals_sequential_bit_for_bit() {
    let (s, g) = ddpm_grid(60);
    let model = GmmModel::new(mixture_64d(), s);
    for rule in ["ddpm", "ddim"] {
        let reference = sample(&model, &g, rule, &SamplerKind::Sequential, 3);
        for (window, m) in [(60, 2), (60, 3), (60, 5), (7, 3), (1, 2)] {
            let kind = picard(window, 0.0, PicardForm::Scan, Some(m));
            let out = sample(&model, &g, rule, &kind, 3);
            assert_eq!(
                out.samples, reference.samples,
                "{rule} window {window} anderson {m}"
            );
            if window == 1 {
                assert_eq!((out.stats.rounds, out.stats.nfe), (60, 60));
            }
        }
        let blocks = SamplerKind::Blocks {
            block_len: 200.0,
            iters: 20, // ≥ the longest block (13 steps): exact
            tol: 0.0,
            form: PicardForm::Scan,
            corrector: None,
            anderson: Some(3),
            final_tol: None,
        };
        let out = sample(&model, &g, rule, &blocks, 3);
        assert_eq!(out.samples, reference.samples, "{rule} blocks");
    }
}

/// The multistep rule (its direction ring reads the accepted points' directions) and the drift
/// form keep their τ = 0 results with Anderson: DPM-Solver++(2M) bit for bit, drift within the
/// rounding it has without Anderson (`docs/algorithms.md` §3, §9).
#[test]
fn zero_tolerance_keeps_multistep_and_drift_results() {
    const DRIFT_ROUNDING: f32 = 1e-4;
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let g = Grid::discrete(&s, 20, Spacing::DpmLinspace).unwrap();
    let model = GmmModel::new(mixture_64d(), s.clone());
    let reference = sample(&model, &g, "dpmpp-2m", &SamplerKind::Sequential, 2);
    let kind = picard(20, 0.0, PicardForm::Scan, Some(3));
    assert_eq!(
        sample(&model, &g, "dpmpp-2m", &kind, 2).samples,
        reference.samples
    );
    let (s, g) = ddpm_grid(40);
    let model = GmmModel::new(mixture_64d(), s);
    let reference = sample(&model, &g, "ddim", &SamplerKind::Sequential, 2);
    let plain = sample(
        &model,
        &g,
        "ddim",
        &picard(40, 0.0, PicardForm::Drift, None),
        2,
    );
    let aa = sample(
        &model,
        &g,
        "ddim",
        &picard(40, 0.0, PicardForm::Drift, Some(3)),
        2,
    );
    let (d_plain, d_aa) = (
        max_abs_diff(&plain.samples, &reference.samples),
        max_abs_diff(&aa.samples, &reference.samples),
    );
    assert!(
        d_aa <= DRIFT_ROUNDING,
        "drift + Anderson {d_aa:e} (plain drift {d_plain:e})"
    );
}

/// Window 1 at the default τ: every iteration is one sequential step (nothing after the
/// frontier to accelerate), bit for bit.
#[test]
fn window_one_equals_sequential() {
    let (s, g) = ddpm_grid(50);
    let model = GmmModel::new(mixture_2d(), s);
    let reference = sample(&model, &g, "ddpm", &SamplerKind::Sequential, 5);
    let out = sample(
        &model,
        &g,
        "ddpm",
        &picard(1, 0.1, PicardForm::Scan, Some(4)),
        5,
    );
    assert_eq!(out.samples, reference.samples);
    assert_eq!(out.stats.rounds, 50);
}

/// The same bits with 1 and 2 threads, on a dimension that splits each sample into several work
/// units (the fit's partial sums are per unit, reduced in a fixed order).
#[test]
fn thread_count_does_not_change_a_bit() {
    let dim = 2500;
    let means = (0..3)
        .map(|k| {
            (0..dim)
                .map(|d| ((k * 7 + d) % 11) as f64 * 0.1 - 0.5)
                .collect()
        })
        .collect();
    let mix = Mixture::new(vec![0.3, 0.3, 0.4], means, vec![0.2, 0.3, 0.1]).unwrap();
    let (s, g) = ddpm_grid(40);
    let model = GmmModel::new(mix, s);
    let kind = picard(40, 1e-2, PicardForm::Scan, Some(3));
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| sample(&model, &g, "ddim", &kind, 9))
    };
    let (one, two) = (on(1), on(2));
    assert_eq!(one.samples, two.samples);
    assert_eq!(one.stats.rounds, two.stats.rounds);
}

/// A history outside 2..=5 is a Config error naming the option.
#[test]
fn history_outside_two_to_five_is_refused() {
    let (s, g) = ddpm_grid(20);
    let model = GmmModel::new(mixture_2d(), s);
    let rule = StepRule::from_name("ddim", None).unwrap();
    let inputs = RunInputs {
        batch: 1,
        ..Default::default()
    };
    for m in [0, 1, 6] {
        let kind = picard(20, 1e-3, PicardForm::Scan, Some(m));
        let e = run(&CpuBackend, &model, &g, rule, &kind, &inputs).unwrap_err();
        match e {
            Error::Config { field, msg } => {
                assert_eq!(field, picardiff::Field::Anderson);
                assert!(msg.contains("2 to 5"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Quality and rounds at the default τ = 1e-3 (DDIM-100, the 64-D mixture, batch 16): the scan
/// form with history 3 needs fewer rounds than without (measured 25–27 → 16–20 over seeds 0–4)
/// and its per-sample deviation from sequential stays within the 1e-3 (p50; measured
/// ≤ 7.1e-5, p90 ≤ 3.4e-4).
#[test]
fn cuts_the_scan_rounds_at_the_default_tolerance() {
    const P50_MAX: f32 = 1e-3;
    const P90_MAX: f32 = 2e-3;
    let (s, g) = ddpm_grid(100);
    let model = GmmModel::new(mixture_64d(), s);
    let rule = StepRule::from_name("ddim", None).unwrap();
    for seed in [0, 3] {
        let inputs = RunInputs {
            batch: 16,
            seed,
            ..Default::default()
        };
        let go = |kind: &SamplerKind| run(&CpuBackend, &model, &g, rule, kind, &inputs).unwrap();
        let reference = go(&SamplerKind::Sequential);
        let plain = go(&picard(100, 1e-3, PicardForm::Scan, None));
        let aa = go(&picard(100, 1e-3, PicardForm::Scan, Some(3)));
        let dev = per_sample_deviation(&aa.samples, &reference.samples, 64);
        let (p50, p90) = (quantile(&dev, 0.5), quantile(&dev, 0.9));
        assert!(
            aa.stats.rounds + 4 <= plain.stats.rounds,
            "seed {seed}: {} rounds with Anderson, {} without",
            aa.stats.rounds,
            plain.stats.rounds
        );
        assert!(
            p50 <= P50_MAX && p90 <= P90_MAX,
            "seed {seed}: p50 {p50:e} p90 {p90:e}"
        );
    }
}
