"""The resumable probing study: it probes the models on this machine not yet probed, appends exact row counts,
refuses a changed task file, states its verdict by the spec's rule, and regenerates its report byte for byte."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

from bermo_prune.cli import EXIT_BAD_INPUT, main
from bermo_prune.probe.probing import layer_features, pooled_features
from bermo_prune.probe.study import load_study, read_rows
from bermo_prune.probe.study_report import verdict, write_study_report

from .conftest import QUICK, TINY


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A BERT and a BERMo run of the tiny quick start (2 layers)."""
    root = tmp_path_factory.mktemp("runs")
    for arch in ("bert", "bermo"):
        args = ["run", QUICK, *TINY, "train.max_steps=40", f"model.arch={arch}", "--quiet"]
        assert main([*args, "--output-dir", str(root / arch)]) == 0
    return root


def _sweep_row(cell: str, arm: str, seed: int) -> dict:
    mix = {"layer_weights": [0.2, 0.5, 0.3], "gamma": 1.1} if arm == "bermo" else None
    return {
        "run": cell,
        "model": arm,
        "seed": seed,
        "status": "ok",
        "final": 0.61,
        "remaining": 1.0,
        "mix": mix,
    }


def _study(tmp_path, tiny_runs, seeds=(0, 1)):
    text = tmp_path / "text.txt"
    words = "the a cat dog sat ran on under big small red blue".split()
    rng = random.Random(0)
    text.write_text(
        "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(5, 12))) + " ." for _ in range(600))
    )
    tasks = tmp_path / "tasks"
    assert (
        main(
            [
                "probe-data",
                str(tasks),
                "--text",
                str(text),
                "--tasks",
                "sentence_length",
                "bigram_shift",
                "--max-per-label",
                "60",
            ]
        )
        == 0
    )
    sweep = tmp_path / "sweep"
    (sweep / "runs").mkdir(parents=True)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"tasks_dir: {tasks}\n"
        f"tasks_command: bermo-prune probe-data {tasks} --text {text}\n"
        "tasks: [sentence_length, bigram_shift]\n"
        "semantic: [bigram_shift]\n"
        f"sweep: {sweep}\n"
        "arms: [bert, bermo]\n"
        "conditions:\n"
        f"  dense: {{cell: '{{arm}}_none_dense_s{{seed}}', seeds: {list(seeds)}}}\n"
        "claim: {condition: dense, pooling: cls, classifier: logreg}\n"
        f"output_dir: {tmp_path / 'study'}\n"
    )
    return spec, sweep


def _add_runs(sweep, tiny_runs, seed: int) -> None:
    with open(sweep / "results.jsonl", "a") as f:
        for arm in ("bert", "bermo"):
            cell = f"{arm}_none_dense_s{seed}"
            shutil.copytree(tiny_runs / arm, sweep / "runs" / cell)
            f.write(json.dumps(_sweep_row(cell, arm, seed)) + "\n")


def test_the_study_probes_what_is_here_appends_and_resumes(tmp_path, tiny_runs, capsys):
    spec, sweep = _study(tmp_path, tiny_runs)
    out = tmp_path / "study"
    assert main(["probe-study", str(spec), "--report-only"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == (
        f"bermo-prune: error: {out}: no results.jsonl yet; probe first: bermo-prune probe-study {spec}"
    )
    _add_runs(sweep, tiny_runs, 0)
    assert main(["probe-study", str(spec)]) == 0
    rows = read_rows(out)
    # per model and task: 2 poolings x (logreg at layers 0-2 (+ mix) + the MLP at what the classifier reads)
    # (the claim's cells, cls logreg at what the classifier reads, get 3 probe seeds: 2 more rows per layer)
    per_task = {"bert": 2 * (3 + 1) + 2, "bermo": 2 * (4 + 2) + 2 * 2}
    for arm, n in per_task.items():
        got = [r for r in rows if r["arm"] == arm]
        assert len(got) == 2 * n, arm
        assert {r["run"] for r in got} == {f"{arm}_none_dense_s0"} and {r["ft_seed"] for r in got} == {0}
    sizes = json.loads((out / "tasks.json").read_text())
    for r in rows[-5:]:  # which test examples the probe got right: one bit each, in file order
        n = sizes[r["task"]]["examples"]["te"]
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(r["te_correct"]), dtype=np.uint8))
        assert len(bits) == 8 * ((n + 7) // 8) and bits[:n].mean() == pytest.approx(r["te"])
    claim = [r for r in rows if r["arm"] == "bermo" and r["task"] == "bigram_shift" and r["pooling"] == "cls"]
    assert sorted((r["classifier"], r["layer"], r["seed"]) for r in claim if r["layer"] in ("mix", "2")) == [
        ("logreg", "2", 0),
        ("logreg", "2", 1),
        ("logreg", "2", 2),
        ("logreg", "mix", 0),
        ("logreg", "mix", 1),
        ("logreg", "mix", 2),
        ("mlp", "2", 0),
        ("mlp", "mix", 0),
    ]
    mlp = {(r["arm"], r["layer"]) for r in rows if r.get("classifier") == "mlp"}
    assert mlp == {("bert", "2"), ("bermo", "mix"), ("bermo", "2")}
    assert len([r for r in rows if r["run"] == "majority"]) == 2
    assert len([r for r in rows if r["run"] == "bag_of_words"]) == 2 * 3
    report = (out / "REPORT.md").read_text()
    assert (
        "**Probed: 2 of 4 planned models.** Not yet probed: bert_none_dense_s1, bermo_none_dense_s1."
        in report
    )
    assert (
        "**Verdict 1, read at what each classifier reads (BERMo's mix, BERT's last layer): not decided yet** "
        "(1 of the 3 paired fine-tuning seeds the rule needs; over test sentences, seeds fixed: (" in report
    )
    assert (out / "fig_layers.png").stat().st_size > 10_000
    probed = json.loads((out / "probed.json").read_text())
    assert probed["bermo_none_dense_s0"]["mix"]["layer_weights"] == [0.2, 0.5, 0.3]
    assert "| bermo_none_dense_s0 | bermo | dense | 0 | 0.6100 | 1.000 | state 1 (0.50) |" in report

    # nothing new here: nothing probed again, rows unchanged
    before = (out / "results.jsonl").read_bytes()
    assert main(["probe-study", str(spec)]) == 0
    assert (out / "results.jsonl").read_bytes() == before
    # the next seed's models appear: only they are probed; BERT's was trained again on this machine (bench
    # --retrain), so its new row describes the model probed, with the recorded accuracy beside it
    _add_runs(sweep, tiny_runs, 1)
    again = {
        **_sweep_row("bert_none_dense_s1", "bert", 1),
        "final": 0.64,
        "retrained": "2026-12-04T09:00:00+0000",
    }
    (sweep / "retrained.jsonl").write_text(json.dumps({**again, "final": 0.5, "status": "failed"}) + "\n")
    with open(sweep / "retrained.jsonl", "a") as f:  # the last row of a run is the model on disk
        f.write(json.dumps({**again, "status": "diverged-stopped"}) + "\n")  # a stopped run keeps its model
        # BERMo's retrain failed: no new model, so its recorded row still describes the model on disk
        f.write(json.dumps({**_sweep_row("bermo_none_dense_s1", "bermo", 1), "status": "failed"}) + "\n")
    capsys.readouterr()
    assert main(["probe-study", str(spec)]) == 0
    printed = capsys.readouterr().out
    probed = json.loads((out / "probed.json").read_text())
    assert (probed["bert_none_dense_s1"]["dev_accuracy"], probed["bert_none_dense_s1"]["retrained"]) == (
        0.64,
        "2026-12-04T09:00:00+0000",
    )
    assert probed["bert_none_dense_s1"]["recorded_dev_accuracy"] == 0.61
    assert "retrained" not in probed["bermo_none_dense_s1"]
    assert "| bert_none_dense_s1 | bert | dense | 1 | 0.6400 (retrained; recorded 0.6100) | 1.000 |" in (
        (out / "REPORT.md").read_text()
    )
    assert "probing bert_none_dense_s1" in printed and "probing bert_none_dense_s0" not in printed
    rows2 = read_rows(out)
    assert rows2[: len(rows)] == rows and len(rows2) == len(rows) + 2 * (per_task["bert"] + per_task["bermo"])
    # the report is what the committed files say, byte for byte
    text = (out / "REPORT.md").read_bytes()
    assert main(["probe-study", str(spec), "--report-only"]) == 0
    assert (out / "REPORT.md").read_bytes() == text
    assert "**Probed: 4 of 4 planned models.**" in text.decode()

    assert (
        "**Verdict 2, read at each run's best layer or mix on the validation split, per task: not decided "
        "yet** (2 of the 3" in text.decode()
    )
    # a row given twice (two merged copies) is refused, not averaged
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join([*lines, lines[0]]) + "\n")
    assert main(["probe-study", str(spec), "--report-only"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == (
        f"bermo-prune: error: {out / 'results.jsonl'}: line {len(lines) + 1}: the same row as line 1 "
        "(sentence_length, majority, None, None, None, None)"
    )
    (out / "results.jsonl").write_text("\n".join(lines) + "\n")
    # a changed task file is refused, naming it and the command that makes it
    task = tmp_path / "tasks" / "bigram_shift.txt"
    task.write_text(task.read_text().replace("\tO\t", "\tI\t", 1))
    assert main(["probe-study", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"bermo-prune: error: {task}: not the file this study's rows were probed on (sha256 "
    )
    assert err.endswith(
        f"regenerate it with: bermo-prune probe-data {tmp_path / 'tasks'} --text {tmp_path / 'text.txt'}"
    )


def test_a_bad_study_spec_names_every_key(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "tasks_dir: t\ntasks_command: x\ntasks: [a]\nsemantic: [b]\nsweep: s\narms: [bert, bert]\n"
        "conditions:\n  dense: {cell: 'x_{seed}', seeds: [0]}\nclaim: {condition: sparse, pooling: max}\n"
        "output_dir: o\n"
    )
    assert main(["probe-study", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"bermo-prune: error: {spec}: ")
    assert main(["validate", str(spec)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == err
    for problem in (
        "claim.pooling: unknown value 'max'",
        "semantic: 'b' is not one of tasks",
        "arms: an arm is named twice",
        "conditions.dense.cell: must hold {arm} and {seed}",
        "claim.condition: 'sparse' is not one of conditions",
    ):
        assert problem in err
    assert not (tmp_path / "o").exists()


NOT = "not reproduced at the claimed size"


@pytest.mark.parametrize(
    ("diffs", "word", "reason"),
    [
        ([0.05, 0.06, 0.04], "supported", "above 0 and reaching the claimed +0.0267"),
        ([0.010, 0.012, 0.011], NOT, "BERMo is ahead, by less than +0.0267"),
        ([-0.02, -0.03, -0.025], NOT, "BERT is ahead"),
        ([-0.005, 0.004, 0.0], NOT, "excludes +0.0267; no difference is shown"),
        ([-0.05, 0.01, 0.06], "inconclusive", "holds both 0 and +0.0267"),
        ([0.05, 0.06], "not decided yet", "2 of the 3 paired fine-tuning seeds the rule needs"),
    ],
)
def test_the_verdict_rule(diffs, word, reason):
    got = verdict(diffs, 0.0267)
    assert got[0] == word and got[1].endswith(reason)


def test_features_in_length_order_are_each_sentences_own(tiny_runs):
    sentences = ["a b c d e f g h i j", "a", "the cat", "x y z", "a b c d e f g h i j k l m n o p q", "b b"]
    both = pooled_features(tiny_runs / "bermo", sentences, ("cls", "mean"), batch_size=2)
    for i, s in enumerate(sentences):
        alone = pooled_features(tiny_runs / "bermo", [s], ("cls", "mean"), batch_size=1)
        for pooling in ("cls", "mean"):
            for layer in ("0", "1", "2", "mix"):
                np.testing.assert_allclose(both[pooling][layer][i], alone[pooling][layer][0], atol=1e-5)
    assert layer_features(tiny_runs / "bermo", sentences, "mean")["mix"].shape == (6, 32)


def test_the_committed_semantic_study_report_is_what_its_files_say(tmp_path, monkeypatch):
    from .conftest import ROOT

    monkeypatch.chdir(ROOT)
    study = load_study("benchmarks/probing_semantic/spec.yaml")
    committed = study.out
    rows = read_rows(committed)
    planned = {p.run for p in study.planned}
    probed = (
        json.loads((committed / "probed.json").read_text()) if (committed / "probed.json").is_file() else {}
    )
    assert set(probed) <= planned
    for run in probed:  # every probed run has every task, at every pooling
        got = {(r["task"], r["pooling"]) for r in rows if r["run"] == run}
        assert got == {(t, p) for t in study.conf.tasks for p in study.conf.poolings}, run
    assert {r["run"] for r in rows} == set(probed) | {"majority", "bag_of_words"}
    for name in ("results.jsonl", "probed.json", "tasks.json", "notes.md"):
        if (committed / name).is_file():
            shutil.copy(committed / name, tmp_path / name)
    study.conf.output_dir = str(tmp_path)
    write_study_report(study, rows)
    assert (tmp_path / "REPORT.md").read_text() == (committed / "REPORT.md").read_text()


def test_the_interval_over_test_sentences_is_the_paired_difference_and_its_sampling_error(monkeypatch):
    """On the committed rows: the bootstrap's centre is the table's paired difference, and its 95% interval is the
    normal one from the per-sentence differences (their variance over each task's n sentences) within a few
    percent; two arms that got the same sentences right have a zero-width interval at 0."""
    from bermo_prune.probe.study_report import _pick, semantic_averages, sentence_interval

    from .conftest import ROOT

    monkeypatch.chdir(ROOT)
    study = load_study("benchmarks/probing_semantic/spec.yaml")
    rows = read_rows(study.out)
    sizes = json.loads((study.out / "tasks.json").read_text())
    for how in ("reads", "best", "last"):
        args = ("movement_10", "cls", "logreg", how)
        a = semantic_averages(study, rows, *args[:1], "bert", *args[1:])
        b = semantic_averages(study, rows, *args[:1], "bermo", *args[1:])
        paired = sorted(set(a) & set(b))
        assert len(paired) >= 2  # the movement pairs probed so far (seeds 3 on)
        mean, low, high = sentence_interval(study, rows, *args)
        assert mean == pytest.approx(sum(b[k] - a[k] for k in paired) / len(paired), abs=1e-6)
        assert low < mean < high
        # the normal interval: per task, the seed-averaged per-sentence differences' variance / n
        var = 0.0
        for task in study.conf.semantic:
            n = sizes[task]["examples"]["te"]
            per_seed = []
            for k in paired:
                bits = {}
                for arm in ("bert", "bermo"):
                    run = f"{arm}_movement_0.1_s{k}"
                    mine = [
                        r for r in rows if r["run"] == run and r["task"] == task and r["pooling"] == "cls"
                    ]
                    mine = [r for r in mine if r["classifier"] == "logreg"]
                    bits[arm] = np.mean(
                        [
                            np.unpackbits(np.frombuffer(bytes.fromhex(r["te_correct"]), dtype=np.uint8))[:n]
                            for r in _pick(mine, how)
                        ],
                        axis=0,
                    )
                per_seed.append(bits["bermo"] - bits["bert"])
            var += np.var(np.mean(per_seed, axis=0)) / n
        half = 1.96 * np.sqrt(var) / len(study.conf.semantic)
        assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    same = [dict(r, arm="bermo", run=r["run"].replace("bert_", "bermo_")) for r in rows if r["arm"] == "bert"]
    twin = [r for r in rows if r["arm"] != "bermo"] + same
    assert sentence_interval(study, twin, "movement_10", "cls", "logreg", "last") == (0.0, 0.0, 0.0)
