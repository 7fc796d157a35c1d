#!/usr/bin/env bash
# Checks that Cargo.toml's rust-version is at least every locked dependency's own rust-version
# (normal, build and dev dependencies of Cargo.lock), i.e. that the stated minimum is true.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --locked | python3 tools/check_msrv.py
