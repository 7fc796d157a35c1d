#!/usr/bin/env bash
# Run last by .gpu/run.sh on the GPU machine (from the repo root, $PICARDIFF_BIN = the staged CLI,
# $OUT = the folder that comes back). End-to-end latency: picardiff's bench matrix on CUDA, the
# dimension scaling, and the PyTorch peers on the same models, all in this one run.
# Knobs (env): MIXTURE=0 skips the mixture matrix, SCALING=0 the scaling study, PEER_COMPILE=1 adds
# torch.compile peers, MLP_SIZES (default "256 1024 4096") picks the bench MLPs, made in $MODELS
# unless already there (make them before .gpu/run.sh so benches/cuda_iteration.rs can use them);
# PEER_SIZES (default MLP_SIZES) picks the models the PyTorch peers run.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=${PICARDIFF_BIN:-target/release/picardiff}
PY=${PYTHON:-python3}
MODELS=${MODELS:-/tmp/picardiff-bench-models}
MLP_SIZES=${MLP_SIZES:-256 1024 4096}

# The sweep benches ran before this script: their bandwidth against the copy, as a table.
if grep -q "^cuda_picard_sweep/" "$OUT/gpu-report.txt" 2>/dev/null; then
  echo "== sweep bandwidth vs copy (tools/sweep_table.py -> \$OUT/sweep-table.md)"
  $PY tools/sweep_table.py "$OUT/gpu-report.txt" | tee "$OUT/sweep-table.md" || echo "FAILED: sweep table"
fi

if [[ ${MIXTURE:-1} == 1 ]]; then
echo "== picardiff bench: mixtures on cuda"
timeout 150 "$BIN" bench --device cuda --dims 2,64,1024,16384 --batches 1,16 --steps 100,1000 --repeat 3 \
  --json "$OUT/bench-cuda-mixture.json" --markdown "$OUT/bench-cuda-mixture.md" || echo "FAILED: bench mixture"
fi

if [[ ${SCALING:-1} == 1 ]]; then
echo "== scaling: rounds vs D on cuda (1000-step DDPM, tol 0.1, batch 4)"
timeout 90 "$BIN" bench --device cuda --dims 16,64,256,1024,4096,16384 --batches 4 --steps 1000 --repeat 1 \
  --json "$OUT/scaling-cuda.json" --markdown "$OUT/scaling-cuda.md" || echo "FAILED: scaling"
fi

missing=()
for h in $MLP_SIZES; do [[ -f $MODELS/mlp_h$h.safetensors ]] || missing+=("$h"); done
if (( ${#missing[@]} )); then
  echo "== bench models (MLPs briefly trained on the 64-D mixture): ${missing[*]}"
  timeout 120 $PY tools/make_bench_models.py "$MODELS" "${missing[@]}" || echo "FAILED: make_bench_models"
fi
files=$(for h in $MLP_SIZES; do printf '%s,' "$MODELS/mlp_h$h.safetensors"; done); files=${files%,}

echo "== picardiff bench: MLPs on cuda (f32; scan and drift forms; CUDA graphs on and off)"
timeout 200 "$BIN" bench --device cuda --dims --mlp "$files" --batches 1 --steps 1000 --repeat 3 \
  --window 1000,256,128 --forms scan,drift --graphs both --json "$OUT/bench-cuda-mlp.json" --markdown "$OUT/bench-cuda-mlp.md" \
  || echo "FAILED: bench mlp on cuda"

echo "== PyTorch peers on cuda (eager; ParaDiGMS with windows 1000 and 256; PEER_COMPILE=1 adds torch.compile)"
for h in ${PEER_SIZES:-$MLP_SIZES}; do
  for run in "sequential 1000" "paradigms 1000" "paradigms 256"; do
    set -- $run
    timeout 60 $PY benches/peers/torch_peer.py --model "$MODELS/mlp_h$h.safetensors" --device cuda --batch 1 --steps 1000 \
      --rule ddpm --sampler $1 --window $2 --tol 0.1 --repeat 3 || echo "FAILED: peer H=$h $run"
  done
done
if [[ ${PEER_COMPILE:-0} == 1 ]]; then
  for s in sequential paradigms; do
    timeout 100 $PY benches/peers/torch_peer.py --model "$MODELS/mlp_h1024.safetensors" --device cuda --batch 1 --steps 1000 \
      --rule ddpm --sampler $s --window 1000 --tol 0.1 --repeat 3 --compile || echo "FAILED: peer compile $s"
  done
fi
echo "== gpu-extra done"
