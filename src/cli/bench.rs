//! `picardiff bench`: the latency matrix of issue 6. Samplers (sequential, picard, blocks) × models
//! (exact mixtures of several dimensions, MLP files) × batch × steps on one device; every parallel
//! run is timed beside the sequential one in the same process, on the same noise.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use picardiff::backend::PicardForm;
use picardiff::model::{load_model, DiffusionPolicy, ModelFile};
use picardiff::prelude::*;
use picardiff::schedule::DEFAULT_TRAIN_STEPS;
use picardiff::spec::{ModelRun, Named, RuleName, RunSpec, SamplerName, ScheduleName};
use serde_json::{json, Value};

use super::commands::max_abs_diff;
use super::config::{CliModel, Problem};
use super::device::Device;
use super::{emit, output, CliError, CliResult};

/// Options of `picardiff bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Dimensions of the exact-mixture models (8 components, N(0, 1) means, std 0.5); `--dims` with
    /// no value runs no mixture.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [2usize, 64, 1024, 16384])]
    pub dims: Vec<usize>,
    /// MLP .safetensors files (e.g. from tools/make_bench_models.py).
    #[arg(long, value_delimiter = ',')]
    pub mlp: Vec<PathBuf>,
    /// LeRobot Diffusion Policy directories: each timed for DDPM with all its training steps and
    /// DDIM-10 (clipping as its config says), sequential and picard (window = steps, the library's
    /// defaults there: drift at τ = 0 with the final-sample stop), on random conditioning;
    /// `--steps` and `--window` do not apply to them.
    #[arg(long, visible_alias = "model", value_delimiter = ',')]
    pub policy: Vec<PathBuf>,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16])]
    pub batches: Vec<usize>,
    /// Step counts (1000-step ddpm-linear `leading` grids, ddpm rule).
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1000])]
    pub steps: Vec<usize>,
    /// Picard tolerance τ.
    #[arg(long, default_value_t = 0.1)]
    pub tol: f64,
    /// Picard windows to run (default: all steps); rows of a window shorter than the steps are
    /// labelled `p=<window>`.
    #[arg(long, value_delimiter = ',')]
    pub window: Vec<usize>,
    /// Picard forms to run: scan, drift (ParaDiGMS' form), or both (`scan,drift`).
    #[arg(long, value_delimiter = ',', default_values_t = [PicardForm::Scan])]
    pub forms: Vec<PicardForm>,
    /// CUDA graphs for the Picard iterations and the sequential steps: on, off, or both (every
    /// sampler twice, the eager rows marked `eager`; speedups are against the first, sequential,
    /// row). Ignored on the CPU.
    #[arg(long, default_value = "on")]
    pub graphs: String,
    /// Blocks: iterations per block K, exactly (the paper's fixed K, τ = 0; blocks are a tenth of
    /// the steps long; the rows' `worst_block_residual` says how far from converged they ended).
    #[arg(long, default_value_t = 8)]
    pub iters: usize,
    /// Timed repetitions per run (the median is reported), after one warm-up run.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// cpu, cuda or auto.
    #[arg(long, value_name = "DEVICE", default_value_t = picardiff::defaults::DEVICE)]
    pub device: picardiff::spec::DeviceName,
    /// Write the rows as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the table as markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// Runs `kind` `repeat` times after a warm-up; returns the last output with the median wall time.
pub(super) fn timed(
    device: &Device,
    p: &Problem,
    kind: &SamplerKind,
    repeat: usize,
) -> CliResult<RunOutput> {
    device.run(p, kind, kind.name())?;
    let mut walls = Vec::new();
    let mut last = None;
    for _ in 0..repeat {
        let out = device.run(p, kind, kind.name())?;
        walls.push(out.stats.wall_ms);
        last = Some(out);
    }
    walls.sort_by(f64::total_cmp);
    let mut out = last.expect("at least one run");
    out.stats.wall_ms = walls[walls.len() / 2];
    Ok(out)
}

/// The models timed: the exact mixtures of `--dims` (refused before they are built when their
/// means do not fit in free memory) and the `--mlp` files.
fn models(a: &BenchArgs, schedule: &Schedule) -> CliResult<Vec<(String, CliModel)>> {
    let mut models: Vec<(String, CliModel)> = Vec::new();
    for &d in &a.dims {
        // The mixture's means (rows and the flattened copy in f64, the model's f32 copy, a row
        // being generated) before any run: an allocation failure would abort, not give an error.
        let need = (d as u128) * 8 * (8 + 8 + 4) + d as u128 * 4;
        if let Some(free) = CpuBackend.free_memory() {
            if need > free as u128 {
                return Err(CliError::new(format!(
                    "--dims {d}: the 8-component mixture needs {:.1} MiB for its means but only \
                     {:.1} MiB are free",
                    need as f64 / 1048576.0,
                    free as f64 / 1048576.0
                )));
            }
        }
        models.push((
            format!("mixture D={d}"),
            CliModel::Gmm(GmmModel::new(Mixture::benchmark(8, d)?, schedule.clone())),
        ));
    }
    for path in &a.mlp {
        match load_model(Path::new(path))? {
            ModelFile::Mlp(m) => {
                let c = m.config();
                models.push((format!("mlp H={} D={}", c.hidden, c.dim), CliModel::Mlp(m)));
            }
            ModelFile::Mixture(_) | ModelFile::Policy(_) => {
                return Err(CliError::new(format!(
                    "--mlp {}: not an MLP file",
                    path.display()
                )))
            }
        }
    }
    Ok(models)
}

/// `--graphs`, parsed.
fn graph_modes(a: &BenchArgs) -> CliResult<&'static [bool]> {
    match a.graphs.as_str() {
        "on" => Ok(&[true]),
        "off" => Ok(&[false]),
        "both" => Ok(&[true, false]),
        o => Err(CliError::new(format!(
            "--graphs: `{o}` (expected on, off or both)"
        ))),
    }
}

/// `picardiff bench`.
pub fn bench(a: &BenchArgs) -> CliResult<()> {
    let schedule = Schedule::from_name(ScheduleName::DdpmLinear.name(), DEFAULT_TRAIN_STEPS)?;
    let models = models(a, &schedule)?;
    let graph_modes = graph_modes(a)?;
    if a.repeat == 0 {
        return Err(CliError::new("--repeat: must be at least 1, got 0"));
    }
    for (path, what) in [(&a.json, "--json"), (&a.markdown, "--markdown")] {
        if let Some(p) = path {
            output::check(p, what)?;
        }
    }
    output::distinct(&[
        (a.json.as_deref(), "--json"),
        (a.markdown.as_deref(), "--markdown"),
    ])?;
    // Every cell's samplers are planned before anything runs.
    for &steps in &a.steps {
        samplers(a, steps)?;
    }
    // Policies load before anything runs: a bad directory is reported at once, not after the rest.
    let policies = a
        .policy
        .iter()
        .map(|p| DiffusionPolicy::from_dir(p).map_err(CliError::from))
        .collect::<CliResult<Vec<_>>>()?;
    let device = Device::open(a.device)?;
    let mut table = Table::new(format!(
        "device {}, ddpm-linear, ddpm rule, tol {}, blocks K = {} (fixed); wall = median of {} runs\n\n\
         | model | batch | steps | sampler | rounds | nfe | wall ms | speedup vs sequential | max dev |\n|---|---|---|---|---|---|---|---|---|\n",
        device.name(), a.tol, a.iters, a.repeat
    ))?;
    for (name, model) in models {
        let mut model = Some(model);
        for &steps in &a.steps {
            for &batch in &a.batches {
                let (kinds, grid, rule) = samplers(a, steps)?;
                let p = Problem {
                    model: model.take().expect("model"),
                    grid,
                    rule,
                    batch,
                    seed: 1,
                    init: None,
                    noise: None,
                    cond: None,
                    clip: None,
                    sample_shape: Vec::new(),
                    info: Default::default(),
                };
                bench_problem(a, &device, &name, &p, &kinds, graph_modes, &mut table)?;
                model = Some(p.model);
            }
        }
    }
    for policy in policies {
        super::bench_policy::bench_policy(a, &device, policy, &mut table)?;
    }
    if let Some(path) = &a.markdown {
        output::write_atomic(path, "--markdown", |w| w.write_all(table.md.as_bytes()))?;
    }
    if let Some(path) = &a.json {
        let doc =
            json!({"device": device.name(), "tol": a.tol, "repeat": a.repeat, "rows": table.rows});
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        output::write_atomic(path, "--json", |w| w.write_all(text.as_bytes()))?;
    }
    Ok(())
}

/// The bench's markdown table and JSON rows. Every line goes to stdout as it is added, so a long
/// bench shows each row when its run finishes.
pub(super) struct Table {
    /// The markdown so far (header and rows), for `--markdown`.
    pub md: String,
    /// The JSON rows so far, for `--json`.
    pub rows: Vec<Value>,
}

impl Table {
    /// A table that starts with `header`, printed now.
    fn new(header: String) -> CliResult<Table> {
        emit(&header)?;
        Ok(Table {
            md: header,
            rows: Vec::new(),
        })
    }

    /// Prints the markdown `line` and keeps it with its JSON `row`.
    pub(super) fn push(&mut self, line: String, row: Value) -> CliResult<()> {
        emit(&line)?;
        self.md += &line;
        self.rows.push(row);
        Ok(())
    }
}

/// A row's label and sampler.
type Row = (String, SamplerKind);

/// The parallel samplers timed on `steps` steps, labelled, as run specs planned by the library:
/// Picard for every window and form, then blocks (a tenth of the training steps long, exactly
/// `--iters` iterations); 1000-step ddpm-linear, leading spacing, the ddpm rule, `--tol`. Also the
/// grid and rule.
fn samplers(a: &BenchArgs, steps: usize) -> CliResult<(Vec<Row>, Grid, StepRule)> {
    let base = RunSpec {
        schedule: Some(ScheduleName::DdpmLinear),
        rule: Some(RuleName::Ddpm),
        steps: Some(steps),
        tol: Some(a.tol),
        ..RunSpec::default()
    };
    let plan = |s: RunSpec| s.plan(ModelRun::AnySchedule, ModelOutput::Epsilon);
    let windows = if a.window.is_empty() {
        vec![steps]
    } else {
        a.window.clone()
    };
    let mut kinds = Vec::new();
    for &window in &windows {
        for &form in &a.forms {
            let mut label = String::from(match form {
                PicardForm::Scan => "picard",
                PicardForm::Drift => "picard-drift",
            });
            if window < steps {
                label += &format!(" p={window}");
            }
            let p = plan(RunSpec {
                sampler: Some(SamplerName::Picard),
                window: Some(window),
                picard_form: Some(form),
                ..base.clone()
            })?;
            kinds.push((label, p.kind));
        }
    }
    let blocks = plan(RunSpec {
        sampler: Some(SamplerName::Blocks),
        block_len: Some(DEFAULT_TRAIN_STEPS as f64 / 10.0),
        iters: Some(a.iters),
        tol: Some(0.0),
        ..base
    })?;
    kinds.push(("blocks".into(), blocks.kind));
    Ok((kinds, blocks.grid, blocks.rule))
}

/// Times the sequential sampler and then each of `kinds` on `p` (eager rows too with `--graphs
/// both`), adding each row to `table` as its run finishes.
fn bench_problem(
    a: &BenchArgs,
    device: &Device,
    name: &str,
    p: &Problem,
    kinds: &[(String, SamplerKind)],
    graph_modes: &[bool],
    table: &mut Table,
) -> CliResult<()> {
    let eager = |label: &str, graphs: bool| {
        if graphs || !device.has_graphs() {
            label.to_string()
        } else {
            format!("{label} eager")
        }
    };
    // The baseline: the sequential sampler with graphs (one recorded step replayed for every step)
    // unless only eager rows are asked for; with both, its eager run too.
    let seq_graphs = graph_modes.contains(&true);
    device.set_graphs(seq_graphs);
    let seq = timed(device, p, &SamplerKind::Sequential, a.repeat)?;
    let mut add = |label: String, out: &RunOutput| {
        let (dev, speedup) = (
            max_abs_diff(&out.samples, &seq.samples),
            seq.stats.wall_ms / out.stats.wall_ms,
        );
        let (s, (batch, steps)) = (&out.stats, (p.batch, p.steps()));
        let line = format!(
            "| {name} | {batch} | {steps} | {label} | {} | {} | {:.2} | {speedup:.2}x | {dev:.2e} |\n",
            s.rounds, s.nfe, s.wall_ms
        );
        table.push(line, json!({"model": name, "dim": p.dim(), "batch": batch, "steps": steps, "sampler": label,
            "rounds": s.rounds, "nfe": s.nfe, "wall_ms": s.wall_ms, "host_syncs": s.host_syncs,
            "recorded": s.recorded, "replayed": s.replayed, "worst_block_residual": s.worst_block_residual,
            "sequential_wall_ms": seq.stats.wall_ms, "speedup": speedup, "max_abs_diff": dev}))
    };
    add(eager("sequential", seq_graphs), &seq)?;
    let mut best = (String::from("sequential"), seq.stats.wall_ms);
    for &graphs in graph_modes {
        device.set_graphs(graphs);
        if !graphs && seq_graphs && device.has_graphs() {
            let out = timed(device, p, &SamplerKind::Sequential, a.repeat)?;
            add(eager("sequential", false), &out)?;
        }
        for (label, kind) in kinds {
            let out = timed(device, p, kind, a.repeat)?;
            add(eager(label, graphs), &out)?;
            if out.stats.wall_ms < best.1 {
                best = (eager(label, graphs), out.stats.wall_ms);
            }
        }
        if !device.has_graphs() {
            break;
        }
    }
    device.set_graphs(true);
    let candidate = RunSpec {
        schedule: Some(ScheduleName::DdpmLinear),
        rule: Some(RuleName::Ddpm),
        steps: Some(p.steps()),
        tol: Some(a.tol),
        sampler: Some(SamplerName::Auto),
        ..RunSpec::default()
    }
    .plan(ModelRun::AnySchedule, ModelOutput::Epsilon)?
    .kind;
    bench_auto(a, device, name, p, &candidate, &seq, &best, table)
}

/// The `auto` row: what `--sampler auto` chooses on `p` between sequential and `candidate` (its
/// picard), the chosen sampler's median wall time and how it compares with the fastest row
/// measured (`best`: label, ms).
#[allow(clippy::too_many_arguments)]
pub(super) fn bench_auto(
    a: &BenchArgs,
    device: &Device,
    name: &str,
    p: &Problem,
    candidate: &SamplerKind,
    seq: &RunOutput,
    best: &(String, f64),
    table: &mut Table,
) -> CliResult<()> {
    let choice = device.choose(p, candidate)?;
    let out = match choice.kind {
        SamplerKind::Sequential => seq.clone(),
        ref k => timed(device, p, k, a.repeat)?,
    };
    let (s, (batch, steps)) = (&out.stats, (p.batch, p.steps()));
    let ratio = s.wall_ms / best.1;
    let (label, dev) = (
        format!(
            "auto: {} ({ratio:.2}x the best, {})",
            choice.kind.name(),
            best.0
        ),
        max_abs_diff(&out.samples, &seq.samples),
    );
    let line = format!(
        "| {name} | {batch} | {steps} | {label} | {} | {} | {:.2} | {:.2}x | {dev:.2e} |\n",
        s.rounds,
        s.nfe,
        s.wall_ms,
        seq.stats.wall_ms / s.wall_ms
    );
    table.push(line, json!({"model": name, "dim": p.dim(), "batch": batch, "steps": steps,
        "sampler": "auto", "chosen": choice.kind.name(), "estimate": choice.estimate,
        "rounds": s.rounds, "nfe": s.nfe, "wall_ms": s.wall_ms, "best": best.0, "best_wall_ms": best.1,
        "ratio_to_best": ratio, "sequential_wall_ms": seq.stats.wall_ms, "max_abs_diff": dev}))
}
