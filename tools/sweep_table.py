#!/usr/bin/env python3
"""The sweep-bandwidth table of a GPU run: reads the criterion output of benches/cuda_picard.rs in a
gpu-report.txt (.gpu/run.sh) and prints, per size, every `cuda_picard_sweep` variant's median
throughput and its share of the device-to-device copy of the same bytes measured in the same run
(issue 3's target: >= 80% at >= 2^24 elements), as a markdown table.

    python3 tools/sweep_table.py gpu-report.txt
"""
import re
import sys
from collections import defaultdict

COPY = "dtod_copy_same_bytes"


def main(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    # A benchmark id line, then (within a few lines) its `thrpt: [low median high unit]` line.
    pattern = re.compile(
        r"^cuda_picard_sweep/(\S+)/(2\^\d+)_\S+\s*\n(?:.*\n){0,4}?\s*thrpt:\s*\[\S+ \S+ (\S+) (\S+) ",
        re.M,
    )
    sizes = defaultdict(dict)
    for variant, size, median, unit in pattern.findall(text):
        scale = {"GiB/s": 1.0, "MiB/s": 1 / 1024, "TiB/s": 1024}[unit]
        sizes[size][variant] = float(median) * scale
    if not sizes:
        sys.exit(f"{path}: no cuda_picard_sweep throughput lines")
    print("| elements | variant | GiB/s | of copy |")
    print("|---|---|---|---|")
    for size in sorted(sizes, key=lambda s: int(s[2:])):
        row = sizes[size]
        copy = row.get(COPY)
        for variant, gib in sorted(row.items(), key=lambda kv: (kv[0] == COPY, kv[0])):
            share = f"{100 * gib / copy:.0f}%" if copy else "—"
            print(f"| {size} | {variant} | {gib:.0f} | {share} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu-report.txt")
