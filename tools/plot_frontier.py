"""Plots the rounds–deviation frontier of `cargo run --release --example frontier` (its markdown
tables): per rule family, rounds against the 90th-percentile per-sample deviation from sequential,
one line per sampler form as τ sweeps, one panel row per model. Tables of the final-sample sweep
(`-- mixture|mlp final`, with a final_tol column) add a line per form at τ = 0 as final_tol sweeps, and
a star at the default where the window holds every step (drift, τ = 0, final_tol 1e-3:
`picardiff::defaults`). Tables with the same model heading share a panel row.

    python3 tools/plot_frontier.py docs/perf/2026-12-04-frontier/{mixture,mlp}.md \
        docs/perf/2026-12-07-final-stop/{mixture,mlp}.md /tmp/frontier.png
    # docs/img/frontier.png to update it
Needs matplotlib (tools/requirements.txt).
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


DEFAULT = ("picard drift, τ = 0 + final_tol", 1e-3)
WINDOW = 256  # the default window (picardiff::defaults::WINDOW): longer grids keep the per-step test


def steps(rule):
    """The steps of a rule label such as `DDIM-100` or `DPM-Solver++(2M)-20`."""
    return int(rule.rsplit("-", 1)[1])


def read(path, models):
    """Adds {rule: {form: [(tau, rounds, p50, p90)]}} to models[title] (title: the model heading).
    In a final-sample table the sweep parameter is final_tol and only the τ = 0 rows count."""
    title = path
    for line in open(path, encoding="utf-8"):
        if line.startswith("### "):
            title = line[4:].strip()
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 8 or cells[0] in ("rule", "---") or cells[1] == "sequential":
            continue
        try:
            if len(cells) == 8:
                form = cells[1]
                tau, rounds, p50, p90 = float(cells[2]), int(cells[3]), float(cells[5]), float(cells[6])
            elif len(cells) == 9 and cells[2] == "0" and cells[3] != "off":
                form = f"{cells[1]}, τ = 0 + final_tol"
                tau, rounds, p50, p90 = float(cells[3]), int(cells[4]), float(cells[6]), float(cells[7])
            else:
                continue
        except ValueError:
            continue
        rows = models.setdefault(title, {})
        rows.setdefault(cells[0], {}).setdefault(form, []).append((tau, rounds, p50, p90))


def main():
    *inputs, out = sys.argv[1:]
    by_title = {}
    for p in inputs:
        read(p, by_title)
    models = list(by_title.items())
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
                for tau, rounds, _, p90 in pts:
                    if (form, tau) == DEFAULT and steps(rule) <= WINDOW:
                        ax.plot([max(p90, 1e-7)], [rounds], "*", color="black", ms=11, zorder=5,
                                label="default" if (i, j) == (0, 0) else None)
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
