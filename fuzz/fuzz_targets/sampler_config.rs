//! Config validation: arbitrary schedules, grids, rules and sampler knobs give samples or an error,
//! never a panic, an abort or a NaN sample without an error.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use picardiff::prelude::*;

#[derive(Debug, Arbitrary)]
struct Input {
    schedule: u8,
    spacing: u8,
    grid_kind: u8,
    steps: u16,
    train_steps: u16,
    horizon: f64,
    t_end: f64,
    kappa: f64,
    rule: u8,
    eta: Option<f64>,
    sampler: u8,
    window: u16,
    tol: f64,
    max_iters: Option<u16>,
    block_len: f64,
    iters: u8,
    drift: bool,
    final_tol: Option<f64>,
    batch: u8,
    seed: u64,
}

fuzz_target!(|inp: Input| {
    let names = ["ddpm-linear", "scaled-linear", "cosine", "ou", "vp-linear", "bogus"];
    let Ok(schedule) = Schedule::from_name(names[inp.schedule as usize % names.len()], inp.train_steps as usize % 2000) else { return };
    let grid = if schedule.is_discrete() {
        let spacing = [Spacing::Leading, Spacing::Trailing, Spacing::Linspace][inp.spacing as usize % 3];
        Grid::discrete(&schedule, inp.steps as usize % 300, spacing)
    } else if inp.grid_kind % 2 == 0 {
        Grid::uniform(&schedule, inp.steps as usize % 300, inp.horizon, inp.t_end)
    } else if inp.kappa >= 0.02 && inp.horizon <= 20.0 && inp.t_end >= 1e-6 {
        Grid::paper(&schedule, inp.kappa, inp.horizon, inp.t_end)
    } else {
        return;
    };
    let Ok(grid) = grid else { return };
    let rules = ["ddpm", "ddim", "exp-sde", "exp-ode", "nope"];
    let Ok(rule) = StepRule::from_name(rules[inp.rule as usize % rules.len()], inp.eta) else { return };
    let form = if inp.drift { PicardForm::Drift } else { PicardForm::Scan };
    let kind = match inp.sampler % 3 {
        0 => SamplerKind::Sequential,
        1 => SamplerKind::Picard { window: inp.window as usize, tol: inp.tol, max_iters: inp.max_iters.map(usize::from), form, anderson: None, final_tol: inp.final_tol },
        _ => SamplerKind::Blocks { block_len: inp.block_len, iters: inp.iters as usize, tol: inp.tol, form, corrector: None, anderson: None, final_tol: inp.final_tol },
    };
    let mix = Mixture::new(vec![0.4, 0.6], vec![vec![-1.0, 0.5], vec![1.0, -0.5]], vec![0.3, 0.5]).unwrap();
    let model = GmmModel::new(mix, schedule);
    let inputs = RunInputs { batch: inp.batch as usize % 5, seed: inp.seed, ..Default::default() };
    if let Ok(out) = run(&CpuBackend, &model, &grid, rule, &kind, &inputs) {
        assert!(out.samples.iter().all(|v| v.is_finite()), "NaN samples without an error");
        assert_eq!(out.samples.len(), inputs.batch * 2);
    }
});
