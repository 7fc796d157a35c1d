#!/usr/bin/env python3
"""Reference values for picardiff's flow-matching schedule (docs/algorithms.md section 8), from diffusers itself.

Run with a Python that has diffusers (0.39.0 was used) and torch, e.g. the LeRobot venv:

    ~/.cache/picardiff/lerobot-venv/bin/python tools/flow_reference.py > tests/data/flow_reference.json

What it records
---------------
* ``grids``: ``FlowMatchEulerDiscreteScheduler(num_train_timesteps, shift, use_dynamic_shifting)``
  followed by ``set_timesteps(N, mu=...)``, exactly as diffusers computes them (``sigmas`` has N + 1
  float32 values ending in 0, ``timesteps`` the N model times sigma * num_train_timesteps), written as
  the float64 values of those float32 numbers. One more case uses ``set_timesteps(sigmas=1 - k/N)``,
  which is pi0's uniform grid (shift 1 leaves it unchanged).
* ``samples``: the exact 2-D mixture of ``examples/mixture_2d.json`` sampled from a fixed x_T with
  diffusers' ``scheduler.step`` on the scheduler's grid. The model is the mixture's exact flow
  velocity ``E[eps - x0 | x_sigma]`` for ``x_sigma = (1 - sigma) x0 + sigma eps``, computed in float64
  with numpy at ``sigma = timestep / num_train_timesteps`` (the time the model is given):
  a = 1 - sigma, v_k = a^2 s_k^2 + sigma^2, r_k proportional to w_k N(x; a mu_k, v_k I),
  E[x0 | x, k] = mu_k + (a s_k^2 / v_k)(x - a mu_k), E[eps | x, k] = (sigma / v_k)(x - a mu_k),
  v = sum_k r_k (E[eps | x, k] - E[x0 | x, k]) (no division by sigma or a, finite at sigma = 1).
  diffusers' step upcasts the sample to float32 and adds ``(sigma_next - sigma) * model_output`` in
  float64 (the float64 model output), so the trajectory is rounded to float32 once per step.
  x_T is a float32-representable array (numpy RandomState(0) normals rounded to float32).
"""

import json
import math
import sys

import numpy as np
import torch
import diffusers
from diffusers import FlowMatchEulerDiscreteScheduler

MIXTURE = {"weights": [0.3, 0.7], "means": [[-2.0, 1.0], [1.5, -1.0]], "stds": [0.4, 0.6]}


def velocity(x, sigma):
    """Exact E[eps - x0 | x] of the mixture at noise level sigma, float64, x: [B, D]."""
    w = np.array(MIXTURE["weights"], dtype=np.float64)
    w = w / w.sum()
    mu = np.array(MIXTURE["means"], dtype=np.float64)
    s2 = np.array(MIXTURE["stds"], dtype=np.float64) ** 2
    a = 1.0 - sigma
    d = x.shape[1]
    var = a * a * s2 + sigma * sigma  # [K]
    diff = x[:, None, :] - a * mu[None, :, :]  # [B, K, D]
    logit = np.log(w)[None, :] - 0.5 * d * np.log(var)[None, :] - (diff**2).sum(-1) / (2 * var[None, :])
    logit -= logit.max(axis=1, keepdims=True)
    r = np.exp(logit)
    r /= r.sum(axis=1, keepdims=True)
    coef = (sigma - a * s2) / var  # [K]: E[eps|x,k] - E[x0|x,k] = coef_k (x - a mu_k) - mu_k
    per = coef[None, :, None] * diff - mu[None, :, :]
    return (r[:, :, None] * per).sum(1)


def grid_case(name, steps, shift=1.0, mu=None, train=1000, sigmas=None):
    kw = dict(num_train_timesteps=train, shift=shift)
    if mu is not None:
        kw.update(use_dynamic_shifting=True)
    sch = FlowMatchEulerDiscreteScheduler(**kw)
    if sigmas is not None:
        sch.set_timesteps(sigmas=sigmas)
    else:
        sch.set_timesteps(steps, mu=mu)
    return sch, {
        "name": name,
        "steps": steps,
        "train_steps": train,
        "shift": shift,
        "mu": mu,
        "uniform": sigmas is not None,
        "sigmas": [float(v) for v in sch.sigmas.to(torch.float32).tolist()],
        "timesteps": [float(v) for v in sch.timesteps.to(torch.float32).tolist()],
    }


def sample(sch, x_t):
    x = torch.from_numpy(x_t.astype(np.float64))
    train = sch.config.num_train_timesteps
    for t in sch.timesteps:
        sigma = float(t) / train
        v = torch.from_numpy(velocity(x.numpy().astype(np.float64), sigma))
        x = sch.step(v, t, x).prev_sample
    return x.numpy()


def main():
    grids = []
    cases = [
        ("shift1-n10", dict(steps=10)),
        ("shift3-n10", dict(steps=10, shift=3.0)),
        ("shift3-n28", dict(steps=28, shift=3.0)),
        ("shift0.5-n7", dict(steps=7, shift=0.5)),
        ("shift1-n1", dict(steps=1)),
        ("shift1-n50-train100", dict(steps=50, train=100)),
        ("mu0.8-n20", dict(steps=20, mu=0.8)),
        ("mu1.15-n10", dict(steps=10, mu=1.15)),
        ("uniform-n10", dict(steps=10, sigmas=[1.0 - k / 10 for k in range(10)])),
    ]
    scheds = {}
    for name, kw in cases:
        sch, rec = grid_case(name, **kw)
        grids.append(rec)
        scheds[name] = (kw, rec)

    rng = np.random.RandomState(0)
    x_t = rng.standard_normal((8, 2)).astype(np.float32)
    samples = []
    for name in ["shift1-n10", "shift3-n10", "mu0.8-n20", "uniform-n10"]:
        kw, rec = scheds[name]
        sch, _ = grid_case(name, **kw)  # fresh step index
        out = sample(sch, x_t)
        samples.append({"grid": name, "samples": out.astype(np.float64).reshape(-1).tolist()})

    json.dump(
        {
            "generator": "tools/flow_reference.py",
            "diffusers": diffusers.__version__,
            "torch": torch.__version__,
            "mixture": MIXTURE,
            "grids": grids,
            "x_T": x_t.astype(np.float64).reshape(-1).tolist(),
            "batch": 8,
            "dim": 2,
            "samples": samples,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
