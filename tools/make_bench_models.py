#!/usr/bin/env python3
"""MLP score networks for latency benchmarks (`picardiff bench --mlp ...`, benches/peers/torch_peer.py)
in picardiff's safetensors format (tools/mlp_reference.py), briefly trained on the 64-D 8-component
mixture (tools/train_mlp.py's `mix64`, 1000-step ddpm-linear, epsilon prediction) so that their
trajectories behave like a real model's (an untrained network's do not: Picard's error test then
measures nothing useful).

    python3 tools/make_bench_models.py OUT_DIR [H ...]      (default H: 256 1024 4096)

writes OUT_DIR/mlp_h{H}.safetensors: D = 64, 3 residual pre-LayerNorm blocks, SiLU, time embedding 64.
Trains on CUDA when available (seconds each on an H100/H200), else on the CPU with fewer steps;
--steps N overrides. Not committed (H = 4096 is ~400 MB); make them where they are used.
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlp_reference  # noqa: E402
from train_mlp import ddpm_alphas_cumprod, mix64  # noqa: E402


def train(model, steps, batch, lr, device, seed):
    rng = np.random.default_rng(seed)
    pool = torch.tensor(mix64(100_000, rng), device=device)
    ab = torch.tensor(ddpm_alphas_cumprod(), dtype=torch.float32, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    for step in range(steps):
        x0 = pool[torch.randint(0, len(pool), (batch,), device=device)]
        t = torch.randint(0, 1000, (batch,), device=device)
        eps = torch.randn_like(x0)
        a = ab[t][:, None]
        loss = ((model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t.float()) - eps) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return loss.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("hidden", nargs="*", type=int, default=[256, 1024, 4096])
    ap.add_argument("--steps", type=int)
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = a.steps or (2000 if device == "cuda" else 300)
    os.makedirs(a.out, exist_ok=True)
    for h in a.hidden:
        torch.manual_seed(h)
        cfg = mlp_reference.make_config(64, h, 3, description=f"H={h}, {steps} quick training steps on mix64 (benchmarks)")
        model = mlp_reference.PicardiffMLP(cfg).to(device)
        t0 = time.time()
        loss = train(model, steps, 512, 1e-3 if h <= 1024 else 3e-4, device, seed=h)
        model = model.cpu().eval()
        model.config = cfg
        path = os.path.join(a.out, f"mlp_h{h}.safetensors")
        mlp_reference.save(model, path)
        print(f"{path}: {steps} steps on {device} in {time.time() - t0:.1f} s, loss {loss:.4f}", file=sys.stderr)
        print(path)


if __name__ == "__main__":
    main()
