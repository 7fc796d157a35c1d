#!/usr/bin/env bash
# CPU latency figures for docs/perf: picardiff's bench matrix on the CPU and the PyTorch CPU peers on
# the same models, in one run on one machine. Needs a Python with torch, numpy and safetensors
# (PYTHON=..., e.g. a venv outside the repo: python3 -m venv /tmp/v && /tmp/v/bin/pip install torch safetensors numpy).
# Usage: PYTHON=/path/to/python scripts/cpu-bench.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/picardiff-cpu-bench}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
THREADS=$(nproc)
cargo build --release --quiet
BIN=target/release/picardiff
$PY tools/make_bench_models.py "$OUT/models" 256 > /dev/null
H256="$OUT/models/mlp_h256.safetensors"
{
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $THREADS cores; $(date -u +%F)"
  echo
  $BIN bench --device cpu --dims 2,64,1024 --mlp "$H256" --batches 1,16 --steps 100,1000 --repeat 3 --json "$OUT/bench-cpu.json"
  echo
  echo "PyTorch peers ($THREADS threads, eager), 1000-step DDPM, batch 1:"
  echo
  echo "| model | sampler | rounds | nfe | wall ms | max dev |"
  echo "|---|---|---|---|---|---|"
  for m in examples/mixture_64d.json "$H256"; do
    for s in sequential paradigms; do
      $PY benches/peers/torch_peer.py --model "$m" --device cpu --threads "$THREADS" --batch 1 --steps 1000 \
        --sampler $s --repeat 3 | $PY -c 'import json,sys; r=json.load(sys.stdin); print("| %s | %s | %d | %d | %.2f | %s |" % (r["model"].split("/")[-1], r["sampler"], r["rounds"], r["nfe"], r["wall_ms"], "%.2e" % r["max_abs_diff"] if "max_abs_diff" in r else "(reference)"))'
    done
  done
} | tee "$OUT/cpu-bench.md"
