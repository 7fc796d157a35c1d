//! The optional progress observer (`sampler::progress`): what it is told, that it changes no result,
//! and that it reports only inside its scope.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use picardiff::prelude::*;
use picardiff::sampler::progress::{with_progress, Progress};

fn samplers() -> [SamplerKind; 3] {
    [
        SamplerKind::Sequential,
        SamplerKind::Picard {
            window: 40,
            tol: 0.1,
            max_iters: None,
            form: PicardForm::Scan,
            anderson: None,
            final_tol: None,
        },
        SamplerKind::Blocks {
            block_len: 100.0,
            iters: 100,
            tol: 0.1,
            form: PicardForm::Scan,
            corrector: None,
            anderson: None,
            final_tol: None,
        },
    ]
}

/// Runs `kind` with an observer; returns the output and every report.
fn observed(model: &GmmModel, grid: &Grid, kind: &SamplerKind) -> (RunOutput, Vec<Progress>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let inputs = RunInputs {
        batch: 3,
        seed: 5,
        ..Default::default()
    };
    let out = with_progress(Rc::new(move |p| sink.borrow_mut().push(p)), || {
        run(&CpuBackend, model, grid, rule, kind, &inputs)
    })
    .unwrap();
    let reports = seen.borrow().clone();
    (out, reports)
}

#[test]
fn every_sampler_reports_monotone_progress_to_the_end_without_changing_results() {
    let (s, g) = ddpm_grid(200);
    let model = GmmModel::new(mixture_2d(), s);
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let inputs = RunInputs {
        batch: 3,
        seed: 5,
        ..Default::default()
    };
    for kind in samplers() {
        let plain = run(&CpuBackend, &model, &g, rule, &kind, &inputs).unwrap();
        let (out, reports) = observed(&model, &g, &kind);
        assert_eq!(
            out.samples, plain.samples,
            "{kind:?}: the observer changed the samples"
        );
        assert_eq!(out.stats.rounds, plain.stats.rounds, "{kind:?}");
        // The CPU reads the window after every iteration: one report per round.
        assert_eq!(reports.len(), plain.stats.rounds, "{kind:?}");
        let last = reports.last().unwrap();
        assert_eq!((last.done, last.total), (200, 200), "{kind:?}");
        assert_eq!(last.rounds, plain.stats.rounds, "{kind:?}");
        for w in reports.windows(2) {
            assert!(
                w[1].done >= w[0].done && w[1].rounds == w[0].rounds + 1,
                "{w:?}"
            );
        }
        assert!(reports
            .iter()
            .all(|p| p.sampler == kind.name() && p.total == 200));
    }
}

#[test]
fn the_observer_reports_only_inside_its_scope_and_scopes_nest() {
    let (s, g) = ddpm_grid(20);
    let model = GmmModel::new(mixture_2d(), s);
    let rule = StepRule::from_name("ddim", None).unwrap();
    let inputs = RunInputs {
        batch: 1,
        ..Default::default()
    };
    let (outer, inner) = (Rc::new(RefCell::new(0)), Rc::new(RefCell::new(0)));
    let (o, i) = (outer.clone(), inner.clone());
    let seq = || {
        run(
            &CpuBackend,
            &model,
            &g,
            rule,
            &SamplerKind::Sequential,
            &inputs,
        )
        .unwrap()
    };
    with_progress(Rc::new(move |_| *o.borrow_mut() += 1), || {
        seq();
        with_progress(Rc::new(move |_| *i.borrow_mut() += 1), seq);
        seq();
    });
    seq();
    assert_eq!((*outer.borrow(), *inner.borrow()), (40, 20));
    // A panic inside the scope restores the previous (none) observer too.
    let hit = Rc::new(RefCell::new(0));
    let h = hit.clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        with_progress(Rc::new(move |_| *h.borrow_mut() += 1), || panic!("inside"))
    }));
    assert!(caught.is_err());
    seq();
    assert_eq!(*hit.borrow(), 0);
}
