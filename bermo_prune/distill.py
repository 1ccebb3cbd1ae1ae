"""Knowledge distillation from a fine-tuned teacher, in the one training loop (recipe section ``distill``).

The loss of Sanh, Wolf & Rush 2020 (``examples/research_projects/movement-pruning/masked_run_glue.py``, itself
DistilBERT's):

    loss = alpha * T^2 * KL( softmax(t / T) || softmax(s / T) ) + (1 - alpha) * task loss

with student logits s, teacher logits t, temperature T (2) and alpha 0.9 (the reference's ``alpha_distil`` with
``alpha_ce = 1 - alpha``); the KL is averaged over the batch (``reduction="batchmean"``) and the T^2 keeps its
gradient on the scale of the task loss's. For a regression task (one output) the distillation term is the mean
squared difference of the two outputs instead.

The teacher runs in eval mode (no dropout), so its output for a training example is a fixed number. With
``cache`` on, each example's teacher logits are computed the first time a batch holds it and stored by example
index; every later visit (the second epoch on) costs no teacher forward. The cache (a float32 row per training
example, 0.5 MB for SST-2) is saved in the training checkpoint, so a resumed run reads exactly the values the
killed one would have, and the resumed run is bit-identical. Under data parallelism each process caches the
examples of its own shard and only the main process's cache is checkpointed: the other processes refill theirs
after a resume (the same values up to floating-point noise of a different batch shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoConfig

from .bermo import is_bermo_config
from .errors import InputError
from .fields import key
from .models import load_classifier, load_tokenizer
from .rundir import find_model

#: batch key under which the training loader passes each example's index (popped before the model sees it)
INDEX_KEY = "example_index"


@dataclass
class DistillConfig:
    """The recipe's ``distill`` section. ``teacher`` None: no distillation."""

    teacher: str | None = key(None)
    temperature: float = key(2.0, min=0.0, min_open=True)
    alpha: float = key(0.9, min=0.0, max=1.0)
    cache: bool = key(True)


def load_teacher(
    path: str | Path, num_labels: int, problem_type: str | None, student_vocab: dict | None = None
):
    """The fine-tuned classifier under ``path`` in eval mode with frozen weights, checked against the task.

    A teacher must be a sequence classifier with ``num_labels`` outputs, and (when ``student_vocab`` is given and
    the teacher directory holds a tokenizer) read the same vocabulary as the student: logits of a teacher that
    tokenises differently would be distilled against the wrong text.
    """
    d, _ = find_model(path, "distill.teacher")
    config = AutoConfig.from_pretrained(d)
    if not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
        raise InputError(
            f"distill.teacher: {d}: not a fine-tuned sequence classifier ({config.architectures})"
        )
    if config.num_labels != num_labels:
        raise InputError(f"distill.teacher: {d}: has {config.num_labels} outputs, the task has {num_labels}")
    if student_vocab is not None and (d / "tokenizer_config.json").is_file():
        if load_tokenizer(str(d)).get_vocab() != student_vocab:
            raise InputError(f"distill.teacher: {d}: its tokenizer's vocabulary differs from the student's")
    arch = "bermo" if is_bermo_config(config) else "bert"
    teacher = load_classifier(d, arch, num_labels, problem_type=problem_type)
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


class Distiller:
    """Adds the distillation term to a training step; holds the teacher and the per-example logit cache.

    Args:
        teacher: the teacher model (already in eval mode, on the training device).
        cfg: temperature, alpha and whether to cache.
        num_examples: size of the training set (the cache has one row per example).
        num_outputs: the classifier's number of outputs (1 for regression).
    """

    def __init__(self, teacher, cfg: DistillConfig, num_examples: int, num_outputs: int) -> None:
        self.teacher = teacher
        self.cfg = cfg
        self.regression = num_outputs == 1
        self.cache = torch.zeros(num_examples, num_outputs) if cfg.cache else None
        self.filled = torch.zeros(num_examples, dtype=torch.bool) if cfg.cache else None

    @torch.no_grad()
    def teacher_logits(self, batch: dict, index: torch.Tensor) -> torch.Tensor:
        """The teacher's logits for ``batch`` (model inputs, no labels needed); from the cache where filled."""
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        if self.cache is None:
            return self.teacher(**inputs).logits.float()
        index = index.cpu()
        missing = ~self.filled[index]
        if missing.any():
            rows = missing.nonzero().squeeze(1).to(next(iter(inputs.values())).device)
            logits = self.teacher(**{k: v[rows] for k, v in inputs.items()}).logits.float().cpu()
            self.cache[index[missing]] = logits
            self.filled[index[missing]] = True
        device = batch["input_ids"].device
        return self.cache[index].to(device)

    def loss(self, student_logits: torch.Tensor, task_loss: torch.Tensor, batch: dict, index: torch.Tensor):
        """``(training loss, distillation term)`` for one batch (the term detached, for logging)."""
        t = self.teacher_logits(batch, index)
        s = student_logits.float()
        if self.regression:
            term = F.mse_loss(s.view(-1), t.view(-1))
        else:
            temp = self.cfg.temperature
            term = F.kl_div(
                F.log_softmax(s / temp, dim=-1), F.log_softmax(t / temp, dim=-1), reduction="batchmean",
                log_target=True,
            ) * (temp * temp)  # fmt: skip
        alpha = self.cfg.alpha
        return alpha * term + (1.0 - alpha) * task_loss, term.detach()

    def state_dict(self) -> dict:
        return {"cache": self.cache, "filled": self.filled}

    def load_state_dict(self, state: dict | None) -> None:
        if self.cache is None or state is None or state.get("cache") is None:
            return
        if state["cache"].shape != self.cache.shape:
            raise InputError(
                f"checkpoint: its teacher-logit cache has shape {tuple(state['cache'].shape)}, "
                f"this run's training set needs {tuple(self.cache.shape)}"
            )
        self.cache.copy_(state["cache"])
        self.filled.copy_(state["filled"])


class IndexedSplit(torch.utils.data.Dataset):
    """A training split whose items carry their index, for the cache: ``(i, split[i])``."""

    def __init__(self, split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        return i, self.split[i]


class IndexedCollate:
    """Wraps a collate function for :class:`IndexedSplit` items: the batch gains :data:`INDEX_KEY`."""

    def __init__(self, collate) -> None:
        self.collate = collate

    def __call__(self, items) -> dict:
        batch = self.collate([item for _, item in items])
        batch[INDEX_KEY] = torch.tensor([i for i, _ in items], dtype=torch.long)
        return batch
