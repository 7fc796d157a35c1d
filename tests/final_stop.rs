//! The final-sample stop (`final_tol`, `docs/algorithms.md` §3): it ends a Picard run once the
//! last point has settled, in fewer rounds than the per-step test, with every sample within the
//! tolerance of the sequential sampler's; the CLI, the run spec and the stats carry it; a zero,
//! negative or non-finite tolerance is refused, and the sequential sampler warns that it ignores it.

mod cli_common;
mod common;

use cli_common::{example, picardiff, read_json, TempDir};
use common::*;
use picardiff::metrics::per_sample_deviation;
use picardiff::prelude::*;
use picardiff::schedule::ModelOutput;
use picardiff::spec::{ModelRun, RunSpec};

fn picard(form: PicardForm, final_tol: Option<f64>) -> SamplerKind {
    SamplerKind::picard(256, 1e-3, form).with_final_tol(final_tol)
}

fn sample(rule: &str, steps: usize, kind: &SamplerKind) -> RunOutput {
    let (s, g) = ddpm_grid(steps);
    let model = GmmModel::new(mixture_64d(), s);
    let rule = StepRule::from_name(rule, None).unwrap();
    let inputs = RunInputs {
        batch: 8,
        seed: 5,
        ..Default::default()
    };
    run(&CpuBackend, &model, &g, rule, kind, &inputs).unwrap()
}

/// DDIM-100 and DDIM-25, both forms. At τ = 0 (points accepted only exactly) the stop is the
/// only approximation: every sample ends within the tolerance of the sequential one, in fewer
/// rounds than the exact run. At the default τ the stop never adds rounds, reports a final change
/// within the tolerance, and moves no sample by more than the tolerance beyond the plain run's
/// deviation (points the per-step test froze with small errors are the plain run's own).
#[test]
fn final_stop_cuts_rounds_and_stays_within_its_tolerance() {
    let tol = 3e-3;
    let kind = |form, tau: f64, final_tol| SamplerKind::Picard {
        window: 256,
        tol: tau,
        max_iters: None,
        form,
        anderson: None,
        final_tol,
    };
    for steps in [100, 25] {
        let seq = sample("ddim", steps, &SamplerKind::Sequential);
        let dev = |o: &RunOutput| per_sample_deviation(&o.samples, &seq.samples, 64);
        for form in [PicardForm::Drift, PicardForm::Scan] {
            let exact = sample("ddim", steps, &kind(form, 0.0, None));
            let zero = sample("ddim", steps, &kind(form, 0.0, Some(tol)));
            assert!(zero.stats.rounds < exact.stats.rounds, "{steps} {form}");
            assert!(zero.stats.final_stopped);
            assert!(
                dev(&zero).iter().all(|&d| d as f64 <= tol),
                "{steps} {form}"
            );
            let plain = sample("ddim", steps, &picard(form, None));
            let stopped = sample("ddim", steps, &picard(form, Some(tol)));
            let (p, s) = (&plain.stats, &stopped.stats);
            assert!(
                s.rounds <= p.rounds,
                "{steps} {form}: {} > {}",
                s.rounds,
                p.rounds
            );
            if form == PicardForm::Drift {
                assert!(
                    s.rounds < p.rounds,
                    "{steps}: drift {} vs {}",
                    s.rounds,
                    p.rounds
                );
            }
            let change = s.final_change.expect("final change with the stop");
            assert!(change <= tol, "{steps} {form}: final change {change}");
            assert_eq!((p.final_change, p.final_stopped), (None, false));
            for (a, b) in dev(&stopped).iter().zip(dev(&plain)) {
                assert!((*a as f64) <= b as f64 + tol, "{steps} {form}: {a} vs {b}");
            }
        }
    }
}

/// Blocks: the stop ends the last block; the result is still within the tolerance.
#[test]
fn final_stop_ends_the_last_block() {
    let tol = 3e-3;
    let blocks = |final_tol| SamplerKind::Blocks {
        block_len: 50.0,
        iters: 50,
        tol: 1e-3,
        form: PicardForm::Drift,
        corrector: None,
        anderson: None,
        final_tol,
    };
    let seq = sample("ddim", 100, &SamplerKind::Sequential);
    let plain = sample("ddim", 100, &blocks(None));
    let stopped = sample("ddim", 100, &blocks(Some(tol)));
    assert!(stopped.stats.rounds < plain.stats.rounds);
    assert!(stopped.stats.final_stopped);
    let dev = per_sample_deviation(&stopped.samples, &seq.samples, 64);
    assert!(dev.iter().all(|&d| d as f64 <= tol), "{dev:?}");
}

/// The run spec refuses bad tolerances by name and warns when the sampler ignores one.
#[test]
fn spec_checks_the_final_tolerance() {
    let base = RunSpec {
        schedule: Some(picardiff::spec::ScheduleName::DdpmLinear),
        rule: Some(picardiff::spec::RuleName::Ddim),
        steps: Some(50),
        sampler: Some(picardiff::spec::SamplerName::Picard),
        ..RunSpec::default()
    };
    for bad in [0.0, -1.0, f64::NAN] {
        let spec = RunSpec {
            final_tol: Some(bad),
            ..base.clone()
        };
        let e = spec
            .plan(ModelRun::AnySchedule, ModelOutput::Epsilon)
            .unwrap_err();
        assert!(e.to_string().contains("final_tol"), "{e}");
    }
    let seq = RunSpec {
        final_tol: Some(1e-3),
        sampler: Some(picardiff::spec::SamplerName::Sequential),
        ..base.clone()
    };
    let plan = seq
        .plan(ModelRun::AnySchedule, ModelOutput::Epsilon)
        .unwrap();
    assert!(plan.warnings.iter().any(|(f, _)| *f == "final_tol"));
    let ok = RunSpec {
        final_tol: Some(1e-3),
        ..base
    };
    let plan = ok
        .plan(ModelRun::AnySchedule, ModelOutput::Epsilon)
        .unwrap();
    assert_eq!(plan.kind.final_tol(), Some(1e-3));
}

/// `picardiff sample --final-tol` runs the stop and writes it into the stats JSON.
#[test]
fn cli_writes_the_final_change() {
    let dir = TempDir::new("final-stop");
    let stats = dir.arg("s.json");
    let out = picardiff(
        &[
            "sample",
            "--model",
            &example("mixture_64d.json"),
            "--schedule",
            "ddpm-linear",
            "--rule",
            "ddim",
            "--steps",
            "100",
            "--batch",
            "4",
            "--device",
            "cpu",
            "--sampler",
            "picard",
            "--picard-form",
            "drift",
            "--final-tol",
            "3e-3",
            "--out",
            &dir.arg("x.npy"),
            "--stats",
            &stats,
        ],
        &dir.path(""),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = read_json(&dir.path("s.json"));
    let text = json.to_string();
    assert!(text.contains("\"final_tol\":0.003"), "{text}");
    assert!(text.contains("\"final_stopped\":true"), "{text}");
    assert!(text.contains("\"final_change\""), "{text}");
}
