"""`train`: the loop: exact resume after SIGKILL, divergence policies (record, stop, rollback) on injected faults."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from bermo_prune.cli import EXIT_DIVERGED
from bermo_prune.jobs import classification_job
from bermo_prune.models import ModelSpec, build_model
from bermo_prune.tracking import DivergenceConfig
from bermo_prune.train import TrainConfig, Trainer

from .conftest import QUICK, TINY, kill_run_after, run_cli


@pytest.mark.parametrize("method", ["movement", "l0"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, method):
    """A real run killed with SIGKILL after a checkpoint resumes to exactly the uninterrupted result."""
    schedule = (
        [
            "pruning.method=l0",
            "pruning.schedule.initial=0",
            "pruning.schedule.final=0.5",
            "pruning.score_lr=0.05",
        ]
        if method == "l0"
        else []
    )
    args = [*TINY, *schedule, "train.max_steps=400", "train.eval_every=100", "checkpoint.every=100"]
    killed = tmp_path / "killed"
    kill_run_after(args, killed, 250)
    assert (killed / "checkpoint" / "state.pt").is_file() and not (killed / "summary.json").exists()
    # Resume it to the end (in process), and run the same recipe uninterrupted.
    assert run_cli(QUICK, *args, "--output-dir", str(killed), "--resume") == 0
    whole = tmp_path / "whole"
    assert run_cli(QUICK, *args, "--output-dir", str(whole)) == 0

    a = json.loads((killed / "summary.json").read_text())
    b = json.loads((whole / "summary.json").read_text())
    assert a["final"] == b["final"] and a["history"] == b["history"] and a["sparsity"] == b["sparsity"]
    wa, wb = (
        load_file(killed / "model" / "model.safetensors"),
        load_file(whole / "model" / "model.safetensors"),
    )
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # The log holds each step once: what the killed run wrote after its checkpoint was dropped.
    ka = (killed / "metrics.jsonl").read_text().splitlines()
    kb = (whole / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in ka] == [json.loads(x)["step"] for x in kb]
    assert not (killed / "checkpoint").exists()


def _trainer(small_task, tmp_path, policy, **kw):
    torch.manual_seed(0)
    spec = ModelSpec(
        arch="bert", num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, vocab_size=200
    )
    model, tok = build_model(spec, 2, [t[0] for t in small_task.train.texts])
    cfg = TrainConfig(max_steps=300, lr=1e-3, eval_every=50, progress=False, **kw)
    return model, Trainer(
        model,
        classification_job(tok, small_task, cfg),
        cfg,
        output_dir=tmp_path,
        divergence=DivergenceConfig(policy=policy),
        checkpoint_every=50,
    )


def _inject_nan(model, at_call: int):
    """A fault: the classifier's output is NaN at one training forward."""
    calls = {"n": 0}

    def hook(module, args, output):
        if module.training:
            calls["n"] += 1
            if calls["n"] == at_call:
                return output * float("nan")
        return output

    model.classifier.register_forward_hook(hook)


@pytest.mark.parametrize("policy", ["record", "stop", "rollback"])
def test_a_nan_loss_is_caught_and_handled_per_policy(small_task, tmp_path, policy):
    model, trainer = _trainer(small_task, tmp_path, policy)
    _inject_nan(model, at_call=120)
    s = trainer.run()
    div = s["divergence"]
    assert (
        div["diverged"] and div["events"][0]["kind"] == "non_finite_loss" and div["events"][0]["step"] == 120
    )
    log = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("event", {}).get("kind") == "non_finite_loss" for r in log)
    if policy == "record":  # keeps going: the NaN reaches the weights and the run never recovers
        assert s["steps"] == 300 and not div["stopped"]
        assert not all(torch.isfinite(p).all() for p in model.parameters())
    elif policy == "stop":  # ends at once, before the NaN update; the CLI maps this to its divergence code
        assert s["steps"] == 119 and div["stopped"]
        assert all(torch.isfinite(p).all() for p in model.parameters())
    else:  # back to the step-100 checkpoint with half the learning rate, then on to the end
        assert s["steps"] == 300 and not div["stopped"] and div["rollbacks"] == 1
        assert any(r.get("rollback_to") == 100 and r["lr_scale"] == 0.5 for r in log)
        assert all(torch.isfinite(p).all() for p in model.parameters())
        assert s["final"]["accuracy"] > 0.6


def test_a_huge_learning_rate_is_caught_and_the_cli_stops_with_its_code(tmp_path, capsys):
    out = tmp_path / "run"
    code = run_cli(
        QUICK,
        *TINY,
        "pruning.method=none",
        "train.max_steps=300",
        "train.eval_every=50",
        "train.lr=3",
        "train.warmup_ratio=0",
        "divergence.policy=stop",
        "--output-dir",
        str(out),
    )
    assert code == EXIT_DIVERGED
    summary = json.loads((out / "summary.json").read_text())
    assert summary["divergence"]["stopped"] and summary["steps"] < 300
    assert summary["divergence"]["first_kind"] in ("loss_spike", "non_finite_loss", "collapse")
    assert "diverged             yes:" in capsys.readouterr().out


def test_rollback_gives_up_after_max_retries(small_task, tmp_path):
    model, trainer = _trainer(small_task, tmp_path, "rollback")
    trainer.tracker.config.max_retries = 2
    calls = {"n": 0}

    def hook(module, args, output):  # a persistent fault: every forward from the 120th on is NaN
        if module.training:
            calls["n"] += 1
            if calls["n"] >= 120:
                return output * float("nan")
        return output

    model.classifier.register_forward_hook(hook)
    s = trainer.run()
    assert s["divergence"]["rollbacks"] == 2 and s["divergence"]["stopped"]
    assert [e["step"] for e in s["divergence"]["events"]] == [120, 101, 101]


def test_stop_after_ends_the_run_early_on_the_full_runs_schedules(tmp_path):
    """train.stop_after=120 of a 300-step movement run: its records are the full run's first 120 steps (lr, loss,
    remaining share) to the bit, it evaluates and ends at 120, and the summary names both step counts."""
    args = [*TINY, "train.max_steps=300", "train.eval_every=100", "train.log_every=10"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run_cli(QUICK, *args, "--output-dir", str(whole)) == 0
    assert run_cli(QUICK, *args, "train.stop_after=120", "--output-dir", str(part)) == 0

    def records(run, until):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [r for r in rows if r.get("step", 0) <= until and "loss" in r and "eval" not in r]

    short = records(part, 120)
    assert [r["step"] for r in short] == list(range(0, 121, 10))[1:]
    assert short == records(whole, 120)  # lr decays toward step 300, the ramp is the 300-step one
    assert 0.0 < short[-1]["remaining"] < 1.0 and short[-1]["lr"] > 0.0
    s = json.loads((part / "summary.json").read_text())
    assert (s["steps"], s["planned_steps"]) == (120, 300)
    assert [h["step"] for h in s["history"]] == [100, 120]
    assert s["config"]["stop_after"] == 120


def test_stop_after_beyond_the_run_is_a_recipe_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(QUICK, *TINY, "train.max_steps=50", "train.stop_after=60", "--output-dir", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("train.stop_after: step 60 is after the run's end (50 steps)"), err
    assert "Traceback" not in err and not out.exists()


def test_a_stopped_early_run_killed_and_resumed_ends_where_the_uninterrupted_one_does(tmp_path):
    """stop_after survives a SIGKILL and a resume: the same records and final evaluation as without the kill."""
    args = [
        *TINY,
        "train.max_steps=400",
        "train.stop_after=300",
        "train.eval_every=100",
        "checkpoint.every=100",
    ]
    killed = tmp_path / "killed"
    kill_run_after(args, killed, 150)
    assert run_cli(QUICK, *args, "--output-dir", str(killed), "--resume") == 0
    whole = tmp_path / "whole"
    assert run_cli(QUICK, *args, "--output-dir", str(whole)) == 0
    a = json.loads((killed / "summary.json").read_text())
    b = json.loads((whole / "summary.json").read_text())
    assert (a["steps"], a["planned_steps"]) == (b["steps"], b["planned_steps"]) == (300, 400)
    assert a["history"] == b["history"] and a["final"] == b["final"]
