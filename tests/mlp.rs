//! The MLP score network (src/model/mlp): the CPU forward against PyTorch (tests/data/mlp_forward_*.json,
//! written by tools/mlp_reference.py from examples/models/ and tests/data/mlp_variant_*.safetensors),
//! bf16/f16 weights, the time table, and Picard sampling with the trained 2-D model.

mod common;

use std::path::Path;

use common::max_abs_diff;
use picardiff::model::{load_model, MlpModel, ModelFile, ScoreModel, WeightDtype};
use picardiff::prelude::*;
use serde_json::Value;

const MOONS: &str = "examples/models/moons2d.safetensors";
const MOONS_BF16: &str = "examples/models/moons2d_bf16.safetensors";
const MIX64: &str = "examples/models/mix64d.safetensors";
const MIX64_FLOW: &str = "examples/models/mix64d_flow.safetensors";

// ---------------------------------------------------------------------------------------------
// Forward against PyTorch

struct Record {
    model: String,
    x: Vec<f32>,
    t: Vec<f32>,
    cond: Option<Vec<f32>>,
    out: Vec<f32>,
    out_f64: Vec<f64>,
    extra: Value,
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        o => panic!("not a number: {o}"),
    }
}

fn record(name: &str) -> Record {
    let path = format!("tests/data/mlp_forward_{name}.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap();
    let f32s = |k: &str| {
        flat(&v[k])
            .into_iter()
            .map(|x| x as f32)
            .collect::<Vec<f32>>()
    };
    Record {
        model: v["model"].as_str().unwrap().to_string(),
        x: f32s("x"),
        t: f32s("t"),
        cond: (!v["cond"].is_null()).then(|| f32s("cond")),
        out: f32s("out"),
        out_f64: flat(&v["out_f64"]),
        extra: v,
    }
}

fn load(path: &str, cond: Option<&[f32]>) -> MlpModel {
    let m = MlpModel::from_file(Path::new(path)).unwrap();
    match cond {
        Some(c) => m.with_cond(c).unwrap(),
        None => m,
    }
}

fn forward(m: &MlpModel, x: &[f32], t: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    m.forward(x, t, &mut out).unwrap();
    out
}

/// Max |rust − f32 PyTorch| and max |rust − f64 PyTorch| for the record's model.
fn forward_errors(name: &str) -> (f32, f64, Record) {
    let r = record(name);
    let m = load(&r.model, r.cond.as_deref());
    assert_eq!(r.x.len(), r.t.len() * m.config().dim);
    let out = forward(&m, &r.x, &r.t);
    let e32 = max_abs_diff(&out, &r.out);
    let e64 = out
        .iter()
        .zip(&r.out_f64)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    let scale = r.out.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!(
        "{name}: {} rows, max |out| {scale:.3}, max |rust − torch f32| {e32:.2e}, max |rust − torch f64| {e64:.2e}",
        r.t.len()
    );
    (e32, e64, r)
}

#[test]
fn forward_matches_pytorch_f32() {
    for name in ["moons2d", "mix64d", "variant_a", "variant_b", "mix64d_flow"] {
        let (e32, e64, _) = forward_errors(name);
        assert!(e32 <= 1e-5, "{name}: |rust − torch f32| = {e32:e}");
        assert!(e64 <= 1e-5, "{name}: |rust − torch f64| = {e64:e}");
    }
}

#[test]
fn bf16_weights_match_pytorch_and_stay_near_f32() {
    let r = record("moons2d");
    let m = load(MOONS_BF16, None);
    assert_eq!(m.file_dtype(), WeightDtype::Bf16);
    assert_eq!(load(MOONS, None).file_dtype(), WeightDtype::F32);
    assert_eq!(r.extra["model_bf16"].as_str(), Some(MOONS_BF16));
    let out = forward(&m, &r.x, &r.t);
    // The same bf16 weights in PyTorch (upcast, f32 compute): the conversion is exact.
    let torch_bf16: Vec<f32> = flat(&r.extra["out_bf16"])
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let same = max_abs_diff(&out, &torch_bf16);
    // Against the f32 model: the bf16 rounding of the weights, relative to the output scale.
    let scale = r.out.iter().fold(0f32, |m, v| m.max(v.abs()));
    let rel = max_abs_diff(&out, &r.out) / scale;
    println!("bf16: max |rust − torch bf16| {same:.2e}; max |bf16 − f32| / max |f32| = {rel:.2e}");
    assert!(same <= 1e-5, "bf16 vs torch bf16: {same:e}");
    assert!(rel <= 2e-2, "bf16 vs f32 reference: relative {rel:e}");
    assert!(rel > 0.0, "bf16 rounding must change something");
    // The GPU helpers give the file's bf16 bits back exactly.
    let f32_model = load(MOONS, None);
    let w16 = m.weights().input.weight_bf16();
    let w32 = &f32_model.weights().input.weight;
    for (a, b) in w16.iter().zip(w32) {
        assert_eq!(*a, half::bf16::from_f32(*b));
    }
}

#[test]
fn f16_file_reports_its_dtype() {
    let m = load("tests/data/mlp_variant_b.safetensors", None);
    assert_eq!(m.file_dtype(), WeightDtype::F16);
    let back = m.weights().output.weight_f16();
    assert!(back
        .iter()
        .zip(&m.weights().output.weight)
        .all(|(h, f)| h.to_f32() == *f));
}

// ---------------------------------------------------------------------------------------------
// Time table

fn eval_rows(
    m: &MlpModel,
    ws: &mut picardiff::model::MlpWorkspace,
    x: &[f32],
    t: &[f32],
) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    m.eval(
        &CpuBackend,
        ws,
        &x.to_vec(),
        &t.to_vec(),
        0,
        t.len(),
        &mut out,
    )
    .unwrap();
    out
}

#[test]
fn time_table_equals_on_the_fly() {
    for name in ["moons2d", "variant_a", "variant_b"] {
        let r = record(name);
        let mut m = load(&r.model, r.cond.as_deref());
        let rows = r.t.len();
        let mut fly = m.workspace(&CpuBackend, rows).unwrap();
        assert_eq!(fly.table_len(), 0);
        let on_the_fly = eval_rows(&m, &mut fly, &r.x, &r.t);

        let mut ws = m.workspace(&CpuBackend, rows).unwrap();
        let all: Vec<f64> = r.t.iter().map(|&t| t as f64).collect();
        m.prepare_times(&CpuBackend, &mut ws, &all).unwrap();
        assert!(ws.table_len() < rows, "repeated times are tabulated once");
        assert!(r.t.iter().all(|&t| ws.is_tabulated(t)));
        assert_eq!(
            eval_rows(&m, &mut ws, &r.x, &r.t),
            on_the_fly,
            "{name}: full table"
        );
        // A second run's workspace takes the model's cached table: the same bits.
        let mut again = m.workspace(&CpuBackend, rows).unwrap();
        m.prepare_times(&CpuBackend, &mut again, &all).unwrap();
        assert_eq!(
            eval_rows(&m, &mut again, &r.x, &r.t),
            on_the_fly,
            "{name}: cached table"
        );

        // Half the times tabulated: the rest fall back, with the same bits.
        let half: Vec<f64> = all.iter().step_by(2).copied().collect();
        let mut part = m.workspace(&CpuBackend, rows).unwrap();
        m.prepare_times(&CpuBackend, &mut part, &half).unwrap();
        assert!(r.t.iter().any(|&t| !part.is_tabulated(t)));
        assert_eq!(
            eval_rows(&m, &mut part, &r.x, &r.t),
            on_the_fly,
            "{name}: half table"
        );

        // A new conditioning vector invalidates the table of an existing workspace.
        if let Some(c) = &r.cond {
            let c2: Vec<f32> = c.iter().map(|v| v * 0.5 + 0.25).collect();
            m.set_cond(&c2).unwrap();
            let stale = eval_rows(&m, &mut ws, &r.x, &r.t);
            let mut fresh = m.workspace(&CpuBackend, rows).unwrap();
            assert_eq!(stale, eval_rows(&m, &mut fresh, &r.x, &r.t));
            assert_ne!(stale, on_the_fly);
            // The cache is keyed by the conditioning too: no table of the old vector comes back.
            let mut cached = m.workspace(&CpuBackend, rows).unwrap();
            m.prepare_times(&CpuBackend, &mut cached, &all).unwrap();
            assert_eq!(
                eval_rows(&m, &mut cached, &r.x, &r.t),
                stale,
                "{name}: table after set_cond"
            );
        }
    }
}

#[test]
fn eval_checks_buffers_and_conditioning() {
    let m = load(MOONS, None);
    let mut ws = m.workspace(&CpuBackend, 8).unwrap();
    let (x, t) = (vec![0f32; 16], vec![10f32; 8]);
    let mut out = vec![0f32; 16];
    assert!(m
        .eval(&CpuBackend, &mut ws, &x, &t, 4, 8, &mut out)
        .is_err());
    assert!(m
        .eval(&CpuBackend, &mut ws, &x, &t, usize::MAX, 2, &mut out)
        .is_err());
    let mut small = m.workspace(&CpuBackend, 4).unwrap();
    assert!(m
        .eval(&CpuBackend, &mut small, &x, &t, 0, 8, &mut out)
        .is_err());
    let mix = load(MIX64, None);
    let mut other = mix.workspace(&CpuBackend, 8).unwrap();
    assert!(m
        .eval(&CpuBackend, &mut other, &x, &t, 0, 8, &mut out)
        .is_err());

    let mut a = load("tests/data/mlp_variant_a.safetensors", None);
    // Without its vector (nor per-sample conditioning, tests/mlp_cond.rs) it refuses to evaluate.
    let mut ws = a.workspace(&CpuBackend, 4).unwrap();
    let (x5, t5) = (vec![0f32; 4 * a.config().dim], vec![10f32; 4]);
    let mut o5 = vec![0f32; x5.len()];
    let err = a
        .eval(&CpuBackend, &mut ws, &x5, &t5, 0, 4, &mut o5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cond"), "{err}");
    assert!(a.set_cond(&[0.0; 4]).is_err());
    assert!(a.set_cond(&[0.0, 0.0, f32::NAN, 0.0, 0.0]).is_err());
    a.set_cond(&[0.1; 5]).unwrap();
    assert!(a.workspace(&CpuBackend, 4).is_ok());
    assert!(load(MOONS, None).set_cond(&[1.0]).is_err());
}

#[test]
fn summary_and_load_model() {
    let m = load(MOONS, None);
    let s = m.summary();
    println!("{s}");
    assert!(
        s.contains("dim 2") && s.contains("hidden 128") && s.contains("epsilon"),
        "{s}"
    );
    assert!(
        s.contains(&format!("{}", m.parameter_count() % 1000)),
        "{s}"
    );
    assert_eq!(m.schedule().unwrap().name(), "ddpm-linear");
    match load_model(Path::new(MOONS)).unwrap() {
        ModelFile::Mlp(mm) => assert_eq!(mm.parameter_count(), m.parameter_count()),
        other => panic!("expected an MLP, got {}", other.summary()),
    }
    let mix = load_model(Path::new("examples/mixture_64d.json")).unwrap();
    assert!(matches!(mix, ModelFile::Mixture(_)) && mix.dim() == 64);
    // Told apart by content when the extension says nothing.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.bin");
    std::fs::copy(MOONS, &p).unwrap();
    assert!(matches!(load_model(&p).unwrap(), ModelFile::Mlp(_)));
    let q = dir.path().join("mixture.txt");
    std::fs::copy("examples/mixture_2d.json", &q).unwrap();
    assert!(matches!(load_model(&q).unwrap(), ModelFile::Mixture(_)));
    let g = dir.path().join("garbage.dat");
    std::fs::write(&g, b"\x00\x01garbage").unwrap();
    assert!(load_model(&g).is_err());
}

#[test]
fn picard_and_blocks_reproduce_sequential_on_trained_moons() {
    let model = load(MOONS, None);
    let schedule = model.schedule().unwrap();
    let inputs = RunInputs {
        batch: 128,
        seed: 11,
        ..Default::default()
    };
    let cases = [
        // (name, grid steps, rule, window/block, tol, tolerance on max |Δ| against sequential)
        ("ddpm 1000", 1000, "ddpm", 100usize, 0.1, 5e-2f32),
        ("ddpm 1000 tight", 1000, "ddpm", 100, 1e-3, 1e-3),
        ("ddim 100", 100, "ddim", 100, 1e-3, 5e-3),
    ];
    for (name, steps, rule_name, window, tol, bound) in cases {
        let grid = Grid::discrete(&schedule, steps, Spacing::Leading).unwrap();
        let rule = StepRule::from_name(rule_name, None).unwrap();
        let seq = run(
            &CpuBackend,
            &model,
            &grid,
            rule,
            &SamplerKind::Sequential,
            &inputs,
        )
        .unwrap();
        let picard = SamplerKind::Picard {
            window,
            tol,
            max_iters: None,
            form: PicardForm::Scan,
            anderson: None,
            final_tol: None,
        };
        let par = run(&CpuBackend, &model, &grid, rule, &picard, &inputs).unwrap();
        let dev = max_abs_diff(&par.samples, &seq.samples);
        println!(
            "{name}: sequential {:.0} ms; picard window {window} tol {tol}: rounds {}, nfe {}, {:.0} ms, max |Δ| {dev:.2e}",
            seq.stats.wall_ms, par.stats.rounds, par.stats.nfe, par.stats.wall_ms
        );
        assert!(dev <= bound, "{name}: deviation {dev} > {bound}");
        assert!(par.stats.rounds < steps, "{name}: no fewer rounds");
    }
    // Blocks with K = block size are exact; fewer iterations leave a growing error.
    let grid = Grid::discrete(&schedule, 100, Spacing::Leading).unwrap();
    let rule = StepRule::from_name("ddim", None).unwrap();
    let seq = run(
        &CpuBackend,
        &model,
        &grid,
        rule,
        &SamplerKind::Sequential,
        &inputs,
    )
    .unwrap();
    let mut last = 0f32;
    for iters in [10usize, 5, 2] {
        let blocks = SamplerKind::Blocks {
            block_len: 100.0,
            iters,
            tol: 0.0,
            form: PicardForm::Scan,
            corrector: None,
            anderson: None,
            final_tol: None,
        };
        let out = run(&CpuBackend, &model, &grid, rule, &blocks, &inputs).unwrap();
        let dev = max_abs_diff(&out.samples, &seq.samples);
        println!(
            "blocks of 10 steps, K = {iters}: rounds {}, nfe {}, {:.0} ms, max |Δ| {dev:.2e}",
            out.stats.rounds, out.stats.nfe, out.stats.wall_ms
        );
        if iters == 10 {
            assert!(dev <= 1e-5, "K = block size must be exact: {dev}");
        } else {
            assert!(
                dev > last,
                "K = {iters}: deviation {dev} did not grow from {last}"
            );
        }
        last = dev;
    }
}

#[test]
fn trained_mix64d_samples_the_mixture() {
    let model = load(MIX64, None);
    let schedule = model.schedule().unwrap();
    let grid = Grid::discrete(&schedule, 100, Spacing::Leading).unwrap();
    let rule = StepRule::from_name("ddim", None).unwrap();
    let inputs = RunInputs {
        batch: 1024,
        seed: 3,
        ..Default::default()
    };
    let out = run(
        &CpuBackend,
        &model,
        &grid,
        rule,
        &SamplerKind::Sequential,
        &inputs,
    )
    .unwrap();
    let (werr, rms, maxabs) = common::component_errors(&common::mixture_64d(), &out.samples);
    println!(
        "mix64d, ddim 100 steps, {} samples ({:.0} ms): max |fraction − weight| {werr:.3}, \
         component-mean error RMS {rms:.3}, max {maxabs:.3}",
        inputs.batch, out.stats.wall_ms
    );
    // Sampling noise alone is about 0.011 (fractions) and 0.05 (means) at this batch.
    assert!(werr < 0.06, "component fractions off by {werr}");
    assert!(rms < 0.12, "component means off by {rms} (RMS)");
}

/// The rectified-flow MLP (velocity prediction, `flow` schedule, tools/train_mlp.py): 10 Euler
/// steps on diffusers' grid sample the mixture (1024 samples), and Picard at the library's defaults
/// (drift at τ = 0 with the final-sample stop) stays within `final_tol` of them in fewer rounds
/// (16 samples).
#[test]
fn trained_flow_mlp_samples_the_mixture_with_euler() {
    let model = load(MIX64_FLOW, None);
    assert_eq!(model.config().prediction, ModelOutput::Velocity);
    let schedule = model.schedule().unwrap();
    let grid = Grid::flow(&schedule, 10, FlowShift::Static(1.0)).unwrap();
    let rule = StepRule::Euler;
    let inputs = RunInputs {
        batch: 1024,
        seed: 3,
        ..Default::default()
    };
    let go = |kind: &SamplerKind| run(&CpuBackend, &model, &grid, rule, kind, &inputs).unwrap();
    let seq = go(&SamplerKind::Sequential);
    let (werr, rms, maxabs) = common::component_errors(&common::mixture_64d(), &seq.samples);
    println!(
        "mix64d_flow, euler 10 steps, {} samples: max |fraction − weight| {werr:.3}, \
         component-mean error RMS {rms:.3}, max {maxabs:.3}",
        inputs.batch
    );
    assert!(werr < 0.06, "component fractions off by {werr}");
    assert!(rms < 0.2, "component means off by {rms} (RMS)");
    // Picard on 16 of them (the stop waits for the slowest sample: at 1024 it takes all 10).
    let few = RunInputs {
        batch: 16,
        ..inputs.clone()
    };
    let go = |kind: &SamplerKind| run(&CpuBackend, &model, &grid, rule, kind, &few).unwrap();
    let seq = go(&SamplerKind::Sequential);
    let ft = picardiff::defaults::FINAL_TOL;
    let par = go(&SamplerKind::picard(10, 0.0, PicardForm::Drift).with_final_tol(Some(ft)));
    let dev = max_abs_diff(&par.samples, &seq.samples);
    println!(
        "picard at the defaults: {} rounds, max deviation {dev:.2e}",
        par.stats.rounds
    );
    assert!(par.stats.rounds < 10, "{} rounds", par.stats.rounds);
    assert!(dev <= ft as f32, "max deviation {dev}");
}
