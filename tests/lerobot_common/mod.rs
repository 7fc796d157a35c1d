//! Shared by `tests/lerobot.rs` and `tests/gpu_lerobot.rs`: the LeRobot fixtures of
//! `tests/data/lerobot/` (written by `tools/lerobot_reference.py`) and a run of a policy on any
//! backend with a reference run's inputs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use picardiff::backend::ops::Ops;
use picardiff::model::DiffusionPolicy;
use picardiff::prelude::*;
use serde_json::{json, Value};

/// The fixture configurations.
pub const CONFIGS: [&str; 3] = ["film_scale_k5", "film_bias_k3_g4", "sample_pred_k7"];

/// The policy directory of fixture `name`, relative to the package root (the working directory of
/// `cargo test` and of the staged GPU runner, where the build's absolute path may not exist).
pub fn dir(name: &str) -> PathBuf {
    Path::new("tests/data/lerobot").join(name)
}

/// The recorded LeRobot outputs of fixture `name`.
pub fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(dir(name).join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A JSON array of numbers as f32.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Largest |got − want| relative to the largest |want| (the arrays' scale).
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want
        .iter()
        .fold(0f64, |m, &w| m.max(w.abs() as f64))
        .max(1e-30);
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

/// The policy with the scheduler a reference run used.
pub fn policy_for(name: &str, sched: &Value) -> DiffusionPolicy {
    let kind = match sched["class"].as_str().unwrap() {
        "DDIMScheduler" => "DDIM",
        "DDPMScheduler" => "DDPM",
        o => panic!("unknown scheduler {o}"),
    };
    let overrides = [
        ("noise_scheduler_type".to_string(), json!(kind)),
        (
            "num_inference_steps".to_string(),
            sched["num_inference_steps"].clone(),
        ),
        ("clip_sample".to_string(), sched["clip_sample"].clone()),
    ];
    DiffusionPolicy::from_dir_with(&dir(name), &overrides).unwrap()
}

/// A run of `policy` on `be` with the inputs of `run_ref` (x_T, conditioning, and LeRobot's step
/// noise when `noise`), under the policy's scheduler and clipping.
pub fn sample_on<B: Ops>(
    be: &B,
    policy: &DiffusionPolicy,
    run_ref: &Value,
    kind: &SamplerKind,
    noise: bool,
) -> RunOutput {
    let s = &policy.scheduler;
    let schedule = s.schedule().unwrap();
    let grid = s.grid(&schedule).unwrap();
    let x_t = floats(&run_ref["x_T"]);
    let cond = floats(&run_ref["global_cond"]);
    let z = noise.then(|| floats(&run_ref["noise"]));
    let inputs = RunInputs {
        batch: run_ref["batch"].as_u64().unwrap() as usize,
        init: Some(&x_t),
        noise: z.as_deref(),
        cond: Some(&cond),
        clip: s.clip_sample(),
        ..Default::default()
    };
    run(be, policy, &grid, s.rule(), kind, &inputs).unwrap()
}
