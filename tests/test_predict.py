"""``bermo-prune eval`` and ``bermo-prune predict``: a run's eval equals its final evaluation; predict writes labels
and probabilities in input order; bad input is one line and exit 2, with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bermo_prune.cli import EXIT_BAD_INPUT, main
from bermo_prune.data import load_task_data

from .conftest import QUICK, tiny_overrides

TINY = tiny_overrides(
    600,
    150,
    "train.threads=1",
    "train.max_steps=40",
    "train.eval_every=20",
    "train.eval_batch_size=32",
    "pruning.granularity=head",
    "pruning.schedule.final=0.5",
    "checkpoint.every=0",
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    assert main(["run", QUICK, *TINY, "--output-dir", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def dev_file(run_dir):
    """The run's dev split as a labelled TSV (what a user would hand to --data)."""
    dev = load_task_data(
        "synthetic", "synthetic", seed=0, synthetic_train_size=600, synthetic_dev_size=150
    ).dev
    path = run_dir.parent / "dev.tsv"
    path.write_text(
        "sentence\tlabel\n" + "".join(f"{t[0]}\t{y}\n" for t, y in zip(dev.texts, dev.labels, strict=True))
    )
    return path


def _json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_equals_the_runs_final_evaluation(run_dir, dev_file, capsys):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["remaining"] == pytest.approx(0.5, abs=0.01)
    report = _json(capsys, "eval", str(run_dir), "--json")
    assert (
        report["metrics"] == summary["final"]
    )  # every number, exactly: accuracy, loss, examples, majority share
    assert report["task"] == "synthetic" and report["batch_size"] == 32 and report["max_length"] == 64
    # The same examples from a file, and through model/ directly: the same numbers.
    assert (
        _json(capsys, "eval", str(run_dir / "model"), "--data", str(dev_file), "--json")["metrics"]
        == summary["final"]
    )
    # The table names the main metric.
    assert main(["eval", str(run_dir), "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    assert f"accuracy                   {summary['final']['accuracy']:.4f}  (main)" in table
    # A compacted model (heads and neurons removed): the same predictions.
    assert main(["compact", str(run_dir), "--repeats", "1", "--length", "16"]) == 0
    capsys.readouterr()
    compacted = _json(capsys, "eval", str(run_dir / "compact"), "--json")
    assert compacted["metrics"]["accuracy"] == summary["final"]["accuracy"]
    assert compacted["metrics"]["loss"] == pytest.approx(summary["final"]["loss"], abs=1e-5)


def test_split_predictions_are_the_final_evaluations_classes_in_dev_order(run_dir, tmp_path, capsys):
    """What a sweep row keeps: one class digit per dev example, in the dev split's order; scored against the
    labels they give the run's final accuracy, also for a run trained (and evaluated) under bf16 autocast."""
    from bermo_prune.predict import split_predictions

    dev = load_task_data(
        "synthetic", "synthetic", seed=0, synthetic_train_size=600, synthetic_dev_size=150
    ).dev
    for run in (run_dir, tmp_path / "bf16"):
        if run != run_dir:
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state()  # Accelerate keeps one precision per process: set bf16, then put back
            try:
                argv = [
                    "run",
                    QUICK,
                    *TINY,
                    "train.mixed_precision=bf16",
                    "--output-dir",
                    str(run),
                    "--quiet",
                ]
                assert main(argv) == 0
            finally:
                AcceleratorState._reset_state()
            capsys.readouterr()
            assert (
                _json(capsys, "eval", str(run), "--json")["metrics"]
                == json.loads((run / "summary.json").read_text())["final"]
            )
        summary = json.loads((run / "summary.json").read_text())
        pred = split_predictions(run, device="cpu")
        assert len(pred) == 150 and set(pred) <= {"0", "1"}
        assert (
            sum(int(p) == y for p, y in zip(pred, dev.labels, strict=True)) / 150
            == summary["final"]["accuracy"]
        )


def test_predict_writes_labels_and_probabilities_in_input_order(run_dir, dev_file, tmp_path, capsys):
    unlabelled = tmp_path / "in.jsonl"
    texts = [line.split("\t")[0] for line in dev_file.read_text().splitlines()[1:]]
    unlabelled.write_text("".join(json.dumps({"sentence": t}) + "\n" for t in texts))
    out = tmp_path / "pred.jsonl"
    assert (
        main(["predict", str(run_dir), "--input", str(unlabelled), "--output", str(out), "--batch-size", "7"])
        == 0
    )
    assert f"{out}: {len(texts)} rows labelled" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["sentence"] for r in rows] == texts and [r["index"] for r in rows] == list(range(len(texts)))
    for r in rows:
        p = r["probabilities"]
        assert sum(p.values()) == pytest.approx(1.0) and r["label"] == max(p, key=p.get)
    # Their accuracy on the dev labels is eval's accuracy.
    gold = [int(line.split("\t")[1]) for line in dev_file.read_text().splitlines()[1:]]
    accuracy = float(np.mean([r["label_id"] == y for r, y in zip(rows, gold, strict=True)]))
    assert accuracy == json.loads((run_dir / "summary.json").read_text())["final"]["accuracy"]
    # TSV: a header, one line per row, probabilities per class.
    tsv = tmp_path / "pred.tsv"
    assert main(["predict", str(run_dir), "--input", str(dev_file), "--output", str(tsv)]) == 0
    lines = tsv.read_text().splitlines()
    assert lines[0] == "index\tsentence\tlabel\tp_negative\tp_positive" and len(lines) == len(texts) + 1
    assert lines[1].split("\t")[2] == rows[0]["label"]


def test_standalone_model_pair_regression_task(tmp_path, capsys):
    """A model directory outside any run: --task names the task; STS-B's metrics and predicted scores."""
    from bermo_prune.models import ModelSpec, build_model

    spec = ModelSpec(
        arch="bermo", num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32, vocab_size=60
    )
    texts = ["a man plays a guitar", "a woman slices an onion", "the cat sleeps", "a dog runs in a park"] * 3
    model, tokenizer = build_model(spec, 1, texts, problem_type="regression")
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    data = tmp_path / "sts.csv"
    data.write_text(
        "sentence1,sentence2,label\n"
        + "".join(f"{a},{b},{i % 5}.0\n" for i, (a, b) in enumerate(zip(texts, texts[1:], strict=False)))
    )
    assert main(["eval", str(tmp_path / "m"), "--data", str(data)]) == EXIT_BAD_INPUT
    assert "not inside a run directory, so the task is unknown; pass --task NAME" in capsys.readouterr().err
    report = _json(capsys, "eval", str(tmp_path / "m"), "--data", str(data), "--task", "stsb", "--json")
    assert (
        set(report["metrics"]) == {"pearson", "spearman", "loss", "examples"}
        and report["metrics"]["examples"] == 11
    )
    out = tmp_path / "scores.tsv"
    assert (
        main(["predict", str(tmp_path / "m"), "--task", "stsb", "--input", str(data), "--output", str(out)])
        == 0
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "index\tsentence1\tsentence2\tscore" and len(lines) == 12
    assert main(["eval", str(tmp_path / "m"), "--data", str(data), "--task", "sst2"]) == EXIT_BAD_INPUT
    assert "the model has 1 output(s) but task 'sst2' needs 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "{tmp}/missing"], "{tmp}/missing: no such run or model directory"),
        (["eval", "{run}", "--data", "{tmp}/nope.tsv"], "{tmp}/nope.tsv: no such file (--data)"),
        (["eval", "{run}", "--data", "{bad}"], "{bad}: line 3: label '7' is not one of the task's labels"),
        (["eval", "{run}", "--split", "test"], "--split test: use dev or train"),
        (["eval", "{run}", "--batch-size", "0"], "--batch-size: must be a positive integer, got 0"),
        (["eval", "{run}", "--device", "cuda:7"], "--device cuda:7: "),
        (["eval", "{run}", "--device", "toaster"], "--device toaster: not a device"),
        (
            ["predict", "{run}", "--input", "{bad}", "--output", "{tmp}/p.csv"],
            "unsupported output type '.csv'",
        ),
        (
            ["predict", "{run}", "--input", "{bad}", "--output", "{tmp}/no/p.tsv"],
            "the directory {tmp}/no does not exist",
        ),
        (["predict", "{run}", "--input", "{bad}", "--output", "{bad}"], "the same file as --input"),
        (
            ["predict", "{run}", "--input", "{wrong}", "--output", "{tmp}/p.tsv"],
            "missing column 'sentence' (found: text); map it with --column sentence=NAME",
        ),
        (
            ["predict", "{run}", "--input", "{wrong}", "--output", "{tmp}/p.tsv", "--column", "sentence"],
            "--column sentence: expected TASK_COLUMN=FILE_COLUMN",
        ),
        (
            ["predict", "{tmp}", "--input", "{wrong}", "--output", "{tmp}/p.tsv"],
            "not a run directory (with model/) or a model directory",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nfine\t1\nnot fine\t7\n")
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("text\nhello\n")
    fill = {"tmp": str(tmp_path), "run": str(run_dir), "bad": str(bad), "wrong": str(wrong)}
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([a.format(**fill) for a in argv]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("bermo-prune: error: ") and err.count("\n") == 1, err
    assert message.format(**fill) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert bad.read_text() == "sentence\tlabel\nfine\t1\nnot fine\t7\n"


def test_saved_models_carry_a_model_card(run_dir):
    """model/README.md: the Hugging Face metadata header (parsed by huggingface_hub) and what the model is."""
    from huggingface_hub import ModelCard

    summary = json.loads((run_dir / "summary.json").read_text())
    card = ModelCard.load(run_dir / "model" / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "text-classification"
    assert {"bermo", "pruned", "movement-pruning"} <= set(data["tags"])
    (result,) = card.data.eval_results
    assert result.metric_type == "accuracy" and result.metric_value == round(summary["final"]["accuracy"], 4)
    text = card.text
    assert (
        "A BERMo (bert: the classifier reads a learned mix of all layers) sequence classifier for **synthetic**"
        in text
    )
    assert f"| remaining weights | **{summary['remaining']:.4f}** of the encoder's linear weights" in text
    assert f"| dev accuracy | **{summary['final']['accuracy']:.4f}** at the end" in text
    assert (
        "movement, granularity head, cubic schedule to 0.5" in text
        and "| BERMo mix | layer weights [" in text
    )
    assert (
        "import bermo_prune  # registers" in text
        and "AutoModelForSequenceClassification.from_pretrained" in text
    )
    assert (run_dir / "recipe.yaml").read_text().strip() in text  # the recipe, verbatim
    # The compacted model's card (written by `bermo-prune compact` in the eval test, or here) gives size and speed.
    if not (run_dir / "compact" / "README.md").is_file():
        assert main(["compact", str(run_dir), "--repeats", "1", "--length", "16"]) == 0
    report = json.loads((run_dir / "compact" / "compact.json").read_text())
    compact = ModelCard.load(run_dir / "compact" / "README.md")
    assert "compacted" in compact.data.to_dict()["tags"] and compact.data.eval_results
    assert (
        f"| parameters | {report['before']['parameters']:,} | {report['after']['parameters']:,}"
        in compact.text
    )
    assert f"(**{report['speedup']:.2f}x faster**)" in compact.text and "load_compact(" in compact.text
    assert "## The model before compaction" in compact.text
