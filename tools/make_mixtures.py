#!/usr/bin/env python3
"""Writes the example mixtures examples/mixture_2d.json and examples/mixture_64d.json.

The formulas are the same as `mixture_2d` / `mixture_64d` in tests/common/mod.rs and in the
`picardiff demo` command (src/cli/demo.rs); tests/cli.rs checks that the files match them.
Run from the repository root: python3 tools/make_mixtures.py
"""
import json
import os


def mixture_2d():
    return {
        "weights": [0.3, 0.7],
        "means": [[-2.0, 1.0], [1.5, -1.0]],
        "stds": [0.4, 0.6],
    }


def mixture_64d():
    k, d = 8, 64
    return {
        "weights": [1.0 + i * 0.25 for i in range(k)],
        "means": [[1.5 * (((i * 7 + j * 3) % 11) / 5.0 - 1.0) for j in range(d)] for i in range(k)],
        "stds": [0.3 + 0.05 * i for i in range(k)],
    }


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
    os.makedirs(root, exist_ok=True)
    for name, mix in [("mixture_2d.json", mixture_2d()), ("mixture_64d.json", mixture_64d())]:
        with open(os.path.join(root, name), "w") as f:
            json.dump(mix, f)
            f.write("\n")


if __name__ == "__main__":
    main()
