//! The seed paper's blocks: K ≥ block size reproduces sequential sampling; fewer iterations leave an
//! error that falls as K grows.

mod common;

use common::*;
use picardiff::prelude::*;
use picardiff::sampler::block_ends;

fn ou_paper() -> (Schedule, Grid) {
    let s = Schedule::from_name("ou", 0).unwrap();
    let g = Grid::paper(&s, 0.05, 10.0, 1e-3).unwrap();
    (s, g)
}

#[test]
fn block_ends_follow_the_block_length() {
    let (_, g) = ou_paper();
    assert_eq!(g.steps(), 322);
    let ends = block_ends(&g, 1.0).unwrap();
    assert_eq!(ends.len(), 10);
    assert_eq!(*ends.last().unwrap(), 322);
    assert_eq!(ends[0], 20); // 10 → 9 in steps of 0.05
    assert!(block_ends(&g, 0.0).is_err());
}

#[test]
fn blocks_with_enough_iterations_equal_sequential_and_error_falls_with_k() {
    let (s, g) = ou_paper();
    let model = GmmModel::new(mixture_2d(), s);
    let rule = StepRule::ExpSde;
    let inputs = RunInputs {
        batch: 16,
        seed: 5,
        ..Default::default()
    };
    let seq = run(
        &CpuBackend,
        &model,
        &g,
        rule,
        &SamplerKind::Sequential,
        &inputs,
    )
    .unwrap();
    let longest = 142; // the last block: t from 1 down to η
    let blocks = |iters| SamplerKind::Blocks {
        block_len: 1.0,
        iters,
        tol: 0.0,
        form: PicardForm::Scan,
        corrector: None,
    };
    let exact = run(&CpuBackend, &model, &g, rule, &blocks(longest), &inputs).unwrap();
    let diff = max_abs_diff(&exact.samples, &seq.samples);
    assert!(diff <= 1e-5, "K = block size: diff {diff}");
    let mut last = f32::INFINITY;
    for k in [2, 4, 8, 16] {
        let out = run(&CpuBackend, &model, &g, rule, &blocks(k), &inputs).unwrap();
        let diff = max_abs_diff(&out.samples, &seq.samples);
        println!(
            "K = {k}: rounds {}, nfe {}, max |blocks − sequential| {diff:.3e}",
            out.stats.rounds, out.stats.nfe
        );
        // τ = 0 stops a block early only once its iterate is an exact (bitwise) fixed point.
        assert!(out.stats.rounds <= 10 * k && (k > 4 || out.stats.rounds == 10 * k));
        assert!(
            diff < last || diff == 0.0,
            "K = {k}: error {diff} did not fall below {last}"
        );
        last = diff;
    }
}

#[test]
fn corrector_picard_is_exact_with_enough_iterations_and_validates() {
    use picardiff::sampler::Corrector;
    let s = Schedule::from_name("ou", 0).unwrap();
    let g = Grid::paper(&s, 1.0, 10.0, 1e-3).unwrap();
    let model = GmmModel::new(mixture_2d(), s);
    let inputs = RunInputs {
        batch: 8,
        seed: 5,
        ..Default::default()
    };
    let with = |corrector| {
        let kind = SamplerKind::Blocks {
            block_len: 1.0,
            iters: g.steps(),
            tol: 0.0,
            form: PicardForm::Scan,
            corrector,
        };
        run(&CpuBackend, &model, &g, StepRule::ExpOde, &kind, &inputs)
    };
    let c = Corrector {
        gamma: 2.0,
        duration: 1.0,
        steps: 8,
        iters: 8,
    };
    let exact = with(Some(c)).unwrap();
    let more = with(Some(Corrector { iters: 12, ..c })).unwrap();
    let fewer = with(Some(Corrector { iters: 2, ..c })).unwrap();
    let off = with(None).unwrap();
    // K ≥ M Picard iterations reproduce the sequential Langevin run: extra iterations change nothing.
    assert!(max_abs_diff(&exact.samples, &more.samples) <= 1e-5);
    assert!(max_abs_diff(&exact.samples, &fewer.samples) > 1e-3);
    assert!(max_abs_diff(&exact.samples, &off.samples) > 1e-2);
    // 10 blocks (plus the clean end) each add K corrector rounds.
    assert_eq!(exact.stats.rounds, off.stats.rounds + 10 * 8);
    assert!(with(Some(Corrector { gamma: -1.0, ..c })).is_err());
    assert!(with(Some(Corrector { steps: 0, ..c })).is_err());
}
