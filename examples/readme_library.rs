//! The README's library example ("Library" section), kept here so that `cargo test` compiles it
//! and `tests/readme.rs` checks that the README shows this code. In a crate of your own: add
//! `picardiff = { path = "<repo>" }` to its Cargo.toml and use this as src/main.rs. Run here with
//! `cargo run --release --example readme_library`.

use picardiff::prelude::*;

fn main() -> picardiff::Result<()> {
    let schedule = Schedule::from_name("ddpm-linear", 1000)?;
    let grid = Grid::discrete(&schedule, 1000, Spacing::Leading)?;
    // The JSON format's example mixture; Mixture::from_file reads such a file.
    let (weights, stds) = (vec![0.3, 0.7], vec![0.4, 0.6]);
    let mixture = Mixture::new(weights, vec![vec![-2.0, 1.0], vec![1.5, -1.0]], stds)?;
    let model = GmmModel::new(mixture, schedule);
    let rule = StepRule::from_name("ddpm", None)?;
    let form = PicardForm::Scan;
    let picard = SamplerKind::Picard {
        window: 1000,
        tol: 0.1,
        max_iters: None,
        form,
        anderson: None,
        final_tol: None,
    };
    let inputs = RunInputs {
        batch: 4,
        seed: 7,
        ..Default::default()
    };
    let out = run(&CpuBackend, &model, &grid, rule, &picard, &inputs)?;
    let seq = run(
        &CpuBackend,
        &model,
        &grid,
        rule,
        &SamplerKind::Sequential,
        &inputs,
    )?;
    println!(
        "{} rounds instead of {}",
        out.stats.rounds, seq.stats.rounds
    );
    assert_eq!(out.samples.len(), 4 * 2); // [batch][dim], row-major
    Ok(())
}
