//! Flow matching (`docs/algorithms.md` §8): diffusers' `FlowMatchEulerDiscreteScheduler` grids and
//! Euler samples of the exact 2-D mixture velocity (`tests/data/flow_reference.json`, written by
//! `tools/flow_reference.py` with diffusers 0.39.0), Picard exactness on flow, sample quality, the
//! closed-form velocity, refusals, and the CLI and C ABI front ends.

mod cli_common;
mod common;

use cli_common::*;
use common::*;
use picardiff::prelude::*;
use picardiff::schedule::{ClipKeep, ClipSample, Process};
use serde_json::Value;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/flow_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn flow(train_steps: usize) -> Schedule {
    Schedule::from_name("flow", train_steps).unwrap()
}

/// The grid a reference case describes.
fn grid_of(case: &Value) -> Grid {
    let steps = case["steps"].as_u64().unwrap() as usize;
    let s = flow(case["train_steps"].as_u64().unwrap() as usize);
    if case["uniform"].as_bool().unwrap() {
        Grid::flow_uniform(&s, steps).unwrap()
    } else if let Some(mu) = case["mu"].as_f64() {
        Grid::flow(&s, steps, FlowShift::Dynamic { mu }).unwrap()
    } else {
        let shift = case["shift"].as_f64().unwrap();
        Grid::flow(&s, steps, FlowShift::Static(shift)).unwrap()
    }
}

fn euler() -> StepRule {
    StepRule::from_name("euler", None).unwrap()
}

fn run_flow(
    model: &GmmModel,
    grid: &Grid,
    kind: &SamplerKind,
    batch: usize,
    init: Option<&[f32]>,
) -> RunOutput {
    run(
        &CpuBackend,
        model,
        grid,
        euler(),
        kind,
        &RunInputs {
            batch,
            seed: 5,
            init,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn grids_match_diffusers() {
    let r = reference();
    let mut worst = (0f64, 0f64);
    for case in r["grids"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let g = grid_of(case);
        let n_train = case["train_steps"].as_f64().unwrap();
        let sigmas = f64s(&case["sigmas"]);
        let timesteps = f64s(&case["timesteps"]);
        assert_eq!(g.points.len(), sigmas.len(), "{name}");
        assert_eq!(g.process, Process::Flow);
        for (j, p) in g.points.iter().enumerate() {
            let ds = (p.sigma - sigmas[j]).abs();
            worst.0 = worst.0.max(ds);
            // Tolerance 1e-6 on σ and on the model time in units of σ (t / train_steps).
            assert!(
                ds <= 1e-6,
                "{name} point {j}: σ {} vs {}",
                p.sigma,
                sigmas[j]
            );
            assert_eq!(p.alpha, 1.0 - p.sigma);
            if j < timesteps.len() {
                let dt = (p.t - timesteps[j]).abs() / n_train;
                worst.1 = worst.1.max(dt);
                assert!(
                    dt <= 1e-6,
                    "{name} point {j}: t {} vs {}",
                    p.t,
                    timesteps[j]
                );
                // diffusers' grid is reproduced exactly: its f32 σ, and (what a backend passes the
                // model, f32) its f32 timestep.
                if !case["uniform"].as_bool().unwrap() {
                    // (serde_json parses to within an ulp of f64: compare the f32 values.)
                    assert_eq!(p.sigma, p.sigma as f32 as f64, "{name} point {j}");
                    assert_eq!(p.sigma as f32, sigmas[j] as f32, "{name} point {j}");
                    assert_eq!(p.t as f32, timesteps[j] as f32, "{name} point {j}");
                }
            }
        }
        assert_eq!(g.points.last().unwrap().sigma, 0.0);
    }
    println!(
        "grids: max |Δσ| {:.3e}, max |Δt|/N_train {:.3e}",
        worst.0, worst.1
    );
}

#[test]
fn euler_samples_match_diffusers() {
    let r = reference();
    let x_t: Vec<f32> = f64s(&r["x_T"]).iter().map(|&v| v as f32).collect();
    let batch = r["batch"].as_u64().unwrap() as usize;
    let mut worst = 0f64;
    for s in r["samples"].as_array().unwrap() {
        let name = s["grid"].as_str().unwrap();
        let case = r["grids"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        let g = grid_of(case);
        let model = GmmModel::new(mixture_2d(), flow(1000));
        let want = f64s(&s["samples"]);
        for kind in [
            SamplerKind::Sequential,
            SamplerKind::picard(g.steps(), 1e-6, PicardForm::Scan),
        ] {
            let out = run_flow(&model, &g, &kind, batch, Some(&x_t));
            let d = out
                .samples
                .iter()
                .zip(&want)
                .map(|(&a, &b)| (a as f64 - b).abs())
                .fold(0.0, f64::max);
            worst = worst.max(d);
            // 1e-4: f32 model and state against diffusers' f64 velocity and f32-rounded state.
            assert!(d <= 1e-4, "{name} {kind:?}: max |Δ| {d:.3e}");
        }
    }
    println!("samples: max |Δ| vs diffusers {worst:.3e}");
}

#[test]
fn picard_tau0_and_window1_equal_sequential_bit_for_bit() {
    let s = flow(1000);
    let model = GmmModel::new(mixture_64d(), s.clone());
    for g in [
        Grid::flow(&s, 50, FlowShift::Static(3.0)).unwrap(),
        Grid::flow_uniform(&s, 40).unwrap(),
    ] {
        let n = g.steps();
        let seq = run_flow(&model, &g, &SamplerKind::Sequential, 6, None);
        for (kind, rounds) in [
            (SamplerKind::picard(1, 1e-3, PicardForm::Scan), Some(n)),
            (SamplerKind::picard(n, 0.0, PicardForm::Scan), None),
            (SamplerKind::picard(8, 0.0, PicardForm::Scan), None),
            // a = 1: the drift form is the scan form, bit for bit.
            (SamplerKind::picard(n, 0.0, PicardForm::Drift), None),
        ] {
            let out = run_flow(&model, &g, &kind, 6, None);
            assert_eq!(out.samples, seq.samples, "{kind:?}");
            if let Some(r) = rounds {
                assert_eq!(out.stats.rounds, r);
            }
        }
    }
}

#[test]
fn euler_samples_have_the_mixture_weights() {
    let s = flow(1000);
    let mix = mixture_2d();
    let model = GmmModel::new(mix.clone(), s.clone());
    const BATCH: usize = 8192;
    for (g, what) in [
        (
            Grid::flow(&s, 100, FlowShift::Static(1.0)).unwrap(),
            "diffusers",
        ),
        (Grid::flow_uniform(&s, 100).unwrap(), "uniform"),
    ] {
        for kind in [
            SamplerKind::Sequential,
            SamplerKind::picard(100, 1e-3, PicardForm::Scan),
        ] {
            let out = run_flow(&model, &g, &kind, BATCH, None);
            let (werr, _, maxabs) = component_errors(&mix, &out.samples);
            println!(
                "{what} {kind:?}: weight err {werr:.4}, mean err {maxabs:.4}, rounds {}",
                out.stats.rounds
            );
            // As tests/sampler_quality.rs: binomial std of a fraction at 8192 is 0.005.
            assert!(
                werr <= 0.03 && maxabs <= 0.05,
                "weights {werr}, means {maxabs}"
            );
        }
    }
}

/// The velocity in f64 from the posterior mean: v = ε̂ − x̂0 with ε̂ = (x − α x̂0)/σ.
fn velocity_f64(mix: &Mixture, x: &[f64], sigma: f64) -> Vec<f64> {
    let a = 1.0 - sigma;
    let d = mix.dim;
    let logit: Vec<f64> = (0..mix.components())
        .map(|k| {
            let v = a * a * mix.stds[k].powi(2) + sigma * sigma;
            let d2: f64 = (0..d).map(|i| (x[i] - a * mix.mean(k)[i]).powi(2)).sum();
            mix.weights[k].ln() - 0.5 * d as f64 * v.ln() - d2 / (2.0 * v)
        })
        .collect();
    let m = logit.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logit.iter().map(|l| (l - m).exp()).collect();
    let z: f64 = e.iter().sum();
    let x0: Vec<f64> = (0..d)
        .map(|i| {
            (0..mix.components())
                .map(|k| {
                    let v = a * a * mix.stds[k].powi(2) + sigma * sigma;
                    let mu = mix.mean(k)[i];
                    e[k] / z * (mu + a * mix.stds[k].powi(2) / v * (x[i] - a * mu))
                })
                .sum()
        })
        .collect();
    (0..d).map(|i| (x[i] - a * x0[i]) / sigma - x0[i]).collect()
}

#[test]
fn mixture_velocity_is_the_posterior_velocity_and_finite_at_sigma_1() {
    let mix = mixture_64d();
    let model = GmmModel::new(mix.clone(), flow(1000));
    assert_eq!(
        ScoreModel::<CpuBackend>::output(&model),
        ModelOutput::Velocity
    );
    let d = mix.dim;
    let rows = 5;
    let x: Vec<f32> = (0..rows * d)
        .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 1.5)
        .collect();
    let be = CpuBackend;
    let mut ws = ScoreModel::<CpuBackend>::workspace(&model, &be, rows).unwrap();
    for sigma in [1.0, 0.999, 0.7, 0.3, 0.05] {
        let times = vec![(sigma * 1000.0) as f32; rows];
        let mut out = vec![0f32; rows * d];
        model
            .eval(&be, &mut ws, &x, &times, 0, rows, &mut out)
            .unwrap();
        let sig = times[0] as f64 / 1000.0;
        for r in 0..rows {
            let xr: Vec<f64> = x[r * d..(r + 1) * d].iter().map(|&v| v as f64).collect();
            let want = if sigma == 1.0 {
                // At σ = 1 the responsibilities are the weights: v = x − Σ w_k μ_k.
                (0..d)
                    .map(|i| {
                        xr[i]
                            - (0..mix.components())
                                .map(|k| mix.weights[k] * mix.mean(k)[i])
                                .sum::<f64>()
                    })
                    .collect()
            } else {
                velocity_f64(&mix, &xr, sig)
            };
            let err = out[r * d..(r + 1) * d]
                .iter()
                .zip(&want)
                .map(|(&o, &w)| (o as f64 - w).abs())
                .fold(0.0, f64::max);
            assert!(err <= 2e-5, "σ = {sigma}, row {r}: max |Δ| {err:.3e}");
        }
    }
}

#[test]
fn vp_assumptions_are_refused_on_flow() {
    let s = flow(1000);
    let g = Grid::flow(&s, 10, FlowShift::Static(1.0)).unwrap();
    for rule in ["ddpm", "ddim", "exp-sde", "exp-ode"] {
        let e = StepTable::new(
            &g,
            StepRule::from_name(rule, None).unwrap(),
            ModelOutput::Velocity,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("variance-preserving") && e.contains("euler"),
            "{e}"
        );
    }
    let e = StepTable::new(&g, euler(), ModelOutput::V)
        .unwrap_err()
        .to_string();
    assert!(e.contains("velocity"), "{e}");
    // ε and score outputs do not give v at σ = 1 (α = 0): a non-finite table, refused.
    let e = StepTable::new(&g, euler(), ModelOutput::Epsilon)
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-finite"), "{e}");
    // On a grid that starts below σ = 1 they do.
    let t = StepTable::new(&g, euler(), ModelOutput::Sample).unwrap();
    assert_eq!((t.p[0], t.q[0]), (1.0, -1.0));
    let clip = ClipSample {
        range: 1.0,
        keep: ClipKeep::Epsilon,
    };
    let t = StepTable::new(&g, euler(), ModelOutput::Velocity).unwrap();
    let e = t
        .with_clip(&g, ModelOutput::Velocity, clip)
        .unwrap_err()
        .to_string();
    assert!(e.contains("flow"), "{e}");
    // The VP grids refuse the flow schedule and the flow grids the VP schedules.
    assert!(Grid::uniform(&s, 10, 1.0, 1e-3).is_err());
    assert!(Grid::paper(&s, 0.05, 1.0, 1e-3).is_err());
    assert!(Grid::discrete(&s, 10, Spacing::Leading).is_err());
    let (vp, vg) = ddpm_grid(10);
    assert!(Grid::flow(&vp, 10, FlowShift::Static(1.0)).is_err());
    assert!(Grid::flow_uniform(&vp, 10).is_err());
    let e = StepTable::new(&vg, euler(), ModelOutput::Epsilon)
        .unwrap_err()
        .to_string();
    assert!(e.contains("flow"), "{e}");
    let e = StepTable::new(
        &vg,
        StepRule::from_name("ddim", None).unwrap(),
        ModelOutput::Velocity,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("flow"), "{e}");
    // Bad shifts and step counts.
    for shift in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            Grid::flow(&s, 10, FlowShift::Static(shift)).is_err(),
            "{shift}"
        );
    }
    assert!(Grid::flow(&s, 10, FlowShift::Dynamic { mu: f64::NAN }).is_err());
    assert!(Grid::flow(&s, 0, FlowShift::Static(1.0)).is_err());
    assert!(Schedule::from_name("flow", 0).is_err());
}

#[test]
fn euler_table_and_normaliser() {
    let s = flow(1000);
    let g = Grid::flow_uniform(&s, 4).unwrap();
    let t = StepTable::new(&g, euler(), ModelOutput::Velocity).unwrap();
    assert_eq!(t.a, vec![1.0; 4]);
    assert_eq!(t.c, vec![0.0; 4]);
    assert_eq!((t.p.clone(), t.q.clone()), (vec![0.0; 4], vec![1.0; 4]));
    for (j, b) in t.b.iter().enumerate() {
        assert_eq!(*b, g.points[j + 1].sigma - g.points[j].sigma);
    }
    assert_eq!(t.t, vec![1000.0, 750.0, 500.0, 250.0]);
    // The flow posterior variance (σ_s²/σ_t²)(σ_t² − (α_t/α_s)² σ_s²) of the step consuming each
    // point; the last point takes the floor (the smallest positive value).
    let post = |j: usize| {
        let (f, to) = (g.points[j], g.points[j + 1]);
        let r = f.alpha / to.alpha;
        (to.sigma.powi(2) / f.sigma.powi(2)) * (f.sigma.powi(2) - r * r * to.sigma.powi(2))
    };
    let floor = (0..3).map(post).fold(f64::INFINITY, f64::min);
    assert!((t.var[0] - post(1)).abs() <= 1e-15);
    assert!((t.var[1] - post(2)).abs() <= 1e-15);
    assert!((t.var[2] - floor).abs() <= 1e-15 && (t.var[3] - floor).abs() <= 1e-15);
    // σ_t = 1: the posterior is σ_s² (nothing of x_t is signal).
    assert!((post(0) - 0.75f64.powi(2)).abs() <= 1e-15);
}

#[test]
fn cli_samples_flow_and_reports_it() {
    let dir = TempDir::new("flow");
    let model = example("mixture_2d.json");
    let stats = dir.arg("stats.json");
    let out = dir.arg("x.npy");
    let args = [
        "sample",
        "--model",
        &model,
        "--schedule",
        "flow",
        "--steps",
        "12",
        "--rule",
        "euler",
        "--shift",
        "3",
        "--sampler",
        "picard",
        "--batch",
        "4",
        "--seed",
        "9",
        "--device",
        "cpu",
        "--out",
        &out,
        "--stats",
        &stats,
    ];
    ok(&args, &dir.0);
    let st = read_json(&dir.path("stats.json"));
    assert_eq!(st["schedule"], "flow");
    assert_eq!(st["rule"], "euler");
    assert_eq!(st["grid"], "diffusers");
    assert_eq!(st["shift"], 3.0);
    assert_eq!(st["train_steps"], 1000);
    let (_, cli) = read_npy(&dir.path("x.npy"));
    let s = flow(1000);
    let g = Grid::flow(&s, 12, FlowShift::Static(3.0)).unwrap();
    let lib = run(
        &CpuBackend,
        &GmmModel::new(mixture_2d(), s.clone()),
        &g,
        euler(),
        // The defaults with a window holding every step: drift at τ = 0, the final-sample stop.
        &SamplerKind::picard(12, 0.0, picardiff::defaults::PICARD_FORM_FINAL_STOP)
            .with_final_tol(Some(picardiff::defaults::FINAL_TOL)),
        &RunInputs {
            batch: 4,
            seed: 9,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cli, lib.samples);

    // pi0's grid and the dynamic shift.
    ok(
        &[
            "sample",
            "--model",
            &model,
            "--schedule",
            "flow",
            "--grid",
            "uniform",
            "--steps",
            "10",
            "--rule",
            "euler",
            "--device",
            "cpu",
            "--stats",
            &stats,
        ],
        &dir.0,
    );
    assert_eq!(read_json(&dir.path("stats.json"))["grid"], "uniform");
    ok(
        &[
            "sample",
            "--model",
            &model,
            "--schedule",
            "flow",
            "--mu",
            "0.8",
            "--steps",
            "10",
            "--rule",
            "euler",
            "--device",
            "cpu",
            "--stats",
            &stats,
        ],
        &dir.0,
    );
    assert_eq!(read_json(&dir.path("stats.json"))["mu"], 0.8);

    // Refusals: one error line.
    for (bad, want) in [
        (vec!["--rule", "ddim"], "euler"),
        (vec!["--rule", "euler", "--shift", "0"], "--shift"),
        (vec!["--rule", "euler", "--shift", "2", "--mu", "1"], "--mu"),
        (vec!["--rule", "euler", "--grid", "paper"], "--grid"),
    ] {
        let mut a = vec![
            "sample",
            "--model",
            &model,
            "--schedule",
            "flow",
            "--steps",
            "10",
            "--device",
            "cpu",
        ];
        a.extend(bad);
        let o = picardiff(&a, &dir.0);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{a:?}: {err}");
        assert!(
            err.starts_with("error:") && err.contains(want),
            "{a:?}: {err}"
        );
    }
    let a = [
        "sample",
        "--model",
        &model,
        "--schedule",
        "ddpm-linear",
        "--steps",
        "10",
        "--rule",
        "euler",
        "--device",
        "cpu",
    ];
    let o = picardiff(&a, &dir.0);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("flow"));
}
