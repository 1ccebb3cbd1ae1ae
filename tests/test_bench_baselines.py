"""Baselines of a sweep (bench/baselines.py): majority class and bag of words on exactly the data the runs used,
and each run's pruning start, written to baselines.json by `bermo-prune baselines` (and `bench`)."""

import json

import pytest

from bermo_prune.bench.baselines import bag_of_words_accuracy, compute_baselines, majority_baseline
from bermo_prune.bench.sweep import load_spec
from bermo_prune.cli import main
from bermo_prune.data import load_task_data

from .conftest import ROOT


def test_majority_class_is_the_training_majority_scored_on_dev():
    b = majority_baseline([0, 1, 1, 1, 0], [0, 0, 0, 1])
    assert b == {"label": 1, "dev_accuracy": 0.25, "dev_majority_rate": 0.75}
    assert majority_baseline([0, 1], [1, 1])["label"] == 0  # a tie goes to the smaller label


def test_bag_of_words_reads_bigrams_and_is_deterministic():
    train = [("not good",), ("very good",), ("not bad",), ("very bad",)] * 5
    labels = [0, 1, 1, 0] * 5
    dev = [("not good",), ("not bad",), ("very good",), ("very bad",)]
    dev_labels = [0, 1, 1, 0]
    # unigrams alone cannot separate these (every word is as often positive as negative); bigrams can
    acc = bag_of_words_accuracy(train, labels, dev, dev_labels)
    assert acc == 1.0 and bag_of_words_accuracy(train, labels, dev, dev_labels) == acc


def write_spec(tmp_path, sst2_dir):
    spec = {
        "base": str(ROOT / "recipes" / "sst2_movement.yaml"),
        "overrides": [
            f"data.path={sst2_dir}",
            "data.max_train_samples=400",
            "train.max_steps=200",
            "pruning.schedule.warmup=0.1",
            "pruning.schedule.cooldown=0.2",
        ],
        "models": ["bert", "bermo"],
        "methods": {"none": {}, "movement": {"targets": [0.5]}},
        "seeds": [0, 1],
        "output_dir": str(tmp_path / "bench"),
    }
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))
    return path


def test_baselines_use_the_subset_each_run_trained_on_and_record_its_pruning_start(
    tmp_path, sst2_dir, capsys
):
    path = write_spec(tmp_path, sst2_dir)
    spec = load_spec(path)
    b = compute_baselines(spec, log=lambda _: None)
    assert len(b["draws"]) == 2 and [d["seeds"] for d in b["draws"]] == [[0], [1]]  # a seeded subset per seed
    for seed, draw in zip((0, 1), b["draws"], strict=True):
        data = load_task_data(
            "sst2", "local", path=sst2_dir, max_train_samples=400, seed=seed
        )  # as run_recipe
        assert draw["train_size"] == 400 and draw["dev_size"] == len(data.dev) == 872
        assert draw["majority"]["dev_majority_rate"] == pytest.approx(444 / 872)
        assert 0.5 < draw["bag_of_words"] < 0.9
        # the per-example predictions and labels, in the dev file's order, give exactly the accuracy
        assert draw["dev_labels"] == "".join(str(y) for y in data.dev.labels)
        pred, gold = draw["bag_of_words_predictions"], draw["dev_labels"]
        assert len(pred) == 872 and set(pred) == {"0", "1"}
        assert sum(p == g for p, g in zip(pred, gold, strict=True)) / 872 == draw["bag_of_words"]
    assert b["draws"][0]["train_sha256"] != b["draws"][1]["train_sha256"]
    assert b["draws"][0]["dev_sha256"] == b["draws"][1]["dev_sha256"]
    assert b["runs"]["bert_movement_0.5_s1"] == {"draw": 1, "steps": 200, "pruning_start": 20}
    assert b["runs"]["bermo_none_dense_s0"]["pruning_start"] is None
    assert b["at_chance_margin"] == 0.02
    out = tmp_path / "results"
    assert main(["baselines", str(path), "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    written = json.loads((out / "baselines.json").read_text())
    assert written["draws"] == b["draws"] and written["runs"] == b["runs"]


def test_the_committed_studies_baselines_match_their_data(sst2_dir):
    """The committed baselines.json files were computed on the data the runs used: the full training set for
    sst2_minilm, a seeded 20,000-sentence subset per seed for sst2_tiny; every run of the results has an entry."""
    for study, sizes in (("sst2_minilm", [67349]), ("sst2_tiny", [20000, 20000, 20000])):
        b = json.loads((ROOT / "benchmarks" / study / "baselines.json").read_text())
        rows = [
            json.loads(x) for x in (ROOT / "benchmarks" / study / "results.jsonl").read_text().splitlines()
        ]
        assert {r["run"] for r in rows} <= set(b["runs"])
        assert [d["train_size"] for d in b["draws"]] == sizes
        assert all(0.79 < d["bag_of_words"] < 0.83 for d in b["draws"])
    tiny = json.loads((ROOT / "benchmarks" / "sst2_tiny" / "baselines.json").read_text())
    for draw in tiny["draws"]:
        (seed,) = draw["seeds"]
        data = load_task_data("sst2", "local", path=sst2_dir, max_train_samples=20000, seed=seed)
        from bermo_prune.bench.baselines import _fingerprint

        assert _fingerprint(data.train) == draw["train_sha256"]
