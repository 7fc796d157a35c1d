#!/usr/bin/env python3
"""Action chunks of the trained reach2d policy (examples/models/reach2d_policy), sampled by
picardiff sequentially and with Picard from the same noise, plotted side by side.

    python3 tools/plot_policy.py [--picardiff target/release/picardiff] [--out docs/img/reach2d_chunks.png]

Needs numpy and matplotlib (e.g. the LeRobot venv of scripts/setup-lerobot-venv.sh, or
`pip install numpy==2.2.6 matplotlib==3.11.2`). Runs `picardiff sample` twice (sequential and
picard, DDPM-100 with the policy's x0 clipping, seed 3) on two start/goal conditions × 24 samples,
and writes the figure to --out (default /tmp/reach2d_chunks.png, so that a tracked image changes
only when asked for).
"""

import argparse
import json
import os
import subprocess
import tempfile

import numpy as np


def conditions(per):
    """Two start/goal pairs on opposite sides of the obstacle, each repeated `per` times."""
    pairs = [((-0.8, 0.05), (0.78, -0.1)), ((0.1, 0.82), (-0.05, -0.8))]
    rows = [list(s) + list(g) for s, g in pairs for _ in range(per)]
    return np.asarray(rows, dtype=np.float32), pairs


def sample(exe, model, cond, sampler, out, stats):
    cmd = [exe, "sample", "--model", model, "--cond", cond, "--sampler", sampler,
           "--device", "cpu", "--seed", "3", "--out", out, "--stats", stats]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(stats) as f:
        return np.load(out), json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--picardiff", default="target/release/picardiff")
    ap.add_argument("--model", default="examples/models/reach2d_policy")
    ap.add_argument("--per", type=int, default=24)
    ap.add_argument("--out", default="/tmp/reach2d_chunks.png")
    a = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cond, pairs = conditions(a.per)
    with tempfile.TemporaryDirectory() as tmp:
        c = os.path.join(tmp, "cond.npy")
        np.save(c, cond)
        seq, s_stats = sample(a.picardiff, a.model, c, "sequential",
                              os.path.join(tmp, "seq.npy"), os.path.join(tmp, "seq.json"))
        par, p_stats = sample(a.picardiff, a.model, c, "picard",
                              os.path.join(tmp, "par.npy"), os.path.join(tmp, "par.json"))
    dev = np.abs(par - seq).reshape(len(cond), -1).max(axis=1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
    for ax, chunks, title in [(axes[0], seq, f"sequential: {s_stats['rounds']} rounds"),
                              (axes[1], par, f"picard: {p_stats['rounds']} rounds, "
                                             f"median dev {np.median(dev):.1e}")]:
        ax.add_patch(plt.Circle((0, 0), 0.35, color="0.8"))
        for i, (s, g) in enumerate(pairs):
            color = ["tab:blue", "tab:orange"][i]
            for k in range(a.per):
                xy = chunks[i * a.per + k]
                ax.plot(np.r_[s[0], xy[:, 0]], np.r_[s[1], xy[:, 1]], color=color, alpha=0.35, lw=1)
            ax.plot(*s, "o", color=color)
            ax.plot(*g, "*", color=color, ms=12)
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(-1.1, 1.1)
    fig.suptitle("reach2d policy (LeRobot DiffusionPolicy), DDPM-100 with x0 clipping, same noise")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"{a.out}: sequential {s_stats['rounds']} rounds, picard {p_stats['rounds']} rounds, "
          f"per-sample deviation median {np.median(dev):.2e}, p90 {np.quantile(dev, 0.9):.2e}, "
          f"max {dev.max():.2e}")


if __name__ == "__main__":
    main()
