#!/usr/bin/env python3
"""Independent float64 reference values for picardiff's schedules, grids and step rules.

What it reproduces
------------------
The noise schedules, timestep spacings and single sampler steps of Hugging Face diffusers'
``DDPMScheduler`` and ``DDIMScheduler`` (formulas as in diffusers 0.21 and later, up to the 0.3x/0.4x
releases; docs/algorithms.md cites 0.42), re-implemented here with numpy in float64 (diffusers itself
computes the betas in float32; this file does not reproduce that rounding). The functions followed:

* ``DDPMScheduler.__init__`` / ``DDIMScheduler.__init__``: ``beta_schedule`` "linear"
  (``linspace(beta_start, beta_end, N)``), "scaled_linear" (``linspace(sqrt(beta_start), sqrt(beta_end), N)**2``),
  "squaredcos_cap_v2" (``betas_for_alpha_bar`` with the cosine ``alpha_bar(t) = cos((t + 0.008)/1.008 * pi/2)**2``,
  ``t = i/N`` with float division, ``beta_i = min(1 - alpha_bar(t_{i+1})/alpha_bar(t_i), 0.999)``);
  ``alphas_cumprod = cumprod(1 - betas)``. We use beta_start = 1e-4 and beta_end = 0.02 for all three
  (diffusers' Stable Diffusion configs use 0.00085/0.012 for scaled_linear; we do not).
* ``DDIMScheduler.set_timesteps`` with ``timestep_spacing`` "linspace" (``linspace(0, N-1, n).round()``
  reversed), "leading" (``arange(n) * (N // n)`` reversed, + steps_offset, here 0) and "trailing"
  (``round(arange(N, 0, -N/n)) - 1``). ``DDPMScheduler.set_timesteps`` is identical.
* ``DDPMScheduler.step``: prediction_type "epsilon", clip_sample=False, variance_type "fixed_small":
  ``x0 = (x - sqrt(1 - abar_t) eps) / sqrt(abar_t)``, ``beta_t = 1 - abar_t/abar_prev``,
  ``mean = sqrt(abar_prev) beta_t / (1 - abar_t) x0 + sqrt(abar_t/abar_prev) (1 - abar_prev)/(1 - abar_t) x``,
  ``var = (1 - abar_prev)/(1 - abar_t) beta_t``, ``prev = mean + sqrt(var) noise`` (noise added only when t > 0).
  One deliberate difference: diffusers clamps ``var`` to at least 1e-20 in ``_get_variance``; the reference
  does not, so on the last step of a grid whose final timestep is > 0 (trailing spacing), where var is 0,
  diffusers would add 1e-10 * noise and this reference adds nothing (= the ddim(1) table, c = 0).
* ``DDIMScheduler.step``: prediction_type "epsilon", clip_sample=False, set_alpha_to_one=True
  (``abar_prev = 1`` after the last timestep), ``std = eta * sqrt(_get_variance)`` with
  ``_get_variance = (1 - abar_prev)/(1 - abar_t) * (1 - abar_t/abar_prev)``,
  ``prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - std^2) eps + std * noise``.
* In both steps the previous timestep is the next entry of the timestep array (-1 after the last), NOT
  ``t - N // n`` as diffusers' own ``step`` computes it for non-custom timesteps (the two agree for
  "leading" spacing only).

It also writes the continuous schedules ``ou`` and ``vp-linear``, the seed paper's ``paper`` grid, and the
(a, b, c) step tables of docs/algorithms.md section 2 (rules ddim(0), ddim(1), exp-sde, exp-ode), and it
self-checks that a*x + b*eps + c*noise with the ddim(1) table reproduces the DDPM step and with the
ddim(0)/ddim(0.5) tables the DDIM step, to 1e-12 relative to max(1, sum of |terms|) (the terms reach 1e4 on
the first step of the cosine schedule, where alphas_cumprod[999] = 2.4e-9). The tables are computed from
alpha^2 and sigma^2 (alphas_cumprod, or exp(-t) for ou) rather than from alpha and sigma; see rule_abc.

JSON layout (all floats are float64, all timesteps ints; -1 = the clean end, alpha = 1, sigma = 0):
  alphas_cumprod: {"ddpm-linear"|"scaled-linear"|"cosine": [1000 floats]}
  timesteps:      [{spacing, steps, timesteps}]
  ddpm_steps, ddim_steps: [{schedule, spacing, steps, stored_every, timesteps,
                            step: [{j, t, t_prev, x, eps, noise, ddpm, ddim}]}]
                  (the two lists hold the same cases, inputs and outputs; stored_every = 97 for the
                  1000-step case, whose last step j = 999 is stored too)
  ddim_eta05:     like ddim_steps with "eta": 0.5 and only a "ddim" output (ddpm-linear trailing 7)
  continuous:     {"ou"|"vp-linear": [{t, alpha, sigma}]}
  paper_grid:     {schedule, T, eta, kappa, steps, times}
  step_tables:    [{grid: "paper-ou"|"ddpm-linear-leading-50", rule, steps, rows: [{j, t, s|t_prev, a, b, c}]}]

How to rerun
------------
    python3 -m pip install --user numpy     # not a project dependency; CI never runs this script
    python3 tools/reference_schedules.py > tests/data/reference_schedules.json

Only the JSON goes to stdout; diagnostics go to stderr. The inputs (x, eps, noise) come from a seeded
numpy Generator (PCG64, seed 20240601), so reruns are bit-identical for a given numpy version.
"""

import json
import math
import sys

import numpy as np

N_TRAIN = 1000
BETA_START = 1e-4
BETA_END = 0.02
D = 4
SEED = 20240601


def log(*args):
    print(*args, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Discrete schedules
# ---------------------------------------------------------------------------------------------


def betas_for_alpha_bar(n, max_beta=0.999):
    def alpha_bar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = np.empty(n, dtype=np.float64)
    for i in range(n):
        t1 = i / n  # float division (candle / diffusers-rs use an integer division here)
        t2 = (i + 1) / n
        betas[i] = min(1.0 - alpha_bar(t2) / alpha_bar(t1), max_beta)
    return betas


def make_betas(name, n=N_TRAIN):
    if name == "ddpm-linear":
        return np.linspace(BETA_START, BETA_END, n, dtype=np.float64)
    if name == "scaled-linear":
        return np.linspace(BETA_START**0.5, BETA_END**0.5, n, dtype=np.float64) ** 2
    if name == "cosine":
        return betas_for_alpha_bar(n)
    raise ValueError(name)


def alphas_cumprod(name):
    return np.cumprod(1.0 - make_betas(name))


def timesteps(spacing, n, n_train=N_TRAIN, steps_offset=0):
    if spacing == "linspace":
        ts = np.linspace(0, n_train - 1, n).round()[::-1].copy().astype(np.int64)
    elif spacing == "leading":
        ratio = n_train // n
        ts = (np.arange(0, n) * ratio).round()[::-1].copy().astype(np.int64)
        ts += steps_offset
    elif spacing == "trailing":
        ratio = n_train / n
        ts = np.round(np.arange(n_train, 0, -ratio)).astype(np.int64)
        ts -= 1
    else:
        raise ValueError(spacing)
    assert len(ts) == n, (spacing, n, len(ts))
    assert all(ts[i] > ts[i + 1] for i in range(len(ts) - 1)), (spacing, n)
    return [int(t) for t in ts]


# ---------------------------------------------------------------------------------------------
# diffusers' single steps (float64 numpy re-implementation)
# ---------------------------------------------------------------------------------------------


def ddpm_step(ac, t, t_prev, x, eps, noise):
    abar_t = ac[t]
    abar_prev = ac[t_prev] if t_prev >= 0 else 1.0
    beta_prod_t = 1.0 - abar_t
    beta_prod_prev = 1.0 - abar_prev
    cur_alpha = abar_t / abar_prev
    cur_beta = 1.0 - cur_alpha
    x0 = (x - beta_prod_t**0.5 * eps) / abar_t**0.5
    x0_coeff = (abar_prev**0.5 * cur_beta) / beta_prod_t
    xt_coeff = cur_alpha**0.5 * beta_prod_prev / beta_prod_t
    prev = x0_coeff * x0 + xt_coeff * x
    if t > 0:
        var = (1.0 - abar_prev) / (1.0 - abar_t) * cur_beta  # diffusers clamps at 1e-20; see docstring
        prev = prev + var**0.5 * noise
    return prev


def ddim_variance(ac, t, t_prev):
    abar_t = ac[t]
    abar_prev = ac[t_prev] if t_prev >= 0 else 1.0
    return (1.0 - abar_prev) / (1.0 - abar_t) * (1.0 - abar_t / abar_prev)


def ddim_step(ac, t, t_prev, x, eps, noise, eta=0.0):
    abar_t = ac[t]
    abar_prev = ac[t_prev] if t_prev >= 0 else 1.0  # set_alpha_to_one=True
    beta_prod_t = 1.0 - abar_t
    x0 = (x - beta_prod_t**0.5 * eps) / abar_t**0.5
    std = eta * ddim_variance(ac, t, t_prev) ** 0.5
    direction = (1.0 - abar_prev - std**2) ** 0.5 * eps
    prev = abar_prev**0.5 * x0 + direction
    if eta > 0:
        prev = prev + std * noise
    return prev


# ---------------------------------------------------------------------------------------------
# Continuous schedules, the paper grid and the (a, b, c) tables of algorithms.md section 2
# ---------------------------------------------------------------------------------------------


def ou_alpha_sigma(t):
    return math.exp(-t / 2.0), math.sqrt(-math.expm1(-t))


def vp_linear_alpha_sigma(t, beta_min=0.1, beta_max=20.0):
    log_alpha = -0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min
    return math.exp(log_alpha), math.sqrt(-math.expm1(2.0 * log_alpha))


def paper_grid(T=10.0, eta=1e-3, kappa=0.05):
    """Uniform steps of kappa while the result stays >= 1, then t/(1+kappa) down to eta.

    Uniform points are computed as T - j*kappa (not by repeated subtraction). The geometric phase stops at
    the first point t_j with t_j/(1+kappa) <= eta; the next (last) point is set to eta exactly, so the
    last step is the only one with ratio t_j/eta <= 1+kappa.
    """
    ts = [T]
    j = 1
    while True:
        t = T - j * kappa
        if t < 1.0:
            break
        ts.append(t)
        j += 1
    n_uniform = len(ts) - 1
    while True:
        nxt = ts[-1] / (1.0 + kappa)
        if nxt <= eta:
            ts.append(eta)
            break
        ts.append(nxt)
    log(f"paper grid: {n_uniform} uniform steps, {len(ts) - 1 - n_uniform} geometric steps,"
        f" {len(ts) - 1} steps in all; last uniform point {ts[n_uniform]!r}, point before eta {ts[-2]!r}")
    return ts


def rule_abc(rule, abar_t, abar_s, sig2_t, sig2_s):
    """(a, b, c) of one step t -> s from the squared quantities alpha^2 and sigma^2 at both ends.

    docs/algorithms.md section 2 with a = alpha_s/alpha_t. Working from alpha^2 (= diffusers' alphas_cumprod
    for the discrete schedules) rather than from alpha avoids the ~1e-12 relative loss of the round trip
    alpha = sqrt(abar), alpha^2 in 1 - alpha_t^2/alpha_s^2 when that is small (short steps near t = 0).
    """
    a = math.sqrt(abar_s / abar_t)
    sigma_t = math.sqrt(sig2_t)
    if rule.startswith("ddim"):
        eta = {"ddim0": 0.0, "ddim1": 1.0, "ddim05": 0.5}[rule]
        # sigma_tilde^2 = eta^2 (sigma_s^2/sigma_t^2)(1 - alpha_t^2/alpha_s^2)
        st2 = eta * eta * (sig2_s / sig2_t) * (1.0 - abar_t / abar_s)
        b = math.sqrt(sig2_s - st2) - a * sigma_t
        return a, b, math.sqrt(st2)
    if rule == "exp-sde":
        return a, -2.0 * (a - 1.0) / sigma_t, math.sqrt(abar_s / abar_t - 1.0)
    if rule == "exp-ode":
        return a, -(a - 1.0) / sigma_t, 0.0
    raise ValueError(rule)


def discrete_sq(ac, t):
    """(alpha^2, sigma^2) of a discrete timestep; t = -1 is the terminal point alpha = 1, sigma = 0."""
    if t < 0:
        return 1.0, 0.0
    return float(ac[t]), 1.0 - float(ac[t])


def ou_sq(t):
    return math.exp(-t), -math.expm1(-t)


def step_scale(a, b, c, x, eps, noise):
    """Magnitude of the terms of a*x + b*eps + c*noise: the scale that rounding errors are relative to."""
    return max(1.0, float(np.max(np.abs(a * x) + np.abs(b * eps) + np.abs(c * noise))))


# ---------------------------------------------------------------------------------------------


def main():
    rng = np.random.default_rng(SEED)
    out = {
        "meta": {
            "generator": "tools/reference_schedules.py",
            "num_train_timesteps": N_TRAIN,
            "beta_start": BETA_START,
            "beta_end": BETA_END,
            "dim": D,
            "seed": SEED,
            "numpy": np.__version__,
        }
    }

    acs = {name: alphas_cumprod(name) for name in ("ddpm-linear", "scaled-linear", "cosine")}
    out["alphas_cumprod"] = {name: [float(v) for v in ac] for name, ac in acs.items()}

    ts_list = []
    for spacing in ("leading", "trailing", "linspace"):
        for n in (1, 7, 50, 1000):
            if n == 1000 and spacing != "leading":
                continue
            ts_list.append({"spacing": spacing, "steps": n, "timesteps": timesteps(spacing, n)})
    out["timesteps"] = ts_list

    worst = {"ddim1_vs_ddpm": 0.0, "ddim0_vs_ddim": 0.0, "ddim05_vs_ddim": 0.0}

    def step_cases(cases, eta_extra=None):
        result = []
        for schedule, spacing, n, every in cases:
            ac = acs[schedule]
            ts = timesteps(spacing, n)
            steps = []
            for j, t in enumerate(ts):
                t_prev = ts[j + 1] if j + 1 < len(ts) else -1
                # inputs are drawn for every step so that the stored ones do not depend on `every`
                x = rng.standard_normal(D)
                eps = rng.standard_normal(D)
                noise = rng.standard_normal(D)
                if j % every != 0 and j != len(ts) - 1:
                    continue
                rec = {"j": j, "t": t, "t_prev": t_prev, "x": x.tolist(), "eps": eps.tolist(),
                       "noise": noise.tolist()}
                sq = discrete_sq(ac, t) + discrete_sq(ac, t_prev)
                args = (sq[0], sq[2], sq[1], sq[3])
                if eta_extra is None:
                    ddpm = ddpm_step(ac, t, t_prev, x, eps, noise)
                    ddim = ddim_step(ac, t, t_prev, x, eps, noise, 0.0)
                    rec["ddpm"] = ddpm.tolist()
                    rec["ddim"] = ddim.tolist()
                    a, b, c = rule_abc("ddim1", *args)
                    err = float(np.max(np.abs(a * x + b * eps + c * noise - ddpm)))
                    worst["ddim1_vs_ddpm"] = max(worst["ddim1_vs_ddpm"], err / step_scale(a, b, c, x, eps, noise))
                    a, b, c = rule_abc("ddim0", *args)
                    err = float(np.max(np.abs(a * x + b * eps + c * noise - ddim)))
                    worst["ddim0_vs_ddim"] = max(worst["ddim0_vs_ddim"], err / step_scale(a, b, c, x, eps, noise))
                else:
                    ddim = ddim_step(ac, t, t_prev, x, eps, noise, eta_extra)
                    rec["ddim"] = ddim.tolist()
                    a, b, c = rule_abc("ddim05", *args)
                    err = float(np.max(np.abs(a * x + b * eps + c * noise - ddim)))
                    worst["ddim05_vs_ddim"] = max(worst["ddim05_vs_ddim"], err / step_scale(a, b, c, x, eps, noise))
                steps.append(rec)
            case = {"schedule": schedule, "spacing": spacing, "steps": n, "stored_every": every,
                    "timesteps": ts, "step": steps}
            if eta_extra is not None:
                case["eta"] = eta_extra
            result.append(case)
        return result

    # ddpm_steps and ddim_steps are the same cases with the same inputs; every step carries both outputs.
    cases = step_cases([
        ("ddpm-linear", "leading", 50, 1),
        ("ddpm-linear", "trailing", 7, 1),
        ("cosine", "linspace", 7, 1),
        ("scaled-linear", "leading", 1000, 97),
    ])
    out["ddpm_steps"] = cases
    out["ddim_steps"] = cases
    out["ddim_eta05"] = step_cases([("ddpm-linear", "trailing", 7, 1)], eta_extra=0.5)

    ts_eval = [1e-3, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0]
    out["continuous"] = {
        "ou": [{"t": t, "alpha": ou_alpha_sigma(t)[0], "sigma": ou_alpha_sigma(t)[1]} for t in ts_eval],
        "vp-linear": [
            {"t": t, "alpha": vp_linear_alpha_sigma(t)[0], "sigma": vp_linear_alpha_sigma(t)[1]}
            for t in ts_eval if t <= 1.0
        ],
    }
    for name, pts in out["continuous"].items():
        for p in pts:
            assert abs(p["alpha"] ** 2 + p["sigma"] ** 2 - 1.0) < 1e-14, (name, p)

    grid = paper_grid()
    out["paper_grid"] = {"schedule": "ou", "T": 10.0, "eta": 1e-3, "kappa": 0.05, "steps": len(grid) - 1,
                         "times": grid}

    rules = ["ddim0", "ddim1", "exp-sde", "exp-ode"]
    rule_names = {"ddim0": "ddim(0)", "ddim1": "ddim(1)", "exp-sde": "exp-sde", "exp-ode": "exp-ode"}
    n_steps = len(grid) - 1
    paper_idx = list(range(5)) + list(range(n_steps - 5, n_steps))
    tables = []
    for rule in rules:
        rows = []
        for j in paper_idx:
            (abar_t, sig2_t), (abar_s, sig2_s) = ou_sq(grid[j]), ou_sq(grid[j + 1])
            a, b, c = rule_abc(rule, abar_t, abar_s, sig2_t, sig2_s)
            rows.append({"j": j, "t": grid[j], "s": grid[j + 1], "a": a, "b": b, "c": c})
        tables.append({"grid": "paper-ou", "rule": rule_names[rule], "steps": n_steps, "rows": rows})
    ac = acs["ddpm-linear"]
    ts = timesteps("leading", 50)
    for rule in rules:
        rows = []
        for j, t in enumerate(ts):
            t_prev = ts[j + 1] if j + 1 < len(ts) else -1
            (abar_t, sig2_t), (abar_s, sig2_s) = discrete_sq(ac, t), discrete_sq(ac, t_prev)
            a, b, c = rule_abc(rule, abar_t, abar_s, sig2_t, sig2_s)
            rows.append({"j": j, "t": t, "t_prev": t_prev, "a": a, "b": b, "c": c})
        tables.append({"grid": "ddpm-linear-leading-50", "rule": rule_names[rule], "steps": len(ts), "rows": rows})
    out["step_tables"] = tables

    log("self-check (max |table step - diffusers step| / max(1, sum of |terms|)):", worst)
    for k, v in worst.items():
        if not v <= 1e-12:
            log(f"SELF-CHECK FAILED: {k} = {v}")
            sys.exit(1)

    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
