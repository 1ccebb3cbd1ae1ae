"""`runner`: ``bermo-prune run`` end to end: the run directory it writes, bad input that writes nothing, real SST-2
at small scale, a local checkpoint as the encoder."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from bermo_prune.cli import EXIT_BAD_INPUT
from bermo_prune.data import load_task_data
from bermo_prune.models import ModelSpec, build_model

from .conftest import QUICK, ROOT, TINY, run_cli


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


# ---- divergence ---------------------------------------------------------------------------------------------


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
