#!/usr/bin/env python3
"""PyTorch peers for picardiff's latency benchmarks: the sequential DDPM / DDIM sampler and the
ParaDiGMS sliding-window Picard sampler as its reference code does it (Shih et al. 2023; diffusers'
StableDiffusionParadigmsPipeline): noise drawn up front, a cumulative sum of Euler-style drifts
evaluated at the old iterate, the per-step error normalised by the variance of the step that consumes
the point (1/0 = inf for the last points, as there), and the window advanced to the first failing step.

Same models as picardiff: a mixture JSON (the exact score, written here in torch) or an MLP safetensors
file (tools/mlp_reference.py's module, the PyTorch twin of picardiff's forward). Same schedule
(ddpm-linear, 1000 training steps, `leading` timesteps, previous timestep from the grid).

    python3 benches/peers/torch_peer.py --model examples/models/mix64d.safetensors --steps 1000 \
        --rule ddpm --sampler paradigms --window 1000 --tol 0.1 --batch 1 --device cuda --repeat 3 \
        --stats peer.json [--compile]

Prints one JSON object (also written to --stats): sampler, device, dim, batch, steps, rounds, nfe,
wall_ms (median of --repeat timed runs after one warm-up, CUDA synchronised), and for paradigms
max_abs_diff against this script's own sequential sampler on the same noise.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))


def alphas_cumprod(name, n_train=1000):
    if name == "ddpm-linear":
        betas = np.linspace(1e-4, 0.02, n_train, dtype=np.float64)
    elif name == "scaled-linear":
        betas = np.linspace(1e-4 ** 0.5, 0.02 ** 0.5, n_train, dtype=np.float64) ** 2
    elif name == "cosine":
        f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = np.array([min(1 - f((i + 1) / n_train) / f(i / n_train), 0.999) for i in range(n_train)])
    else:
        raise SystemExit(f"peer: unsupported schedule {name}")
    return np.cumprod(1.0 - betas)


class MixtureEps(torch.nn.Module):
    """The exact epsilon of a Gaussian mixture under a discrete VP schedule."""

    def __init__(self, path, abar):
        super().__init__()
        m = json.load(open(path))
        w = torch.tensor(m["weights"], dtype=torch.float64)
        self.register_buffer("logw", (w / w.sum()).log().float())
        self.register_buffer("mu", torch.tensor(m["means"], dtype=torch.float32))
        self.register_buffer("s2", torch.tensor(m["stds"], dtype=torch.float32) ** 2)
        self.register_buffer("abar", torch.tensor(abar, dtype=torch.float32))
        self.dim = self.mu.shape[1]

    def forward(self, x, t):
        ab = self.abar[t.long()][:, None]
        a, s2t = ab.sqrt(), 1 - ab
        v = a * a * self.s2[None, :] + s2t                                  # [n, K]
        d2 = (x * x).sum(1, keepdim=True) - 2 * a * (x @ self.mu.T) + a * a * (self.mu ** 2).sum(1)[None]
        logits = self.logw[None] - 0.5 * self.dim * v.log() - d2.clamp_min(0) / (2 * v)
        coef = torch.softmax(logits, 1) / v
        return s2t.sqrt() * (x * coef.sum(1, keepdim=True) - a * (coef @ self.mu))


class MlpEps(torch.nn.Module):
    def __init__(self, path):
        super().__init__()
        import mlp_reference
        self.net = mlp_reference.load(path)
        self.dim = self.net.config["dim"] if hasattr(self.net, "config") else None

    def forward(self, x, t):
        return self.net(x, t.float())


def load_model(path, abar, device):
    if path.endswith(".json"):
        model = MixtureEps(path, abar)
    else:
        model = MlpEps(path)
        model.dim = model.net.input.weight.shape[1]
    return model.to(device).eval()


class Sampler:
    """DDPM (fixed_small) / DDIM (eta 0) steps with the previous timestep taken from the grid."""

    def __init__(self, abar, steps, rule, device):
        ratio = len(abar) // steps
        self.ts = [i * ratio for i in range(steps)][::-1]
        prev = self.ts[1:] + [-1]
        ab = np.array([abar[t] for t in self.ts])
        abp = np.array([abar[p] if p >= 0 else 1.0 for p in prev])
        beta = 1 - ab / abp
        var = (1 - abp) / (1 - ab) * beta
        f = lambda v: torch.tensor(v, dtype=torch.float32, device=device)
        self.rule = rule
        self.t = torch.tensor(self.ts, device=device)
        # x_prev = cx * x + ce * eps (+ sqrt(var) z for ddpm)
        if rule == "ddpm":
            cx0 = np.sqrt(abp) * beta / (1 - ab)
            cxt = np.sqrt(1 - beta) * (1 - abp) / (1 - ab)
            cx = cx0 / np.sqrt(ab) + cxt
            ce = -cx0 * np.sqrt(1 - ab) / np.sqrt(ab)
            self.std = f(np.sqrt(var))
        else:
            cx = np.sqrt(abp) / np.sqrt(ab)
            ce = np.sqrt(1 - abp) - np.sqrt(abp) * np.sqrt(1 - ab) / np.sqrt(ab)
            self.std = f(np.zeros_like(var))
        self.cx, self.ce = f(cx), f(ce)
        with np.errstate(divide="ignore"):
            self.inv_var = f(np.concatenate([1.0 / var, [np.inf]]))      # ParaDiGMS: 1/var, last 1/0


@torch.no_grad()
def sequential(model, s, x, noise):
    for j in range(len(s.ts)):
        eps = model(x, s.t[j].expand(x.shape[0]))
        x = s.cx[j] * x + s.ce[j] * eps + noise[j]
    return x, len(s.ts), len(s.ts)


@torch.no_grad()
def paradigms(model, s, x, noise, window, tol):
    n, (b, d) = len(s.ts), x.shape
    window = min(window, n)
    buf = x[None].repeat(n + 1, 1, 1)                                   # the trajectory buffer
    begin, end, rounds, nfe = 0, window, 0, 0
    inv = s.inv_var[:, None] / d
    while begin < n:
        p = end - begin
        blk = buf[begin:end]
        eps = model(blk.reshape(p * b, d), s.t[begin:end, None].expand(p, b).reshape(-1)).reshape(p, b, d)
        drift = s.cx[begin:end, None, None] * blk + s.ce[begin:end, None, None] * eps - blk
        new = buf[begin][None] + torch.cumsum(drift, 0) + torch.cumsum(noise[begin:end], 0)
        err = (new - buf[begin + 1:end + 1]).pow(2).sum(-1) * inv[begin + 1:end + 1]
        err = torch.nn.functional.pad(err, (0, 0, 0, 1), value=1e9)
        ind = torch.argmax((err > tol * tol).any(1).int()).item()      # the host sync of each iteration
        new_begin = begin + min(1 + ind, window)
        new_end = min(new_begin + window, n)
        buf[begin + 1:end + 1] = new
        buf[end:new_end + 1] = buf[end][None]
        rounds, nfe = rounds + 1, nfe + p
        begin, end = new_begin, new_end
    return buf[n], rounds, nfe


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--schedule", default="ddpm-linear")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--rule", choices=["ddpm", "ddim"], default="ddpm")
    ap.add_argument("--sampler", choices=["sequential", "paradigms"], default="sequential")
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--tol", type=float, default=None)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (dynamic shapes)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stats")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    abar = alphas_cumprod(a.schedule)
    model = load_model(a.model, abar, dev)
    if a.compile:
        model = torch.compile(model, dynamic=True)
    s = Sampler(abar, a.steps, a.rule, dev)
    tol = a.tol if a.tol is not None else (0.1 if a.rule == "ddpm" else 1e-3)
    g = torch.Generator(device=dev).manual_seed(a.seed)
    x0 = torch.randn(a.batch, model.dim, generator=g, device=dev)
    noise = torch.randn(a.steps, a.batch, model.dim, generator=g, device=dev) * s.std[:, None, None]
    run = (lambda: sequential(model, s, x0, noise)) if a.sampler == "sequential" else \
        (lambda: paradigms(model, s, x0, noise, a.window, tol))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    out, rounds, nfe = run()                                             # warm-up (and compile)
    times = []
    for _ in range(a.repeat):
        sync()
        t0 = time.perf_counter()
        out, rounds, nfe = run()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    stats = {"peer": "torch", "torch": torch.__version__, "sampler": a.sampler, "device": a.device,
             "gpu": torch.cuda.get_device_name() if dev.type == "cuda" else None,
             "compile": a.compile, "dim": model.dim, "batch": a.batch, "steps": a.steps, "rule": a.rule,
             "window": a.window, "tol": tol, "rounds": rounds, "nfe": nfe,
             "wall_ms": float(np.median(times)), "wall_ms_all": times, "model": a.model}
    if a.sampler == "paradigms":
        ref, _, _ = sequential(model, s, x0, noise)
        stats["max_abs_diff"] = (out - ref).abs().max().item()
    if not torch.isfinite(out).all():
        raise SystemExit("peer: non-finite samples")
    text = json.dumps(stats)
    print(text)
    if a.stats:
        open(a.stats, "w").write(text + "\n")


if __name__ == "__main__":
    main()
