"""`tracking`: the divergence tracker's definitions and a run that never learns, recorded rather than averaged away."""

from __future__ import annotations

import json

import pytest

from bermo_prune.tracking import DivergenceConfig, DivergenceTracker

from .conftest import QUICK, TINY, run_cli


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
