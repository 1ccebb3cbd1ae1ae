"""Probing: SentEval's file format, the generated tasks' labels, the probe on tasks with known answers, the CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from bermo_prune.cli import EXIT_BAD_INPUT, main
from bermo_prune.errors import DataError
from bermo_prune.probe.probing import bag_of_words, fit_probe
from bermo_prune.probe.tasks import (
    ProbeTask,
    bigram_shift,
    coordination_inversion,
    generate,
    invert_coordination,
    read_senteval,
    sentence_length,
    sentences_from_file,
    split_coordination,
    word_content,
    write_senteval,
)

from .conftest import QUICK, TINY

GOOD = "tr\tA\tthe cat sat\ntr\tB\ta dog ran far\nva\tA\tthe cat ran\nte\tB\ta dog sat\n"


def test_reading_a_senteval_file_and_writing_it_back(tmp_path):
    path = tmp_path / "task.txt"
    path.write_text(GOOD)
    task = read_senteval(path)
    assert task.name == "task" and task.labels == ["A", "B"]
    assert task.examples == {
        "tr": [("A", "the cat sat"), ("B", "a dog ran far")],
        "va": [("A", "the cat ran")],
        "te": [("B", "a dog sat")],
    }
    assert task.majority_rate("te") == 0.0  # a tie in tr goes to the label seen first (A); te holds only B
    again = read_senteval(write_senteval(task, tmp_path / "copy.txt"))
    assert again.examples == task.examples


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty file: no examples"),
        ("tr\tA\tx\ntr\tB\ty\nva\tA\tz\n", "no 'te' examples; a probing file needs tr, va and te"),
        (
            "tr\tA\tx\ntr\tB\ty\nva\tA\tz\nte\tC\tw\n",
            "line 4: label 'C' does not occur in the training split (tr)",
        ),
        ("tr\tA\tx\ntr\tB\n", "line 2: expected split<TAB>label<TAB>sentence, found 2 field(s)"),
        ("train\tA\tx\n", "line 1: unknown split 'train'; use tr, va or te"),
        ("tr\tA\tx\ntr\t\ty\n", "line 2: empty label"),
        ("tr\tA\tx\nva\tA\ty\nte\tA\tz\n", "the training split has a single label ('A'); nothing to probe"),
    ],
)
def test_bad_senteval_files_name_the_file_and_line(tmp_path, text, problem):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_senteval(path)
    assert str(info.value) == f"{path}: {problem}"


def test_generated_labels_on_hand_made_sentences():
    rng = random.Random(0)
    # sentence length: SentEval's bins by word count; 4 and 29 words are outside every bin
    lengths = [" ".join(["w"] * n) for n in (4, 5, 8, 9, 16, 17, 25, 26, 28, 29)]
    assert [label for label, _ in sentence_length(lengths, rng)] == ["0", "0", "1", "2", "3", "4", "5", "5"]
    # word content: the label is the one target word the sentence holds; two targets or none: no example
    corpus = ["a b c", "a b", "a c", "a", "d"]  # by frequency: a (4), b (2), c (2), d (1)
    assert word_content(corpus, rng, words=2, word_rank=1) == [("b", "a b"), ("c", "a c")]
    # bigram shift: an inverted sentence is the original with exactly two adjacent words swapped
    sentences = [f"w{i} a b c d e" for i in range(40)]
    originals = {tuple(sorted(x.split())): x for x in sentences}
    rows = bigram_shift(sentences, random.Random(1))
    assert len(rows) == 40 and {label for label, _ in rows} == {"I", "O"}
    for label, s in rows:
        original = originals[tuple(sorted(s.split()))]
        diff = [i for i, (a, b) in enumerate(zip(original.split(), s.split(), strict=True)) if a != b]
        assert (label == "O" and diff == []) or (label == "I" and len(diff) == 2 and diff[1] == diff[0] + 1)
    # coordination inversion: the two clauses swap around the conjunction; the capital moves with the start
    s = "The rain fell all day , but we went out anyway ."
    assert split_coordination(s) == ("The rain fell all day", "but", "we went out anyway .")
    assert invert_coordination(s) == "We went out anyway , but the rain fell all day ."
    assert split_coordination("I came , and saw it all .") is None  # fewer than 3 words before the joint
    assert split_coordination("a b c , and d e f , and g h i") is None  # two joints
    rows = coordination_inversion([s] * 20, random.Random(2))
    assert {label for label, _ in rows} == {"I", "O"}
    assert all(x == (s if label == "O" else invert_coordination(s)) for label, x in rows)


def test_generate_balances_labels_and_splits_80_10_10():
    sentences = [" ".join(f"w{j}" for j in range(n)) + f" s{i}" for i in range(300) for n in (5, 9)]
    task = generate("sentence_length", sentences, seed=3)
    counts = {split: len(rows) for split, rows in task.examples.items()}
    assert sum(counts.values()) == 600 and counts == {"tr": 480, "va": 60, "te": 60}
    all_rows = [r for rows in task.examples.values() for r in rows]
    assert sorted({label for label, _ in all_rows}) == ["0", "1"]
    assert sum(label == "0" for label, _ in all_rows) == 300
    for split, n in (("tr", 240), ("va", 30), ("te", 30)):  # every split balanced, not only the whole
        assert sum(label == "0" for label, _ in task.examples[split]) == n
    assert generate("sentence_length", sentences, seed=3).examples == task.examples  # deterministic


def test_sentences_from_wikitext_and_sst2_files(tmp_path):
    wiki = tmp_path / "w.txt"
    wiki.write_text(" = Title = \n\n The cat sat . It ran away ! \n Short\n")
    assert sentences_from_file(wiki) == ["The cat sat .", "It ran away !"]
    tsv = tmp_path / "s.tsv"
    tsv.write_text("sentence\tlabel\na  fine film \t1\n")
    assert sentences_from_file(tsv) == ["a fine film"]


def _split_data(x, y, n_tr=400, n_va=100):
    return (
        {"tr": x[:n_tr], "va": x[n_tr : n_tr + n_va], "te": x[n_tr + n_va :]},
        {"tr": y[:n_tr], "va": y[n_tr : n_tr + n_va], "te": y[n_tr + n_va :]},
    )


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_the_probe_finds_a_feature_that_encodes_the_label_and_nothing_in_a_constant(kind):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    exact = np.concatenate([np.eye(3)[y], rng.normal(size=(600, 5))], axis=1).astype(np.float32)
    x, labels = _split_data(exact, y)
    assert fit_probe(x, labels, kind)["te"] == 1.0
    y = (rng.random(600) < 0.3).astype(int)  # 70% zeros
    x, labels = _split_data(np.ones((600, 4), dtype=np.float32), y)
    result = fit_probe(x, labels, kind)
    assert result["te"] == pytest.approx(float((labels["te"] == 0).mean()))  # the majority rate, no better


def test_bag_of_words_counts_training_words_seen_twice():
    task = ProbeTask("t", {"tr": [("A", "a a b"), ("B", "b c")], "va": [("A", "a z")], "te": [("B", "c b")]})
    bow = bag_of_words(task)
    assert bow["tr"].tolist() == [[2, 1], [0, 1]]  # vocabulary: a (2), b (2); c once: left out
    assert bow["va"].tolist() == [[1, 0]] and bow["te"].tolist() == [[0, 1]]


def test_probe_cli_end_to_end_and_bad_input(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", QUICK, *TINY, "train.max_steps=60", "--quiet", "--output-dir", str(run)]) == 0
    text = tmp_path / "text.txt"
    words = "the a cat dog sat ran on under big small red blue".split()
    rng = random.Random(0)
    text.write_text(
        "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(5, 12))) + " ." for _ in range(800))
    )
    tasks = tmp_path / "tasks"
    assert (
        main(["probe-data", str(tasks), "--text", str(text), "--tasks", "sentence_length", "bigram_shift"])
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "probe"
    files = [str(tasks / "sentence_length.txt"), str(tasks / "bigram_shift.txt")]
    assert main(["probe", *files, "--model", f"bermo_q={run}", "--output", str(out), "--seeds", "2"]) == 0
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    layers = {r["layer"] for r in rows if r["model"] == "bermo_q"}
    assert layers == {"0", "1", "2", "mix"}  # 2 layers + embeddings + BERMo's mix
    assert {r["model"] for r in rows} == {"majority", "bag_of_words", "bermo_q"}
    assert len([r for r in rows if r["model"] == "bermo_q"]) == 2 * 4 * 2  # tasks x layers x seeds
    length = [r["te"] for r in rows if r["model"] == "bermo_q" and r["task"] == "sentence_length"]
    majority = next(r["te"] for r in rows if r["model"] == "majority" and r["task"] == "sentence_length")
    assert max(length) > majority + 0.2  # length is easy to read from any layer
    report = (out / "REPORT.md").read_text()
    assert "## sentence_length" in report and "![bigram_shift](fig_bigram_shift.png)" in report
    assert (out / "fig_sentence_length.png").stat().st_size > 10_000
    assert (
        f"## How to reproduce\n\n```\nbermo-prune probe {files[0]} {files[1]} --model bermo_q={run}" in report
    )
    # bad input: one line, exit 2, before any work
    bad = tmp_path / "bad.txt"
    bad.write_text("tr\tA\tx\n")
    assert (
        main(["probe", str(bad), "--model", f"m={run}", "--output", str(tmp_path / "p2")]) == EXIT_BAD_INPUT
    )
    assert (
        capsys.readouterr().err.strip()
        == f"bermo-prune: error: {bad}: no 'va' examples; a probing file needs tr, va and te"
    )
    assert main(["probe", files[0], "--model", "m", "--output", str(tmp_path / "p2")]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == "bermo-prune: error: --model m: expected NAME=DIR"
    assert not (tmp_path / "p2").exists()


def test_committed_probing_report_is_what_the_report_writes_from_its_results(tmp_path):
    """benchmarks/probing/REPORT.md is generated, not edited: the same function on the committed results (and the
    hand-written notes) writes the same report; every task has its figure."""
    import shutil

    from bermo_prune.probe.report import write_probe_report

    from .conftest import ROOT

    committed = ROOT / "benchmarks" / "probing"
    rows = [json.loads(x) for x in (committed / "results.jsonl").read_text().splitlines()]
    report = (committed / "REPORT.md").read_text()
    command = report.split("## How to reproduce\n\n```\n")[1].split("\n```")[0]
    shutil.copy(committed / "notes.md", tmp_path / "notes.md")
    assert write_probe_report(tmp_path, rows, command).read_text() == report
    tasks = {r["task"] for r in rows}
    assert tasks == {"sentence_length", "word_content", "bigram_shift", "coordination_inversion"}
    assert all((committed / f"fig_{t}.png").stat().st_size > 10_000 for t in tasks)
    assert {"bert_dense", "bermo_dense", "majority", "bag_of_words"} <= {r["model"] for r in rows}


@pytest.mark.parametrize("arch", ["bert", "bermo"])
def test_a_compacted_models_features_are_the_pruned_models(arch, tmp_path):
    """Probing reads any model directory: a head-pruned model, hardened, and the same model compacted (heads and
    FFN neurons removed physically) give the same per-layer features, and BERMo's mix besides."""
    import torch

    from bermo_prune.compact import compact
    from bermo_prune.engine import prune
    from bermo_prune.models import ModelSpec, build_model
    from bermo_prune.probe.probing import layer_features
    from bermo_prune.pruners import get_pruner
    from bermo_prune.schedule import Constant, Scheduler

    sentences = ["the film is good", "a dull and tired story", "not bad at all", "it was fine , i guess"] * 3
    torch.manual_seed(0)
    spec = ModelSpec(
        arch=arch, num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64, vocab_size=100
    )
    model, tok = build_model(spec, 2, sentences)
    handle = prune(model, Scheduler(get_pruner("magnitude", granularity="head"), Constant(0.5)))
    handle.harden()
    model.eval()
    model.save_pretrained(tmp_path / "pruned")
    tok.save_pretrained(tmp_path / "pruned")
    compact(model)
    model.save_pretrained(tmp_path / "compacted")
    tok.save_pretrained(tmp_path / "compacted")
    config = json.loads((tmp_path / "compacted" / "config.json").read_text())
    assert config["layer_heads"] == [2, 2]  # half of every layer's heads are gone from the weights
    pruned = layer_features(tmp_path / "pruned", sentences, "mean")
    compacted = layer_features(tmp_path / "compacted", sentences, "mean")
    expected = ["0", "1", "2"] + (["mix"] if arch == "bermo" else [])
    assert list(pruned) == list(compacted) == expected
    for name in expected:
        assert pruned[name].shape == (len(sentences), 32)
        np.testing.assert_allclose(compacted[name], pruned[name], atol=1e-5)
