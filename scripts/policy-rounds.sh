#!/usr/bin/env bash
# Rounds and per-sample deviation of Picard against sequential sampling on the trained reach2d
# policy (examples/models/reach2d_policy), for LeRobot's DDPM-100 and the DDIM-8/10/16 settings of
# real robots, each with the policy's x0 clipping and window = all steps: the defaults (drift at
# τ = 0 stopped by the final samples) and ParaDiGMS' per-step test at a given τ (scan unless named);
# the 8 test conditions of examples/reach2d_cond.npy, each sampled 6 times.
# Usage: scripts/policy-rounds.sh [picardiff binary] > table.md      (python3, standard library only)
set -euo pipefail
cd "$(dirname "$0")/.."
exe="${1:-target/release/picardiff}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/cond.npy" <<'PY'
import ast, struct, sys
raw = open("examples/reach2d_cond.npy", "rb").read()
hlen = struct.unpack("<H", raw[8:10])[0]
head = ast.literal_eval(raw[10:10 + hlen].decode())
assert head["descr"] == "<f4" and not head["fortran_order"]
rows, width = head["shape"]
data = raw[10 + hlen:]
out = b"".join(data[r * width * 4:(r + 1) * width * 4] * 6 for r in range(rows))
h = ("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows * 6, width)).encode()
h += b" " * (63 - (10 + len(h)) % 64) + b"\n"
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + out)
PY
echo "| scheduler | tol | final_tol | form | rounds | sequential rounds | nfe/sample | median dev | p90 dev | max dev |"
echo "|---|---|---|---|---|---|---|---|---|---|"
run() {  # label, extra args...
  local label="$1"; shift
  "$exe" compare --model examples/models/reach2d_policy --cond "$tmp/cond.npy" --device cpu --seed 5 \
    --stats "$tmp/s.json" "$@" >/dev/null
  python3 - "$label" "$tmp/s.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[2]))
ft = "off" if s["final_tol"] is None else f"{s['final_tol']:g}"
print(f"| {sys.argv[1]} | {s['tol']:g} | {ft} | {s['picard_form']} | {s['rounds']} | {s['sequential_rounds']} | {s['nfe']} | "
      f"{s['deviation_p50']:.1e} | {s['deviation_p90']:.1e} | {s['max_abs_diff']:.1e} |")
PY
}
run "DDPM-100" --rule ddpm --steps 100
run "DDPM-100" --rule ddpm --steps 100 --tol 0.1
run "DDPM-100" --rule ddpm --steps 100 --tol 0.01
run "DDPM-100" --rule ddpm --steps 100 --tol 0.1 --picard-form drift
for n in 16 10 8; do
  run "DDIM-$n" --rule ddim --steps "$n"
  run "DDIM-$n" --rule ddim --steps "$n" --tol 1e-3
done
