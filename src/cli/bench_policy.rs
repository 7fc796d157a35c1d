//! `picardiff bench --policy DIR`: a LeRobot Diffusion Policy's action-chunk latency, sequential
//! against Picard, for DDPM with all training steps and DDIM-10, each with the checkpoint's clipping,
//! on random conditioning (latency does not depend on it), in one process; then what `auto` chooses.

use picardiff::model::DiffusionPolicy;
use picardiff::prelude::*;
use picardiff::schedule::ClipSample;
use serde_json::{json, Map};

use super::bench::{bench_auto, timed, BenchArgs, Table};
use super::commands::max_abs_diff;
use super::config::{CliModel, Problem};
use super::device::Device;
use super::CliResult;

/// The two schedulers benchmarked: (label, DDIM?, steps).
fn schedulers(policy: &DiffusionPolicy) -> [(String, bool, usize); 2] {
    let n = policy.scheduler.train_steps;
    [
        (format!("DDPM-{n}"), false, n),
        ("DDIM-10".into(), true, n.min(10)),
    ]
}

/// Adds the rows of `policy` to the bench's table, each as its run finishes.
pub fn bench_policy(
    a: &BenchArgs,
    device: &Device,
    policy: DiffusionPolicy,
    table: &mut Table,
) -> CliResult<()> {
    let c = policy.config.clone();
    let name = format!(
        "policy {:?} T={} A={}",
        c.down_dims, c.horizon, c.action_dim
    );
    let mut model = Some(CliModel::Policy(Box::new(policy.clone())));
    for &batch in &a.batches {
        for (sched_label, ddim, steps) in schedulers(&policy) {
            let schedule = policy.scheduler.schedule()?;
            let grid = Grid::discrete(&schedule, steps, Spacing::Leading)?;
            let rule = StepRule::Ddim {
                eta: if ddim { 0.0 } else { 1.0 },
            };
            let mut cond = vec![0f32; batch * c.global_cond_dim];
            picardiff::rng::fill_normal(7, 0, 0, 0, &mut cond);
            let p = Problem {
                model: model.take().expect("model"),
                grid,
                rule,
                batch,
                seed: 1,
                init: None,
                noise: None,
                cond: Some(cond),
                clip: policy.scheduler.clip.map(|r| ClipSample::for_rule(rule, r)),
                sample_shape: vec![batch, c.horizon, c.action_dim],
                info: Map::new(),
            };
            // The library's defaults for a window over every step.
            let (tol, form, final_tol) =
                picardiff::defaults::stopping(rule, true, None, None, None);
            let picard = SamplerKind::picard(steps, tol, form).with_final_tol(final_tol);
            let seq = timed(device, &p, &SamplerKind::Sequential, a.repeat)?;
            let mut add = |label: &str, out: &RunOutput| {
                let dev = max_abs_diff(&out.samples, &seq.samples);
                let speedup = seq.stats.wall_ms / out.stats.wall_ms;
                let s = &out.stats;
                let line = format!(
                    "| {name} {sched_label} | {batch} | {steps} | {label} | {} | {} | {:.2} | {speedup:.2}x | {dev:.2e} |\n",
                    s.rounds, s.nfe, s.wall_ms
                );
                table.push(line, json!({"model": name, "scheduler": sched_label, "dim": p.dim(), "batch": batch,
                    "steps": steps, "sampler": label, "tol": tol, "final_tol": final_tol, "picard_form": form.to_string(), "rounds": s.rounds,
                    "nfe": s.nfe, "wall_ms": s.wall_ms, "sequential_wall_ms": seq.stats.wall_ms,
                    "speedup": speedup, "max_abs_diff": dev}))
            };
            add("sequential", &seq)?;
            let par = timed(device, &p, &picard, a.repeat)?;
            add("picard", &par)?;
            let best = match par.stats.wall_ms < seq.stats.wall_ms {
                true => ("picard".to_string(), par.stats.wall_ms),
                false => ("sequential".to_string(), seq.stats.wall_ms),
            };
            let row = format!("{name} {sched_label}");
            bench_auto(a, device, &row, &p, &picard, &seq, &best, table)?;
            model = Some(p.model);
        }
    }
    Ok(())
}
