//! The rounds–accuracy frontier of the parallel samplers (issue 14, item 5): for each rule family
//! (stochastic DDPM, deterministic DDIM, flow Euler, DPM-Solver++), each sampler form (picard scan,
//! picard drift, blocks) and a sweep of τ, the rounds, the model evaluations per sample and the
//! per-sample deviation from the sequential sampler on the same noise (median, 90th percentile,
//! maximum of `max_i |x_i − x_seq_i|` over the batch). Rounds do not depend on the machine.
//!
//!     cargo run --release --example frontier -- [mixture|mlp|all] > docs/perf/frontier.md
//!     cargo run --release --example frontier -- [mixture|mlp|all] final   # the final-sample stop
//!
//! Every run is a `RunSpec` planned by the library, as the CLI's `compare` would run it.

use picardiff::backend::cpu::CpuBackend;
use picardiff::device::{Device, ModelRef};
use picardiff::metrics::{per_sample_deviation, quantile};
use picardiff::model::{load_model, GmmModel, Mixture, MlpModel, ModelFile};
use picardiff::sampler::{RunInputs, RunOutput};
use picardiff::schedule::ModelOutput;
use picardiff::spec::{ModelRun, Plan, RuleName, RunSpec, SamplerName, ScheduleName};

/// One rule family's base spec.
struct Case {
    name: &'static str,
    spec: RunSpec,
    taus: &'static [f64],
}

fn spec(schedule: ScheduleName, rule: RuleName, steps: usize) -> RunSpec {
    RunSpec {
        schedule: Some(schedule),
        rule: Some(rule),
        steps: Some(steps),
        ..RunSpec::default()
    }
}

fn cases(long: bool) -> Vec<Case> {
    use RuleName::*;
    use ScheduleName::*;
    const STOCHASTIC: &[f64] = &[0.3, 0.1, 0.03, 0.01];
    const DETERMINISTIC: &[f64] = &[1e-1, 3e-2, 1e-2, 3e-3, 1e-3];
    let mut v = vec![
        Case {
            name: "DDPM-100",
            spec: spec(DdpmLinear, Ddpm, 100),
            taus: STOCHASTIC,
        },
        Case {
            name: "DDIM-100",
            spec: spec(DdpmLinear, Ddim, 100),
            taus: DETERMINISTIC,
        },
        Case {
            name: "DDIM-25",
            spec: spec(DdpmLinear, Ddim, 25),
            taus: DETERMINISTIC,
        },
        Case {
            name: "flow Euler-10",
            spec: spec(Flow, Euler, 10),
            taus: DETERMINISTIC,
        },
        Case {
            name: "DPM-Solver++(2M)-20",
            spec: RunSpec {
                spacing: "dpm-linspace".parse().ok(),
                ..spec(DdpmLinear, DpmPp2m, 20)
            },
            taus: DETERMINISTIC,
        },
    ];
    if long {
        v.push(Case {
            name: "DDPM-1000",
            spec: spec(DdpmLinear, Ddpm, 1000),
            taus: STOCHASTIC,
        });
    }
    v
}

/// The forms of the parallel sampler each case is swept over.
fn forms() -> Vec<(&'static str, RunSpec)> {
    let picard = |f: &str| RunSpec {
        sampler: Some(SamplerName::Picard),
        picard_form: f.parse().ok(),
        ..RunSpec::default()
    };
    let blocks = RunSpec {
        sampler: Some(SamplerName::Blocks),
        ..RunSpec::default()
    };
    vec![
        ("picard scan", picard("scan")),
        ("picard drift", picard("drift")),
        ("blocks", blocks),
    ]
}

/// A model the frontier runs on, with what it says about its schedule.
enum Net {
    Mixture(Mixture),
    Mlp(Box<MlpModel>),
}

fn run(net: &Net, plan: &Plan, inputs: &RunInputs<'_>, kind_of: &Plan) -> RunOutput {
    let device = Device::Cpu(CpuBackend);
    let out = match net {
        Net::Mixture(m) => {
            let g = GmmModel::new(m.clone(), plan.schedule.clone());
            ModelRef::Gmm(&g).run(&device, &plan.grid, plan.rule, &kind_of.kind, inputs)
        }
        Net::Mlp(m) => ModelRef::Mlp(m).run(&device, &plan.grid, plan.rule, &kind_of.kind, inputs),
    };
    out.expect("run")
}

fn frontier(label: &str, net: &Net, batch: usize, long: bool, final_stop: bool) {
    println!("\n### {label}, batch {batch}\n");
    if final_stop {
        println!("| rule | sampler | τ | final_tol | rounds | nfe/sample | median dev | p90 dev | max dev |");
        println!("|---|---|---|---|---|---|---|---|---|");
    } else {
        println!("| rule | sampler | τ | rounds | nfe/sample | median dev | p90 dev | max dev |");
        println!("|---|---|---|---|---|---|---|---|");
    }
    for case in cases(long) {
        let (model_run, output) = match net {
            Net::Mixture(_) => {
                let out = match case.spec.schedule {
                    Some(ScheduleName::Flow) => ModelOutput::Velocity,
                    _ => ModelOutput::Epsilon,
                };
                (ModelRun::AnySchedule, out)
            }
            Net::Mlp(m) => {
                if case.spec.schedule == Some(ScheduleName::Flow) {
                    continue; // the example MLPs predict ε on ddpm-linear
                }
                let run = ModelRun::Trained {
                    schedule: m.config().schedule.parse().expect("schedule"),
                    train_steps: m.config().train_steps,
                    what: "the model was trained with",
                };
                (run, m.config().prediction)
            }
        };
        let seq_spec = RunSpec {
            sampler: Some(SamplerName::Sequential),
            ..case.spec.clone()
        };
        let seq_plan = seq_spec.plan(model_run, output).expect("plan");
        let inputs = RunInputs {
            batch,
            seed: 1,
            ..Default::default()
        };
        let seq = run(net, &seq_plan, &inputs, &seq_plan);
        let dim = seq.samples.len() / batch;
        if final_stop {
            let rule_tol = seq_plan.rule.default_tolerance();
            final_sweep(
                net,
                &case,
                (model_run, output),
                rule_tol,
                &inputs,
                &seq,
                dim,
            );
            continue;
        }
        for (form, over) in forms() {
            for &tau in case.taus {
                let s = RunSpec {
                    tol: Some(tau),
                    ..case.spec.clone()
                }
                .overlaid(&over);
                let plan = match s.plan(model_run, output) {
                    Ok(p) => p,
                    Err(e) => {
                        println!("| {} | {form} | {tau} | {e} | | | | |", case.name);
                        continue;
                    }
                };
                let par = run(net, &plan, &inputs, &plan);
                let dev = per_sample_deviation(&par.samples, &seq.samples, dim);
                println!(
                    "| {} | {form} | {tau} | {} | {} | {:.1e} | {:.1e} | {:.1e} |",
                    case.name,
                    par.stats.rounds,
                    par.stats.nfe,
                    quantile(&dev, 0.5),
                    quantile(&dev, 0.9),
                    quantile(&dev, 1.0),
                );
            }
        }
        println!(
            "| {} | sequential | | {} | {} | 0 | 0 | 0 |",
            case.name, seq.stats.rounds, seq.stats.nfe
        );
    }
}

/// The final-sample stop's sweep (`-- mixture|mlp|all final`): picard scan and drift at the
/// rule's per-step τ (`rule_tol`, labelled "default") and at τ = 0, with `final_tol` off and from
/// 1e-2 to 1e-4.
fn final_sweep(
    net: &Net,
    case: &Case,
    (model_run, output): (ModelRun, ModelOutput),
    rule_tol: f64,
    inputs: &RunInputs<'_>,
    seq: &RunOutput,
    dim: usize,
) {
    const FINAL: [Option<f64>; 6] = [
        None,
        Some(1e-2),
        Some(3e-3),
        Some(1e-3),
        Some(3e-4),
        Some(1e-4),
    ];
    for (form, tau) in [
        ("scan", None),
        ("drift", None),
        ("scan", Some(0.0)),
        ("drift", Some(0.0)),
    ] {
        // τ = 0 without the stop is the sequential sampler.
        for ft in FINAL.into_iter().filter(|f| f.is_some() || tau.is_none()) {
            let s = RunSpec {
                sampler: Some(SamplerName::Picard),
                picard_form: form.parse().ok(),
                tol: Some(tau.unwrap_or(rule_tol)),
                final_tol: ft,
                ..case.spec.clone()
            };
            let plan = s.plan(model_run, output).expect("plan");
            let par = run(net, &plan, inputs, &plan);
            let dev = per_sample_deviation(&par.samples, &seq.samples, dim);
            println!(
                "| {} | picard {form} | {} | {} | {} | {} | {:.1e} | {:.1e} | {:.1e} |",
                case.name,
                tau.map_or("default".to_string(), |t| t.to_string()),
                ft.map_or("off".to_string(), |f| format!("{f:.0e}")),
                par.stats.rounds,
                par.stats.nfe,
                quantile(&dev, 0.5),
                quantile(&dev, 0.9),
                quantile(&dev, 1.0),
            );
        }
    }
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "mixture".into());
    let final_stop = std::env::args().nth(2).as_deref() == Some("final");
    let arg = if final_stop { " final" } else { "" };
    println!("# Rounds against per-sample deviation from sequential (`cargo run --release --example frontier -- {which}{arg}`)");
    println!("\nSeed 1, window 256 (at most the steps), blocks of 100 units of model time (timesteps; flow: σ·1000, so one step per block at 10 steps) with K = the longest block's length; deviation = max over elements of |x − x_seq| per sample.");
    if which == "mixture" || which == "all" {
        frontier(
            "examples/mixture_64d.json (exact scores)",
            &Net::Mixture(Mixture::example_64d()),
            16,
            true,
            final_stop,
        );
    }
    if which == "mlp" || which == "all" {
        let Ok(ModelFile::Mlp(m)) =
            load_model(std::path::Path::new("examples/models/mix64d.safetensors"))
        else {
            panic!("examples/models/mix64d.safetensors");
        };
        frontier(
            "examples/models/mix64d.safetensors (trained MLP, H = 256)",
            &Net::Mlp(m),
            16,
            false,
            final_stop,
        );
    }
}
