"""Tasks, data sources and batching.

Tasks are the GLUE tasks plus the offline ``synthetic`` task. Sources:

* ``hub``: ``datasets.load_dataset("glue", task)``, the path users with a network take;
* ``local``: a directory of GLUE-style files (``train.tsv`` / ``dev.tsv``, or ``.csv`` / ``.jsonl``) or explicit
  train and dev files, with an optional column mapping (task column -> file column);
* ``synthetic``: :mod:`bermo_prune.synthetic`, generated in memory.

Local files are parsed here rather than through ``datasets`` so that every bad row is reported with its file and
line. Batching pads each batch to its own longest sequence and, with bucketing, groups sequences of similar length
so that little compute goes to padding.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from .errors import DataError
from .synthetic import LABEL_NAMES as SYNTHETIC_LABELS
from .synthetic import generate_synthetic

logger = logging.getLogger(__name__)

Texts = tuple[str, ...]


@dataclass(frozen=True)
class TaskSpec:
    """What a task reads and how it is scored.

    Attributes:
        name: task key (``sst2``, ``mnli``, ...).
        text_columns: the text columns, in the Hugging Face GLUE naming.
        label_names: class names in label-index order; None for regression.
        metrics: metrics computed at evaluation; ``main_metric`` is the one runs optimise and report.
        tsv_aliases: column names of the original GLUE TSV files, for columns whose name differs.
        tsv_header: False where the original GLUE TSV has no header (CoLA); then ``tsv_columns`` names the fields.
        dev_split: the validation split's name on the hub and the dev file's stem locally.
    """

    name: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    main_metric: str
    tsv_aliases: dict[str, str] = field(default_factory=dict)
    tsv_header: bool = True
    tsv_columns: tuple[str, ...] = ()
    dev_split: str = "validation"
    dev_file: str = "dev"

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def is_regression(self) -> bool:
        return self.label_names is None


_NLI2 = ("entailment", "not_entailment")

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        TaskSpec(
            "cola",
            ("sentence",),
            ("unacceptable", "acceptable"),
            ("matthews", "accuracy"),
            "matthews",
            tsv_header=False,
            tsv_columns=("source", "label", "original_label", "sentence"),
        ),
        TaskSpec("sst2", ("sentence",), ("negative", "positive"), ("accuracy",), "accuracy"),
        TaskSpec(
            "mrpc",
            ("sentence1", "sentence2"),
            ("not_equivalent", "equivalent"),
            ("f1", "accuracy"),
            "f1",
            tsv_aliases={"sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"},
        ),
        TaskSpec(
            "qqp",
            ("question1", "question2"),
            ("not_duplicate", "duplicate"),
            ("accuracy", "f1"),
            "accuracy",
            tsv_aliases={"label": "is_duplicate"},
        ),
        TaskSpec(
            "stsb",
            ("sentence1", "sentence2"),
            None,
            ("pearson", "spearman"),
            "pearson",
            tsv_aliases={"label": "score"},
        ),
        TaskSpec(
            "mnli",
            ("premise", "hypothesis"),
            ("entailment", "neutral", "contradiction"),
            ("accuracy",),
            "accuracy",
            tsv_aliases={"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"},
            dev_split="validation_matched",
            dev_file="dev_matched",
        ),
        TaskSpec("qnli", ("question", "sentence"), _NLI2, ("accuracy",), "accuracy"),
        TaskSpec("rte", ("sentence1", "sentence2"), _NLI2, ("accuracy",), "accuracy"),
        TaskSpec(
            "wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",), "accuracy"
        ),
        TaskSpec("synthetic", ("sentence",), SYNTHETIC_LABELS, ("accuracy",), "accuracy"),
    ]
}

SOURCES = ("hub", "local", "synthetic")


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` called ``name``; an :class:`InputError` listing the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise DataError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


# --------------------------------------------------------------------------------------------------- metrics


def compute_metrics(task: TaskSpec, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's metrics. ``predictions`` are class indices, or scores for regression."""
    out: dict[str, float] = {}
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    for name in task.metrics:
        if name == "accuracy":
            out[name] = float((predictions == labels).mean())
        elif name == "f1":
            tp = float(((predictions == 1) & (labels == 1)).sum())
            fp = float(((predictions == 1) & (labels == 0)).sum())
            fn = float(((predictions == 0) & (labels == 1)).sum())
            out[name] = 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)
        elif name == "matthews":
            out[name] = _matthews(predictions, labels)
        elif name == "pearson":
            out[name] = _safe_corr(stats.pearsonr, predictions, labels)
        elif name == "spearman":
            out[name] = _safe_corr(stats.spearmanr, predictions, labels)
        else:  # pragma: no cover - TaskSpec literals above are the only source of names
            raise ValueError(f"unknown metric {name}")
    return out


def _matthews(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float(((pred == 1) & (gold == 1)).sum())
    tn = float(((pred == 0) & (gold == 0)).sum())
    fp = float(((pred == 1) & (gold == 0)).sum())
    fn = float(((pred == 0) & (gold == 1)).sum())
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denom == 0 else (tp * tn - fp * fn) / denom


def _safe_corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) == 0 or np.std(b) == 0:
        return 0.0  # a constant prediction has no correlation (scipy would warn and return nan)
    return float(fn(a.astype(np.float64), b.astype(np.float64))[0])


# --------------------------------------------------------------------------------------------------- loading


@dataclass
class Split:
    """Examples of one split: ``texts[i]`` is a tuple of one or two strings, ``labels[i]`` an int or float."""

    texts: list[Texts]
    labels: list[float] | list[int]
    origin: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> Split:
        if n is None or n >= len(self):
            return self
        return Split(self.texts[:n], self.labels[:n], self.origin)

    def sample(self, n: int | None, seed: int) -> Split:
        """A seeded random subset of ``n`` examples (order kept), or the split itself when ``n`` is None."""
        if n is None or n >= len(self):
            return self
        keep = sorted(random.Random(seed).sample(range(len(self)), n))
        return Split([self.texts[i] for i in keep], [self.labels[i] for i in keep], self.origin)


@dataclass
class TaskData:
    task: TaskSpec
    train: Split
    dev: Split


def load_task_data(
    task: str | TaskSpec,
    source: str = "hub",
    path: str | os.PathLike | None = None,
    train_file: str | os.PathLike | None = None,
    dev_file: str | os.PathLike | None = None,
    columns: dict[str, str] | None = None,
    max_train_samples: int | None = None,
    max_dev_samples: int | None = None,
    seed: int = 0,
    synthetic_train_size: int = 4000,
    synthetic_dev_size: int = 1000,
) -> TaskData:
    """Load a task's train and dev splits from the hub, local files or the synthetic generator.

    Args:
        task: task name or spec.
        source: ``hub``, ``local`` or ``synthetic``.
        path: for ``local``, a directory holding ``train`` and ``dev`` files (``.tsv``, ``.csv`` or ``.jsonl``).
        train_file, dev_file: for ``local``, explicit files (override ``path``).
        columns: task column -> file column, e.g. ``{"sentence": "text"}``; ``label`` maps the label column.
        max_train_samples, max_dev_samples: seeded random subsets (dev keeps its first rows: it is small).
        seed: seed of the subset draw and of the synthetic generator.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    if source == "synthetic":
        train = _from_pairs(generate_synthetic(synthetic_train_size, seed=seed), "synthetic:train")
        dev = _from_pairs(generate_synthetic(synthetic_dev_size, seed=seed + 10_000), "synthetic:dev")
    elif source == "local":
        train_path, dev_path = _resolve_local(spec, path, train_file, dev_file)
        train = read_split(spec, train_path, columns)
        dev = read_split(spec, dev_path, columns)
    elif source == "hub":
        train, dev = _load_hub(spec)
    else:
        raise DataError(f"unknown data source {source!r}; use one of {', '.join(SOURCES)}")
    return TaskData(spec, train.sample(max_train_samples, seed), dev.head(max_dev_samples))


def _from_pairs(rows: list[tuple[str, int]], origin: str) -> Split:
    return Split([(s,) for s, _ in rows], [y for _, y in rows], origin)


def _load_hub(spec: TaskSpec) -> tuple[Split, Split]:
    if spec.name == "synthetic":
        raise DataError("the synthetic task has no hub copy; use data.source=synthetic")
    try:
        import datasets

        ds = datasets.load_dataset("glue", spec.name)
    except Exception as exc:  # offline, unknown config, network: all end the same way for the user
        raise DataError(
            f"could not load GLUE {spec.name!r} from the Hugging Face hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); to use local files set data.source=local "
            f"and data.path=DIR with train.tsv and {spec.dev_file}.tsv (GLUE format), or .csv/.jsonl files"
        ) from None
    splits = []
    for split in ("train", spec.dev_split):
        part = ds[split]
        texts = list(zip(*(part[c] for c in spec.text_columns), strict=True))
        splits.append(Split(texts, list(part["label"]), f"hub:glue/{spec.name}/{split}"))
    return splits[0], splits[1]


def _resolve_local(spec, path, train_file, dev_file) -> tuple[Path, Path]:
    def find(stem: str) -> Path:
        if path is None:
            raise DataError(f"data.source=local needs data.path (a directory) or data.{stem}_file")
        directory = Path(path)
        if not directory.is_dir():
            raise DataError(f"{directory}: data directory not found")
        for ext in (".tsv", ".csv", ".jsonl"):
            candidate = directory / f"{stem}{ext}"
            if candidate.is_file():
                return candidate
        raise DataError(f"{directory}: no {stem}.tsv, {stem}.csv or {stem}.jsonl in this directory")

    train = Path(train_file) if train_file else find("train")
    dev = Path(dev_file) if dev_file else find(spec.dev_file)
    for p in (train, dev):
        if not p.is_file():
            raise DataError(f"{p}: file not found")
    return train, dev


def read_text(file: str | os.PathLike, name: str | None = None) -> str:
    """A data file's text, which must be UTF-8 (a leading byte-order mark is dropped); otherwise a DataError naming
    the file (as ``name`` when given), the line and the offending byte."""
    data = Path(file).read_bytes()
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{name or file}: line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8"
        ) from None
    return raw[1:] if raw.startswith("\ufeff") else raw


def read_split(spec: TaskSpec, file: str | os.PathLike, columns: dict[str, str] | None = None) -> Split:
    """Read one local file (``.tsv``, ``.csv`` or ``.jsonl``), checking every row; errors name file and line."""
    file = Path(file)
    suffix = file.suffix.lower()
    if suffix not in (".tsv", ".csv", ".jsonl"):
        raise DataError(f"{file}: unsupported file type {suffix!r}; use .tsv, .csv or .jsonl")
    raw = read_text(file)
    if not raw.strip():
        raise DataError(f"{file}: empty file")
    rows = _jsonl_rows(file, raw) if suffix == ".jsonl" else _delimited_rows(spec, file, raw, suffix)
    return _rows_to_split(spec, file, rows, columns or {})


def _delimited_rows(spec, file: Path, raw: str, suffix: str) -> Iterator[tuple[int, dict[str, str] | str]]:
    lines = raw.split("\n")
    if suffix == ".csv":
        reader = csv.reader(lines)
        records = [(reader.line_num, rec) for rec in reader if rec]
    else:
        # GLUE TSVs are unquoted: quotes are text, so split on tabs only.
        records = [(i + 1, line.rstrip("\r").split("\t")) for i, line in enumerate(lines) if line.strip()]
    delim = "comma" if suffix == ".csv" else "tab"
    if suffix == ".tsv" and not spec.tsv_header:
        header = list(spec.tsv_columns)
        body = records
    else:
        header = [h.strip() for h in records[0][1]]
        body = records[1:]
    yield 0, header  # type: ignore[misc]
    for line_no, rec in body:
        if len(rec) != len(header):
            yield line_no, f"expected {len(header)} {delim}-separated fields, found {len(rec)}"
            return
        yield line_no, dict(zip(header, rec, strict=True))


def _jsonl_rows(file: Path, raw: str) -> Iterator[tuple[int, dict[str, str] | str]]:
    header_sent = False
    for i, line in enumerate(raw.split("\n")):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield i + 1, f"invalid JSON ({exc.msg})"
            return
        if not isinstance(obj, dict):
            yield i + 1, "expected a JSON object"
            return
        if not header_sent:
            yield 0, list(obj.keys())  # type: ignore[misc]
            header_sent = True
        yield i + 1, {k: "" if v is None else str(v) for k, v in obj.items()}


def _rows_to_split(spec: TaskSpec, file: Path, rows, columns: dict[str, str]) -> Split:
    rows = iter(rows)
    _, header = next(rows)
    needed = (*spec.text_columns, "label")
    mapping: dict[str, str] = {}
    for col in needed:
        options = [columns[col]] if col in columns else [col, spec.tsv_aliases.get(col, col)]
        found = next((o for o in options if o in header), None)
        if found is None:
            raise DataError(
                f"{file}: line 1: missing column {options[0]!r} (found: {', '.join(header)}); "
                f"map it with data.columns.{col}=NAME"
            )
        mapping[col] = found
    texts: list[Texts] = []
    labels: list = []
    for line_no, row in rows:
        if isinstance(row, str):
            raise DataError(f"{file}: line {line_no}: {row}")
        texts.append(tuple(row[mapping[c]] for c in spec.text_columns))
        labels.append(_parse_label(spec, file, line_no, row[mapping["label"]]))
    if not labels:
        raise DataError(f"{file}: no data rows after the header")
    return Split(texts, labels, str(file))


def _parse_label(spec: TaskSpec, file: Path, line_no: int, value: str):
    value = value.strip()
    if spec.is_regression:
        try:
            return float(value)
        except ValueError:
            raise DataError(f"{file}: line {line_no}: label {value!r} is not a number") from None
    names = spec.label_names
    if value.lstrip("-").isdigit() and 0 <= int(value) < len(names):
        return int(value)
    if value in names:
        return names.index(value)
    allowed = ", ".join([str(i) for i in range(len(names))] + list(names))
    raise DataError(f"{file}: line {line_no}: label {value!r} is not one of the task's labels ({allowed})")


# --------------------------------------------------------------------------------------------------- batching


class EncodedSplit(torch.utils.data.Dataset):
    """A tokenized split: variable-length ``input_ids`` / ``token_type_ids`` and labels, padded per batch."""

    def __init__(self, split: Split, tokenizer, max_length: int) -> None:
        cols = list(zip(*split.texts, strict=True))
        enc = tokenizer(*[list(c) for c in cols], truncation=True, max_length=max_length)
        self.input_ids: list[list[int]] = enc["input_ids"]
        self.token_type_ids: list[list[int]] = enc.get("token_type_ids") or [
            [0] * len(x) for x in self.input_ids
        ]
        self.labels = list(split.labels)
        self.lengths = [len(x) for x in self.input_ids]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[list[int], list[int], float | int]:
        return self.input_ids[i], self.token_type_ids[i], self.labels[i]


class Collator:
    """Pads a batch to its longest sequence (rounded up to ``pad_to_multiple_of``).

    ``token_types=False`` leaves ``token_type_ids`` out of the batch, for models that take none (DistilBERT).
    """

    def __init__(
        self,
        pad_token_id: int,
        regression: bool = False,
        pad_to_multiple_of: int = 1,
        token_types: bool = True,
    ) -> None:
        self.pad_token_id = pad_token_id
        self.regression = regression
        self.multiple = pad_to_multiple_of
        self.token_types = token_types

    def __call__(self, batch: Sequence[tuple[list[int], list[int], float | int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _, _ in batch)
        width = -(-width // self.multiple) * self.multiple
        n = len(batch)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)  # (batch, seq)
        token_type = torch.zeros((n, width), dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, (ids, tt, _) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            token_type[i, : len(tt)] = torch.tensor(tt)
            mask[i, : len(ids)] = 1
        dtype = torch.float32 if self.regression else torch.long
        labels = torch.tensor([y for _, _, y in batch], dtype=dtype)
        out = {"input_ids": input_ids, "token_type_ids": token_type, "attention_mask": mask, "labels": labels}
        if not self.token_types:
            del out["token_type_ids"]
        return out


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of similar-length examples, in a seeded order that depends only on (seed, epoch).

    Indices are shuffled, cut into pools of ``batch_size * bucket_factor``, sorted by length inside each pool and
    cut into batches; the batches are then shuffled. ``bucket_factor=0`` turns bucketing off (plain shuffled
    batches); ``shuffle=False`` keeps file order (evaluation). ``skip`` drops the first batches of the epoch:
    exact resume in the middle of an epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        bucket_factor: int = 50,
        seed: int = 0,
        drop_last: bool = False,
        num_shards: int = 1,
        shard: int = 0,
    ) -> None:
        self.lengths = list(lengths)
        self.num_shards, self.shard = num_shards, shard
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.bucket_factor = bucket_factor
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip

    @property
    def global_batch_size(self) -> int:
        """Examples per optimizer step over all processes: ``batch_size`` per process times ``num_shards``."""
        return self.batch_size * self.num_shards

    def batches(self) -> list[list[int]]:
        """The epoch's global batches (all processes' examples of each step), in order."""
        n = len(self.lengths)
        size = self.global_batch_size
        if not self.shuffle:
            order = list(range(n))
            if self.bucket_factor:
                order.sort(key=lambda i: self.lengths[i])  # fewest pads at evaluation; order does not matter
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(n))
        rng.shuffle(order)
        if self.bucket_factor:
            pool = size * self.bucket_factor
            order = [
                i
                for s in range(0, n, pool)
                for i in sorted(order[s : s + pool], key=lambda j: self.lengths[j])
            ]
        batches = [order[i : i + size] for i in range(0, n, size)]
        if batches and len(batches[-1]) < (size if self.drop_last else self.num_shards):
            batches.pop()  # a last batch too small to give every process an example
        if self.bucket_factor:
            rng.shuffle(batches)
        return batches

    def shard_batches(self) -> list[list[int]]:
        """This process's batches of the epoch: its contiguous part of every global batch (data-parallel
        training; parts differ in size by at most one). The union of the processes' batches at a step is the
        batch a single process with ``batch_size * num_shards`` takes at that step, so a run on N processes sees
        the same global batches as one process with N times the batch size."""
        batches = self.batches()
        if self.num_shards == 1:
            return batches
        out = []
        for b in batches:
            q, r = divmod(len(b), self.num_shards)
            start = self.shard * q + min(self.shard, r)
            out.append(b[start : start + q + (self.shard < r)])
        return out

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.shard_batches()[self.skip :]

    def __len__(self) -> int:
        n = len(self.lengths)
        if not self.shuffle:
            return -(-n // self.batch_size)
        size = self.global_batch_size
        full = n // size + (n % size >= (size if self.drop_last else self.num_shards))
        return max(full - self.skip, 0)


def padding_stats(sampler: BucketBatchSampler) -> dict[str, float]:
    """Real and padded token counts of one epoch of ``sampler`` (how much compute padding costs)."""
    real = padded = 0
    for batch in sampler.batches():
        lens = [sampler.lengths[i] for i in batch]
        real += sum(lens)
        padded += max(lens) * len(lens)
    return {"real_tokens": real, "padded_tokens": padded, "efficiency": real / padded if padded else 1.0}
