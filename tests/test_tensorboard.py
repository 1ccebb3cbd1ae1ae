"""``train.log_to: [tensorboard]``: the event file next to metrics.jsonl holds the same numbers, read back."""

from __future__ import annotations

import json

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bermo_prune.cli import EXIT_BAD_INPUT, main

from .conftest import QUICK, tiny_overrides

TINY = tiny_overrides(
    400,
    100,
    "train.threads=1",
    "train.max_steps=40",
    "train.eval_every=20",
    "train.log_every=5",
    "pruning.schedule.final=0.5",
)


def _f32(x: float) -> float:
    return float(np.float32(x))  # TensorBoard stores scalars as float32


def test_tensorboard_event_file_holds_the_metrics(tmp_path):
    out = tmp_path / "run"
    assert main(["run", QUICK, *TINY, "train.log_to=[tensorboard]", "--output-dir", str(out), "--quiet"]) == 0
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])

    def scalars(tag):
        return [(e.step, e.value) for e in acc.Scalars(tag)]

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logs = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval" in r]
    assert [r["step"] for r in logs] == list(range(5, 41, 5)) and [r["step"] for r in evals] == [20, 40]
    for field in ("loss", "lr", "remaining", "penalty"):
        assert scalars(f"train/{field}") == [(r["step"], _f32(r[field])) for r in logs], field
    assert scalars("eval/accuracy") == [(r["step"], _f32(r["eval"]["accuracy"])) for r in evals]
    assert scalars("eval/remaining") == [(r["step"], _f32(r["remaining"])) for r in evals]
    assert scalars("mix/gamma") == [(r["step"], _f32(r["mix"]["gamma"])) for r in evals]
    layers = len(evals[0]["mix"]["layer_weights"])
    assert {f"mix/layer_{j}" for j in range(layers)} <= tags
    assert scalars("mix/layer_0") == [(r["step"], _f32(r["mix"]["layer_weights"][0])) for r in evals]


def test_divergence_events_and_rollbacks_are_logged(tmp_path):
    """The records the loop writes for a divergence event and a rollback, through the sink, read back."""
    from types import SimpleNamespace

    from bermo_prune.sinks import TensorBoardSink

    sink = TensorBoardSink(tmp_path)
    sink.setup(SimpleNamespace(is_main_process=True))
    event = {"kind": "collapse", "detail": "accuracy 0.509 at the majority rate", "action": "rollback"}
    sink.on_record({"step": 30, "event": event})
    sink.on_record({"step": 30, "rollback_to": 20, "lr_scale": 0.5})
    sink.on_record({"step": 90, "event": {**event, "kind": "loss_spike", "action": "record"}})
    sink.close()
    (events,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events), size_guidance={"tensors": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("divergence/collapse")] == [(30, 1.0)]
    assert [(e.step, e.value) for e in acc.Scalars("divergence/loss_spike")] == [(90, 1.0)]
    assert [(e.step, e.value) for e in acc.Scalars("divergence/rollback_to")] == [(30, 20.0)]
    text = [t for t in acc.Tags()["tensors"] if t.startswith("divergence")]
    assert text == ["divergence/text_summary"]
    first = acc.Tensors(text[0])[0]
    assert (
        first.step == 30
        and b"collapse (accuracy 0.509 at the majority rate) -> rollback"
        in (first.tensor_proto.string_val[0])
    )


def test_log_to_is_off_by_default_and_checked(tmp_path, capsys):
    out = tmp_path / "run"
    bad = ["run", QUICK, *TINY, "train.log_to=[tensorbord]", "--output-dir", str(out), "--quiet"]
    assert main(bad) == EXIT_BAD_INPUT
    assert "train.log_to: unknown value 'tensorbord' (did you mean 'tensorboard'?)" in capsys.readouterr().err
    assert not out.exists()
