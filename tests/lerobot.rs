//! LeRobot's Diffusion Policy, loaded from directories written by LeRobot's own
//! `DiffusionPolicy.save_pretrained`, against LeRobot's outputs recorded in
//! `tests/data/lerobot/<config>/reference.json` by `tools/lerobot_reference.py` (regenerate with
//! `bash scripts/setup-lerobot-venv.sh` and `$VENV/bin/python tools/lerobot_reference.py --out
//! tests/data/lerobot`): one U-Net forward, whole `conditional_sample` runs (DDIM-10 with and without
//! clipping, DDPM with LeRobot's step noise injected), and Picard's fixed point.

mod lerobot_common;

use std::path::Path;

use lerobot_common::{dir, floats, policy_for, reference, rel_err, CONFIGS};
use picardiff::model::DiffusionPolicy;
use picardiff::prelude::*;
use serde_json::{json, Value};

fn sample(policy: &DiffusionPolicy, run_ref: &Value, kind: &SamplerKind, noise: bool) -> RunOutput {
    lerobot_common::sample_on(&CpuBackend, policy, run_ref, kind, noise)
}

#[test]
fn unet_forward_matches_lerobot() {
    for name in CONFIGS {
        let r = reference(name);
        let f = &r["forward"];
        let policy = DiffusionPolicy::from_dir(&dir(name)).unwrap();
        assert_eq!(
            policy.config.global_cond_dim,
            r["global_cond_dim"].as_u64().unwrap() as usize
        );
        let batch = f["batch"].as_u64().unwrap() as usize;
        let x = floats(&f["x"]);
        let times: Vec<f32> = f["timesteps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap() as f32)
            .collect();
        let be = CpuBackend;
        let mut ws = ScoreModel::<CpuBackend>::workspace(&policy, &be, batch).unwrap();
        policy
            .set_condition(&be, &mut ws, &floats(&f["global_cond"]), batch)
            .unwrap();
        let mut out = vec![0f32; x.len()];
        policy
            .eval(&be, &mut ws, &x, &times, 0, batch, &mut out)
            .unwrap();
        let e = rel_err(&out, &floats(&f["out"]));
        println!("{name}: forward relative error {e:.2e}");
        assert!(e < 1e-4, "{name}: forward relative error {e:.2e}");
        // Row r of a larger evaluation is sample r % batch, and its bits do not depend on the other
        // rows (batch-invariant GEMMs): the same rows twice give the bits of one evaluation.
        let x2: Vec<f32> = x.iter().chain(&x).copied().collect();
        let t2: Vec<f32> = times.iter().chain(&times).copied().collect();
        let mut ws2 = ScoreModel::<CpuBackend>::workspace(&policy, &be, 2 * batch).unwrap();
        policy
            .set_condition(&be, &mut ws2, &floats(&f["global_cond"]), batch)
            .unwrap();
        let mut out2 = vec![0f32; x2.len()];
        policy
            .eval(&be, &mut ws2, &x2, &t2, 0, 2 * batch, &mut out2)
            .unwrap();
        assert_eq!(
            &out2[..x.len()],
            &out2[x.len()..],
            "{name}: rows depend on their position"
        );
        assert_eq!(
            &out2[..x.len()],
            &out[..],
            "{name}: a row depends on its batch-mates"
        );
    }
}

#[test]
fn ddim_sampling_matches_lerobot() {
    for name in CONFIGS {
        let r = reference(name);
        for key in ["ddim", "ddim_noclip"] {
            let Some(run_ref) = r.get(key) else { continue };
            let policy = policy_for(name, &run_ref["scheduler"]);
            let out = sample(&policy, run_ref, &SamplerKind::Sequential, false);
            let e = rel_err(&out.samples, &floats(&run_ref["out"]));
            println!("{name} {key}: relative error {e:.2e}");
            assert!(e < 1e-4, "{name} {key}: relative error {e:.2e}");
        }
    }
}

#[test]
fn ddpm_sampling_with_lerobots_noise_matches() {
    for name in CONFIGS {
        let r = reference(name);
        let run_ref = &r["ddpm"];
        let policy = policy_for(name, &run_ref["scheduler"]);
        assert!(
            policy.scheduler.clip.is_some(),
            "{name}: the DDPM reference clips"
        );
        let out = sample(&policy, run_ref, &SamplerKind::Sequential, true);
        let e = rel_err(&out.samples, &floats(&run_ref["out"]));
        println!("{name} ddpm: relative error {e:.2e}");
        assert!(e < 1e-3, "{name} ddpm: relative error {e:.2e}");
    }
}

/// Window 1 and τ = 0 reproduce picardiff's sequential sampler bit for bit, clipping on.
#[test]
fn picard_fixed_point_is_the_sequential_policy_sampler() {
    for name in CONFIGS {
        let r = reference(name);
        for (key, noise) in [("ddim", false), ("ddpm", true)] {
            let run_ref = &r[key];
            let policy = policy_for(name, &run_ref["scheduler"]);
            let seq = sample(&policy, run_ref, &SamplerKind::Sequential, noise);
            for window in [1, 7] {
                let kind = SamplerKind::Picard {
                    window,
                    tol: 0.0,
                    max_iters: None,
                    form: PicardForm::Scan,
                    anderson: None,
                    final_tol: None,
                };
                let par = sample(&policy, run_ref, &kind, noise);
                assert_eq!(par.samples, seq.samples, "{name} {key} window {window}");
            }
        }
    }
}

/// The trained example (examples/models/reach2d_policy): picardiff's DDIM-10 actions equal LeRobot's
/// own `conditional_sample` for the same x_T and conditioning (recorded by
/// tools/train_lerobot_example.py).
#[test]
fn the_trained_example_matches_lerobot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let npy = |name: &str| -> Vec<f32> {
        let bytes = std::fs::read(root.join(name)).unwrap();
        npyz::NpyFile::new(&bytes[..])
            .unwrap()
            .into_vec::<f32>()
            .unwrap()
    };
    let (cond, x_t, want) = (
        npy("reach2d_cond.npy"),
        npy("reach2d_xT.npy"),
        npy("reach2d_lerobot_ddim10.npy"),
    );
    let overrides = [
        ("noise_scheduler_type".to_string(), json!("DDIM")),
        ("num_inference_steps".to_string(), json!(10)),
    ];
    let policy =
        DiffusionPolicy::from_dir_with(&root.join("models/reach2d_policy"), &overrides).unwrap();
    let s = &policy.scheduler;
    let schedule = s.schedule().unwrap();
    let grid = s.grid(&schedule).unwrap();
    let inputs = RunInputs {
        batch: 8,
        init: Some(&x_t),
        cond: Some(&cond),
        clip: s.clip_sample(),
        ..Default::default()
    };
    let out = run(
        &CpuBackend,
        &policy,
        &grid,
        s.rule(),
        &SamplerKind::Sequential,
        &inputs,
    )
    .unwrap();
    let e = rel_err(&out.samples, &want);
    println!("reach2d DDIM-10: relative error {e:.2e}");
    assert!(e < 1e-4, "reach2d: relative error {e:.2e}");
}

/// `with_random_weights` builds the architecture a checkpoint's config describes (the same
/// config, the same parameter count), reproducibly from its seed, and its samples are finite.
#[test]
fn random_weights_build_the_checkpoints_architecture() {
    for name in CONFIGS {
        let loaded = DiffusionPolicy::from_dir(&dir(name)).unwrap();
        let text = std::fs::read(dir(name).join("config.json")).unwrap();
        let cfg: Value = serde_json::from_slice(&text).unwrap();
        let a = DiffusionPolicy::with_random_weights(&cfg, 1).unwrap();
        assert_eq!(a.config, loaded.config, "{name}");
        assert_eq!(a.weight_values(), loaded.weight_values(), "{name}");
        let (b, c) = (
            DiffusionPolicy::with_random_weights(&cfg, 1).unwrap(),
            DiffusionPolicy::with_random_weights(&cfg, 2).unwrap(),
        );
        let run_with = |p: &DiffusionPolicy| {
            let r = reference(name);
            sample(p, &r["ddim"], &SamplerKind::Sequential, false).samples
        };
        let (sa, sb, sc) = (run_with(&a), run_with(&b), run_with(&c));
        assert!(sa.iter().all(|v| v.is_finite()), "{name}");
        assert_eq!(sa, sb, "{name}: one seed, one policy");
        assert_ne!(sa, sc, "{name}: another seed, other weights");
    }
}
