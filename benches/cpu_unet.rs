//! The Diffusion Policy U-Net on the CPU backend, LeRobot's own architectures with random weights
//! (`DiffusionPolicy::with_random_weights`, PyTorch's initialisation bounds): one evaluation at
//! the row counts a sampler asks for (batch 1 and 8; a Picard window of 10 points at batch 1),
//! and whole DDIM-10 / DDPM-100 action chunks with the sequential sampler (the first selected
//! config only).
//!
//! Configs: `benches/data/lerobot_lowdim_config.json` (LeRobot 0.6.1's low-dim config as
//! `save_pretrained` wrote it: down_dims 256/512/1024, horizon 16) and
//! `tests/data/lerobot/image_config/config.json` (its image config's U-Net: 512/1024/2048,
//! horizon 16, and 64 by override). `PICARDIFF_BENCH_UNET=lowdim` runs only the low-dim config.
// criterion_group! defines a public function without docs.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use picardiff::model::DiffusionPolicy;
use picardiff::prelude::*;
use serde_json::{json, Value};

/// (name, config file, horizon override).
const CONFIGS: [(&str, &str, Option<u64>); 3] = [
    ("lowdim", "benches/data/lerobot_lowdim_config.json", None),
    (
        "image16",
        "tests/data/lerobot/image_config/config.json",
        None,
    ),
    (
        "image64",
        "tests/data/lerobot/image_config/config.json",
        Some(64),
    ),
];

/// The configs to bench: all, or `PICARDIFF_BENCH_UNET`'s.
fn selected() -> impl Iterator<Item = &'static (&'static str, &'static str, Option<u64>)> {
    let only = std::env::var("PICARDIFF_BENCH_UNET").ok();
    CONFIGS
        .iter()
        .filter(move |(name, ..)| only.as_deref().is_none_or(|o| o == *name))
}

/// The policy of one config with `set` applied, random weights.
fn policy(
    &(_, file, horizon): &(&str, &str, Option<u64>),
    set: &[(&str, Value)],
) -> DiffusionPolicy {
    // From the repo root (where a staged copy runs), else from this package's sources.
    let text = std::fs::read(file)
        .or_else(|_| std::fs::read(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))))
        .unwrap_or_else(|e| panic!("{file}: {e} (run from the repository root)"));
    let mut cfg: Value = serde_json::from_slice(&text).unwrap();
    if let Some(h) = horizon {
        cfg["horizon"] = json!(h);
        cfg["n_action_steps"] = json!(h / 2);
    }
    for (key, v) in set {
        cfg[*key] = v.clone();
    }
    DiffusionPolicy::with_random_weights(&cfg, 7).unwrap()
}

/// Deterministic values in [−1, 1).
fn values(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

/// One U-Net evaluation of `rows` rows (window points × samples) for `batch` samples.
fn evaluation(c: &mut Criterion) {
    let be = CpuBackend;
    let mut group = c.benchmark_group("cpu_unet_eval");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    // One policy at a time: the image U-Net is 1 GB of weights.
    for config in selected() {
        let (name, policy) = (config.0, policy(config, &[]));
        let dim = ScoreModel::<CpuBackend>::dim(&policy);
        for (batch, rows) in [(1, 1), (8, 8), (1, 10)] {
            let mut ws = ScoreModel::<CpuBackend>::workspace(&policy, &be, rows).unwrap();
            let cond = values(batch * policy.config.global_cond_dim);
            policy.set_condition(&be, &mut ws, &cond, batch).unwrap();
            let x = values(rows * dim);
            let times: Vec<f32> = (0..rows).map(|r| (90 - 9 * r) as f32).collect();
            let mut out = vec![0f32; rows * dim];
            let id = BenchmarkId::new(name, format!("batch{batch}_rows{rows}"));
            group.bench_function(id, |b| {
                b.iter(|| {
                    policy
                        .eval(&be, &mut ws, &x, &times, 0, rows, &mut out)
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

/// A whole action chunk with the sequential sampler, the policy's clipped DDPM or DDIM step.
fn chunk(c: &mut Criterion) {
    let be = CpuBackend;
    let mut group = c.benchmark_group("cpu_unet_chunk");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let Some(config) = selected().next() else {
        return;
    };
    for (rule, steps) in [("DDIM", 10), ("DDPM", 100)] {
        let set = [
            ("noise_scheduler_type", json!(rule)),
            ("num_inference_steps", json!(steps)),
        ];
        let (name, policy) = (config.0, policy(config, &set));
        let s = &policy.scheduler;
        let grid = s.grid(&s.schedule().unwrap()).unwrap();
        for batch in [1, 8] {
            let cond = values(batch * policy.config.global_cond_dim);
            let inputs = RunInputs {
                batch,
                cond: Some(&cond),
                clip: s.clip_sample(),
                ..Default::default()
            };
            let id = BenchmarkId::new(name, format!("{}{steps}_batch{batch}", rule.to_lowercase()));
            group.bench_function(id, |b| {
                b.iter(|| {
                    run(
                        &be,
                        &policy,
                        &grid,
                        s.rule(),
                        &SamplerKind::Sequential,
                        &inputs,
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, evaluation, chunk);
criterion_main!(benches);
