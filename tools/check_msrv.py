#!/usr/bin/env python3
"""Reads `cargo metadata` JSON on stdin; fails unless picardiff's rust-version is at least every
locked dependency's own rust-version (scripts/check-msrv.sh)."""
import json
import sys


def ver(v):
    return tuple(int(x) for x in ((v or "0").split(".") + ["0", "0"])[:3])


d = json.load(sys.stdin)
ours = next(p for p in d["packages"] if p["name"] == "picardiff")["rust_version"]
need, name = max((ver(p.get("rust_version")), p["name"]) for p in d["packages"] if p["name"] != "picardiff")
shown = ".".join(map(str, need))
if ver(ours) < need:
    sys.exit(f"rust-version {ours} in Cargo.toml is below the {shown} that {name} needs")
print(f"msrv: rust-version {ours} covers every locked dependency (highest: {name}, {shown})")
