"""The README's Python section runs as written (from the repository root, as the README says)."""

import os
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]


def python_blocks():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_section_runs(capsys):
    blocks = python_blocks()
    assert blocks, "the README's Python section has no python block"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        for code in blocks:
            exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "rounds for 1000 steps" in out and "max |picard - sequential|" in out, out
