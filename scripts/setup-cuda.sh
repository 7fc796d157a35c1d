#!/usr/bin/env bash
# Install the pinned CUDA 13.0 nvcc (from NVIDIA's PyPI wheels) into .cuda/ at the repo root.
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

[ -x .cuda/nvidia/cu13/bin/nvcc ] ||
  python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
    --no-deps --require-hashes --target .cuda -r scripts/cuda-requirements.txt

.cuda/nvidia/cu13/bin/nvcc --version | tail -n 2
