#!/usr/bin/env python3
"""A LeRobot Diffusion Policy directory with random weights, for latency benchmarks of the U-Net
(`picardiff bench --policy DIR --device cuda|cpu`): config.json in LeRobot's format and
model.safetensors with the tensors `DiffusionConditionalUnet1d` has (names and shapes as LeRobot's
`save_pretrained` writes them; see examples/models/reach2d_policy for a trained one). Weights are
PyTorch's default initialisation (uniform ±1/√fan_in), GroupNorm affine (1, 0): outputs are
meaningless but bounded, which is all a timing needs. Needs only numpy.

    python3 tools/make_bench_policy.py OUT_DIR [--down-dims 512,1024,2048] [--embed 128]
        [--kernel 5] [--groups 8] [--horizon 16] [--action 2] [--state 2] [--env 2] [--obs-steps 2]

The defaults are LeRobot's DiffusionConfig (PushT-like: 2-D actions, horizon 16, n_obs_steps 2),
about 1 GB of f32 weights; not committed, make it where it is used.
"""
import argparse
import json
import os
import struct

import numpy as np


def tensors(a):
    """(name, shape, fan_in) of every U-Net tensor, LeRobot's names without the prefix."""
    d, e, k = a.down_dims, a.embed, a.kernel
    g = a.obs_steps * (a.state + a.env)
    cond = e + g
    out = []

    def lin(key, i, o):
        out.append((f"{key}.weight", [o, i], i))
        out.append((f"{key}.bias", [o], i))

    def conv(key, cin, cout, kk):
        out.append((f"{key}.weight", [cout, cin, kk], cin * kk))
        out.append((f"{key}.bias", [cout], cin * kk))

    def block(key, cin, cout):
        conv(f"{key}.block.0", cin, cout, k)
        out.append((f"{key}.block.1.weight", [cout], None))  # GroupNorm γ
        out.append((f"{key}.block.1.bias", [cout], 0))  # GroupNorm β

    def res(key, cin, cout):
        block(f"{key}.conv1", cin, cout)
        lin(f"{key}.cond_encoder.1", cond, 2 * cout)
        block(f"{key}.conv2", cout, cout)
        if cin != cout:
            conv(f"{key}.residual_conv", cin, cout, 1)

    lin("diffusion_step_encoder.1", e, 4 * e)
    lin("diffusion_step_encoder.3", 4 * e, e)
    cin = a.action
    for i, ch in enumerate(d):
        res(f"down_modules.{i}.0", cin, ch)
        res(f"down_modules.{i}.1", ch, ch)
        if i + 1 < len(d):
            conv(f"down_modules.{i}.2", ch, ch, 3)
        cin = ch
    res("mid_modules.0", d[-1], d[-1])
    res("mid_modules.1", d[-1], d[-1])
    for u in range(len(d) - 1):
        hi, lo = d[-1 - u], d[-2 - u]
        res(f"up_modules.{u}.0", 2 * hi, lo)
        res(f"up_modules.{u}.1", lo, lo)
        # ConvTranspose1d(lo, lo, 4, 2, 1): weight [cin][cout][k]
        out.append((f"up_modules.{u}.2.weight", [lo, lo, 4], lo * 4))
        out.append((f"up_modules.{u}.2.bias", [lo], lo * 4))
    block("final_conv.0", d[0], d[0])
    conv("final_conv.1", d[0], a.action, 1)
    return out


def config(a):
    """LeRobot's DiffusionConfig fields the loader reads (the rest as LeRobot writes them)."""
    return {
        "type": "diffusion",
        "n_obs_steps": a.obs_steps,
        "input_features": {
            "observation.state": {"type": "STATE", "shape": [a.state]},
            "observation.environment_state": {"type": "ENV", "shape": [a.env]},
        },
        "output_features": {"action": {"type": "ACTION", "shape": [a.action]}},
        "horizon": a.horizon,
        "n_action_steps": 8,
        "normalization_mapping": {"VISUAL": "MEAN_STD", "STATE": "MIN_MAX", "ACTION": "MIN_MAX"},
        "vision_backbone": "resnet18",
        "use_group_norm": False,
        "down_dims": a.down_dims,
        "kernel_size": a.kernel,
        "n_groups": a.groups,
        "diffusion_step_embed_dim": a.embed,
        "use_film_scale_modulation": True,
        "noise_scheduler_type": "DDPM",
        "num_train_timesteps": 100,
        "beta_schedule": "squaredcos_cap_v2",
        "beta_start": 0.0001,
        "beta_end": 0.02,
        "prediction_type": "epsilon",
        "clip_sample": True,
        "clip_sample_range": 1.0,
        "num_inference_steps": None,
        "compile_model": False,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--down-dims", default="512,1024,2048")
    p.add_argument("--embed", type=int, default=128)
    p.add_argument("--kernel", type=int, default=5)
    p.add_argument("--groups", type=int, default=8)
    p.add_argument("--horizon", type=int, default=16)
    p.add_argument("--action", type=int, default=2)
    p.add_argument("--state", type=int, default=2)
    p.add_argument("--env", type=int, default=2)
    p.add_argument("--obs-steps", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    a.down_dims = [int(v) for v in a.down_dims.split(",")]
    rng = np.random.default_rng(a.seed)
    header, blobs, at = {}, [], 0
    for name, shape, fan_in in tensors(a):
        n = int(np.prod(shape))
        if fan_in is None:
            v = np.ones(n, np.float32)
        elif fan_in == 0:
            v = np.zeros(n, np.float32)
        else:
            bound = 1.0 / np.sqrt(fan_in)
            v = rng.uniform(-bound, bound, n).astype(np.float32)
        b = v.astype("<f4").tobytes()
        header["diffusion.unet." + name] = {"dtype": "F32", "shape": shape, "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config(a), f, indent=4)
    print(f"{a.out}: down_dims {a.down_dims}, {at // 4} parameters ({at / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
