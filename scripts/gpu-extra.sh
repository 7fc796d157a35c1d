#!/usr/bin/env bash
# Run last by .gpu/run.sh on the GPU machine (from the repo root, $PICARDIFF_BIN = the staged CLI,
# $OUT = the folder that comes back). End-to-end latency: picardiff's bench matrix on CUDA, the
# dimension scaling, and the PyTorch peers on the same models, all in this one run.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=${PICARDIFF_BIN:-target/release/picardiff}
PY=${PYTHON:-python3}
MODELS=/tmp/picardiff-bench-models

echo "== picardiff bench: mixtures on cuda"
timeout 150 "$BIN" bench --device cuda --dims 2,64,1024,16384 --batches 1,16 --steps 100,1000 --repeat 3 \
  --json "$OUT/bench-cuda-mixture.json" --markdown "$OUT/bench-cuda-mixture.md" || echo "FAILED: bench mixture"

if [[ ${SCALING:-1} == 1 ]]; then
echo "== scaling: rounds vs D on cuda (1000-step DDPM, tol 0.1, batch 4)"
timeout 90 "$BIN" bench --device cuda --dims 16,64,256,1024,4096,16384 --batches 4 --steps 1000 --repeat 1 \
  --json "$OUT/scaling-cuda.json" --markdown "$OUT/scaling-cuda.md" || echo "FAILED: scaling"
fi

echo "== bench models (random-init MLPs, D = 64)"
timeout 90 $PY tools/make_bench_models.py "$MODELS" 256 1024 4096 || echo "FAILED: make_bench_models"

echo "== picardiff bench: MLPs on cuda (f32)"
timeout 150 "$BIN" bench --device cuda --dims --mlp "$MODELS/mlp_h256.safetensors,$MODELS/mlp_h1024.safetensors,$MODELS/mlp_h4096.safetensors" \
  --batches 1,16 --steps 100,1000 --repeat 3 --json "$OUT/bench-cuda-mlp.json" --markdown "$OUT/bench-cuda-mlp.md" \
  || echo "FAILED: bench mlp on cuda"

echo "== PyTorch peers on cuda (eager; PEER_COMPILE=1 adds torch.compile for H=1024)"
for m in examples/mixture_64d.json "$MODELS/mlp_h256.safetensors" "$MODELS/mlp_h1024.safetensors" "$MODELS/mlp_h4096.safetensors"; do
  for s in sequential paradigms; do
    timeout 60 $PY benches/peers/torch_peer.py --model "$m" --device cuda --batch 1 --steps 1000 --rule ddpm \
      --sampler $s --window 1000 --tol 0.1 --repeat 3 || echo "FAILED: peer $m $s"
  done
done
if [[ ${PEER_COMPILE:-0} == 1 ]]; then
  for s in sequential paradigms; do
    timeout 120 $PY benches/peers/torch_peer.py --model "$MODELS/mlp_h1024.safetensors" --device cuda --batch 1 --steps 1000 \
      --rule ddpm --sampler $s --window 1000 --tol 0.1 --repeat 3 --compile || echo "FAILED: peer compile $s"
  done
fi
echo "== gpu-extra done"
