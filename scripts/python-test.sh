#!/usr/bin/env bash
# Builds and installs the Python module (`pip install ./python`) into a venv outside the repo and
# runs its tests (`pytest python/tests`). Needs python3 (3.9+; 3.11 here), a Rust toolchain and
# PyPI. No PyTorch: the LeRobot test skips unless PICARDIFF_LEROBOT_PYTHON names a Python with
# lerobot and torch (it then runs there, against this build).
#
# Environment: PICARDIFF_PY_VENV (default ~/.cache/picardiff/py-venv), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${PICARDIFF_PY_VENV:-$HOME/.cache/picardiff/py-venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  "$python" -m venv "$venv"
fi
echo "== pinned tools (python/requirements-test.txt)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt

echo "== pip install ./python (maturin builds the extension module in release mode)"
start=$(date +%s)
"$venv/bin/python" -m pip uninstall --quiet --yes picardiff 2>/dev/null || true
"$venv/bin/python" -m pip install --disable-pip-version-check ./python
echo "== built and installed in $(( $(date +%s) - start )) s"

echo "== pytest python/tests"
# Run from outside the source tree so that `import picardiff` is the installed module.
cd python/tests
"$venv/bin/python" -m pytest -q -rs .
