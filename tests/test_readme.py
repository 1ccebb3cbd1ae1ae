"""Every code block in the README runs: Python blocks are executed, bermo-prune commands are run for real."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
COMMANDS = [
    line.split("#")[0].strip()
    for lang, code in BLOCKS
    if lang == "bash"
    for line in code.splitlines()
    if line.startswith("bermo-prune ")
]


def test_readme_has_blocks():
    assert len(PYTHON) >= 2 and len(COMMANDS) >= 2
    assert "make demo" in BLOCKS[0][1] and "make test" in BLOCKS[0][1]


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_python_block_runs(code):
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_block_runs(command, tmp_path):
    # Run directories go to a temporary directory, not into the checkout.
    argv = [str(tmp_path / a) if a.startswith("runs/") else a for a in shlex.split(command)]
    proc = subprocess.run(
        [sys.executable, "-m", "bermo_prune.cli", *argv[1:]],
        capture_output=True,
        text=True,
        cwd=README.parent,
    )
    assert proc.returncode == 0, proc.stderr
