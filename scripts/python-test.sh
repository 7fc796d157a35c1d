#!/usr/bin/env bash
# Builds and installs the Python module with the documented command (`pip install ./python`) into a
# venv outside the repository, then runs its tests (`pytest python/tests`). Needs python3 (3.11
# here; the module supports 3.9+), a Rust toolchain and PyPI; no PyTorch.
#
# The policy tests read tests/data/lerobot (no torch). test_lerobot.py compares against LeRobot
# itself: under pytest here it skips (no torch); when $PICARDIFF_LEROBOT_PYTHON (default
# ~/.cache/picardiff/lerobot-venv/bin/python, from scripts/setup-lerobot-venv.sh) imports lerobot
# and torch, it also runs there as a script, against the module built here (nothing is installed
# into that venv).
#
# Environment: PICARDIFF_PY_VENV (default ~/.cache/picardiff/py-venv), PYTHON (default python3),
# PICARDIFF_BIN (the CLI the tests compare with; default target/{release,debug}/picardiff).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

venv="${PICARDIFF_PY_VENV:-$HOME/.cache/picardiff/py-venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
pip=("$py" -m pip --disable-pip-version-check)
echo "== pinned tools (python/requirements-test.txt)"
"${pip[@]}" install --quiet -r python/requirements-test.txt

echo "== pip install ./python (maturin builds the extension module, release profile)"
"${pip[@]}" uninstall --quiet --yes picardiff >/dev/null 2>&1 || true
start=$(date +%s)
"${pip[@]}" install ./python
echo "== built and installed in $(( $(date +%s) - start )) s"

lerobot_py="${PICARDIFF_LEROBOT_PYTHON:-$HOME/.cache/picardiff/lerobot-venv/bin/python}"
if [ -x "$lerobot_py" ] && "$lerobot_py" -c "import lerobot, torch" >/dev/null 2>&1; then
  echo "== test_lerobot.py under $lerobot_py (LeRobot's own sampler)"
  # The installed package (abi3: any CPython >= 3.9) on that interpreter's path, alone.
  pkg=$("$py" -c "import os, picardiff; print(os.path.dirname(picardiff.__file__))")
  shim=$(mktemp -d)
  trap 'rm -rf "$shim"' EXIT
  ln -s "$pkg" "$shim/picardiff"
  (cd "$repo/python/tests" && PYTHONPATH="$shim" "$lerobot_py" test_lerobot.py)
else
  echo "== no LeRobot environment at $lerobot_py: test_lerobot.py skips"
fi

echo "== pytest python/tests"
# From the tests folder, so that `import picardiff` is the installed package, not python/picardiff.
cd "$repo/python/tests"
"$py" -m pytest -q -rs -p no:cacheprovider .
