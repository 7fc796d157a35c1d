#!/usr/bin/env bash
# Runs the CUDA kernels on the CPU, in a small emulation of the CUDA features they use
# (cuda_runtime.h here: coroutine threads per block, __syncthreads and warp shuffles as barriers,
# the __f*_rn intrinsics as plain IEEE operations), against the CPU backend: Philox normals and the
# sequential step bit for bit (with and without the clipped-x0 columns), 255 Picard
# sweep/advance/new-slot cases (iterate bits, error sums,
# window state, times), the non-finite path, the mixture-score kernels (with naive GEMMs) and the
# bias/activation epilogue. It checks kernel LOGIC only: no timing, memory model, real warp
# scheduling, cudarc or cuBLAS. The U-Net's op kernels (check/src/ops.rs, naive GEMMs for cuBLAS's
# part) run too; `run.sh ops` runs only them. Takes minutes on 2 cores; `run.sh quick` (CI) checks
# 100 Picard cases instead of 255 (30 of them the final-sample stop) (every kernel path still). Needs g++ >= 12 (C++20) and the
# bindings from a `cargo build --features cuda` of the main crate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${EMU_WORK:-$root/target/cuda-emu}
mkdir -p "$work/gen" "$work/obj"
bindings=$(ls -t "${CARGO_TARGET_DIR:-$root/target}"/*/build/picardiff-*/out/picardiff_kernels.rs 2>/dev/null | head -1 || true)
[[ -n $bindings ]] || { echo "run 'cargo build --features cuda' first (for the kernel bindings)" >&2; exit 1; }
cp "$bindings" "$work/picardiff_kernels.rs"
python3 "$here/gen.py" "$work/gen"
for f in "$work"/gen/*.cu; do
  g++ -x c++ -std=c++20 -O1 -ffp-contract=off -fPIC -D__CUDACC__ -D__CUDA_ARCH__=900 \
    -I"$here" -I"$work/gen" -c "$f" -o "$work/obj/$(basename "$f" .cu).o"
done
rm -f "$work/libemu.a" && ar rcs "$work/libemu.a" "$work"/obj/*.o
cd "$here/check"
EMU_LIB_DIR="$work" CARGO_TARGET_DIR="$work/target" cargo run -q -- "$@"
