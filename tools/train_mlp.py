#!/usr/bin/env python3
"""Trains the two example MLP score networks in examples/models/ on the CPU (a few minutes, 2 cores).

    /work/.venv-torch/bin/python tools/train_mlp.py            # both models
    /work/.venv-torch/bin/python tools/train_mlp.py moons2d    # or some of them (mix64d_flow, ...)
    /work/.venv-torch/bin/python tools/mlp_reference.py        # then refresh tests/data/mlp_forward_*.json

Writes examples/models/moons2d.safetensors (+ moons2d_bf16.safetensors, the same weights rounded to
bf16) and examples/models/mix64d.safetensors. Both use the ddpm-linear schedule (betas linspace(1e-4,
0.02, 1000)), epsilon prediction, the standard DDPM loss E||eps - model(x_t, t)||^2 with t uniform
over the 1000 training steps, Adam with cosine learning-rate decay, and an EMA of the weights (the
EMA is what is exported). examples/models/mix64d_flow.safetensors is the same network trained as a
rectified flow (schedule "flow", prediction "velocity": E||(eps - x0) - model(x_t, 1000 sigma)||^2
with x_t = (1 - sigma) x0 + sigma eps, sigma uniform in (0, 1]). Data:

- moons2d: two moons (sklearn's make_moons formula) with Gaussian noise 0.05, centred and scaled
  by 1.5: `moons(n, rng)` below (tools/plot_samples.py draws the same data).
- mix64d: the 64-D, 8-component Gaussian mixture of tests/common/mod.rs `mixture_64d`
  (examples/mixture_64d.json): weights 1 + 0.25 i, means 1.5 ((7 i + 3 j) mod 11) / 5 - 1),
  stds 0.3 + 0.05 i.
"""
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlp_reference import ROOT, PicardiffMLP, make_config, save  # noqa: E402


def moons(n, rng, noise=0.05):
    """Two moons, centred at the origin and scaled by 1.5."""
    n1 = n // 2
    a = rng.uniform(0.0, math.pi, n1)
    b = rng.uniform(0.0, math.pi, n - n1)
    upper = np.stack([np.cos(a), np.sin(a)], 1)
    lower = np.stack([1.0 - np.cos(b), 0.5 - np.sin(b)], 1)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    return ((x - np.array([0.5, 0.25])) * 1.5).astype(np.float32)


def mixture_64d():
    k, d = 8, 64
    w = np.array([1.0 + 0.25 * i for i in range(k)])
    means = np.array([[1.5 * (((i * 7 + j * 3) % 11) / 5.0 - 1.0) for j in range(d)]
                      for i in range(k)])
    stds = np.array([0.3 + 0.05 * i for i in range(k)])
    return w / w.sum(), means, stds


def mix64(n, rng):
    w, means, stds = mixture_64d()
    comp = rng.choice(len(w), size=n, p=w)
    return (means[comp] + stds[comp, None] * rng.standard_normal((n, 64))).astype(np.float32)


def ddpm_alphas_cumprod(n_train=1000):
    betas = np.linspace(1e-4, 0.02, n_train, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def noisy(config, x0, ab):
    """(x_t, model time, target) for one batch: DDPM's x_t = √ᾱ x0 + √(1 − ᾱ) ε at a uniform
    training step with target ε; or, for the flow schedule, the rectified flow x_t = (1 − σ) x0 + σ ε
    at σ uniform in (0, 1], model time σ·train_steps (diffusers' timestep), target the velocity
    ε − x0."""
    eps = torch.randn_like(x0)
    if config["schedule"] == "flow":
        sigma = 1.0 - torch.rand(x0.shape[0], 1)
        return (1 - sigma) * x0 + sigma * eps, sigma[:, 0] * config["train_steps"], eps - x0
    t = torch.randint(0, config["train_steps"], (x0.shape[0],))
    a = ab[t][:, None]
    return a.sqrt() * x0 + (1 - a).sqrt() * eps, t.float(), eps


def train(name, config, data_fn, steps, batch, lr, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = PicardiffMLP(config)
    ema = PicardiffMLP(config)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)) * 0.95 + 0.05)
    ab = torch.tensor(ddpm_alphas_cumprod(config["train_steps"]), dtype=torch.float32)
    pool = torch.tensor(data_fn(200_000, rng))
    t0 = time.time()
    running = None
    for step in range(steps):
        x0 = pool[torch.randint(0, len(pool), (batch,))]
        xt, t, target = noisy(config, x0, ab)
        loss = ((model(xt, t) - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(decay).add_(pm, alpha=1 - decay)
        running = loss.item() if running is None else 0.99 * running + 0.01 * loss.item()
        if step % 500 == 0 or step == steps - 1:
            print(f"{name}: step {step:5d} loss {running:.4f} ({time.time() - t0:.0f} s)",
                  file=sys.stderr)
    elapsed = time.time() - t0
    ema.config = dict(config)
    ema.config["training"] = {
        "data": name, "steps": steps, "batch": batch, "lr": lr, "seed": seed,
        "ema": 0.999, "final_loss": round(running, 5), "seconds": round(elapsed, 1),
        "script": "tools/train_mlp.py",
    }
    print(f"{name}: trained in {elapsed:.1f} s, loss {running:.4f}", file=sys.stderr)
    return ema.eval()


def main():
    torch.set_num_threads(1)  # 2 threads were 5x slower on the shared 2-core machine
    which = sys.argv[1:] or ["moons2d", "mix64d", "mix64d_flow"]
    out = os.path.join(ROOT, "examples/models")
    os.makedirs(out, exist_ok=True)
    if "moons2d" in which:
        cfg = make_config(2, 128, 3, time_embed_dim=32, description="two moons (tools/train_mlp.py)")
        m = train("moons2d", cfg, moons, steps=8000, batch=512, lr=2e-3, seed=1)
        save(m, os.path.join(out, "moons2d.safetensors"))
        save(m, os.path.join(out, "moons2d_bf16.safetensors"), torch.bfloat16)
    if "mix64d" in which:
        cfg = make_config(64, 192, 3, time_embed_dim=64,
                          description="64-D 8-component mixture_64d (tools/train_mlp.py)")
        m = train("mix64d", cfg, mix64, steps=6000, batch=512, lr=1e-3, seed=2)
        save(m, os.path.join(out, "mix64d.safetensors"))
    if "mix64d_flow" in which:
        cfg = make_config(64, 192, 3, time_embed_dim=64, prediction="velocity", schedule="flow",
                          description="64-D mixture_64d, rectified-flow velocity (tools/train_mlp.py)")
        m = train("mix64d_flow", cfg, mix64, steps=4000, batch=512, lr=1e-3, seed=3)
        save(m, os.path.join(out, "mix64d_flow.safetensors"))
    for f in sorted(os.listdir(out)):
        print(f"{f}: {os.path.getsize(os.path.join(out, f))} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
