//! `--sampler auto` (issue 14 item 6): the choice between the sequential sampler and picard from
//! a cost model calibrated on the model. Two synthetic models with known costs (a call that costs
//! the same for any number of rows, as a weights-bound network on a GPU at small batch; and a
//! call whose cost grows with its rows, as on a CPU) must be sent to picard and to the sequential
//! sampler respectively; the margins are 3× and more, so machine load cannot flip them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use picardiff::prelude::*;
use picardiff::sampler::auto::{choose, expected_rounds};

/// ε̂ = 0.1·x after sleeping `fixed` per call plus `per_row` per row; counts its calls.
#[derive(Default)]
struct Timed {
    fixed: Duration,
    per_row: Duration,
    calls: AtomicUsize,
}

impl ScoreModel<CpuBackend> for Timed {
    type Workspace = ();
    fn dim(&self) -> usize {
        2
    }
    fn output(&self) -> ModelOutput {
        ModelOutput::Epsilon
    }
    fn workspace(&self, _: &CpuBackend, _: usize) -> Result<()> {
        Ok(())
    }
    fn eval(
        &self,
        _: &CpuBackend,
        _: &mut (),
        x: &Vec<f32>,
        _: &Vec<f32>,
        row0: usize,
        rows: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(self.fixed + self.per_row * rows as u32);
        for i in row0 * 2..(row0 + rows) * 2 {
            out[i] = 0.1 * x[i];
        }
        Ok(())
    }
}

fn grid(steps: usize) -> (Grid, StepRule) {
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let g = Grid::discrete(&s, steps, Spacing::Leading).unwrap();
    (g, StepRule::from_name("ddim", None).unwrap())
}

fn picard(window: usize) -> SamplerKind {
    SamplerKind::picard(window, 1e-3, PicardForm::Scan)
}

fn inputs(batch: usize) -> RunInputs<'static> {
    RunInputs {
        batch,
        seed: 3,
        ..Default::default()
    }
}

#[test]
fn a_call_that_costs_the_same_for_any_rows_goes_to_picard() {
    // 100 steps: sequential ≈ 100 calls, picard ≈ R̂ = 33 calls of the same cost.
    let model = Timed {
        fixed: Duration::from_millis(2),
        ..Timed::default()
    };
    let (g, rule) = grid(100);
    let c = choose(&CpuBackend, &model, &g, rule, &picard(100), &inputs(1)).unwrap();
    assert_eq!(c.kind, picard(100), "{:?}", c.estimate);
    let e = c.estimate;
    assert_eq!(e.rounds, expected_rounds(100, &picard(100), rule));
    assert!(e.picard_ms().unwrap() < e.sequential_ms().unwrap(), "{e:?}");
    assert!(
        e.step_ms.unwrap() >= 2.0 && e.iteration_ms.unwrap() >= 2.0,
        "{e:?}"
    );
    assert!(
        e.reason(true).starts_with("picard: estimated"),
        "{}",
        e.reason(true)
    );
}

#[test]
fn a_call_whose_cost_grows_with_its_rows_goes_to_sequential() {
    // A window of 50 rows costs 50× one row: picard ≈ 33 × 50 row-costs, sequential 100. A row
    // costs 1 ms, so a loaded machine's sleep overshoot (up to ~1 ms per call) cannot close the
    // 16× gap to the 3× asserted.
    let model = Timed {
        per_row: Duration::from_millis(1),
        ..Timed::default()
    };
    let (g, rule) = grid(100);
    let c = choose(&CpuBackend, &model, &g, rule, &picard(50), &inputs(1)).unwrap();
    assert_eq!(c.kind, SamplerKind::Sequential, "{:?}", c.estimate);
    let e = c.estimate;
    assert!(
        e.picard_ms().unwrap() > 3.0 * e.sequential_ms().unwrap(),
        "{e:?}"
    );
    assert!(e.calibration_ms > 0.0);
}

#[test]
fn the_measurement_is_kept_for_the_process() {
    let model = Timed {
        fixed: Duration::from_micros(500),
        ..Timed::default()
    };
    let (g, rule) = grid(60);
    let first = choose(&CpuBackend, &model, &g, rule, &picard(60), &inputs(2)).unwrap();
    let measured = model.calls.load(Ordering::Relaxed);
    assert!(measured >= 6, "measuring runs the model: {measured} calls");
    let again = choose(&CpuBackend, &model, &g, rule, &picard(60), &inputs(2)).unwrap();
    assert_eq!(first, again, "the same figures, from the kept measurement");
    assert_eq!(
        model.calls.load(Ordering::Relaxed),
        measured,
        "the kept figures need no model call"
    );
    // Another batch is another measurement.
    choose(&CpuBackend, &model, &g, rule, &picard(60), &inputs(3)).unwrap();
    assert!(
        model.calls.load(Ordering::Relaxed) > measured,
        "batch 3 measured anew"
    );
}

#[test]
fn short_grids_run_sequentially_without_measuring() {
    // R̂ = N for N ≤ 28: nothing can be gained, so the model is never run.
    struct Never;
    impl ScoreModel<CpuBackend> for Never {
        type Workspace = ();
        fn dim(&self) -> usize {
            2
        }
        fn output(&self) -> ModelOutput {
            ModelOutput::Epsilon
        }
        fn workspace(&self, _: &CpuBackend, _: usize) -> Result<()> {
            panic!("auto measured a run it cannot win")
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
    for steps in [1, 10, 28] {
        let (g, rule) = grid(steps);
        let c = choose(&CpuBackend, &Never, &g, rule, &picard(steps), &inputs(1)).unwrap();
        assert_eq!(c.kind, SamplerKind::Sequential);
        assert_eq!(c.estimate.rounds, steps);
        assert_eq!(c.estimate.step_ms, None);
        assert!(c.estimate.reason(false).contains("no fewer"));
    }
    // Blocks are no candidate: a clear error, not a silent switch.
    let (g, rule) = grid(100);
    let blocks = SamplerKind::Blocks {
        block_len: 10.0,
        iters: 10,
        tol: 0.1,
        form: PicardForm::Scan,
        corrector: None,
        anderson: None,
        final_tol: None,
    };
    let e = choose(&CpuBackend, &Never, &g, rule, &blocks, &inputs(1)).unwrap_err();
    assert!(e.to_string().contains("not blocks"), "{e}");
}
