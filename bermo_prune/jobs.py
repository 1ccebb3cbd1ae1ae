"""What the training loop trains on and how it scores: the :class:`Job`, and the classification job of a
GLUE-style task (encoded splits, dynamic padding, the task's metrics, evaluation gathered across processes).
The MLM job of pretraining is built in :mod:`bermo_prune.pretrain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn

from .data import Collator, EncodedSplit, TaskData, compute_metrics

if TYPE_CHECKING:
    from .train_config import TrainConfig


@torch.no_grad()
def evaluate(model, loader, task, accelerator: Accelerator | None = None) -> dict[str, float]:
    """The task's metrics of ``model`` on ``loader``, plus the mean per-example loss, the share of the majority
    prediction and the number of examples scored. Under data parallelism each process scores its share and the
    results are gathered (``gather_for_metrics`` drops the examples repeated to even out the last batch), so every
    example counts exactly once."""
    was_training = model.training
    model.eval()
    preds, golds, losses = [], [], []
    for batch in loader:
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        labels = batch["labels"]
        if task.is_regression:
            loss = (logits.squeeze(-1).float() - labels.float()) ** 2
        else:
            loss = nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        if accelerator is not None:
            logits, labels, loss = accelerator.gather_for_metrics((logits, labels, loss))
        losses.append(loss.cpu().numpy())
        if task.is_regression:
            preds.append(logits.squeeze(-1).float().cpu().numpy())
        else:
            preds.append(logits.argmax(-1).cpu().numpy())
        golds.append(labels.cpu().numpy())
    model.train(was_training)
    p, g = np.concatenate(preds), np.concatenate(golds)
    metrics = compute_metrics(task, p, g)
    metrics["loss"] = float(np.concatenate(losses).mean())
    metrics["examples"] = len(g)
    if not task.is_regression:
        metrics["majority_prediction_share"] = float(np.bincount(p.astype(int)).max() / len(p))
    return metrics


@dataclass
class Job:
    """What a :class:`Trainer` trains on and how it scores: the part that differs between fine-tuning and MLM.

    Attributes:
        name: the task name reported in the summary.
        train_set: a map-style dataset of encoded examples; ``train_lengths`` their token counts (for bucketing).
        collate: builds a batch (a dict of tensors including ``labels``) from a list of examples.
        dev_set, dev_collate: the evaluation split and its collate function.
        evaluate: ``(model, loader, accelerator) -> metrics`` on the evaluation split.
        main_metric: the metric that picks the best evaluation (higher is better).
        majority_rate: share of the most frequent evaluation label, for collapse detection (None: not a
            classification task).
        learned_metric: the evaluation metric the divergence tracker compares with ``majority_rate`` at the end
            (``no_learning``); None: no such check.
        progress_label: what the progress bar calls the run.
    """

    name: str
    train_set: torch.utils.data.Dataset
    train_lengths: list[int]
    collate: object
    dev_set: torch.utils.data.Dataset
    dev_lengths: list[int]
    dev_collate: object
    evaluate: object
    main_metric: str
    majority_rate: float | None = None
    learned_metric: str | None = "accuracy"
    progress_label: str = "fine-tune"


def classification_job(tokenizer, data: TaskData, cfg: TrainConfig) -> Job:
    """The fine-tuning job of a GLUE-style task: encoded splits, dynamic padding, the task's metrics."""
    task = data.task
    train_set = EncodedSplit(data.train, tokenizer, cfg.max_length)
    dev_set = EncodedSplit(data.dev, tokenizer, cfg.max_length)
    token_types = (
        "token_type_ids" in tokenizer.model_input_names
    )  # DistilBERT's and RoBERTa's tokenizers: none
    collate = Collator(tokenizer.pad_token_id, regression=task.is_regression, token_types=token_types)
    majority = None
    if not task.is_regression and len(data.dev):
        counts = np.bincount(np.asarray(data.dev.labels, dtype=int))
        majority = float(counts.max() / counts.sum())
    return Job(
        name=task.name,
        train_set=train_set,
        train_lengths=train_set.lengths,
        collate=collate,
        dev_set=dev_set,
        dev_lengths=dev_set.lengths,
        dev_collate=collate,
        evaluate=lambda model, loader, accelerator: evaluate(model, loader, task, accelerator),
        main_metric=task.main_metric,
        majority_rate=majority,
    )
