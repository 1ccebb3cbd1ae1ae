"""Tasks and their metrics: the GLUE tasks plus the offline ``synthetic`` task, as :class:`TaskSpec` data, and
the metrics each reports (accuracy, F1, Matthews correlation, Pearson and Spearman correlation)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..errors import DataError
from ..synthetic import LABEL_NAMES as SYNTHETIC_LABELS


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


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` called ``name``; an :class:`InputError` listing the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise DataError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


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
