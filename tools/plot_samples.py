#!/usr/bin/env python3
"""Plots trained-model samples over the data: sequential beside Picard (the README picture).

    cargo run --release --example sample_mlp -- --out target/sample_mlp
    python3 tools/plot_samples.py target/sample_mlp [OUT.png]

The first command writes sequential.npy, picard.npy and stats.json into the folder; this script
draws them over fresh two-moons data (the formula of tools/train_mlp.py) and writes the PNG to
OUT.png, by default /tmp/moons2d_samples.png: the tracked docs/img/moons2d_samples.png changes only
when named. Needs numpy and matplotlib (tools/requirements.txt).
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402



def moons(n, rng, noise=0.05):
    """Same as tools/train_mlp.py (kept here so plotting needs no PyTorch)."""
    n1 = n // 2
    a = rng.uniform(0.0, np.pi, n1)
    b = rng.uniform(0.0, np.pi, n - n1)
    upper = np.stack([np.cos(a), np.sin(a)], 1)
    lower = np.stack([1.0 - np.cos(b), 0.5 - np.sin(b)], 1)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    return (x - np.array([0.5, 0.25])) * 1.5


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "target/sample_mlp"
    # The tracked image changes only when asked for by name.
    out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/moons2d_samples.png"
    seq = np.load(os.path.join(folder, "sequential.npy"))
    par = np.load(os.path.join(folder, "picard.npy"))
    with open(os.path.join(folder, "stats.json")) as f:
        st = json.load(f)
    data = moons(4000, np.random.default_rng(0))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True, sharey=True)
    panels = [
        (seq, f"sequential: {st['sequential']['rounds']} rounds, "
              f"{st['sequential']['wall_ms'] / 1e3:.1f} s"),
        (par, f"Picard (window {st['window']}, tol {st['tol']:g}): {st['picard']['rounds']} rounds, "
              f"nfe {st['picard']['nfe']}, {st['picard']['wall_ms'] / 1e3:.1f} s"),
    ]
    far = np.abs(par - seq).max(1) > 0.05
    for ax, (s, title) in zip(axes, panels):
        ax.scatter(data[:, 0], data[:, 1], s=3, c="#bbbbbb", label="data", linewidths=0)
        ax.scatter(s[:, 0], s[:, 1], s=3, c="#1f5fbf", label="samples", linewidths=0)
        if far.any():
            ax.scatter(s[far, 0], s[far, 1], s=40, facecolors="none", edgecolors="#d62728",
                       label="|Picard - sequential| > 0.05")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlim(-3.0, 3.0)
        ax.set_ylim(-2.0, 2.0)
    axes[0].legend(loc="lower left", markerscale=2, fontsize=8)
    fig.suptitle(
        f"picardiff: trained MLP on two moons ({os.path.basename(st['model'])}), {st['rule']} "
        f"{st['steps']} steps, {st['batch']} samples, CPU with 2 cores\n"
        f"per-sample |Picard - sequential|: "
        f"median {st['median_sample_deviation']:.1e}, {st['samples_over_0.05']} of {st['batch']} "
        f"over 0.05 (max {st['max_abs_deviation']:.1e})", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
