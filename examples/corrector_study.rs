//! Does PIADM-ODE's Langevin corrector bring a coarse ODE grid closer to the target?
//!
//! `cargo run --release --example corrector_study` — the `ou` process (T = 10, δ = 1e-3), the
//! `exp-ode` rule on coarse `paper` grids, blocks of length 1 with enough iterations to be exact per
//! block (so the only error is the ODE discretisation), with and without the corrector; the sliced
//! Wasserstein-2 distance to exact samples of q_δ (the target at the early-stopping time δ).

use picardiff::metrics::sliced_wasserstein;
use picardiff::prelude::*;
use picardiff::sampler::Corrector;

fn main() -> Result<()> {
    let schedule = Schedule::from_name("ou", 0)?;
    let mixtures = [
        ("2-D", Mixture::example_2d()),
        (
            "16-D",
            Mixture::new(
                vec![1.0, 2.0, 1.0],
                (0..3)
                    .map(|k| {
                        (0..16)
                            .map(|j| ((k * 5 + j) % 7) as f64 / 3.0 - 1.0)
                            .collect()
                    })
                    .collect(),
                vec![0.3, 0.5, 0.4],
            )?,
        ),
    ];
    let batch = 4096;
    println!("| mixture | κ | steps | corrector (γ, time, steps) | rounds | nfe | SW2 to q_δ |");
    println!("|---|---|---|---|---|---|---|");
    for (name, mix) in &mixtures {
        let (eta_alpha, eta_sigma) = schedule.alpha_sigma(1e-3);
        let exact = mix.sample_exact(batch, eta_alpha, eta_sigma, 99);
        let model = GmmModel::new(mix.clone(), schedule.clone());
        let floor = sliced_wasserstein(
            &mix.sample_exact(batch, eta_alpha, eta_sigma, 7),
            &exact,
            mix.dim,
            64,
            1,
        );
        println!("| {name} | exact vs exact | | | | | {floor:.4} |");
        for kappa in [0.5, 1.0, 2.0] {
            let grid = Grid::paper(&schedule, kappa, 10.0, 1e-3)?;
            let correctors = [
                None,
                Some(Corrector {
                    gamma: 2.0,
                    duration: 0.5,
                    steps: 8,
                    iters: 8,
                }),
                Some(Corrector::default()),
                Some(Corrector {
                    gamma: 1.0,
                    duration: 2.0,
                    steps: 16,
                    iters: 16,
                }),
            ];
            for corr in correctors {
                let kind = SamplerKind::Blocks {
                    block_len: 1.0,
                    iters: grid.steps(),
                    tol: 0.0,
                    form: PicardForm::Scan,
                    corrector: corr,
                    anderson: None,
                    final_tol: None,
                };
                let out = run(
                    &CpuBackend,
                    &model,
                    &grid,
                    StepRule::ExpOde,
                    &kind,
                    &RunInputs {
                        batch,
                        seed: 3,
                        ..Default::default()
                    },
                )?;
                let sw = sliced_wasserstein(&out.samples, &exact, mix.dim, 64, 1);
                let label = corr.map_or("off".to_string(), |c| {
                    format!("{}, {}, {}", c.gamma, c.duration, c.steps)
                });
                println!(
                    "| {name} | {kappa} | {} | {label} | {} | {} | {sw:.4} |",
                    grid.steps(),
                    out.stats.rounds,
                    out.stats.nfe
                );
            }
        }
    }
    Ok(())
}
