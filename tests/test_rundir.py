"""`rundir`: nothing lost when things go wrong: the run-directory lock, checkpoints that survive a crash, the
checkpoint a SIGTERM/SIGINT writes, ``--overwrite`` rules, bad files and directories that write nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bermo_prune.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, main
from bermo_prune.errors import InputError
from bermo_prune.rundir import LOCK, RunLock, load_checkpoint, save_checkpoint

from .conftest import QUICK, ROOT, TINY, metrics_steps

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
CMD = [sys.executable, "-m", "bermo_prune.cli", "run", QUICK]
# 600 steps of the tiny quick start: long enough to be caught mid-run, a few seconds in all.
ARGS = [*TINY, "train.max_steps=600", "train.eval_every=200"]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CMD, *ARGS, *extra, "--quiet", "--output-dir", str(out)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_step(proc: subprocess.Popen, out: Path, step: int) -> None:
    deadline = time.time() + 300
    while metrics_steps(out / "metrics.jsonl") < step and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the test could act on it"


def _same_result(a: Path, b: Path) -> None:
    """Two finished runs with identical results: metrics, history, masks, weights, and the step log."""
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["final"] == sb["final"] and sa["history"] == sb["history"] and sa["sparsity"] == sb["sparsity"]
    wa, wb = (load_file(d / "model" / "model.safetensors") for d in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    steps = [[json.loads(x)["step"] for x in (d / "metrics.jsonl").read_text().splitlines()] for d in (a, b)]
    assert steps[0] == steps[1]


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one must reproduce."""
    out = tmp_path_factory.mktemp("whole") / "run"
    assert main(["run", QUICK, *ARGS, "--quiet", "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.jsonl",
        "model",
        "recipe.yaml",
        "summary.json",
        "tokenizer",
    ]  # no lock file and no checkpoint left behind
    return out


# ---- the lock ------------------------------------------------------------------------------------------------
HOLD = """
import sys, time
from bermo_prune.rundir import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_live_holder_is_refused_and_a_killed_holders_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError) as info:
            RunLock(out).acquire()
        assert str(info.value) == (
            f"{out}: in use by another bermo-prune process (pid {holder.pid} on {os.uname().nodename}); "
            "wait for it to end or stop it"
        )
    finally:
        holder.kill()  # SIGKILL: no release, the lock file stays
        holder.wait()
    assert (out / LOCK).is_file()
    lock = RunLock(out).acquire()  # the kernel dropped the dead process's flock: taken over
    assert (out / LOCK).read_text() == f"pid {os.getpid()} on {os.uname().nodename}\n"
    lock.release()
    assert not (out / LOCK).exists()


def test_two_concurrent_cli_runs_on_one_directory(tmp_path):
    """A second `run --resume` while the first is training is refused with the holder's pid (exit 2) and touches
    nothing; the first goes on (stopped here by SIGTERM, which it answers with a checkpoint and exit 4)."""
    out = tmp_path / "run"
    first = _start(out, "checkpoint.every=50", "train.max_steps=20000")  # minutes: still running below
    _wait_for_step(first, out, 120)
    second = subprocess.run(
        [*CMD, *ARGS, "checkpoint.every=50", "train.max_steps=20000", "--quiet", "--resume"]
        + ["--output-dir", str(out)],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert second.returncode == EXIT_BAD_INPUT
    assert second.stderr.strip().splitlines() == [
        f"bermo-prune: error: {out}: in use by another bermo-prune process (pid {first.pid} on "
        f"{os.uname().nodename}); wait for it to end or stop it"
    ]
    assert first.poll() is None  # undisturbed
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == EXIT_INTERRUPTED
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == list(range(10, log[-1]["step"] + 1, 10))  # one writer


# ---- checkpoints -----------------------------------------------------------------------------------------------
def test_two_checkpoints_are_kept_and_a_corrupt_newest_falls_back_to_the_previous(tmp_path, caplog):
    save_checkpoint(tmp_path, {"position": {"step": 10}, "x": torch.ones(3)})
    save_checkpoint(tmp_path, {"position": {"step": 20}, "x": torch.zeros(3)})
    d = tmp_path / "checkpoint"
    assert sorted(p.name for p in d.iterdir()) == ["state.prev.pt", "state.pt"]
    assert load_checkpoint(tmp_path)["position"]["step"] == 20
    data = (d / "state.pt").read_bytes()
    (d / "state.pt").write_bytes(data[: len(data) // 2])  # a crash or a full disk mid-write
    with caplog.at_level("WARNING"):
        assert load_checkpoint(tmp_path)["position"]["step"] == 10
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"{d / 'state.pt'}: unreadable (")
    assert warning.endswith(f"; resuming from {d / 'state.prev.pt'} (step 10) instead")
    (d / "state.prev.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError) as info:
        load_checkpoint(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: no usable checkpoint: {d / 'state.pt'}: unreadable (")
    assert f"; {d / 'state.prev.pt'}: unreadable (" in message and "\n" not in message


def test_a_truncated_newest_checkpoint_resumes_from_the_previous_one_to_the_same_result(
    tmp_path, whole, capsys
):
    out = tmp_path / "run"
    proc = _start(out, "checkpoint.every=50")
    _wait_for_step(proc, out, 260)  # checkpoints at 200 and 250 (or later) exist
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    newest = out / "checkpoint" / "state.pt"
    assert newest.is_file() and (out / "checkpoint" / "state.prev.pt").is_file()
    newest.write_bytes(newest.read_bytes()[:1000])
    assert (
        main(["run", QUICK, *ARGS, "checkpoint.every=50", "--quiet", "--resume", "--output-dir", str(out)])
        == 0
    )
    capsys.readouterr()
    _same_result(out, whole)


def test_no_usable_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    proc = _start(out, "checkpoint.every=50")
    _wait_for_step(proc, out, 120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for name in ("state.pt", "state.prev.pt"):
        path = out / "checkpoint" / name
        if path.is_file():
            path.write_bytes(b"\0" * 64)
    args = ["run", QUICK, *ARGS, "checkpoint.every=50", "--quiet", "--resume", "--output-dir", str(out)]
    assert main(args) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"bermo-prune: error: {out}: no usable checkpoint: ")


# ---- signals -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_and_exits_4_and_resume_equals_an_uninterrupted_run(tmp_path, whole, sig):
    """No periodic checkpoints at all (checkpoint.every=0): the signal alone writes the one the resume uses."""
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_step(proc, out, 150)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED
    [line] = [x for x in stderr.strip().splitlines() if not x.startswith("WARNING")]
    assert line.startswith(f"bermo-prune: {out}: stopped by {sig.name} at step ")
    assert line.endswith("; checkpoint written, continue with --resume")
    step = int(line.split(" at step ")[1].split(";")[0])
    assert 150 <= step < 600
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=True)
    assert state["position"]["step"] == step and not (out / "summary.json").exists()
    assert not (out / LOCK).exists()
    assert main(["run", QUICK, *ARGS, "--quiet", "--resume", "--output-dir", str(out)]) == 0
    _same_result(out, whole)


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert main(["run", QUICK, *ARGS, "--quiet", "--overwrite", "--output-dir", str(out)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == (
        f"bermo-prune: error: {out}: --overwrite refused: not a bermo-prune run directory (no recipe.yaml); "
        "it holds 1 other entry"
    )
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


# ---- bad input ---------------------------------------------------------------------------------------------------
def test_bad_files_and_directories_are_one_line_exit_2_and_write_nothing(tmp_path, monkeypatch, capsys):
    from transformers import BertConfig

    monkeypatch.chdir(tmp_path)
    BertConfig(
        num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64
    ).save_pretrained("noweights")
    Path("badcfg").mkdir()
    Path("badcfg/config.json").write_text("{not json")
    Path("afile").write_text("")
    Path("d").mkdir()
    Path("d/train.tsv").write_bytes(b"sentence\tlabel\nok\t1\ncaf\xe9\t0\n")  # Latin-1, not UTF-8
    Path("d/dev.tsv").write_text("sentence\tlabel\nok\t1\n")
    sst2 = str(ROOT / "recipes" / "sst2_movement.yaml")
    cases = [
        (
            [QUICK, "model.name=noweights", "--output-dir", "o"],
            "noweights: could not load the model weights (Error no file named model.safetensors, or "
            "pytorch_model.bin, found in directory noweights.)",
        ),
        ([QUICK, "model.name=badcfg", "--output-dir", "o"], "badcfg: could not load the "),
        (
            [QUICK, *TINY, "--output-dir", "afile/run"],
            "afile/run: cannot create the run directory (Not a directory)",
        ),
        (
            [sst2, "data.path=d", "--output-dir", "o"],
            f"{Path('d') / 'train.tsv'}: line 3: not UTF-8 (byte 0xe9 at offset 23); re-save the file as UTF-8",
        ),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, message in cases:
        assert main(["run", *args, "--quiet"]) == EXIT_BAD_INPUT, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"bermo-prune: error: {message}"), err
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
