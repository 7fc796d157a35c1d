//! The sampler's memory is O(window × batch × dim), independent of the number of steps but for the
//! host step tables. Alone in its binary: it counts every heap byte of the process.

mod alloc_count;
mod common;

use std::sync::atomic::Ordering;

use alloc_count::{ALLOCS, LIVE, PEAK};

use common::*;
use picardiff::prelude::*;

#[test]
fn memory_is_independent_of_the_number_of_steps() {
    let s = Schedule::from_name("ou", 0).unwrap();
    let model = GmmModel::new(mixture_2d(), s.clone());
    let (batch, window) = (4, 64);
    // Each rule: a one-step rule with noise (its noise ring), a multistep rule (its direction
    // ring and the table's two extra columns), and the first with Anderson acceleration (its
    // histories and fit sums, `docs/algorithms.md` §11).
    for (rule, tol, anderson) in [
        (StepRule::ExpSde, 0.1, None),
        (StepRule::DpmSolverPP { order: 3 }, 1e-3, None),
        (StepRule::ExpSde, 0.1, Some(5)),
    ] {
        let peak_for = |steps: usize, observed: bool| {
            let g = Grid::uniform(&s, steps, 10.0, 1e-3).unwrap();
            let kind = SamplerKind::Picard {
                window,
                tol,
                max_iters: None,
                form: PicardForm::Scan,
                anderson,
                final_tol: None,
            };
            let inputs = RunInputs {
                batch,
                seed: 3,
                ..Default::default()
            };
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let allocs = ALLOCS.load(Ordering::Relaxed);
            let go = || run(&CpuBackend, &model, &g, rule, &kind, &inputs).unwrap();
            let out = match observed {
                false => go(),
                // An observer that keeps nothing: whatever it adds is the sampler's doing.
                true => picardiff::sampler::progress::with_progress(std::rc::Rc::new(|_| {}), go),
            };
            assert!(out.stats.rounds >= steps / window);
            let allocs = ALLOCS.load(Ordering::Relaxed) - allocs;
            (
                PEAK.load(Ordering::Relaxed) - base,
                allocs,
                out.stats.rounds,
            )
        };
        let (small, _, _) = peak_for(1_000, false);
        let (large, plain, rounds) = peak_for(100_000, false);
        let (observed, with_observer, _) = peak_for(100_000, true);
        // One report per round: a report that allocated would add thousands. (The run itself
        // allocates transiently, ~17 per round here: e.g. matrixmultiply packs per GEMM call.)
        println!(
            "{}: {plain} allocations without an observer, {with_observer} with one ({rounds} rounds)",
            rule.name()
        );
        assert!(with_observer <= plain + 8, "{with_observer} > {plain} + 8");
        assert!(
            observed <= large + 64,
            "peak {observed} B with an observer, {large} B without"
        );
        // The window state is O(window × batch × dim); what grows with the steps is the host step
        // table (the grid and f64/f32 coefficient tables: under 200 bytes per step).
        let bound = 200 * 100_000 + 64 * 1024;
        println!(
            "{}, anderson {anderson:?}: peak heap {small} B at 1000 steps, {large} B at 100000 steps (bound {bound} B)",
            rule.name()
        );
        assert!(large <= bound, "{large} > {bound}");
        let per_step = (large - small) as f64 / 99_000.0;
        assert!(per_step < 200.0, "{per_step} bytes per step");
    }
}
