//! Samples a trained MLP score network sequentially and with the Picard window, and writes both
//! sample sets as `.npy` (plus the run statistics as JSON) for `tools/plot_samples.py`.
//!
//! The README picture (`docs/img/moons2d_samples.png`):
//!
//! ```text
//! cargo run --release --example sample_mlp -- --out target/sample_mlp
//! /work/.venv-torch/bin/python tools/plot_samples.py target/sample_mlp docs/img/moons2d_samples.png
//! ```
//!
//! Options (defaults in brackets): `--model` [examples/models/moons2d.safetensors], `--out`
//! [target/sample_mlp], `--batch` [2000], `--steps` [1000], `--rule` ddpm|ddim [ddpm], `--window`
//! [100], `--tol` [the rule's ParaDiGMS default: 0.1 ddpm, 1e-3 ddim], `--seed` [1].

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use npyz::WriterBuilder;
use picardiff::model::MlpModel;
use picardiff::prelude::*;

fn write_npy(path: &Path, rows: usize, dim: usize, data: &[f32]) -> std::io::Result<()> {
    let mut buf = BufWriter::new(std::fs::File::create(path)?);
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[rows as u64, dim as u64])
        .writer(&mut buf)
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    buf.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut model_path = PathBuf::from("examples/models/moons2d.safetensors");
    let mut out_dir = PathBuf::from("target/sample_mlp");
    let (mut batch, mut steps, mut window, mut seed) = (2000usize, 1000usize, 100usize, 1u64);
    let mut rule_name = "ddpm".to_string();
    let mut tol: Option<f64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--model" => model_path = val()?.into(),
            "--out" => out_dir = val()?.into(),
            "--batch" => batch = val()?.parse()?,
            "--steps" => steps = val()?.parse()?,
            "--rule" => rule_name = val()?,
            "--window" => window = val()?.parse()?,
            "--tol" => tol = Some(val()?.parse()?),
            "--seed" => seed = val()?.parse()?,
            o => return Err(format!("unknown option {o} (see the example's doc comment)").into()),
        }
    }
    let model = MlpModel::from_file(&model_path)?;
    println!("{}", model.summary());
    let schedule = model.schedule()?;
    let grid = Grid::discrete(&schedule, steps, Spacing::Leading)?;
    let rule = StepRule::from_name(&rule_name, None)?;
    let tol = tol.unwrap_or(rule.default_tolerance());
    let inputs = RunInputs {
        batch,
        seed,
        ..Default::default()
    };
    let seq = run(
        &CpuBackend,
        &model,
        &grid,
        rule,
        &SamplerKind::Sequential,
        &inputs,
    )?;
    let picard = SamplerKind::Picard {
        window,
        tol,
        max_iters: None,
        form: PicardForm::Scan,
        anderson: None,
        final_tol: None,
    };
    let par = run(&CpuBackend, &model, &grid, rule, &picard, &inputs)?;
    let dim = model.config().dim;
    // Per sample: max |picard − sequential| over its coordinates.
    let mut per_sample: Vec<f32> = seq
        .samples
        .chunks(dim)
        .zip(par.samples.chunks(dim))
        .map(|(a, b)| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())))
        .collect();
    per_sample.sort_by(f32::total_cmp);
    let dev = *per_sample.last().unwrap_or(&0.0);
    let median = per_sample[per_sample.len() / 2];
    let over = per_sample.iter().filter(|&&d| d > 0.05).count();
    std::fs::create_dir_all(&out_dir)?;
    write_npy(&out_dir.join("sequential.npy"), batch, dim, &seq.samples)?;
    write_npy(&out_dir.join("picard.npy"), batch, dim, &par.samples)?;
    let stats = serde_json::json!({
        "model": model_path.display().to_string(),
        "rule": rule_name, "steps": steps, "batch": batch, "seed": seed,
        "window": window, "tol": tol,
        "sequential": seq.stats, "picard": par.stats, "max_abs_deviation": dev,
        "median_sample_deviation": median, "samples_over_0.05": over,
    });
    std::fs::write(out_dir.join("stats.json"), format!("{stats:#}\n"))?;
    println!(
        "{rule_name} {steps} steps, {batch} samples: sequential {} rounds {:.0} ms; picard (window \
         {window}, tol {tol}) {} rounds, nfe {}, {:.0} ms; per-sample max |picard − sequential|: \
         median {median:.1e}, max {dev:.1e}, {over} over 0.05",
        seq.stats.rounds,
        seq.stats.wall_ms,
        par.stats.rounds,
        par.stats.nfe,
        par.stats.wall_ms
    );
    println!(
        "wrote {}/{{sequential,picard}}.npy and stats.json",
        out_dir.display()
    );
    Ok(())
}
