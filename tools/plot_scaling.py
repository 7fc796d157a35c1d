#!/usr/bin/env python3
"""Plot the dimension-scaling study (rounds and wall time against D) made by
`cargo run --release --example scaling_study -- 14 4 docs/perf/scaling-cpu.json`.

Usage: python3 tools/plot_scaling.py docs/perf/scaling-cpu.json [more.json ...] docs/img/scaling.png
Needs matplotlib (not a project dependency; e.g. `python3 -m venv /tmp/v && /tmp/v/bin/pip install matplotlib`).
Each input JSON is {"device": ..., "rows": [{"dim", "sampler", "rounds", "wall_ms", "sequential_wall_ms", ...}]}.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    *inputs, out = sys.argv[1:]
    fig, (ax_r, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
    for path in inputs:
        doc = json.load(open(path))
        dev = doc.get("device", path)
        for sampler, marker in (("picard", "o"), ("blocks", "s")):
            rows = sorted((r for r in doc["rows"] if r["sampler"] == sampler), key=lambda r: r["dim"])
            if not rows:
                continue
            dims = [r["dim"] for r in rows]
            ax_r.plot(dims, [r["rounds"] for r in rows], marker=marker, label=f"{sampler} ({dev})")
            ax_t.plot(dims, [r["wall_ms"] for r in rows], marker=marker, label=f"{sampler} ({dev})")
            ax_t.plot(dims, [r["sequential_wall_ms"] for r in rows], marker=marker, linestyle="--",
                      label=f"sequential, {sampler}'s grid ({dev})")
    ax_r.set(xscale="log", xlabel="dimension D", ylabel="rounds (sequential model calls)",
             title="Rounds to converge vs dimension", ylim=(0, None))
    ax_t.set(xscale="log", yscale="log", xlabel="dimension D", ylabel="wall ms per batch",
             title="Wall time")
    for ax in (ax_r, ax_t):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
