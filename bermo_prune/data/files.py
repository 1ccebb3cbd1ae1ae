"""Where a task's examples come from: the hub, local files or the synthetic generator.

* ``hub``: ``datasets.load_dataset("glue", task)``, the path users with a network take;
* ``local``: a directory of GLUE-style files (``train.tsv`` / ``dev.tsv``, or ``.csv`` / ``.jsonl``) or explicit
  train and dev files, with an optional column mapping (task column -> file column);
* ``synthetic``: :mod:`bermo_prune.synthetic`, generated in memory.

Local files are parsed here rather than through ``datasets`` so that every bad row is reported with its file and
line. The row readers (:func:`delimited_rows`, :func:`jsonl_rows`) and :func:`read_text` are also what
pretraining reads its corpus with.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..fields import key
from ..synthetic import generate_synthetic
from .tasks import TaskSpec, get_task

Texts = tuple[str, ...]


SOURCES = ("hub", "local", "synthetic")


@dataclass
class DataConfig:
    """A recipe's ``data`` section: where the examples come from (the arguments of :func:`load_task_data`;
    ``source: auto`` is resolved by the recipe: synthetic task, else local when a path is given, else hub)."""

    source: str = key("auto", choices=("auto", *SOURCES))
    path: str | None = key(None)
    train_file: str | None = key(None)
    dev_file: str | None = key(None)
    columns: dict[str, str] | None = key(None)
    max_train_samples: int | None = key(None, min=1)
    max_dev_samples: int | None = key(None, min=1)
    synthetic_train_size: int = key(4000, min=10)
    synthetic_dev_size: int = key(1000, min=10)

    def where(self) -> dict:
        """Where to read, as :func:`load_task_data`'s keywords (everything but ``source``, which the recipe
        resolves)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}


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
    synthetic_train_size: int = DataConfig.synthetic_train_size,
    synthetic_dev_size: int = DataConfig.synthetic_dev_size,
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
        import datasets  # here for start-up time: only hub loading needs it

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


def read_split(
    spec: TaskSpec,
    file: str | os.PathLike,
    columns: dict[str, str] | None = None,
    labelled: bool = True,
    column_option: str = "data.columns.{col}=NAME",
) -> Split:
    """Read one local file (``.tsv``, ``.csv`` or ``.jsonl``), checking every row; errors name file and line.

    ``labelled=False`` reads text only (``bermo-prune predict``): no label column is needed, labels are None.
    ``column_option`` is how the error for a missing column tells the user to map it."""
    file = Path(file)
    suffix = file.suffix.lower()
    if suffix not in (".tsv", ".csv", ".jsonl"):
        raise DataError(f"{file}: unsupported file type {suffix!r}; use .tsv, .csv or .jsonl")
    raw = read_text(file)
    if not raw.strip():
        raise DataError(f"{file}: empty file")
    if suffix == ".jsonl":
        rows = jsonl_rows(raw)
    else:
        rows = delimited_rows(raw, suffix, None if spec.tsv_header else list(spec.tsv_columns))
    return _rows_to_split(spec, file, rows, columns or {}, labelled, column_option)


def delimited_rows(
    raw: str, suffix: str, header: list[str] | None = None
) -> Iterator[tuple[int, list[str] | dict[str, str] | str]]:
    """The rows of a ``.tsv`` or ``.csv`` file's text: first ``(0, header)``, then ``(line, {column: value})`` for
    every non-empty row, or ``(line, message)`` for the first malformed one (and nothing after it). GLUE TSVs
    are unquoted, so a TSV is split on tabs only. ``header``: the columns of a TSV without a header row."""
    lines = raw.split("\n")
    if suffix == ".csv":
        reader = csv.reader(lines)
        records = [(reader.line_num, rec) for rec in reader if rec]
    else:
        # GLUE TSVs are unquoted: quotes are text, so split on tabs only.
        records = [(i + 1, line.rstrip("\r").split("\t")) for i, line in enumerate(lines) if line.strip()]
    delim = "comma" if suffix == ".csv" else "tab"
    if suffix == ".tsv" and header is not None:
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


def jsonl_rows(raw: str) -> Iterator[tuple[int, list[str] | dict[str, str] | str]]:
    """The rows of a ``.jsonl`` file's text, as :func:`delimited_rows` gives them (the header: the first object's
    keys; values as strings, null as empty)."""
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


def _rows_to_split(
    spec: TaskSpec,
    file: Path,
    rows,
    columns: dict[str, str],
    labelled: bool = True,
    column_option: str = "data.columns.{col}=NAME",
) -> Split:
    rows = iter(rows)
    _, header = next(rows)
    needed = (*spec.text_columns, "label") if labelled else spec.text_columns
    mapping: dict[str, str] = {}
    for col in needed:
        options = [columns[col]] if col in columns else [col, spec.tsv_aliases.get(col, col)]
        found = next((o for o in options if o in header), None)
        if found is None:
            raise DataError(
                f"{file}: line 1: missing column {options[0]!r} (found: {', '.join(header)}); "
                f"map it with {column_option.format(col=col)}"
            )
        mapping[col] = found
    texts: list[Texts] = []
    labels: list = []
    for line_no, row in rows:
        if isinstance(row, str):
            raise DataError(f"{file}: line {line_no}: {row}")
        texts.append(tuple(row[mapping[c]] for c in spec.text_columns))
        labels.append(_parse_label(spec, file, line_no, row[mapping["label"]]) if labelled else None)
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
