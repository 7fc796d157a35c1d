//! `picardiff sample` and `picardiff compare`.

use std::io::Write;

use picardiff::prelude::*;
use serde_json::{json, Map, Value};

use super::config::{self, Problem, Sampler};
use super::device::Device;
use super::{emit, npy, output, progress, CliError, CliResult, RunArgs};

/// Everything a command needs, validated, with the device opened last.
pub struct Setup {
    /// The model, grid, rule and noise inputs.
    pub problem: Problem,
    /// The sampler with its effective settings.
    pub sampler: Sampler,
    /// The opened backend.
    pub device: Device,
}

/// Validates the arguments of `sample` (`compare` when `compare` is true) and opens the device;
/// runs nothing and writes nothing lasting (each output path is checked with a probe file that is
/// removed again).
pub fn setup(args: &RunArgs, compare: bool) -> CliResult<Setup> {
    if compare && args.spec.sampler == Some(picardiff::spec::SamplerName::Sequential) {
        return Err(CliError::new(
            "--sampler: compare runs the sequential sampler against picard or blocks; choose one of those",
        ));
    }
    let (problem, sampler) = config::setup(args)?;
    for (path, what) in [(&args.out, "--out"), (&args.stats, "--stats")] {
        if let Some(p) = path {
            output::check(p, what)?;
        }
    }
    output::distinct(&[
        (args.out.as_deref(), "--out"),
        (args.stats.as_deref(), "--stats"),
    ])?;
    let device = Device::open(args.spec.device.unwrap_or(picardiff::defaults::DEVICE))?;
    let dtype = args.spec.dtype.unwrap_or_default();
    if device.name() == "cpu" && dtype != picardiff::model::WeightDtype::F32 {
        if let config::CliModel::Mlp(_) = problem.model {
            super::warn(&format!(
                "--dtype {dtype}: the CPU computes in f32 (the dtype applies on the GPU only)"
            ));
        }
    }
    Ok(Setup {
        problem,
        sampler,
        device,
    })
}

/// The stats JSON of one run: the problem, the sampler's settings and the counters.
fn stats_json(command: &str, s: &Setup, stats: &RunStats) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("command".into(), json!(command));
    m.insert("device".into(), json!(s.device.name()));
    m.extend(s.sampler.info.clone());
    m.extend(s.problem.info.clone());
    m.extend(stats.json(&s.sampler.kind));
    m
}

fn write_outputs(
    args: &RunArgs,
    s: &Setup,
    samples: &[f32],
    stats: Map<String, Value>,
) -> CliResult<()> {
    if let Some(path) = &args.out {
        npy::write_f32(path, &s.problem.sample_shape, samples, "--out")?;
    }
    if let Some(path) = &args.stats {
        let text = serde_json::to_string_pretty(&Value::Object(stats))
            .map_err(|e| CliError::new(format!("--stats: {e}")))?;
        output::write_atomic(path, "--stats", |w| w.write_all((text + "\n").as_bytes()))?;
    }
    Ok(())
}

/// `--sampler auto`: times the candidates, says on stderr which it chose and why, and puts the
/// choice in `s.sampler` (in the stats, `sampler` stays `auto`; `auto` holds the choice and its
/// estimate).
pub fn resolve_auto(s: &mut Setup) -> CliResult<()> {
    if !s.sampler.auto {
        return Ok(());
    }
    let choice = s.device.choose(&s.problem, &s.sampler.kind)?;
    let picard = matches!(choice.kind, SamplerKind::Picard { .. });
    eprintln!(
        "picardiff: sampler auto chose {}",
        choice.estimate.reason(picard)
    );
    if !picard {
        s.sampler.label = "sequential".into();
    }
    s.sampler.info.insert("auto".into(), choice.stats());
    s.sampler.kind = choice.kind;
    s.sampler.auto = false;
    Ok(())
}

/// `picardiff sample`: one sampler, samples to `--out`, counters to `--stats`.
pub fn sample(args: &RunArgs) -> CliResult<()> {
    let mut s = setup(args, false)?;
    resolve_auto(&mut s)?;
    let out = progress::observe(&s.sampler.label, || {
        s.device.run(&s.problem, &s.sampler.kind, &s.sampler.label)
    })?;
    let st = &out.stats;
    let p = &s.problem;
    emit(&format!(
        "{} on {}: batch {}, dim {}, {} steps: {} rounds, {} evaluations/sample, {:.1} ms\n",
        s.sampler.label,
        s.device.name(),
        p.batch,
        p.dim(),
        p.steps(),
        st.rounds,
        st.nfe,
        st.wall_ms
    ))?;
    write_outputs(args, &s, &out.samples, stats_json("sample", &s, st))
}

/// Max |a − b| over two equally long sample arrays.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `picardiff compare`: the sequential sampler and `--sampler` (default picard) on the same noise.
pub fn compare(args: &RunArgs) -> CliResult<()> {
    let mut s = setup(args, true)?;
    if s.sampler.auto {
        // The comparison is of a parallel sampler: auto compares picard.
        s.sampler.auto = false;
        s.sampler.info.insert("sampler".into(), json!("picard"));
    }
    let seq = progress::observe("sequential", || {
        s.device
            .run(&s.problem, &SamplerKind::Sequential, "sequential")
    })?;
    let par = progress::observe(&s.sampler.label, || {
        s.device.run(&s.problem, &s.sampler.kind, &s.sampler.label)
    })?;
    let p = &s.problem;
    let dev = picardiff::metrics::Deviation::of(&par.samples, &seq.samples, p.dim());
    let (p50, p90, diff) = (dev.p50, dev.p90, dev.max);
    let w = s.sampler.label.len().max(12);
    let row = |name: &str, st: &RunStats| {
        format!(
            "{name:<w$} {:>8} {:>10} {:>10.1}\n",
            st.rounds, st.nfe, st.wall_ms
        )
    };
    let mut text = format!(
        "batch {}, dim {}, {} steps, device {}\n{:<w$} {:>8} {:>10} {:>10}\n",
        p.batch,
        p.dim(),
        p.steps(),
        s.device.name(),
        "sampler",
        "rounds",
        "nfe",
        "wall ms"
    );
    text += &row("sequential", &seq.stats);
    text += &row(&s.sampler.label, &par.stats);
    text += &format!(
        "per-sample max |{} - sequential|: median {p50:.3e}, p90 {p90:.3e}, max {diff:.3e}; rounds {} vs {} ({:.1}x fewer)\n",
        s.sampler.label,
        par.stats.rounds,
        seq.stats.rounds,
        seq.stats.rounds as f64 / par.stats.rounds.max(1) as f64
    );
    emit(&text)?;
    let mut stats = stats_json("compare", &s, &par.stats);
    stats.extend(dev.json());
    stats.insert("sequential_rounds".into(), json!(seq.stats.rounds));
    stats.insert("sequential_nfe".into(), json!(seq.stats.nfe));
    stats.insert("sequential_wall_ms".into(), json!(seq.stats.wall_ms));
    stats.insert("sequential_host_syncs".into(), json!(seq.stats.host_syncs));
    write_outputs(args, &s, &par.samples, stats)
}
