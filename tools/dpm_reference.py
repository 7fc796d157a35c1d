#!/usr/bin/env python3
"""Reference values for picardiff's DPM-Solver++ rules (docs/algorithms.md section 9), from diffusers itself.

Run with a Python that has diffusers (0.39.0 was used) and torch, e.g. the LeRobot venv:

    ~/.cache/picardiff/lerobot-venv/bin/python tools/dpm_reference.py > tests/data/dpm_reference.json

What it records
---------------
* ``cases``: ``DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear",
  solver_order, algorithm_type="dpmsolver++", timestep_spacing)`` with every other setting at its
  default (midpoint solver, ``lower_order_final=True``, ``final_sigmas_type="zero"``, no Karras
  sigmas, epsilon prediction), then ``set_timesteps(N)``: its integer ``timesteps`` and its float32
  ``sigmas`` (diffusers' sigma = sqrt((1 - alphabar) / alphabar), N + 1 values ending in 0), and
  the samples of a whole run from a fixed x_T.
* The model is the exact epsilon of the 2-D mixture of ``examples/mixture_2d.json`` under the
  variance-preserving forward process, computed in float64 with numpy at the timestep the model is
  given, with picardiff's float64 ``ddpm-linear`` alphabar (``alpha = sqrt(alphabar_t)``,
  ``sigma = sqrt(1 - alphabar_t)``): v_k = alpha^2 s_k^2 + sigma^2, r_k proportional to
  w_k N(x; alpha mu_k, v_k I), eps = sigma sum_k r_k (x - alpha mu_k) / v_k (docs/algorithms.md
  section 6). diffusers' own coefficients come from its float32 alphas_cumprod and its float32
  sigmas; that, and its float32 sample, are what separates its samples from picardiff's.
* x_T is float32-representable (numpy RandomState(0) normals rounded to float32).
"""

import json
import sys

import numpy as np
import torch
import diffusers
from diffusers import DPMSolverMultistepScheduler

MIXTURE = {"weights": [0.3, 0.7], "means": [[-2.0, 1.0], [1.5, -1.0]], "stds": [0.4, 0.6]}
TRAIN = 1000


def alphas_cumprod():
    """picardiff's ddpm-linear alphabar in float64 (src/schedule/mod.rs)."""
    betas = np.array([1e-4 + (0.02 - 1e-4) * i / (TRAIN - 1) for i in range(TRAIN)], dtype=np.float64)
    return np.cumprod(1.0 - betas)


def epsilon(x, t, abar):
    """Exact E[eps | x_t] of the mixture at integer timestep t, float64, x: [B, D]."""
    w = np.array(MIXTURE["weights"], dtype=np.float64)
    w = w / w.sum()
    mu = np.array(MIXTURE["means"], dtype=np.float64)
    s2 = np.array(MIXTURE["stds"], dtype=np.float64) ** 2
    a, s = np.sqrt(abar[t]), np.sqrt(1.0 - abar[t])
    d = x.shape[1]
    var = a * a * s2 + s * s
    diff = x[:, None, :] - a * mu[None, :, :]
    logit = np.log(w)[None, :] - 0.5 * d * np.log(var)[None, :] - (diff**2).sum(-1) / (2 * var[None, :])
    logit -= logit.max(axis=1, keepdims=True)
    r = np.exp(logit)
    r /= r.sum(axis=1, keepdims=True)
    return s * (r[:, :, None] * diff / var[None, :, None]).sum(1)


def scheduler(order, spacing, steps):
    sch = DPMSolverMultistepScheduler(
        num_train_timesteps=TRAIN,
        beta_schedule="linear",
        solver_order=order,
        algorithm_type="dpmsolver++",
        timestep_spacing=spacing,
    )
    sch.set_timesteps(steps)
    return sch


def sample(sch, x_t, abar):
    x = torch.from_numpy(x_t.copy())
    for t in sch.timesteps:
        eps = torch.from_numpy(epsilon(x.numpy().astype(np.float64), int(t), abar))
        x = sch.step(eps, t, x).prev_sample
    return x.numpy()


def main():
    abar = alphas_cumprod()
    rng = np.random.RandomState(0)
    x_t = rng.standard_normal((8, 2)).astype(np.float32)
    cases = []
    for order, spacing, steps in [
        (2, "linspace", 20),
        (2, "linspace", 10),
        (2, "linspace", 1),
        (2, "linspace", 2),
        (2, "trailing", 15),
        (3, "linspace", 20),
        (3, "linspace", 10),
        (3, "linspace", 3),
        (3, "trailing", 25),
    ]:
        sch = scheduler(order, spacing, steps)
        out = sample(sch, x_t, abar)
        cases.append(
            {
                "rule": f"dpmpp-{order}m",
                "spacing": spacing,
                "steps": steps,
                "timesteps": [int(v) for v in sch.timesteps.tolist()],
                "sigmas": [float(v) for v in sch.sigmas.to(torch.float32).tolist()],
                "samples": out.astype(np.float64).reshape(-1).tolist(),
            }
        )
    json.dump(
        {
            "generator": "tools/dpm_reference.py",
            "diffusers": diffusers.__version__,
            "torch": torch.__version__,
            "mixture": MIXTURE,
            "x_T": x_t.astype(np.float64).reshape(-1).tolist(),
            "batch": 8,
            "dim": 2,
            "cases": cases,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
