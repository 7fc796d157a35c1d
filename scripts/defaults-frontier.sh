#!/usr/bin/env bash
# The defaults' frontier (docs/perf/2026-12-07-defaults.md): `picardiff compare` with the picard
# sampler at its defaults against the previous defaults (scan at the rule's τ, named explicitly),
# on the example mixture and the trained mix64d MLPs (DDPM and flow), batch 16, seed 1 (the reach2d Diffusion Policy:
# scripts/policy-rounds.sh).
# Then Anderson acceleration on top of the defaults. Round counts and deviations are
# machine-independent. Prints two markdown tables.
# Usage: bash scripts/defaults-frontier.sh > table.md
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/picardiff
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One row: label, settings label, then compare's arguments.
row() {
    local label=$1 settings=$2
    shift 2
    "$bin" compare --sampler picard --device cpu --seed 1 --stats "$tmp/s.json" "$@" >/dev/null 2>&1
    python3 - "$label" "$settings" "$tmp/s.json" <<'EOF'
import json, sys
label, settings, path = sys.argv[1:]
s = json.load(open(path))
print(f"| {label} | {settings} | {s['rounds']} | {s['nfe']} | "
      f"{s['deviation_p50']:.1e} | {s['deviation_p90']:.1e} | {s['max_abs_diff']:.1e} |")
EOF
}

# Both settings of one grid: the previous default (scan, per-step τ) and today's.
pair() {
    local label=$1 tau=$2
    shift 2
    row "$label" "scan, τ $tau" --picard-form scan --tol "$tau" "$@"
    row "$label" "default" "$@"
}

echo "| model, grid | settings | rounds | nfe/sample | median dev | p90 dev | max dev |"
echo "|---|---|---|---|---|---|---|"
for model in examples/mixture_64d.json examples/models/mix64d.safetensors; do
    name=$(basename "$model")
    vp=(--model "$model" --schedule ddpm-linear --batch 16)
    for n in 8 10 16 25 100; do
        pair "$name DDIM-$n" 1e-3 "${vp[@]}" --steps "$n" --rule ddim
    done
    pair "$name DDPM-100" 0.1 "${vp[@]}" --steps 100 --rule ddpm
    pair "$name DPM-Solver++(2M)-20" 1e-3 "${vp[@]}" --steps 20 --rule dpmpp-2m --spacing dpm-linspace
    pair "$name DDPM-1000 (window 256)" 0.1 "${vp[@]}" --steps 1000 --rule ddpm
done
pair "mixture_64d.json flow Euler-10" 1e-3 --model examples/mixture_64d.json --schedule flow \
    --rule euler --steps 10 --batch 16
pair "mix64d_flow.safetensors flow Euler-10" 1e-3 --model examples/models/mix64d_flow.safetensors \
    --rule euler --steps 10 --batch 16
# The reach2d Diffusion Policy: scripts/policy-rounds.sh.

# Anderson acceleration (CPU only) on top of the defaults.
echo
echo "| model, grid | settings | rounds | nfe/sample | median dev | p90 dev | max dev |"
echo "|---|---|---|---|---|---|---|"
for model in examples/mixture_64d.json examples/models/mix64d.safetensors; do
    name=$(basename "$model")
    vp=(--model "$model" --schedule ddpm-linear --batch 16)
    for grid in "DDIM-25:--steps 25 --rule ddim" "DDIM-100:--steps 100 --rule ddim" \
        "DDPM-100:--steps 100 --rule ddpm" \
        "DPM-Solver++(2M)-20:--steps 20 --rule dpmpp-2m --spacing dpm-linspace"; do
        read -ra args <<< "${grid#*:}"
        for m in 2 3 5; do
            row "$name ${grid%%:*}" "default + anderson $m" "${vp[@]}" "${args[@]}" --anderson "$m"
        done
    done
done
