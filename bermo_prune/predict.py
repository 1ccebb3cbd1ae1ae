"""``bermo-prune eval`` and ``bermo-prune predict``: score a task's split or a local file, or label unlabelled text,
with any run directory, model directory or compacted model.

What loads: ``RUN_DIR`` (its ``model/``), ``RUN_DIR/model``, ``RUN_DIR/compact`` (or any compacted model) and any
model directory of a supported family, plain or BERMo. The task comes from ``--task`` or, for anything inside a run
directory, from the run's ``recipe.yaml``; so do the defaults of the batch size and the length cap (the run's
``train.eval_batch_size`` and ``train.max_length``), the data of ``--split`` and the column mapping. Scoring goes
through the training loop's own evaluation (:func:`bermo_prune.jobs.evaluate`, length-sorted batches), so a run's
``eval`` on its dev set gives the numbers of its final evaluation.

Every check that can fail on the user's input (the model path, the task, the data file and each of its rows, the
output path, the device, the options) runs before any output is written; the output file is written to a temporary
name and renamed, so it is whole or absent.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from .data import (
    BucketBatchSampler,
    Collator,
    EncodedSplit,
    Split,
    TaskSpec,
    get_task,
    load_task_data,
    read_split,
)
from .errors import InputError
from .jobs import evaluate
from .models import fit_inputs, load_compact, load_tokenizer
from .recipe import parse_recipe
from .rundir import RECIPE, find_model
from .sparse import sparsify

#: output formats of ``predict``, by file suffix
OUTPUT_FORMATS = (".tsv", ".jsonl")
DEFAULT_BATCH_SIZE = 128
DEFAULT_MAX_LENGTH = 128


@dataclass
class Scorer:
    """A loaded model with what scoring it needs: its tokenizer, the task, and the run's recipe when it has one."""

    model: torch.nn.Module
    tokenizer: object
    task: TaskSpec
    model_dir: Path
    run_dir: Path | None
    recipe: object | None  # bermo_prune.recipe.Recipe of the run
    device: torch.device
    batch_size: int
    max_length: int

    def batches(self, split: Split, labelled: bool):
        """(example indices, padded batch) in length-sorted order, as the training loop evaluates."""
        data = Split(split.texts, split.labels if labelled else [0] * len(split), split.origin)
        encoded = EncodedSplit(data, self.tokenizer, self.max_length)
        collate = Collator(
            self.tokenizer.pad_token_id,
            regression=self.task.is_regression,
            token_types="token_type_ids" in self.tokenizer.model_input_names,
        )
        sampler = BucketBatchSampler(encoded.lengths, self.batch_size, shuffle=False)
        return encoded, collate, sampler

    def precision(self):
        """The autocast the run trained and evaluated under (its ``train.mixed_precision``, which Accelerate
        applies to every forward of the prepared model), so that scoring a run gives its own evaluations'
        numbers; no autocast for a model outside a run or a full-precision run."""
        mode = self.recipe.train.mixed_precision if self.recipe is not None else "no"
        if mode == "no":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if mode == "bf16" else torch.float16)


def _run_recipe(run_dir: Path):
    path = run_dir / RECIPE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: unreadable ({type(exc).__name__})") from None
    return parse_recipe(raw, str(path))


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; InputError otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"--device {name}: unsupported device type; use auto, cpu, cuda, cuda:N or mps")
    return device


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise InputError(f"{name}: must be a positive integer, got {value}")


def parse_columns(items: list[str] | None) -> dict[str, str]:
    """``--column TASK_COLUMN=FILE_COLUMN`` options as a mapping."""
    out = {}
    for item in items or []:
        name, sep, column = item.partition("=")
        if not sep or not name or not column:
            raise InputError(f"--column {item}: expected TASK_COLUMN=FILE_COLUMN, e.g. sentence=text")
        out[name] = column
    return out


def load_scorer(
    path: str | os.PathLike,
    task: str | None = None,
    batch_size: int | None = None,
    max_length: int | None = None,
    device: str = "auto",
    sparse: bool = False,
) -> Scorer:
    """Load what ``path`` holds for scoring (see the module docstring); InputError on anything wrong. ``sparse``:
    mostly-zero linears run as sparse CSR products (:func:`~bermo_prune.sparse.sparsify`; CPU only)."""
    _check_positive("--batch-size", batch_size)
    _check_positive("--max-length", max_length)
    dev = resolve_device("cpu" if sparse and device == "auto" else device)  # sparse kernels: the CPU's
    model_dir, run_dir = find_model(path)
    recipe = _run_recipe(run_dir) if run_dir is not None else None
    if task is None:
        if recipe is None:
            raise InputError(f"{path}: not inside a run directory, so the task is unknown; pass --task NAME")
        task = recipe.task
    spec = get_task(task)
    try:
        model = load_compact(model_dir)
    except Exception as exc:  # noqa: BLE001 - any unloadable model directory is reported the same way
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{model_dir}: could not load the model ({first})") from None
    if model.config.num_labels != spec.num_labels:
        raise InputError(
            f"{model_dir}: the model has {model.config.num_labels} output(s) but task {spec.name!r} needs "
            f"{spec.num_labels}; pass the model's own --task"
        )
    if (model_dir / "tokenizer_config.json").is_file() or run_dir is None:
        tokenizer = load_tokenizer(str(model_dir))
    else:
        tokenizer = load_tokenizer(str(run_dir / "tokenizer"))
    tokenizer = fit_inputs(tokenizer, model.config)
    if sparse:
        if dev.type != "cpu":
            raise InputError(f"--sparse: sparse inference runs on the CPU; pass --device cpu (got {dev})")
        if sparsify(model) == 0:
            raise InputError(f"{model_dir}: --sparse: no linear layer is sparse enough (at most 30% nonzero)")
    return Scorer(
        model=model.to(dev).eval(),
        tokenizer=tokenizer,
        task=spec,
        model_dir=model_dir,
        run_dir=run_dir,
        recipe=recipe,
        device=dev,
        batch_size=batch_size or (recipe.train.eval_batch_size if recipe is not None else DEFAULT_BATCH_SIZE),
        max_length=max_length or (recipe.train.max_length if recipe is not None else DEFAULT_MAX_LENGTH),
    )


def _recipe_split(scorer: Scorer, split: str) -> Split:
    recipe = scorer.recipe
    if recipe is None:
        raise InputError(
            f"{scorer.model_dir}: no run recipe to take the {split} split from; pass --data FILE"
        )
    if recipe.task != scorer.task.name:
        raise InputError(
            f"--task {scorer.task.name}: the run's recipe is for task {recipe.task!r}; "
            "pass --data FILE to score another task's file"
        )
    data = load_task_data(recipe.task, recipe.data_source, seed=recipe.seed, **recipe.data.where())
    return data.dev if split == "dev" else data.train


def _check_data_file(path: str | os.PathLike, option: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: {'no such file' if not p.exists() else 'not a file'} ({option})")
    return p


def evaluate_model(
    path: str | os.PathLike,
    data: str | os.PathLike | None = None,
    split: str = "dev",
    task: str | None = None,
    columns: dict[str, str] | None = None,
    batch_size: int | None = None,
    max_length: int | None = None,
    device: str = "auto",
    sparse: bool = False,
) -> dict:
    """``bermo-prune eval``: the task's metrics of the model at ``path`` on ``data`` (a local TSV/CSV/JSONL file)
    or, without it, on the run recipe's ``split`` (``dev`` or ``train``)."""
    if split not in ("dev", "train"):
        raise InputError(f"--split {split}: use dev or train")
    if data is not None:
        _check_data_file(data, "--data")
    scorer = load_scorer(path, task, batch_size, max_length, device, sparse)
    if data is not None:
        examples = read_split(scorer.task, data, columns, column_option="--column {col}=NAME")
        where = str(data)
    else:
        if columns:
            raise InputError("--column: only with --data FILE (the run's own data uses its recipe's columns)")
        examples = _recipe_split(scorer, split)
        where = f"{split} split of {scorer.run_dir / RECIPE} ({examples.origin})"
    encoded, collate, sampler = scorer.batches(examples, labelled=True)
    loader = torch.utils.data.DataLoader(
        encoded, batch_sampler=sampler, collate_fn=_on(collate, scorer.device)
    )
    with scorer.precision():
        metrics = evaluate(scorer.model, loader, scorer.task)
    return {
        "model": str(scorer.model_dir),
        "task": scorer.task.name,
        "data": where,
        "main_metric": scorer.task.main_metric,
        "metrics": metrics,
        "batch_size": scorer.batch_size,
        "max_length": scorer.max_length,
        "device": str(scorer.device),
        "sparse": sparse,
    }


def _on(collate, device: torch.device):
    """The collate function, with the batch moved to ``device``."""

    def run(items):
        return {k: v.to(device) for k, v in collate(items).items()}

    return run


def format_eval(report: dict) -> str:
    """The table ``bermo-prune eval`` prints."""
    m = report["metrics"]
    rows = [
        ("model", report["model"]),
        ("task", report["task"]),
        ("data", report["data"]),
        ("examples", f"{m['examples']:,}"),
    ]
    if report.get("sparse"):
        rows.append(("inference", "sparse CSR linears (--sparse)"))
    for name in get_task(report["task"]).metrics:
        mark = "  (main)" if name == report["main_metric"] else ""
        rows.append((name, f"{m[name]:.4f}{mark}"))
    rows.append(("loss", f"{m['loss']:.4f}"))
    if "majority_prediction_share" in m:
        rows.append(("majority prediction share", f"{m['majority_prediction_share']:.3f}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _check_output(output: str | os.PathLike, inputs: Path) -> Path:
    out = Path(output)
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise InputError(f"{output}: unsupported output type {out.suffix!r}; use .tsv or .jsonl (--output)")
    if out.is_dir():
        raise InputError(f"{output}: is a directory; give a file name ending in .tsv or .jsonl (--output)")
    if not out.parent.is_dir():
        raise InputError(f"{output}: the directory {out.parent} does not exist (--output)")
    if out.resolve() == inputs.resolve():
        raise InputError(f"{output}: the same file as --input; choose another --output")
    return out


@torch.no_grad()
def predict(
    path: str | os.PathLike,
    inputs: str | os.PathLike,
    output: str | os.PathLike,
    task: str | None = None,
    columns: dict[str, str] | None = None,
    batch_size: int | None = None,
    max_length: int | None = None,
    device: str = "auto",
    sparse: bool = False,
) -> dict:
    """``bermo-prune predict``: labels and class probabilities (a score for regression) of every row of ``inputs``
    (a TSV/CSV/JSONL file with the task's text columns; a label column, if any, is ignored), written in input order
    to ``output`` (``.tsv`` or ``.jsonl``). Returns a short report."""
    source = _check_data_file(inputs, "--input")
    out = _check_output(output, source)
    scorer = load_scorer(path, task, batch_size, max_length, device, sparse)
    examples = read_split(scorer.task, source, columns, labelled=False, column_option="--column {col}=NAME")
    scores = _scores(scorer, examples)
    n = len(examples)
    regression = scorer.task.is_regression
    names = _label_names(scorer)
    records = []
    for i, texts in enumerate(examples.texts):
        record: dict = {"index": i, **dict(zip(scorer.task.text_columns, texts, strict=True))}
        if regression:
            record["score"] = float(scores[i])
        else:
            best = int(scores[i].argmax())
            record["label"] = names[best]
            record["label_id"] = best
            record["probabilities"] = {name: float(p) for name, p in zip(names, scores[i], strict=True)}
        records.append(record)
    _write_records(out, records, scorer.task, names)
    counts = {}
    if not regression:
        for r in records:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
    return {
        "model": str(scorer.model_dir),
        "task": scorer.task.name,
        "output": str(out),
        "rows": n,
        "labels": counts,
    }


@torch.no_grad()
def _scores(scorer: Scorer, examples: Split, classes: bool = False) -> np.ndarray:
    """Class probabilities (a score for regression) of every example, in the split's order, from the training
    loop's length-sorted batches, under the run's precision; ``classes``: the argmax of the logits instead (as
    the training loop's evaluation takes it)."""
    encoded, collate, sampler = scorer.batches(examples, labelled=False)
    n = len(examples)
    regression = scorer.task.is_regression
    shape = (n,) if regression or classes else (n, scorer.task.num_labels)
    scores = np.zeros(shape, dtype=np.int64 if classes else np.float64)
    for indices in sampler:
        batch = collate([encoded[i] for i in indices])
        batch.pop("labels")
        with scorer.precision():
            logits = scorer.model(**{k: v.to(scorer.device) for k, v in batch.items()}).logits
        if classes:
            values = logits.argmax(-1)
        else:
            logits = logits.float()
            values = logits.squeeze(-1) if regression else torch.softmax(logits, dim=-1)
        scores[indices] = values.cpu().numpy()
    return scores


def split_predictions(path: str | os.PathLike, split: str = "dev", device: str = "auto") -> str:
    """The predicted class of every example of a run's ``split`` (from its recipe's data), in the split's order,
    as a string of class ids (one digit each): what a sweep row keeps so that a report can pair two classifiers
    on the same sentences (:mod:`bermo_prune.bench`). Scored as the run's own evaluations are (batches, length
    cap, precision; ``auto``: the device the trainer picks); a report checks that they give back the run's
    final accuracy. Classification tasks of at most 10 classes."""
    scorer = load_scorer(path, device=device)
    if scorer.task.is_regression or scorer.task.num_labels > 10:
        raise InputError(f"{path}: task {scorer.task.name!r} has no class ids of one digit to keep")
    return "".join(str(int(i)) for i in _scores(scorer, _recipe_split(scorer, split), classes=True))


def _label_names(scorer: Scorer) -> list[str]:
    """Class names: the task's (the model's ``id2label`` is only a default ``LABEL_i`` for some checkpoints)."""
    return list(scorer.task.label_names or ())


def _clean(text: str) -> str:
    return " ".join(text.replace("\t", " ").replace("\r", " ").replace("\n", " ").split(" "))


def _write_records(out: Path, records: list[dict], task: TaskSpec, names: list[str]) -> None:
    """Write ``records`` as TSV (text columns with tabs and line breaks made spaces) or JSONL, atomically."""
    if out.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        value_columns = ["score"] if task.is_regression else ["label", *(f"p_{n}" for n in names)]
        lines = ["\t".join(["index", *task.text_columns, *value_columns])]
        for r in records:
            texts = [_clean(r[c]) for c in task.text_columns]
            if task.is_regression:
                values = [f"{r['score']:.6g}"]
            else:
                values = [r["label"], *(f"{r['probabilities'][n]:.6f}" for n in names)]
            lines.append("\t".join([str(r["index"]), *texts, *values]))
        text = "\n".join(lines) + "\n"
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{out}: cannot write ({exc.strerror})") from None


def format_predict(report: dict) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["labels"].items()))
    return f"{report['output']}: {report['rows']} rows labelled by {report['model']}" + (
        f" ({counts})" if counts else ""
    )
