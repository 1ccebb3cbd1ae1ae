"""``bermo-prune run``: end-to-end runs, the run directory, exact resume after SIGKILL, divergence policies."""

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
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from bermo_prune.cli import EXIT_BAD_INPUT, EXIT_DIVERGED, main
from bermo_prune.data import load_task_data
from bermo_prune.jobs import classification_job
from bermo_prune.models import ModelSpec, build_model
from bermo_prune.tracking import DivergenceConfig, DivergenceTracker
from bermo_prune.train import TrainConfig, Trainer

from .conftest import ROOT

QUICK = str(ROOT / "recipes" / "quickstart.yaml")
# A tiny, fast version of the quick start (overrides as a user would type them).
TINY = [
    "model.num_layers=2",
    "model.hidden_size=32",
    "model.num_heads=2",
    "model.intermediate_size=64",
    "model.vocab_size=200",
    "data.synthetic_train_size=1500",
    "data.synthetic_dev_size=300",
    "train.threads=1",
]


def run_cli(*args: str) -> int:
    return main(["run", *args, "--quiet"])


def test_quickstart_run_writes_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*TINY, "train.max_steps=400", "train.eval_every=200", "pruning.schedule.final=0.5"]
    assert run_cli(QUICK, *args, "--output-dir", str(out)) == 0
    table = capsys.readouterr().out
    assert (
        "remaining weights    0.500 of encoder linear weights" in table and "diverged             no" in table
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.jsonl",
        "model",
        "recipe.yaml",
        "summary.json",
        "tokenizer",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 400 and summary["remaining"] == pytest.approx(0.5, abs=1e-3)
    assert summary["final"]["accuracy"] > 0.6 and summary["divergence"]["diverged"] is False
    assert set(summary["steps_to_fraction_of_best"]) == {"0.9", "0.95", "0.99"}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(10, 401, 10))
    assert {"lr", "remaining", "penalty"} <= set(steps[0])
    evals = [r for r in records if "eval" in r]
    assert [r["step"] for r in evals] == [200, 400] and "mix" in evals[0]
    # The hardened model is a plain BERMo checkpoint: the Auto classes load it, zeros baked in.
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    w = model.bert.encoder.layer[0].intermediate.dense.weight
    assert float((w != 0).float().mean()) == pytest.approx(0.5, abs=1e-3)
    # A second run into the same directory is refused (nothing touched); --overwrite replaces it.
    before = (out / "summary.json").read_text()
    assert run_cli(QUICK, *args, "--output-dir", str(out)) == EXIT_BAD_INPUT
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == before
    # Resuming a finished run does not run it again.
    assert run_cli(QUICK, *args, "--output-dir", str(out), "--resume") == 0
    assert "already finished" in capsys.readouterr().out


def test_bad_input_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    assert run_cli(QUICK, "train.max_steps=100", "pruning.schedule.total=500", "--output-dir", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"bermo-prune: error: {QUICK}: pruning.schedule.total: 500 steps, but training runs 100: the schedule "
        "would not reach its final value before training ends"
    )
    assert (
        run_cli(
            QUICK, "task=sst2", "data.source=local", f"data.path={tmp_path}/nope", "--output-dir", str(out)
        )
        == 2
    )
    assert "nope" in capsys.readouterr().err
    assert not out.exists()


def _metrics_steps(path: Path) -> int:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line).get("step", 0) for line in lines if line.strip().endswith("}")]
    return max(steps, default=0)


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
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "bermo_prune.cli", "run", QUICK, *args, "--quiet", "--output-dir"]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [*cmd, str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while _metrics_steps(killed / "metrics.jsonl") < 250 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
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


# ---- divergence ---------------------------------------------------------------------------------------------
def test_tracker_definitions():
    t = DivergenceTracker(DivergenceConfig(spike_warmup_steps=5), majority_rate=0.5)
    for s in range(20):
        assert t.observe_loss(s, 0.3) is None
    assert t.observe_loss(20, 2.0) is None  # one hard batch is not a spike
    for s in range(21, 30):
        e = t.observe_loss(s, 0.3)
    assert e is None
    events = [t.observe_loss(s, 3.0) for s in range(30, 36)]
    assert [e.kind for e in events if e] == ["loss_spike"]
    assert t.observe_loss(40, float("nan")).kind == "non_finite_loss"
    assert (
        t.observe_eval(100, {"accuracy": 0.52, "majority_prediction_share": 1.0}) is None
    )  # never learned yet
    assert t.observe_eval(200, {"accuracy": 0.8, "majority_prediction_share": 0.6}) is None
    e = t.observe_eval(300, {"accuracy": 0.51, "majority_prediction_share": 1.0})
    assert e.kind == "collapse" and "majority-class rate 0.5000" in e.detail
    e = t.observe_eval(400, {"accuracy": 0.55, "majority_prediction_share": 0.99})
    assert e.kind == "collapse" and "99.0% of predictions are one class" in e.detail
    assert [e.kind for e in t.events] == ["loss_spike", "non_finite_loss", "collapse", "collapse"]
    assert t.events[0].step == next(e.step for e in events if e) and 30 <= t.events[0].step <= 35
    assert t.finish(500, 0.8) is None  # it had learned: no end-of-run event
    # A run that never leaves the majority plateau is a failed run, recorded at the end, once.
    flat = DivergenceTracker(majority_rate=0.5)
    for step, acc in ((100, 0.5), (200, 0.58), (300, 0.52)):
        assert flat.observe_eval(step, {"accuracy": acc, "majority_prediction_share": 0.9}) is None
    e = flat.finish(300, 0.58)
    assert (e.step, e.kind) == (300, "no_learning")
    assert e.detail == "best accuracy 0.5800 never reached the majority-class rate 0.5000 + 0.1"
    assert flat.finish(300, 0.58) is None and flat.summary()["first_kind"] == "no_learning"
    assert DivergenceTracker(majority_rate=None).finish(300, None) is None  # not a classification task


def test_a_run_that_never_learns_is_recorded_not_averaged_away(tmp_path, capsys):
    out = tmp_path / "flat"
    args = [*TINY, "train.max_steps=40", "train.eval_every=20", "train.lr=1e-9", "pruning.method=none"]
    assert run_cli(QUICK, *args, "--output-dir", str(out)) == 0  # recorded; the run itself completed
    summary = json.loads((out / "summary.json").read_text())
    div = summary["divergence"]
    assert div["diverged"] is True and div["first_kind"] == "no_learning" and div["first_step"] == 40
    assert (
        div["majority_rate"] == pytest.approx(0.5, abs=0.05)
        and summary["best"]["accuracy"] < div["majority_rate"] + 0.1
    )
    assert "no_learning" in capsys.readouterr().out


@pytest.fixture(scope="module")
def small_task():
    return load_task_data("synthetic", "synthetic", synthetic_train_size=1500, synthetic_dev_size=300)


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


# ---- real SST-2 ------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bert", "bermo"])
def test_sst2_movement_recipe_on_real_data_reaches_its_target(arch, sst2_dir, tmp_path, capsys):
    """The shipped SST-2 movement recipe, pointed at local GLUE files and a tiny model, prunes to its target."""
    out = tmp_path / arch
    code = run_cli(
        str(ROOT / "recipes" / "sst2_movement.yaml"),
        f"data.path={sst2_dir}",
        "data.max_train_samples=8000",
        f"model.arch={arch}",
        "model.name=null",
        "model.num_layers=2",
        "model.hidden_size=64",
        "model.num_heads=2",
        "model.intermediate_size=128",
        "model.vocab_size=2000",
        "train.max_steps=300",
        "train.lr=1e-3",
        "train.max_length=64",
        "train.eval_every=100",
        "pruning.schedule.warmup=0.2",
        "pruning.schedule.cooldown=0.2",
        "checkpoint.every=0",
        "--output-dir",
        str(out),
    )
    assert code == 0
    s = json.loads((out / "summary.json").read_text())
    # Exact counts: round(0.1 * weights) in each of the 12 matrices (local scope).
    assert s["sparsity"]["kept"] == 2 * (4 * round(0.1 * 64 * 64) + 2 * round(0.1 * 64 * 128))
    assert s["remaining"] == pytest.approx(0.10, abs=1e-3)
    assert s["model"]["arch"] == arch and s["final"]["accuracy"] > 0.65  # full dev set; majority class 0.509
    assert (s["mix"] is not None) == (arch == "bermo")


def test_run_from_a_local_bert_directory(sst2_dir, tmp_path):
    """model.name pointing at a local checkpoint directory (how users bring weights without the hub)."""
    data = load_task_data("sst2", "local", path=sst2_dir, max_train_samples=500, max_dev_samples=100)
    spec = ModelSpec(
        arch="bert", num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, vocab_size=500
    )
    model, tok = build_model(spec, 2, [t[0] for t in data.train.texts])
    ckpt = tmp_path / "local-bert"
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    out = tmp_path / "run"
    code = run_cli(
        str(ROOT / "recipes" / "sst2_movement.yaml"),
        f"data.path={sst2_dir}",
        "data.max_train_samples=500",
        "data.max_dev_samples=100",
        f"model.name={ckpt}",
        "model.arch=bermo",
        "train.max_steps=30",
        "train.max_length=48",
        "train.eval_every=0",
        "checkpoint.every=0",
        "--output-dir",
        str(out),
    )
    assert code == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["remaining"] == pytest.approx(0.10, abs=1e-3) and s["steps"] == 30
    assert isinstance(BertForSequenceClassification.from_pretrained(ckpt), BertForSequenceClassification)
