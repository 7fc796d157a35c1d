//! The MLP score network on the CUDA backend (src/model/mlp/cuda.rs): the forward against the stored
//! PyTorch outputs (tests/data/mlp_forward_*.json, opened relative to the package root: run from the
//! repository root), f32 within 1e-5 and bf16/f16 within 2e-2 of the output scale, row offsets, the
//! missing-time flag, workspace checks, `picardiff::sampler::run` with the trained moons model on
//! CUDA against the CPU, and CUDA-graph replay against eager runs for all three layer layouts. Without a device each test prints "skipped: no CUDA device (...)" and
//! passes; with `REQUIRE_GPU=1` it fails.
#![cfg(feature = "cuda")]

mod gpu_common;

use std::path::Path;

use gpu_common::*;
use picardiff::backend::cuda::CudaBackend;
use picardiff::backend::Backend;
use picardiff::model::{MlpModel, ScoreModel, WeightDtype};
use picardiff::prelude::*;
use serde_json::Value;

const MOONS: &str = "examples/models/moons2d.safetensors";

struct Record {
    model: String,
    x: Vec<f32>,
    t: Vec<f32>,
    cond: Option<Vec<f32>>,
    out: Vec<f32>,
    v: Value,
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        o => panic!("not a number: {o}"),
    }
}

fn f32s(v: &Value) -> Vec<f32> {
    flat(v).into_iter().map(|x| x as f32).collect()
}

fn record(name: &str) -> Record {
    let path = format!("tests/data/mlp_forward_{name}.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap();
    Record {
        model: v["model"].as_str().unwrap().to_string(),
        x: f32s(&v["x"]),
        t: f32s(&v["t"]),
        cond: (!v["cond"].is_null()).then(|| f32s(&v["cond"])),
        out: f32s(&v["out"]),
        v,
    }
}

fn load(path: &str, cond: Option<&[f32]>, dtype: WeightDtype) -> MlpModel {
    let mut m = MlpModel::from_file(Path::new(path)).unwrap();
    if let Some(c) = cond {
        m.set_cond(c).unwrap();
    }
    m.set_compute_dtype(dtype);
    m
}

fn down(be: &CudaBackend, buf: &<CudaBackend as Backend>::Buf) -> Vec<f32> {
    let mut v = vec![0f32; buf.len()];
    be.download(buf, 0, &mut v).unwrap();
    v
}

/// The GPU forward of all rows, evaluated in the given row splits (each a separate `eval`).
fn gpu_forward(be: &CudaBackend, m: &MlpModel, x: &[f32], t: &[f32], splits: &[usize]) -> Vec<f32> {
    let rows = t.len();
    let mut ws = m.workspace(be, rows).unwrap();
    let ts: Vec<f64> = t.iter().map(|&v| v as f64).collect();
    m.prepare_times(be, &mut ws, &ts).unwrap();
    let (xb, tb) = (be.upload(x).unwrap(), be.upload(t).unwrap());
    let mut out = be.alloc(x.len()).unwrap();
    let mut row0 = 0;
    for &n in splits
        .iter()
        .chain(std::iter::once(&(rows - splits.iter().sum::<usize>())))
    {
        m.eval(be, &mut ws, &xb, &tb, row0, n, &mut out).unwrap();
        row0 += n;
    }
    assert!(!ws.missing_times(be).unwrap());
    down(be, &out)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(
            0.0,
            |m, v| if v.is_nan() { f32::INFINITY } else { m.max(v) },
        )
}

fn scale(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

#[test]
fn forward_matches_pytorch_f32() {
    let Some(be) = device("forward_matches_pytorch_f32") else {
        return;
    };
    let mut failures = Vec::new();
    for name in ["moons2d", "mix64d", "variant_a", "variant_b"] {
        let r = record(name);
        let m = load(&r.model, r.cond.as_deref(), WeightDtype::F32);
        let gpu = gpu_forward(&be, &m, &r.x, &r.t, &[]);
        let mut cpu = vec![0f32; r.x.len()];
        m.forward(&r.x, &r.t, &mut cpu).unwrap();
        let (e_torch, e_cpu) = (max_abs(&gpu, &r.out), max_abs(&gpu, &cpu));
        report(format!(
            "gpu mlp f32 {name}: {} rows, max |out| {:.3}, |gpu − torch| {e_torch:.2e}, |gpu − cpu| {e_cpu:.2e}",
            r.t.len(),
            scale(&r.out)
        ));
        if e_torch > 1e-5 {
            failures.push(format!("{name}: |gpu − torch f32| = {e_torch:e}"));
        }
        if e_cpu > 1e-5 {
            failures.push(format!("{name}: |gpu − cpu| = {e_cpu:e}"));
        }
        // Rows evaluated in pieces (row0 > 0, one row, the rest) give the same values.
        let rows = r.t.len();
        let split = gpu_forward(&be, &m, &r.x, &r.t, &[1, rows / 3]);
        let e_split = max_abs(&gpu, &split);
        if e_split > 1e-5 {
            failures.push(format!("{name}: split evaluation differs by {e_split:e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn half_precision_weights_stay_near_pytorch() {
    let Some(be) = device("half_precision_weights_stay_near_pytorch") else {
        return;
    };
    // bf16 weights of the bf16 file (PyTorch: the same weights upcast, f32 activations).
    let r = record("moons2d");
    let bf16_file = r.v["model_bf16"].as_str().unwrap().to_string();
    let torch_bf16 = f32s(&r.v["out_bf16"]);
    let m = load(&bf16_file, None, WeightDtype::Bf16);
    let gpu = gpu_forward(&be, &m, &r.x, &r.t, &[]);
    let rel = max_abs(&gpu, &torch_bf16) / scale(&torch_bf16);
    report(format!(
        "gpu mlp bf16 moons2d (bf16 file): relative {rel:.2e}"
    ));
    let mut failures = Vec::new();
    if rel > 2e-2 {
        failures.push(format!("bf16 file vs torch bf16: relative {rel:e}"));
    }
    // Every record with its f32 weights rounded to bf16 and to f16 on upload.
    for name in ["moons2d", "mix64d", "variant_a", "variant_b"] {
        let r = record(name);
        for dtype in [WeightDtype::Bf16, WeightDtype::F16] {
            let m = load(&r.model, r.cond.as_deref(), dtype);
            let gpu = gpu_forward(&be, &m, &r.x, &r.t, &[]);
            let rel = max_abs(&gpu, &r.out) / scale(&r.out);
            report(format!(
                "gpu mlp {} {name}: max |gpu − torch f32| / max |out| = {rel:.2e}",
                dtype.name()
            ));
            if !(rel > 0.0 && rel <= 2e-2) {
                failures.push(format!("{name} {}: relative {rel:e}", dtype.name()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn missing_times_and_workspace_checks() {
    let Some(be) = device("missing_times_and_workspace_checks") else {
        return;
    };
    let m = load(MOONS, None, WeightDtype::F32);
    let d = ScoreModel::<CudaBackend>::dim(&m);
    let mut ws = m.workspace(&be, 4).unwrap();
    m.prepare_times(&be, &mut ws, &[10.0, 500.0]).unwrap();
    assert_eq!(ws.table_len(), 2);
    let x = be.upload(&rand_vec(4 * d, 3)).unwrap();
    let t = be.upload(&[10.0, 500.0, 500.0, 10.0]).unwrap();
    let mut out = be.alloc(4 * d).unwrap();
    m.eval(&be, &mut ws, &x, &t, 0, 4, &mut out).unwrap();
    assert!(!ws.missing_times(&be).unwrap());
    assert!(down(&be, &out).iter().all(|v| v.is_finite()));
    // A time not in the table: flagged, and its row is NaN (the others are not).
    let t_bad = be.upload(&[10.0, 123.0, 500.0, 10.0]).unwrap();
    m.eval(&be, &mut ws, &x, &t_bad, 0, 4, &mut out).unwrap();
    assert!(ws.missing_times(&be).unwrap());
    let o = down(&be, &out);
    assert!(o[d..2 * d].iter().all(|v| v.is_nan()));
    assert!(o[..d].iter().chain(&o[2 * d..]).all(|v| v.is_finite()));
    // prepare_times resets the flag.
    m.prepare_times(&be, &mut ws, &[10.0, 500.0]).unwrap();
    assert!(!ws.missing_times(&be).unwrap());
    // Too many rows, buffers too short, a workspace of another model: errors, not panics.
    assert!(m.eval(&be, &mut ws, &x, &t, 0, 5, &mut out).is_err());
    assert!(m.eval(&be, &mut ws, &x, &t, 2, 3, &mut out).is_err());
    let other = load(MOONS, None, WeightDtype::F32);
    assert!(other.eval(&be, &mut ws, &x, &t, 0, 4, &mut out).is_err());
    // A workspace without prepared times is refused.
    let mut fresh = m.workspace(&be, 4).unwrap();
    assert!(m.eval(&be, &mut fresh, &x, &t, 0, 4, &mut out).is_err());
    m.eval(&be, &mut ws, &x, &t, 0, 0, &mut out).unwrap();
}

#[test]
fn moons_sampler_matches_the_cpu() {
    let Some(be) = device("moons_sampler_matches_the_cpu") else {
        return;
    };
    let m = load(MOONS, None, WeightDtype::F32);
    let s = m.schedule().unwrap();
    let grid = Grid::discrete(&s, 50, Spacing::Leading).unwrap();
    let inputs = RunInputs {
        batch: 64,
        seed: 5,
        ..Default::default()
    };
    let kinds = [
        ("sequential", SamplerKind::Sequential),
        (
            "picard",
            SamplerKind::Picard {
                window: 50,
                tol: 1e-4,
                max_iters: None,
                form: PicardForm::Scan,
                anderson: None,
                final_tol: None,
            },
        ),
    ];
    for rule_name in ["ddim", "ddpm"] {
        let rule = StepRule::from_name(rule_name, None).unwrap();
        for (what, kind) in &kinds {
            let cpu = run(&CpuBackend, &m, &grid, rule, kind, &inputs).unwrap();
            let gpu = run(&be, &m, &grid, rule, kind, &inputs).unwrap();
            let diff = max_rel_diff(&cpu.samples, &gpu.samples);
            report(format!(
                "gpu mlp moons {rule_name} {what}: rounds cpu {} gpu {}, nfe cpu {} gpu {}, max rel diff {diff:e}",
                cpu.stats.rounds, gpu.stats.rounds, cpu.stats.nfe, gpu.stats.nfe
            ));
            assert!(gpu.samples.iter().all(|v| v.is_finite()));
            assert!(
                diff <= 1e-3,
                "moons {rule_name} {what}: samples differ by {diff}"
            );
        }
    }
}

/// The MLP iteration (GEMMs, epilogues, LayerNorm, the sweep) recorded into a CUDA graph and
/// replayed equals the eager iteration bit for bit, in f32 and bf16.
#[test]
fn mlp_graph_replay_equals_eager() {
    let Some(be) = device("mlp_graph_replay_equals_eager") else {
        return;
    };
    for dtype in [WeightDtype::F32, WeightDtype::Bf16] {
        let m = load(MOONS, None, dtype);
        let s = m.schedule().unwrap();
        let grid = Grid::discrete(&s, 200, Spacing::Leading).unwrap();
        let inputs = RunInputs {
            batch: 16,
            seed: 9,
            ..Default::default()
        };
        let kind = SamplerKind::Picard {
            window: 200,
            tol: 0.1,
            max_iters: None,
            form: PicardForm::Scan,
            anderson: None,
            final_tol: None,
        };
        graphs_equal_eager(&be, &m, &grid, &kind, &inputs, &format!("moons {dtype:?}"));
    }
}

/// A DDPM run with CUDA graphs off, then on: the same rounds and samples bit for bit, no capture
/// refused, at least one graph recorded and one replayed.
fn graphs_equal_eager(
    be: &CudaBackend,
    m: &MlpModel,
    grid: &Grid,
    kind: &SamplerKind,
    inputs: &RunInputs,
    what: &str,
) {
    let rule = StepRule::from_name("ddpm", None).unwrap();
    be.set_graphs(false);
    let eager = run(be, m, grid, rule, kind, inputs).unwrap();
    be.set_graphs(true);
    let graphs = run(be, m, grid, rule, kind, inputs).unwrap();
    report(format!(
        "gpu mlp graphs {what}: rounds {} / {}, recorded {}, replayed {}",
        eager.stats.rounds, graphs.stats.rounds, graphs.stats.recorded, graphs.stats.replayed
    ));
    assert_eq!(be.graph_refusal(), None, "{what}");
    assert!(
        graphs.stats.recorded >= 1 && graphs.stats.replayed >= 1,
        "{what}"
    );
    assert_eq!(eager.stats.rounds, graphs.stats.rounds, "{what}");
    assert_bits_eq(&eager.samples, &graphs.samples, what);
}

/// The weights are uploaded once per (model, backend) and shared by later runs: runs on a second
/// backend (its own stream and upload) and repeated runs on the first give the first run's samples
/// bit for bit.
#[test]
fn cached_device_weights_give_the_same_samples_on_every_backend() {
    let Some(be) = device("cached_device_weights_give_the_same_samples_on_every_backend") else {
        return;
    };
    let other = CudaBackend::new(0).unwrap();
    let m = load(MOONS, None, WeightDtype::F32);
    let s = m.schedule().unwrap();
    let grid = Grid::discrete(&s, 50, Spacing::Leading).unwrap();
    let inputs = RunInputs {
        batch: 8,
        seed: 3,
        ..Default::default()
    };
    let rule = StepRule::from_name("ddpm", None).unwrap();
    let kind = SamplerKind::Picard {
        window: 50,
        tol: 0.1,
        max_iters: None,
        form: PicardForm::Scan,
        anderson: None,
        final_tol: None,
    };
    let first = run(&be, &m, &grid, rule, &kind, &inputs).unwrap();
    for (what, b) in [("second backend", &other), ("first backend again", &be)] {
        let again = run(b, &m, &grid, rule, &kind, &inputs).unwrap();
        assert_eq!(first.stats.rounds, again.stats.rounds, "{what}");
        assert_bits_eq(&first.samples, &again.samples, what);
    }
}

/// Graph replay equals the eager iteration bit for bit for the other two layer layouts: plain layers
/// with LayerNorm, GELU, a condition and v-prediction (variant a, discrete time), and residual blocks
/// without LayerNorm predicting the sample (variant b, continuous vp-linear time, f16 file). A
/// 60-point window on 100 steps slides around its 61-slot ring, and once the known start passes 39
/// the covering model slots wrap (two ranges): the report line says how many shapes were recorded.
#[test]
fn layer_variants_replay_with_a_wrapping_window() {
    let Some(be) = device("layer_variants_replay_with_a_wrapping_window") else {
        return;
    };
    for name in ["variant_a", "variant_b"] {
        let r = record(name);
        let m = load(&r.model, r.cond.as_deref(), WeightDtype::F32);
        let s = m.schedule().unwrap();
        let grid = match Grid::discrete(&s, 100, Spacing::Leading) {
            Ok(g) => g,
            Err(_) => Grid::uniform(&s, 100, 1.0, 1e-3).unwrap(),
        };
        let inputs = RunInputs {
            batch: 5,
            seed: 21,
            ..Default::default()
        };
        let kind = SamplerKind::Picard {
            window: 60,
            tol: 0.05,
            max_iters: None,
            form: PicardForm::Scan,
            anderson: None,
            final_tol: None,
        };
        graphs_equal_eager(&be, &m, &grid, &kind, &inputs, &format!("{name} p=60"));
    }
}
