#!/usr/bin/env python3
"""PyTorch peer for the Diffusion Policy benchmarks: LeRobot's own sequential sampler.

Times `policy.diffusion.conditional_sample(B, global_cond=..., noise=x_T)` of LeRobot's
DiffusionPolicy — the U-Net `DiffusionConditionalUnet1d` called once per step and diffusers'
DDPMScheduler / DDIMScheduler (clip_sample, built with the keyword arguments LeRobot's
`_make_noise_scheduler` passes) — with random weights, eager and optionally compiled with the
config's own `compile_model` option (torch.compile(unet, mode=config.compile_mode)).

Configurations (random weights, float32):
- lowdim:  LeRobot's low-dimensional U-Net (down_dims 256/512/1024, kernel 5, n_groups 8, dsed 128,
           horizon 16, n_obs_steps 2) on PushT-keypoints-like inputs: observation.state of dim 2 and
           observation.environment_state of dim 16 (LeRobot requires an image or an env-state input),
           global_cond_dim (2 + 16) * 2 = 36; action dim 2.
- image16: the default image config's U-Net (down_dims 512/1024/2048, kernel 5, n_groups 8, dsed 128,
           horizon 16): one 3x96x96 camera (crop 84x84, resnet18, GroupNorm, no pretrained weights) +
           state 2, n_obs_steps 2, global_cond_dim (2 + 64) * 2 = 132. The image encoder is not timed:
           global_cond is random of that width.
- image64: the same with horizon 64 (LeRobot's default horizon).

Schedulers: ddim10 (DDIM, 10 inference steps) and ddpm100 (DDPM, all 100 training steps), both on
LeRobot's default squaredcos_cap_v2 schedule with clip_sample (range 1), epsilon prediction.

    "$(bash scripts/setup-lerobot-venv.sh | tail -n 1)/bin/python" benches/peers/lerobot_sample.py \
        --configs lowdim --batch 1 --schedulers ddim10 ddpm100 --repeat 5 --threads 2 [--compile] \
        [--save-dir DIR] [--out results.jsonl]

Prints one JSON line per (config, batch, scheduler, compiled): median_ms (and min_ms) of --repeat
timed runs after --warmup untimed ones (first_call_ms: the first warm-up, which includes compiling),
median_cpu_ms (process CPU time, all threads: on a busy machine with --threads 1 the better estimate
of the idle-machine time), torch threads, device, the machine's 1-minute load average after the
runs, and versions. --save-dir DIR writes each
benched configuration as a LeRobot policy directory DIR/<config> (config.json + model.safetensors via
save_pretrained, the weights used for timing; image configs are ~1 GB each), so the native bench can
load the same architecture. --device cuda times on a GPU (synchronised) when one is there.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

CONFIGS = {
    "lowdim": dict(
        inputs={"observation.state": ("STATE", (2,)), "observation.environment_state": ("ENV", (16,))},
        down_dims=(256, 512, 1024), horizon=16, n_action_steps=8,
    ),
    "image16": dict(
        inputs={"observation.image": ("VISUAL", (3, 96, 96)), "observation.state": ("STATE", (2,))},
        down_dims=(512, 1024, 2048), horizon=16, n_action_steps=8,
    ),
    "image64": dict(
        inputs={"observation.image": ("VISUAL", (3, 96, 96)), "observation.state": ("STATE", (2,))},
        down_dims=(512, 1024, 2048), horizon=64, n_action_steps=32,
    ),
}
SCHEDULERS = {"ddim10": ("DDIM", 10), "ddpm100": ("DDPM", 100)}


def build(name, compile_model, device):
    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    spec = CONFIGS[name]
    config = DiffusionConfig(
        input_features={k: PolicyFeature(type=FeatureType[t], shape=s) for k, (t, s) in spec["inputs"].items()},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(2,))},
        n_obs_steps=2,
        horizon=spec["horizon"],
        n_action_steps=spec["n_action_steps"],
        down_dims=spec["down_dims"],
        kernel_size=5,
        n_groups=8,
        diffusion_step_embed_dim=128,
        use_film_scale_modulation=True,
        crop_shape=(84, 84),
        use_group_norm=True,
        pretrained_backbone_weights=None,
        noise_scheduler_type="DDPM",
        num_train_timesteps=100,
        beta_schedule="squaredcos_cap_v2",
        clip_sample=True,
        clip_sample_range=1.0,
        prediction_type="epsilon",
        compile_model=compile_model,
        device=device,
        push_to_hub=False,
    )
    torch.manual_seed(0)
    policy = DiffusionPolicy(config).to(device).eval()
    return policy


def global_cond_dim(config):
    per_frame = config.robot_state_feature.shape[0]
    per_frame += 2 * config.spatial_softmax_num_keypoints * len(config.image_features)
    if config.env_state_feature:
        per_frame += config.env_state_feature.shape[0]
    return per_frame * config.n_obs_steps


def set_scheduler(policy, kind, steps):
    import lerobot.policies.diffusion.modeling_diffusion as m

    c = policy.config
    policy.diffusion.noise_scheduler = m._make_noise_scheduler(
        kind,
        num_train_timesteps=c.num_train_timesteps,
        beta_start=c.beta_start,
        beta_end=c.beta_end,
        beta_schedule=c.beta_schedule,
        clip_sample=c.clip_sample,
        clip_sample_range=c.clip_sample_range,
        prediction_type=c.prediction_type,
    )
    policy.diffusion.num_inference_steps = steps


def run_once(policy, batch, gc, x_T, device):
    with torch.inference_mode():
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = policy.diffusion.conditional_sample(batch, global_cond=gc, noise=x_T)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) * 1000.0
        cpu = (time.process_time() - c0) * 1000.0
    assert torch.isfinite(out).all()
    return dt, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--schedulers", nargs="+", default=list(SCHEDULERS), choices=list(SCHEDULERS))
    ap.add_argument("--repeat", type=int, default=5, help="timed runs (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true",
                    help="also time with the config's compile_model=True (torch.compile, compile_mode)")
    ap.add_argument("--compile-mode", default=None,
                    help="override the config's compile_mode ('reduce-overhead' by default)")
    ap.add_argument("--no-eager", action="store_true", help="time only the compiled model")
    ap.add_argument("--save-dir", default=None, help="save each benched config as a policy directory here")
    ap.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import diffusers
    import lerobot

    versions = {
        "lerobot_version": lerobot.__version__,
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "python_version": sys.version.split()[0],
    }

    def emit(rec):
        line = json.dumps(rec)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")

    modes = ([] if args.no_eager else [False]) + ([True] if args.compile else [])
    for name in args.configs:
        for compiled in modes:
            try:
                if compiled and args.compile_mode:
                    # the config's option would compile with config.compile_mode; compile by hand instead
                    policy = build(name, False, args.device)
                    policy.diffusion.unet = torch.compile(policy.diffusion.unet, mode=args.compile_mode)
                else:
                    policy = build(name, compiled, args.device)
            except Exception as e:  # report, go on
                emit({"config": name, "compiled": compiled, "error": f"{type(e).__name__}: {e}"[:2000], **versions})
                continue
            cfg = policy.config
            G = global_cond_dim(cfg)
            n_unet = sum(p.numel() for p in policy.diffusion.unet.parameters())
            if args.save_dir and not compiled:
                d = os.path.join(args.save_dir, name)
                os.makedirs(d, exist_ok=True)
                policy.save_pretrained(d)
                print(f"# saved {name} to {d}", file=sys.stderr)
            for batch in args.batch:
                gen = torch.Generator().manual_seed(1)
                gc = torch.randn((batch, G), generator=gen).to(args.device)
                x_T = torch.randn((batch, cfg.horizon, cfg.action_feature.shape[0]), generator=gen).to(args.device)
                for sname in args.schedulers:
                    kind, steps = SCHEDULERS[sname]
                    set_scheduler(policy, kind, steps)
                    rec = {
                        "config": name, "batch": batch, "scheduler": sname, "steps": steps,
                        "compiled": compiled,
                        "compile_mode": (args.compile_mode or cfg.compile_mode) if compiled else None,
                        "horizon": cfg.horizon, "down_dims": list(cfg.down_dims),
                        "global_cond_dim": G, "unet_params": n_unet,
                        "device": args.device, "torch_threads": torch.get_num_threads(),
                    }
                    try:
                        t_first = None
                        for w in range(args.warmup):
                            dt, _ = run_once(policy, batch, gc, x_T, args.device)
                            t_first = dt if t_first is None else t_first
                        runs = [run_once(policy, batch, gc, x_T, args.device) for _ in range(args.repeat)]
                        times = [r[0] for r in runs]
                        cpu_times = [r[1] for r in runs]
                    except Exception as e:
                        rec["error"] = f"{type(e).__name__}: {e}"[:2000]
                        rec.update(versions)
                        emit(rec)
                        break
                    rec.update({
                        "median_ms": round(statistics.median(times), 3),
                        "min_ms": round(min(times), 3),
                        "ms_per_step": round(statistics.median(times) / steps, 3),
                        # process CPU time (all threads) of the median-wall-time run set: with one
                        # thread on a busy machine, a better estimate of the idle-machine time
                        "median_cpu_ms": round(statistics.median(cpu_times), 3),
                        "repeats": args.repeat, "warmup": args.warmup,
                        "first_call_ms": None if t_first is None else round(t_first, 1),
                        "loadavg_1min": round(os.getloadavg()[0], 2),  # other load on the machine
                    })
                    rec.update(versions)
                    emit(rec)
            del policy


if __name__ == "__main__":
    main()
