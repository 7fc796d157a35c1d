"""Shared paths: the repository's example models, the CLI binary and the LeRobot fixtures."""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MIXTURE_2D = REPO / "examples" / "mixture_2d.json"
MIXTURE_64D = REPO / "examples" / "mixture_64d.json"
MOONS = REPO / "examples" / "models" / "moons2d.safetensors"


def cli_binary():
    """The `picardiff` CLI: $PICARDIFF_BIN, else the repository's release or debug build (CI's
    `cargo test` builds target/debug/picardiff), else `picardiff` on PATH; None if there is none."""
    env = os.environ.get("PICARDIFF_BIN")
    if env:
        return env
    for p in (REPO / "target" / "release" / "picardiff", REPO / "target" / "debug" / "picardiff"):
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which("picardiff")


def lerobot_fixtures():
    """LeRobot fixture directories with a reference.json: $PICARDIFF_LEROBOT_FIXTURES, else the
    repository's tests/data/lerobot."""
    root = Path(os.environ.get("PICARDIFF_LEROBOT_FIXTURES", REPO / "tests" / "data" / "lerobot"))
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if (d / "reference.json").is_file() and (d / "model.safetensors").is_file())


@pytest.fixture
def cli():
    exe = cli_binary()
    if exe is None:
        pytest.skip("no picardiff CLI binary (set PICARDIFF_BIN or build target/release/picardiff)")
    return exe
