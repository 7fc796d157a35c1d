//! The seed paper's claim, measured: Picard rounds grow at most poly-logarithmically with the
//! dimension. Exact mixture scores (4 components, means N(0, I) per coordinate, std 0.5), D = 2^4 …
//! 2^max, fixed grids and tolerances:
//! - `picard`: 1000-step DDPM (`ddpm-linear`, ddpm rule), full window, τ = 0.1;
//! - `blocks`: the `ou` process (T = 10, δ = 1e-3), `paper` grid κ = 0.05 (322 steps), `exp-sde`,
//!   blocks of length 1 stopped at τ = 0.1 (at most 40 iterations each).
//!
//! `cargo run --release --example scaling_study -- [max_log2_dim=14] [batch=4] [out.json]`
//! prints a markdown table and writes JSON; `python3 tools/plot_scaling.py out.json docs/img/scaling.png`
//! draws the figure.

use std::time::Instant;

use picardiff::prelude::*;
use serde_json::json;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let max_log2: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(14);
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let out_path = args.get(3).cloned();
    let ddpm = Schedule::from_name("ddpm-linear", 1000)?;
    let ddpm_grid = Grid::discrete(&ddpm, 1000, Spacing::Leading)?;
    let ou = Schedule::from_name("ou", 0)?;
    let ou_grid = Grid::paper(&ou, 0.05, 10.0, 1e-3)?;
    let mut rows = Vec::new();
    println!("| D | sampler | steps | rounds | nfe | wall ms | sequential ms | max dev |");
    println!("|---|---|---|---|---|---|---|---|");
    for log2 in 4..=max_log2 {
        let dim = 1usize << log2;
        let mix = Mixture::benchmark(4, dim)?;
        let cases = [
            (
                "picard",
                &ddpm,
                &ddpm_grid,
                StepRule::Ddim { eta: 1.0 },
                SamplerKind::Picard {
                    window: 1000,
                    tol: 0.1,
                    max_iters: None,
                    form: PicardForm::Scan,
                    anderson: None,
                    final_tol: None,
                },
            ),
            (
                "blocks",
                &ou,
                &ou_grid,
                StepRule::ExpSde,
                SamplerKind::Blocks {
                    block_len: 1.0,
                    iters: 40,
                    tol: 0.1,
                    form: PicardForm::Scan,
                    corrector: None,
                    anderson: None,
                    final_tol: None,
                },
            ),
        ];
        for (name, schedule, grid, rule, kind) in cases {
            let model = GmmModel::new(mix.clone(), schedule.clone());
            let inputs = RunInputs {
                batch,
                seed: 1,
                ..Default::default()
            };
            let t0 = Instant::now();
            let seq = run(
                &CpuBackend,
                &model,
                grid,
                rule,
                &SamplerKind::Sequential,
                &inputs,
            )?;
            let seq_ms = t0.elapsed().as_secs_f64() * 1e3;
            let par = run(&CpuBackend, &model, grid, rule, &kind, &inputs)?;
            let dev = par
                .samples
                .iter()
                .zip(&seq.samples)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            println!(
                "| {dim} | {name} | {} | {} | {} | {:.1} | {seq_ms:.1} | {dev:.2e} |",
                grid.steps(),
                par.stats.rounds,
                par.stats.nfe,
                par.stats.wall_ms
            );
            rows.push(json!({"dim": dim, "sampler": name, "steps": grid.steps(), "rounds": par.stats.rounds, "nfe": par.stats.nfe,
                "wall_ms": par.stats.wall_ms, "sequential_wall_ms": seq_ms, "max_abs_diff": dev, "batch": batch}));
        }
    }
    if let Some(path) = out_path {
        let doc = json!({"device": "cpu", "threads": rayon::current_num_threads(), "rows": rows});
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).map_err(|e| {
            Error::Io {
                op: "writing".into(),
                path: path.clone(),
                msg: e.to_string(),
            }
        })?;
    }
    Ok(())
}
