#!/usr/bin/env bash
# Diffusion Policy on the CPU: LeRobot's own `conditional_sample` (PyTorch eager, f32) against
# picardiff's sequential sampler on the same policy directories, config by config in one run on
# one machine, with the same thread count. LeRobot builds each policy (random weights) and saves it
# with save_pretrained; picardiff then samples that directory as it is.
#
# Needs the LeRobot venv (bash scripts/setup-lerobot-venv.sh; about 4 GB, outside the repo).
# Usage: scripts/dp-cpu-bench.sh OUT_DIR [THREADS] [SPEC ...]
#   SPEC = CONFIG:BATCH:SCHEDULER with CONFIG lowdim|image16|image64 and SCHEDULER ddim10|ddpm100
#   (default: the specs below). Writes OUT_DIR/lerobot.jsonl, OUT_DIR/picardiff.jsonl and
#   OUT_DIR/dp-cpu.md (the table), and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/picardiff-dp-cpu}
THREADS=${2:-1}
shift $(($# > 2 ? 2 : $#))
SPECS=("$@")
if [ ${#SPECS[@]} -eq 0 ]; then
  SPECS=(lowdim:1:ddim10 lowdim:8:ddim10 lowdim:1:ddpm100 lowdim:8:ddpm100 image16:1:ddim10 image64:1:ddim10)
fi
REPEAT=${REPEAT:-5}
mkdir -p "$OUT"
PY="$(bash scripts/setup-lerobot-venv.sh | tail -n 1)/bin/python"
cargo build --release --quiet
BIN=target/release/picardiff
: >"$OUT/lerobot.jsonl"
: >"$OUT/picardiff.jsonl"
for spec in "${SPECS[@]}"; do
  IFS=: read -r config batch sched <<<"$spec"
  "$PY" benches/peers/lerobot_sample.py --configs "$config" --batch "$batch" --schedulers "$sched" \
    --repeat 3 --warmup 1 --threads "$THREADS" --save-dir "$OUT" --out "$OUT/lerobot.jsonl" >/dev/null
  width=$(tail -n 1 "$OUT/lerobot.jsonl" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["global_cond_dim"])')
  "$PY" -c "import numpy as np; np.save('$OUT/cond.npy', np.random.default_rng(1).standard_normal(($batch, $width)).astype(np.float32))"
  rule=${sched%%[0-9]*}
  steps=${sched#"$rule"}
  for i in $(seq 0 "$REPEAT"); do # run 0 is the warm-up
    RAYON_NUM_THREADS=$THREADS "$BIN" sample --model "$OUT/$config" --cond "$OUT/cond.npy" \
      --rule "$rule" --steps "$steps" --sampler sequential --device cpu \
      --out "$OUT/actions.npy" --stats "$OUT/stats.json" 2>/dev/null
    [ "$i" -eq 0 ] && continue
    "$PY" -c "import json; s=json.load(open('$OUT/stats.json')); print(json.dumps({'config': '$config', 'batch': $batch, 'scheduler': '$sched', 'threads': $THREADS, 'wall_ms': s['wall_ms'], 'loadavg_1min': __import__('os').getloadavg()[0]}))" >>"$OUT/picardiff.jsonl"
  done
done
"$PY" - "$OUT" <<'EOF' | tee "$OUT/dp-cpu.md"
import json, statistics, subprocess, sys
out = sys.argv[1]
lr = [json.loads(l) for l in open(f"{out}/lerobot.jsonl")]
pd = [json.loads(l) for l in open(f"{out}/picardiff.jsonl")]
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"machine: {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; commit {commit}")
print()
print("| config | U-Net params | batch | scheduler | threads | LeRobot ms (median of 3) | picardiff ms (median; min–max) | speedup |")
print("|---|---|---|---|---|---|---|---|")
for r in lr:
    if "error" in r:
        print(f"| {r['config']} | | | | | error: {r['error'][:80]} | | |")
        continue
    mine = [p["wall_ms"] for p in pd if (p["config"], p["batch"], p["scheduler"]) == (r["config"], r["batch"], r["scheduler"])]
    if not mine:
        continue
    m = statistics.median(mine)
    print(f"| {r['config']} | {r['unet_params'] / 1e6:.1f}M | {r['batch']} | {r['scheduler']} | {r['torch_threads']} | "
          f"{r['median_ms']:.0f} | {m:.0f} ({min(mine):.0f}–{max(mine):.0f}) | {r['median_ms'] / m:.2f}× |")
EOF
