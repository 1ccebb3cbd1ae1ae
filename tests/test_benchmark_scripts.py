"""The speed benchmarks run end to end on a small shape and print medians with their spread (the README's figures
come from their full-size output)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from .conftest import ROOT


def run_script(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_overhead_prints_every_asked_row_with_its_per_round_spread():
    text = run_script(
        "overhead.py", "--hidden", "64", "--steps", "1", "--rounds", "2", "--threads", "1",
        "--methods", "movement", "soft_movement", "--granularities", "weight",
    )  # fmt: skip
    rows = re.findall(
        r"^(\w+)\s+weight\s+(\d+)\s+(warm|fresh)\s+\d+\s+([\d.]+)\s+([\d.]+)-([\d.]+)$", text, re.M
    )
    assert {(m, e, k) for m, e, k, *_ in rows} == {
        ("movement", "10", "warm"),
        ("soft_movement", "10", "warm"),
        ("movement", "1", "warm"),
        ("movement", "1", "fresh"),
        ("magnitude", "1", "warm"),
        ("magnitude", "1", "fresh"),
    }
    for *_, ratio, low, high in rows:
        assert float(low) <= float(high) and float(ratio) > 0
    assert re.search(r"dense step \d+ ms \(rounds within [\d.]+%\)", text)


def test_step_profile_times_every_phase_under_both_malloc_settings():
    text = run_script(
        "step_profile.py", "--hidden", "64", "--steps", "1", "--rounds", "2", "--threads", "1",
        "--methods", "soft_movement", "l0", "--malloc", "both",
    )  # fmt: skip
    number = r"\s+([\d.]+)"
    tables = re.findall(
        r"^malloc: (.+); peak resident memory (\d+) MB \(median over processes\)$", text, re.M
    )
    assert [t[0] for t in tables] == [
        "glibc as it starts",
        "freed memory retained (bermo-prune's training processes)",
    ]
    assert all(int(mb) > 50 for _, mb in tables)  # a torch process with a model: tens of MB at least
    for name in ("dense", "soft_movement", "l0"):
        rows = re.findall(rf"^{name}{number * 7}$", text, re.M)
        assert len(rows) == 2, text  # one per setting
        for *phases, step, _ratio in rows:
            assert float(step) == pytest.approx(sum(map(float, phases)), abs=0.3)  # medians of sums, near
        (ratio,) = re.findall(rf"^{name}\s+([\d.]+)\s+\(([\d.]+)-([\d.]+)\)$", text, re.M)
        assert float(ratio[1]) <= float(ratio[2])
    penalty = re.findall(rf"^l0{number * 7}$", text, re.M)[0][1]
    assert float(penalty) > 0  # L0 has a penalty phase; dense has none
    assert re.findall(rf"^dense{number * 7}$", text, re.M)[0][1] == "0.0"


def test_speedup_prints_the_median_ratio_and_its_spread():
    text = run_script(
        "speedup.py", "--layers", "1", "--hidden", "128", "--sparsities", "0.5", "--batches", "1",
        "--lengths", "16", "--rounds", "2", "--threads", "1", "--profile",
    )  # fmt: skip
    (row,) = re.findall(r"^\s+1\s+16\s+[\d.]+\s+[\d.]+ \(([\d.]+)x, ([\d.]+)-([\d.]+)\)$", text, re.M)
    assert float(row[1]) <= float(row[2]) and float(row[0]) > 0
    profiles = re.findall(
        r"profile, (\d+)% removed: shrinking ops ([\d.]+) ms \(dense / this ([\d.]+)x\), fixed ops ([\d.]+) ms \((.+)\)$",
        text,
        re.M,
    )
    assert [p[0] for p in profiles] == ["0", "50"], text  # one per model: dense first
    assert float(profiles[0][2]) == 1.0 and all(float(p[1]) > 0 and float(p[3]) > 0 for p in profiles)
    # the largest fixed ops, named with their times (which ones lead at this tiny shape is timing noise: layer norm,
    # index_select, gather...), none of them an op that shrinks
    named = re.findall(r"(\w+) ([\d.]+)", profiles[0][4])
    assert 1 <= len(named) <= 4, profiles[0][4]
    assert not any(
        k in name for name, _ in named for k in ("mm", "linear", "softmax", "gelu", "scaled_dot")
    ), named


def test_every_benchmark_script_imports(monkeypatch):
    """A script's imports and definitions load (a name moved out of the package fails here, not in a user's hands);
    none runs its main at import. Scripts import their siblings, as when run from the command line."""
    import runpy

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        runpy.run_path(str(path), run_name="benchmark_import_check")


def _layer_skip(monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module("layer_skip")


def test_a_skipped_layer_hands_its_input_on_and_the_model_is_whole_again_after(
    monkeypatch, tiny_bert, tiny_bermo
):
    """Skipping layers k+1.. of BERT gives exactly the logits of the same model cut to k layers; BERMo's mix sees
    one state per layer, the skipped ones equal to layer k's; zeroing keeps biases and layer norms but no weight of
    the six linears; both models are unchanged after either removal."""
    import copy

    import torch

    from bermo_prune.families import ROLES, family_of

    script = _layer_skip(monkeypatch)
    ids = torch.randint(5, 120, (3, 9), generator=torch.Generator().manual_seed(0))
    for model in (tiny_bert.eval(), tiny_bermo.eval()):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            whole = model(ids, output_hidden_states=True)
            with script.skipped(model, 1):
                cut = model(ids, output_hidden_states=True)
            with script.zeroed(model, 1):
                layer = family_of(model).layer_list(model)[1]
                assert all(not family_of(model).linear(layer, r).weight.any() for r in ROLES)
                touched = {id(family_of(model).linear(layer, r).weight) for r in ROLES}
                assert all(  # biases, layer norms and the other layers as they were
                    torch.equal(v, before[k])
                    for k, v in model.state_dict(keep_vars=True).items()
                    if id(v) not in touched
                )
                zero = model(ids, output_hidden_states=True)
            again = model(ids, output_hidden_states=True)
        assert len(cut.hidden_states) == len(zero.hidden_states) == len(whole.hidden_states) == 3
        assert torch.equal(cut.hidden_states[1], whole.hidden_states[1])
        assert torch.equal(cut.hidden_states[2], whole.hidden_states[1])  # layer 2 passed layer 1's state on
        assert torch.equal(zero.hidden_states[1], whole.hidden_states[1])
        assert not torch.allclose(
            zero.hidden_states[2], whole.hidden_states[1]
        )  # its norms and biases still act
        assert not torch.allclose(cut.logits, whole.logits) and not torch.allclose(zero.logits, whole.logits)
        assert torch.equal(again.logits, whole.logits)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # BERMo's head reads its mix of (h0, h1, h1): layer 1's state in place of the skipped layer 2's
    base = family_of(tiny_bermo).base(tiny_bermo)
    with torch.no_grad():
        states = tiny_bermo(ids, output_hidden_states=True).hidden_states
        mixed = base.scalar_mix((states[0], states[1], states[1]), torch.ones(ids.shape))
        expected = tiny_bermo.classifier(base.pooler(mixed))
        with script.skipped(tiny_bermo, 1):
            assert torch.allclose(tiny_bermo(ids).logits, expected, atol=1e-6)
    shorter = copy.deepcopy(tiny_bert)
    shorter.bert.encoder.layer = shorter.bert.encoder.layer[:1]
    with torch.no_grad(), script.skipped(tiny_bert, 1):
        assert torch.equal(tiny_bert(ids).logits, shorter(ids).logits)


def test_the_cls_update_is_each_layers_relative_change_at_the_first_position(monkeypatch, tiny_bert):
    """``cls_updates``: per layer, the median over the examples of ||h_j - h_(j-1)|| / ||h_(j-1)|| at position 0,
    computed here by hand on the same model; and a forward already set on a layer instance is put back."""
    import contextlib
    from types import SimpleNamespace

    import numpy as np
    import torch

    script = _layer_skip(monkeypatch)
    ids = torch.randint(5, 120, (5, 7), generator=torch.Generator().manual_seed(1))
    model = tiny_bert.eval()
    scorer = SimpleNamespace(
        model=model,
        device=torch.device("cpu"),
        precision=contextlib.nullcontext,
        batches=lambda examples, labelled: (
            list(ids),
            lambda items: {"input_ids": torch.stack(items), "labels": torch.zeros(len(items))},
            [[0, 1, 2], [3, 4]],
        ),
    )
    with torch.no_grad():
        h = [s[:, 0] for s in model(ids, output_hidden_states=True).hidden_states]
    by_hand = [
        float(np.median(((h[j] - h[j - 1]).norm(dim=-1) / h[j - 1].norm(dim=-1)).numpy())) for j in (1, 2)
    ]
    assert script.cls_updates(scorer, None) == pytest.approx(by_hand, rel=1e-6)
    layer = model.bert.encoder.layer[1]
    layer.forward = wrapper = layer.forward  # an instance-level forward (as a wrapper would set)
    with script.skipped(model, 1):
        assert layer.forward is not wrapper
    assert layer.forward is wrapper


def test_layer_skip_scores_a_run_whole_and_with_each_number_of_layers(tmp_path):
    from bermo_prune.cli import main

    from .conftest import QUICK, tiny_overrides

    run = tmp_path / "run"
    overrides = tiny_overrides(400, 120, "train.threads=1", "train.max_steps=30", "checkpoint.every=0")
    assert main(["run", QUICK, *overrides, "--output-dir", str(run), "--quiet"]) == 0
    out = tmp_path / "skip.json"
    text = run_script("layer_skip.py", str(run), "--threads", "1", "--json", str(out))
    (r,) = json.loads(out.read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert r["examples"] == 120 and r["layers"] == 2
    assert r["whole"]["accuracy"] == summary["final"]["accuracy"]  # scored as the run's own final evaluation
    assert [(row["mode"], row["layers_kept"]) for row in r["removed"]] == [
        ("skip", 1), ("skip", 0), ("zero", 1), ("zero", 0)
    ]  # fmt: skip
    assert len(r["cls_relative_update"]) == 2 and all(v > 0 for v in r["cls_relative_update"])
    for row in r["removed"]:
        assert row["correct"] == round(row["accuracy"] * 120) and 0 <= row["changed"] <= 120
        assert 0.5 <= row["majority_share"] <= 1
    assert re.search(r"^\s+none\s+2\s+[\d.]+\s+\d+\s+0$", text, re.M)  # the whole model's row
    rows = re.findall(r"^\s+(skip|zero)\s+([01])\s+([\d.]+)\s+(\d+)\s+(\d+)\s+([\d.]+)$", text, re.M)
    assert [(m, k) for m, k, *_ in rows] == [("skip", "1"), ("skip", "0"), ("zero", "1"), ("zero", "0")]
