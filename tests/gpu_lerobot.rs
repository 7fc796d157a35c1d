//! LeRobot's Diffusion Policy on the CUDA backend (`Ops` for `CudaBackend`, the clipped-x̂0 step in
//! the CUDA step and sweeps): one U-Net forward against LeRobot's recorded outputs, whole DDIM-10 and
//! DDPM-100 runs with clipping against the CPU backend and LeRobot, and Picard on CUDA. Skips loudly
//! without a device (`gpu_common`).
//!
//! What is promised on CUDA (docs/architecture.md §3): GPU = CPU within 1e-3 relative for one
//! forward and for whole runs; not bits, since cuBLAS's summation order depends on the number of
//! rows (τ = 0 Picard bit-exactness is a CPU promise).
#![cfg(feature = "cuda")]

mod gpu_common;
mod lerobot_common;

use gpu_common::*;
use lerobot_common::{dir, floats, policy_for, reference, rel_err, sample_on, CONFIGS};
use picardiff::backend::cuda::CudaBackend;
use picardiff::backend::Backend;
use picardiff::model::DiffusionPolicy;
use picardiff::prelude::*;

/// The tolerance for GPU against the CPU and LeRobot (relative to the output's scale).
const GPU_TOL: f64 = 1e-3;

#[test]
fn unet_forward_on_cuda_matches_lerobot() {
    let Some(be) = device("unet_forward_on_cuda_matches_lerobot") else {
        return;
    };
    for name in CONFIGS {
        let r = reference(name);
        let f = &r["forward"];
        let policy = DiffusionPolicy::from_dir(&dir(name)).unwrap();
        let batch = f["batch"].as_u64().unwrap() as usize;
        let x = floats(&f["x"]);
        let times: Vec<f32> = floats(&f["timesteps"]);
        let want = floats(&f["out"]);
        // The fixture's rows alone, and 97 copies of them in one evaluation (two EVAL_ROWS chunks).
        for reps in [1usize, 97] {
            let rows = batch * reps;
            let xs: Vec<f32> = x.iter().cycle().take(x.len() * reps).copied().collect();
            let ts: Vec<f32> = times.iter().cycle().take(rows).copied().collect();
            let mut ws = ScoreModel::<CudaBackend>::workspace(&policy, &be, rows).unwrap();
            policy
                .set_condition(&be, &mut ws, &floats(&f["global_cond"]), batch)
                .unwrap();
            let (gx, gt) = (be.upload(&xs).unwrap(), be.upload(&ts).unwrap());
            let mut go = be.alloc(xs.len()).unwrap();
            policy
                .eval(&be, &mut ws, &gx, &gt, 0, rows, &mut go)
                .unwrap();
            let mut out = vec![0f32; xs.len()];
            be.download(&go, 0, &mut out).unwrap();
            for (i, chunk) in out.chunks(x.len()).enumerate() {
                let e = rel_err(chunk, &want);
                report(format!(
                    "{name}: CUDA forward ({rows} rows, copy {i}) relative error {e:.2e}"
                ));
                assert!(e < GPU_TOL, "{name}: CUDA forward relative error {e:.2e}");
            }
        }
    }
}

/// DDIM-10 (clipped and not) and DDPM-100 (clipped, LeRobot's noise): CUDA against LeRobot and the
/// CPU backend.
#[test]
fn clipped_sampling_on_cuda_matches_the_cpu_and_lerobot() {
    let Some(be) = device("clipped_sampling_on_cuda_matches_the_cpu_and_lerobot") else {
        return;
    };
    for name in CONFIGS {
        let r = reference(name);
        for (key, noise) in [("ddim", false), ("ddim_noclip", false), ("ddpm", true)] {
            let Some(run_ref) = r.get(key) else { continue };
            let policy = policy_for(name, &run_ref["scheduler"]);
            let cpu = sample_on(
                &CpuBackend,
                &policy,
                run_ref,
                &SamplerKind::Sequential,
                noise,
            );
            let gpu = sample_on(&be, &policy, run_ref, &SamplerKind::Sequential, noise);
            let (eg, ec) = (
                rel_err(&gpu.samples, &floats(&run_ref["out"])),
                rel_err(&gpu.samples, &cpu.samples),
            );
            report(format!(
                "{name} {key} on CUDA: vs LeRobot {eg:.2e}, vs CPU {ec:.2e}"
            ));
            assert!(
                eg < GPU_TOL && ec < GPU_TOL,
                "{name} {key}: vs LeRobot {eg:.2e}, vs CPU {ec:.2e}"
            );
        }
    }
}

/// Picard on CUDA (τ = 0, windows 1 and 7, graphs on and off; τ = the rule's default) ends within
/// the tolerance of the CPU's sequential sampler, clipping on.
#[test]
fn picard_on_cuda_matches_the_sequential_sampler() {
    let Some(be) = device("picard_on_cuda_matches_the_sequential_sampler") else {
        return;
    };
    for name in CONFIGS {
        let r = reference(name);
        for (key, noise) in [("ddim", false), ("ddpm", true)] {
            let run_ref = &r[key];
            let policy = policy_for(name, &run_ref["scheduler"]);
            let seq = sample_on(
                &CpuBackend,
                &policy,
                run_ref,
                &SamplerKind::Sequential,
                noise,
            );
            let rule_tol = policy.scheduler.rule().default_tolerance();
            for (window, tol, graphs) in [
                (1, 0.0, true),
                (7, 0.0, true),
                (7, 0.0, false),
                (7, rule_tol, true),
            ] {
                be.set_graphs(graphs);
                let kind = SamplerKind::Picard {
                    window,
                    tol,
                    max_iters: None,
                    form: PicardForm::Scan,
                    anderson: None,
                    final_tol: None,
                };
                let par = sample_on(&be, &policy, run_ref, &kind, noise);
                let e = rel_err(&par.samples, &seq.samples);
                report(format!(
                    "{name} {key} Picard window {window} tol {tol} graphs {graphs}: {} rounds, vs CPU sequential {e:.2e}",
                    par.stats.rounds
                ));
                // τ > 0 stops early by design: its error is the tolerance's, not rounding.
                let bound = if tol == 0.0 { GPU_TOL } else { 10.0 * GPU_TOL };
                assert!(e < bound, "{name} {key} window {window} tol {tol}: {e:.2e}");
            }
            be.set_graphs(true);
        }
    }
}

/// Graph replay of the policy's iteration gives the bits of the unrecorded iteration (the U-Net is
/// recordable on CUDA: its ops only enqueue work).
#[test]
fn policy_iterations_replay_bit_identically() {
    let Some(be) = device("policy_iterations_replay_bit_identically") else {
        return;
    };
    let r = reference(CONFIGS[0]);
    let run_ref = &r["ddim"];
    let policy = policy_for(CONFIGS[0], &run_ref["scheduler"]);
    assert!(ScoreModel::<CudaBackend>::recordable(&policy));
    let kind = SamplerKind::Picard {
        window: 7,
        tol: 0.0,
        max_iters: None,
        form: PicardForm::Scan,
        anderson: None,
        final_tol: None,
    };
    be.set_graphs(false);
    let plain = sample_on(&be, &policy, run_ref, &kind, false);
    be.set_graphs(true);
    let graphed = sample_on(&be, &policy, run_ref, &kind, false);
    assert_eq!(
        be.graph_refusal(),
        None,
        "a capture of the policy's iteration was refused"
    );
    assert_bits_eq(&plain.samples, &graphed.samples, "graphs on vs off");
}
