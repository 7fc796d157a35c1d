#!/usr/bin/env bash
# Install the pinned CUDA 13.0 nvcc (from NVIDIA's PyPI wheels) into .cuda/ at the repo root, and
# libclang-dev (for bindgen) when dpkg says it is missing.
#
# Why pinned: nvidia-cuda-nvcc alone pulls a newer nvvm/crt whose PTX neither ptxas 13.0 nor the
# GPU machine's driver (CUDA 13.0) accepts; all five wheels are pinned with hashes in
# scripts/cuda-requirements.txt (see docs/toolchain.md in the shared docs).
#
# Usage (from the repo root): scripts/setup-cuda.sh
# Afterwards nvcc is .cuda/nvidia/cu13/bin/nvcc (call it by full path; it needs gcc on PATH).
# Idempotent: does nothing when that nvcc already exists (pip --target does not merge folders).
set -euo pipefail

cd "$(dirname "$0")/.."

# bindgen (used by build.rs with `--features cuda`) needs libclang; Debian's package is libclang-dev.
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s libclang-dev >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -q libclang-dev >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q libclang-dev >/dev/null; }
fi

[ -x .cuda/nvidia/cu13/bin/nvcc ] ||
  python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
    --no-deps --require-hashes --target .cuda -r scripts/cuda-requirements.txt

.cuda/nvidia/cu13/bin/nvcc --version | tail -n 2
