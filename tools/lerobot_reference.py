#!/usr/bin/env python3
"""Reference fixtures for the native Diffusion Policy loader, recorded with LeRobot's own code.

For each configuration in CONFIGS this builds LeRobot's `DiffusionPolicy(config)` with seeded random
weights (GroupNorm weights/biases and every bias moved off their init by 0.1·N(0, 1), so an
implementation that ignores them fails), saves it with `policy.save_pretrained(out/<name>)` —
config.json and model.safetensors exactly as LeRobot users have them — reloads it from there with
`DiffusionPolicy.from_pretrained(..., strict=True)` and records, in out/<name>/reference.json:

- "forward": one call of the U-Net `policy.diffusion.unet(x, timesteps, global_cond)` on B = 3
  samples with different integer timesteps (0, num_train_timesteps − 1 and 37); "out_f64" is the
  same float32 weights evaluated in float64 (a yardstick for tolerances).
- "ddim": `policy.diffusion.conditional_sample(B, global_cond=..., noise=x_T)` with the policy's
  `noise_scheduler` replaced by a DDIMScheduler built with exactly the keyword arguments LeRobot's
  `_make_noise_scheduler` passes, and `num_inference_steps` = 10; "trajectory" holds the iterate
  after each of the 10 steps.
- "ddim_noclip" (film_scale_k5 only): the same with clip_sample = False.
- "ddpm": the same with a DDPMScheduler and num_inference_steps = num_train_timesteps, its step noise
  taken from "noise" (step j's noise at index j in the (B, T, A) layout; the last step, t = 0, draws
  none: zeros there) by replacing `randn_tensor` in diffusers.schedulers.scheduling_ddpm.

Every array is flattened row-major with its shape stored beside it ("<name>_shape"); x arrays are in
LeRobot's (B, T, A) layout (horizon T, action dim A). Floats are the float32 values written as the
shortest decimal that reads back to the same double (so parsing as f64 or as f32 is exact). Each
"scheduler" object holds the scheduler's whole diffusers config, the timesteps used and its float32
alphas_cumprod.

It also writes out/image_config/: config.json of a PushT-like image policy (one 3×96×96 camera,
state of dim 2, resnet18 with pretrained_backbone_weights None, GroupNorm backbone, default U-Net
widths), keys.json (a list of [key, shape] of every tensor its model.safetensors would hold — the
~1 GB of weights are not written) and reference.json (its global_cond_dim and parts).

Regenerate from the repository root (venv from scripts/setup-lerobot-venv.sh, outside the repo):

    "$(bash scripts/setup-lerobot-venv.sh | tail -n 1)/bin/python" tools/lerobot_reference.py --out tests/data/lerobot

Deviations from the requested configurations, forced by LeRobot 0.6.1 (see CONFIGS):
- `DiffusionConfig.validate_features` requires an image or an environment-state input, so
  film_scale_k5 and sample_pred_k7 get a small ENV feature ("observation.environment_state").
- `DiffusionConfig.__post_init__` requires horizon % 2**len(down_dims) == 0; sample_pred_k7's
  horizon 12 is illegal with 3 levels, so it uses 24 (the nearest legal values, 8 and 16, are powers
  of two already covered by the other two configurations).
- film_scale_k5 and sample_pred_k7 use narrower widths than first asked for ([16, 32, 64] instead of
  [32, 64, 128], [24, 36, 48] instead of [24, 48, 96]) to keep each directory near 1.5 MB; pass
  --full-widths for the original widths (4.2 MB and 3.2 MB of weights).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

SEED = 20240611
B = 3

CONFIGS = {
    "film_scale_k5": dict(
        state=6, env=2, action=2,
        down_dims=(16, 32, 64), full_down_dims=(32, 64, 128),
        kernel_size=5, n_groups=8, diffusion_step_embed_dim=32, use_film_scale_modulation=True,
        horizon=16, n_obs_steps=2,
        noise_scheduler_type="DDPM", num_train_timesteps=100, num_inference_steps=None,
        beta_schedule="squaredcos_cap_v2", beta_start=1e-4, beta_end=0.02,
        prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0,
        noclip=True,
    ),
    "film_bias_k3_g4": dict(
        state=4, env=3, action=3,
        down_dims=(16, 32), full_down_dims=(16, 32),
        kernel_size=3, n_groups=4, diffusion_step_embed_dim=16, use_film_scale_modulation=False,
        horizon=8, n_obs_steps=1,
        noise_scheduler_type="DDIM", num_train_timesteps=100, num_inference_steps=10,
        beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
        prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0,
        noclip=False,
    ),
    "sample_pred_k7": dict(
        state=5, env=1, action=4,
        down_dims=(24, 36, 48), full_down_dims=(24, 48, 96),
        kernel_size=7, n_groups=6, diffusion_step_embed_dim=24, use_film_scale_modulation=True,
        horizon=24, n_obs_steps=2,
        noise_scheduler_type="DDPM", num_train_timesteps=50, num_inference_steps=None,
        beta_schedule="scaled_linear", beta_start=1e-4, beta_end=0.02,
        prediction_type="sample", clip_sample=True, clip_sample_range=1.5,
        noclip=False,
    ),
}


def import_lerobot():
    global FeatureType, PolicyFeature, DiffusionConfig, DiffusionPolicy, lerobot_modeling
    global DDIMScheduler, DDPMScheduler, ddpm_module, versions
    import diffusers
    import diffusers.schedulers.scheduling_ddpm as ddpm_module
    import lerobot
    import lerobot.policies.diffusion.modeling_diffusion as lerobot_modeling
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    versions = {
        "lerobot_version": lerobot.__version__,
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
    }


# ----------------------------------------------------------------------------- JSON helpers


def f32_list(t):
    """Flatten (row-major) to a list of Python floats holding the exact float32 values."""
    a = np.ascontiguousarray(t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t))
    a = a.astype(np.float32).reshape(-1)
    assert np.all(np.isfinite(a)), "non-finite value in a fixture"
    return [float(v) for v in a]


def f64_list(t):
    a = np.ascontiguousarray(t.detach().cpu().numpy()).astype(np.float64).reshape(-1)
    assert np.all(np.isfinite(a))
    return [float(v) for v in a]


def put(d, name, t, f64=False):
    d[name] = f64_list(t) if f64 else f32_list(t)
    d[name + "_shape"] = list(t.shape)


def jsonable(v):
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


# ----------------------------------------------------------------------------- policy building


def make_config(spec, full_widths=False, **overrides):
    inputs = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(spec["state"],))}
    if spec.get("env"):
        inputs["observation.environment_state"] = PolicyFeature(type=FeatureType.ENV, shape=(spec["env"],))
    kw = dict(
        input_features=inputs,
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(spec["action"],))},
        n_obs_steps=spec["n_obs_steps"],
        horizon=spec["horizon"],
        n_action_steps=spec["horizon"] - spec["n_obs_steps"] + 1,
        down_dims=tuple(spec["full_down_dims"] if full_widths else spec["down_dims"]),
        kernel_size=spec["kernel_size"],
        n_groups=spec["n_groups"],
        diffusion_step_embed_dim=spec["diffusion_step_embed_dim"],
        use_film_scale_modulation=spec["use_film_scale_modulation"],
        noise_scheduler_type=spec["noise_scheduler_type"],
        num_train_timesteps=spec["num_train_timesteps"],
        num_inference_steps=spec["num_inference_steps"],
        beta_schedule=spec["beta_schedule"],
        beta_start=spec["beta_start"],
        beta_end=spec["beta_end"],
        prediction_type=spec["prediction_type"],
        clip_sample=spec["clip_sample"],
        clip_sample_range=spec["clip_sample_range"],
        pretrained_backbone_weights=None,
        device="cpu",
        push_to_hub=False,
    )
    kw.update(overrides)
    return DiffusionConfig(**kw)


def perturb_(policy, gen):
    """Move GroupNorm weights/biases and every bias off their init, so none can be ignored."""
    with torch.no_grad():
        done = set()
        for module in policy.modules():
            if isinstance(module, torch.nn.GroupNorm):
                for p in (module.weight, module.bias):
                    p.add_(0.1 * torch.randn(p.shape, generator=gen))
                    done.add(id(p))
        for name, p in policy.named_parameters():
            if name.endswith("bias") and id(p) not in done:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


def scheduler_kwargs(config, **overrides):
    """The keyword arguments LeRobot's DiffusionModel passes to _make_noise_scheduler."""
    kw = dict(
        num_train_timesteps=config.num_train_timesteps,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        beta_schedule=config.beta_schedule,
        clip_sample=config.clip_sample,
        clip_sample_range=config.clip_sample_range,
        prediction_type=config.prediction_type,
    )
    kw.update(overrides)
    return kw


def global_cond_parts(config):
    state = config.robot_state_feature.shape[0]
    env = config.env_state_feature.shape[0] if config.env_state_feature else 0
    n_img = len(config.image_features)
    img = 0
    if n_img:
        img = 2 * config.spatial_softmax_num_keypoints * n_img  # DiffusionRgbEncoder.feature_dim per camera
    return {
        "state": state,
        "env_state": env,
        "image_features": img,
        "num_cameras": n_img,
        "n_obs_steps": config.n_obs_steps,
        "order": "per observation frame: [state, image features (camera by camera), env_state]; frames oldest first, flattened",
    }


def global_cond_dim(config):
    p = global_cond_parts(config)
    return (p["state"] + p["image_features"] + p["env_state"]) * p["n_obs_steps"]


# ----------------------------------------------------------------------------- references


def scheduler_record(sched, steps):
    cfg = {k: jsonable(v) for k, v in dict(sched.config).items() if not k.startswith("_")}
    rec = {"class": type(sched).__name__}
    rec.update(cfg)
    rec["num_inference_steps"] = int(steps)
    rec["timesteps"] = [int(t) for t in sched.timesteps]
    rec["step_kwargs"] = (
        {"eta": 0.0, "use_clipped_model_output": False} if isinstance(sched, DDIMScheduler) else {}
    )
    rec["alphas_cumprod"] = f32_list(sched.alphas_cumprod)
    if isinstance(sched, DDIMScheduler):
        rec["final_alpha_cumprod"] = float(np.float32(sched.final_alpha_cumprod))
    return rec


def sample_with(policy, kind, steps, gen, G, clip_sample=None, record_trajectory=False):
    cfg = policy.config
    T, A = cfg.horizon, cfg.action_feature.shape[0]
    over = {} if clip_sample is None else {"clip_sample": clip_sample}
    sched = lerobot_modeling._make_noise_scheduler(kind, **scheduler_kwargs(cfg, **over))
    model = policy.diffusion
    model.noise_scheduler = sched
    model.num_inference_steps = steps

    x_T = torch.randn((B, T, A), generator=gen)
    gc = torch.randn((B, G), generator=gen)
    rec = {"batch": B}

    trajectory = []
    if record_trajectory:
        step = sched.step

        def recording_step(*args, **kwargs):
            out = step(*args, **kwargs)
            trajectory.append(out.prev_sample.detach().clone())
            return out

        sched.step = recording_step

    noise = None
    calls = []
    original_randn = ddpm_module.randn_tensor
    if kind == "DDPM":
        noise = torch.randn((steps, B, T, A), generator=gen)
        noise[-1].zero_()  # t = 0 draws no noise

        def stored_randn(shape, generator=None, device=None, dtype=None, layout=None):
            k = len(calls)
            calls.append(tuple(shape))
            assert tuple(shape) == (B, T, A), shape
            assert k < steps - 1, "randn_tensor called on the last step"
            return noise[k].to(dtype=dtype or torch.float32).clone()

        ddpm_module.randn_tensor = stored_randn
    try:
        with torch.no_grad():
            out = model.conditional_sample(B, global_cond=gc.clone(), noise=x_T.clone())
    finally:
        ddpm_module.randn_tensor = original_randn
    if kind == "DDPM":
        assert len(calls) == steps - 1, (len(calls), steps)

    rec["scheduler"] = scheduler_record(sched, steps)
    put(rec, "x_T", x_T)
    put(rec, "global_cond", gc)
    if noise is not None:
        put(rec, "noise", noise)
    put(rec, "out", out)
    if record_trajectory:
        assert len(trajectory) == steps
        put(rec, "trajectory", torch.stack(trajectory))
    return rec


def make_fixture(name, spec, out_dir, full_widths, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    config = make_config(spec, full_widths)
    policy = DiffusionPolicy(config)
    perturb_(policy, gen)
    policy.eval()
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    policy.save_pretrained(d)
    os.chmod(os.path.join(d, "model.safetensors"), 0o644)  # safetensors writes 0600
    # Everything below runs on the reloaded policy: the references are those of the files.
    policy = DiffusionPolicy.from_pretrained(d, strict=True)
    policy.eval()
    cfg = policy.config

    G = global_cond_dim(cfg)
    unet = policy.diffusion.unet
    lin = unet.down_modules[0][0].cond_encoder[1]
    assert lin.in_features == cfg.diffusion_step_embed_dim + G, (lin.in_features, G)

    T, A, N = cfg.horizon, cfg.action_feature.shape[0], cfg.num_train_timesteps
    ref = dict(versions)
    ref["name"] = name
    ref["global_cond_dim"] = G
    ref["global_cond_dim_parts"] = global_cond_parts(cfg)
    ref["horizon"] = T
    ref["action_dim"] = A
    ref["seed"] = seed
    ref["torch_threads"] = torch.get_num_threads()

    # One U-Net call.
    x = torch.randn((B, T, A), generator=gen)
    timesteps = torch.tensor([0, N - 1, 37], dtype=torch.long)
    gc = torch.randn((B, G), generator=gen)
    with torch.no_grad():
        out = unet(x, timesteps, global_cond=gc)
        # The sinusoidal embedding builds its frequencies in the default dtype.
        torch.set_default_dtype(torch.float64)
        try:
            out64 = unet.double()(x.double(), timesteps, global_cond=gc.double())
        finally:
            torch.set_default_dtype(torch.float32)
            unet.float()
    fwd = {"batch": B}
    put(fwd, "x", x)
    fwd["timesteps"] = [int(t) for t in timesteps]
    put(fwd, "global_cond", gc)
    put(fwd, "out", out)
    put(fwd, "out_f64", out64, f64=True)
    ref["forward"] = fwd

    ddim_steps = 10
    ref["ddim"] = sample_with(policy, "DDIM", ddim_steps, gen, G, record_trajectory=True)
    if spec["noclip"]:
        ref["ddim_noclip"] = sample_with(policy, "DDIM", ddim_steps, gen, G, clip_sample=False,
                                         record_trajectory=True)
    ref["ddpm"] = sample_with(policy, "DDPM", N, gen, G)

    path = os.path.join(d, "reference.json")
    with open(path, "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    sizes = {fn: os.path.getsize(os.path.join(d, fn)) for fn in sorted(os.listdir(d))}
    total = sum(sizes.values())
    print(f"{name}: global_cond_dim {G}, params {sum(p.numel() for p in policy.parameters())}, "
          + ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in sizes.items())
          + f", total {total / 1024:.1f} KiB")
    return policy


def image_config(out_dir):
    """config.json + tensor key list of a PushT-like image policy, without its ~1 GB of weights."""
    config = DiffusionConfig(
        input_features={
            "observation.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 96, 96)),
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(2,)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(2,))},
        n_obs_steps=2,
        horizon=16,
        n_action_steps=8,
        crop_shape=(84, 84),
        crop_is_random=True,
        vision_backbone="resnet18",
        pretrained_backbone_weights=None,
        use_group_norm=True,
        device="cpu",
        push_to_hub=False,
    )
    d = os.path.join(out_dir, "image_config")
    os.makedirs(d, exist_ok=True)
    config._save_pretrained(__import__("pathlib").Path(d))  # config.json only, as save_pretrained writes it
    torch.manual_seed(0)
    policy = DiffusionPolicy(config)
    # The tensors save_pretrained would write (safetensors' save_model drops shared duplicates: none here).
    sd = policy.state_dict()
    keys = [[k, list(v.shape)] for k, v in sd.items()]
    with open(os.path.join(d, "keys.json"), "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(k) for k in keys) + "\n]\n")
    G = global_cond_dim(config)
    lin = policy.diffusion.unet.down_modules[0][0].cond_encoder[1]
    assert lin.in_features == config.diffusion_step_embed_dim + G
    n_params = sum(v.numel() for v in sd.values())
    n_unet = sum(v.numel() for k, v in sd.items() if k.startswith("diffusion.unet."))
    ref = dict(versions)
    ref["global_cond_dim"] = G
    ref["global_cond_dim_parts"] = global_cond_parts(config)
    ref["num_tensors"] = len(keys)
    ref["num_values"] = n_params
    ref["num_unet_values"] = n_unet
    ref["dtype"] = "float32"
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    sizes = {fn: os.path.getsize(os.path.join(d, fn)) for fn in sorted(os.listdir(d))}
    print(f"image_config: global_cond_dim {G}, {len(keys)} tensors, {n_params} values "
          f"({n_unet} in the U-Net), " + ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in sizes.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/data/lerobot")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (at most 2)")
    ap.add_argument("--full-widths", action="store_true",
                    help="use the wider down_dims first asked for (bigger fixtures)")
    ap.add_argument("--only", nargs="*", help="names of configurations to write (default: all + image_config)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, args.threads)))
    torch.use_deterministic_algorithms(True)
    import_lerobot()
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    os.makedirs(args.out, exist_ok=True)
    names = args.only if args.only else list(CONFIGS) + ["image_config"]
    for i, name in enumerate(CONFIGS):
        if name in names:
            make_fixture(name, CONFIGS[name], args.out, args.full_widths, SEED + 1000 * i)
    if "image_config" in names:
        image_config(args.out)


if __name__ == "__main__":
    main()
