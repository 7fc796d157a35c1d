#!/usr/bin/env bash
# Create the Python venv for the LeRobot reference tools, OUTSIDE the repository:
#
#   ${PICARDIFF_LEROBOT_VENV:-$HOME/.cache/picardiff/lerobot-venv}
#
# with the packages pinned in scripts/lerobot-requirements.txt (lerobot 0.6.1, diffusers 0.39.0,
# torch 2.11.0 from PyPI, ...), all installed with --no-deps so that the list is the whole
# environment. Used by tools/lerobot_reference.py, tools/train_lerobot_example.py and
# benches/peers/lerobot_sample.py.
#
# Usage (from anywhere):  bash scripts/setup-lerobot-venv.sh
# Then:                   "$(bash scripts/setup-lerobot-venv.sh | tail -n 1)/bin/python" tools/...
#
# Python: lerobot 0.6.1 requires Python >= 3.12 (its processor/pipeline.py does not even parse on
# 3.11), so the machine's python3 (3.11) is not enough. The interpreter is, in order:
# $PICARDIFF_LEROBOT_PYTHON, python3.13 / python3.12 / python3 on PATH if >= 3.12, or the newest
# pyenv-installed 3.12+ under ${PYENV_ROOT:-$HOME/.pyenv}/versions.
#
# torch: PyPI's Linux wheel is the CUDA build and its libraries link the CUDA runtime libraries, so
# `import torch` needs the nvidia-* wheels even for CPU work (no CPU-only wheel exists on PyPI). The
# requirements file installs only the libraries torch links against, not triton / cuda-bindings;
# the venv is about 4 GB. See the comments in scripts/lerobot-requirements.txt.
#
# Idempotent: when the venv exists and was built from the same requirements file and Python (a
# stamp with the file's sha256 and the Python version) and its imports work, nothing is installed.
# The last line printed is the venv path.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REQ="$ROOT/scripts/lerobot-requirements.txt"
VENV="${PICARDIFF_LEROBOT_VENV:-$HOME/.cache/picardiff/lerobot-venv}"
STAMP="$VENV/.picardiff-requirements.sha256"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"

check_imports() {
  "$VENV/bin/python" - <<'EOF'
import torch, torchvision, diffusers, lerobot, safetensors, numpy, matplotlib
from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
torch.set_num_threads(1)
assert float(torch.ones(2) @ torch.ones(2)) == 2.0
print(f"lerobot {lerobot.__version__}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
      f"numpy {numpy.__version__}, python {'.'.join(map(str, __import__('sys').version_info[:3]))}")
EOF
}

# --- pick a Python >= 3.12 (the oldest one found: 3.12 is what lerobot 0.6.1 is tested on)
py_ok() { "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
PY=""
if [ -n "${PICARDIFF_LEROBOT_PYTHON:-}" ]; then
  py_ok "$PICARDIFF_LEROBOT_PYTHON" || { echo "PICARDIFF_LEROBOT_PYTHON=$PICARDIFF_LEROBOT_PYTHON is not a Python >= 3.12" >&2; exit 1; }
  PY="$PICARDIFF_LEROBOT_PYTHON"
else
  for c in python3.12 python3.13 python3; do
    if command -v "$c" >/dev/null 2>&1 && py_ok "$c"; then PY="$(command -v "$c")"; break; fi
  done
  if [ -z "$PY" ]; then
    for c in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]* 2>/dev/null | sort -V); do
      if py_ok "$c/bin/python3"; then PY="$c/bin/python3"; break; fi
    done
  fi
fi
if [ -z "$PY" ]; then
  echo "no Python >= 3.12 found (lerobot 0.6.1 requires it); set PICARDIFF_LEROBOT_PYTHON" >&2
  exit 1
fi

WANT="$WANT $("$PY" -c 'import sys; print(sys.version.split()[0])')"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && check_imports; then
  echo "lerobot venv already complete"
  echo "$VENV"
  exit 0
fi

# --- disk: the venv is about 4 GB, the pip cache as much again on a first install
mkdir -p "$(dirname "$VENV")"
df -h "$(dirname "$VENV")" | tail -n 1
avail_kb="$(df -Pk "$(dirname "$VENV")" | awk 'NR==2 {print $4}')"
if [ "$avail_kb" -lt $((9 * 1024 * 1024)) ]; then
  echo "need about 9 GB free under $(dirname "$VENV") (venv + pip cache); have $((avail_kb / 1024)) MB" >&2
  exit 1
fi

if [ -e "$VENV" ]; then
  [ -f "$VENV/pyvenv.cfg" ] || { echo "$VENV exists and is not a venv; not touching it" >&2; exit 1; }
  # A venv of another Python or another requirements file: start again (pip does not downgrade
  # cleanly with --no-deps and stale packages would stay behind).
  echo "rebuilding $VENV"
  rm -rf "$VENV"
fi
echo "python: $PY ($("$PY" --version 2>&1))"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQ"
check_imports
echo "$WANT" >"$STAMP"
du -sh "$VENV" | cut -f1 | sed 's/^/venv size: /'
echo "$VENV"
