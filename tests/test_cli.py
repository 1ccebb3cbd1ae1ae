"""The console entry point: what a user sees from the shell."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import ROOT


def test_a_closed_pipe_ends_the_command_quietly():
    """`bermo-prune list | head -0`: the reader is gone before anything is written; no traceback, exit 0."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bermo_prune.cli", "list"],
            stdout=write,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            timeout=120,
        )
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr
