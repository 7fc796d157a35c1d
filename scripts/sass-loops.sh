#!/usr/bin/env bash
# Static instruction counts of the Picard sweep kernels' main loops in SASS, without a GPU: compiles
# kernels/picard.cu for one architecture (default sm_90) with the pinned nvcc, disassembles it with
# cuobjdump/nvdisasm 13.2.51 (NVIDIA PyPI wheels, pinned by hash, installed into .cuda-tools/), and
# prints, per kernel instantiation, the registers ptxas reports and the instructions of its largest
# loop by class (tools/sass_loops.py). A static count is not a timing: the loop span includes paths
# not taken (the noise-table branch, the sqrt slow path), and issue efficiency is only measured on a
# GPU (benches/cuda_picard.rs).
#
# Usage (repo root, after scripts/setup-cuda.sh): scripts/sass-loops.sh [ARCH] [KERNEL_REGEX]
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-sm_90}
pattern=${2:-sweep}
nvcc=.cuda/nvidia/cu13/bin/nvcc
[ -x "$nvcc" ] || { echo "run scripts/setup-cuda.sh first" >&2; exit 1; }
tools=.cuda-tools
if [ ! -x $tools/nvidia/cu13/bin/nvdisasm ]; then
  req=$(mktemp)
  cat >"$req" <<'REQ'
nvidia-cuda-cuobjdump==13.2.51 --hash=sha256:95c69d3ddf0c2c1f535ec44c3433a66aeee19f588d9d22f73356e20b25f12b50
nvidia-cuda-nvdisasm==13.2.51 --hash=sha256:5a7acf77c55d6d2911ed6155d4d5bc156ffadf9df7a68a89b0c1155f4b13688c
REQ
  python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
    --no-deps --require-hashes --target $tools -r "$req"
  rm -f "$req"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$nvcc" -O3 -std=c++17 -cubin -arch="$arch" -Ikernels -Xptxas -v kernels/picard.cu -o "$work/picard.cubin" \
  2>"$work/ptxas.txt"
echo "registers (ptxas, $arch):"
grep -E "Compiling entry|Used [0-9]+ registers" "$work/ptxas.txt" | paste - - |
  sed -E "s/.*_picard_cu_[0-9a-f]+_?[0-9]+([a-z_0-9]+)(I[^']*)?'.*Used ([0-9]+) registers.*/  \1\2: \3/" |
  grep -E "$pattern" || true
echo "largest loop per kernel (static SASS instructions):"
PATH="$PWD/$tools/nvidia/cu13/bin:$PATH" cuobjdump -sass "$work/picard.cubin" >"$work/picard.sass"
python3 tools/sass_loops.py "$work/picard.sass" "$pattern"
