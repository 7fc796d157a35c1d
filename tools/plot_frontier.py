"""Plots the rounds–deviation frontier of `cargo run --release --example frontier` (its markdown
tables): per rule family, rounds against the 90th-percentile per-sample deviation from sequential,
one line per sampler form, one panel row per model.

    python3 tools/plot_frontier.py docs/perf/2026-12-04-frontier/mixture.md \
        docs/perf/2026-12-04-frontier/mlp.md /tmp/frontier.png   # docs/img/frontier.png to update it
Needs matplotlib (tools/requirements.txt).
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    """{rule: {form: [(tau, rounds, p50, p90)]}} and the model's title."""
    rows, title = {}, path
    for line in open(path, encoding="utf-8"):
        if line.startswith("### "):
            title = line[4:].strip()
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or cells[0] in ("rule", "---") or cells[1] == "sequential":
            continue
        try:
            tau, rounds, p50, p90 = float(cells[2]), int(cells[3]), float(cells[5]), float(cells[6])
        except ValueError:
            continue
        rows.setdefault(cells[0], {}).setdefault(cells[1], []).append((tau, rounds, p50, p90))
    return title, rows


def main():
    *inputs, out = sys.argv[1:]
    models = [read(p) for p in inputs]
    rules = list(models[0][1])
    fig, axes = plt.subplots(len(models), len(rules), figsize=(3.2 * len(rules), 3.0 * len(models)),
                             squeeze=False)
    for i, (title, rows) in enumerate(models):
        for j, rule in enumerate(rules):
            ax = axes[i][j]
            if rule not in rows:
                ax.set_visible(False)
                continue
            for form, pts in rows.get(rule, {}).items():
                pts = sorted(pts)
                ax.plot([max(p[3], 1e-7) for p in pts], [p[1] for p in pts], "o-", label=form, ms=3)
            ax.axvline(1e-3, color="grey", lw=0.6, ls="--")
            ax.set_xscale("log")
            ax.set_title(f"{rule}\n{title.split(' (')[0].split('/')[-1]}", fontsize=8)
            ax.set_xlabel("p90 deviation from sequential", fontsize=7)
            if j == 0:
                ax.set_ylabel("rounds", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
