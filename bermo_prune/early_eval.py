"""``train.early_eval``: a fine-grained look at the early phase of a run, for convergence speed.

Evaluating the full dev set every 100 steps leaves a steps-to-a-level ratio only values such as 1.0, 1.5 or 2.0. With
``train.early_eval: {every: 10, until: 600, subset: 256, seed: 0}`` a run also scores a fixed, stratified subset of
the dev set (``subset`` examples, the same for every run that names the same ``seed``, whatever the run's own seed)
at step 0 and every ``every`` steps up to step ``until`` (0: to the end of the run), and records its training loss at
every step (the task loss the divergence tracker sees, averaged over data-parallel processes). Both land in the
summary (``early_eval``: the settings, the subset's indices and per-class counts, the curve; ``train_loss``: one
value per optimizer step) and in the sweep's results rows (``fine_curve``, ``fine_eval``, ``train_loss``), where the
report's convergence section reads them (:mod:`bermo_prune.bench.convergence`).

The evaluations use the model in eval mode under ``torch.no_grad`` and a loader with its own generator, so they draw
nothing from the training RNG: a run with ``early_eval`` trains exactly as the same run without it. Cost: ``subset``
forward passes every ``every`` steps, for example 60 evaluations of 256 sentences in a 6,315-step run.

The feature is one :class:`~bermo_prune.hooks.TrainHook` (:class:`EarlyEvalHook`) built from the train config by
:func:`early_eval_hooks`; the loop knows only the hook seam it uses (``on_step``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from .data import BucketBatchSampler
from .fields import key
from .hooks import TrainHook


@dataclass
class EarlyEvalConfig:
    """The recipe's ``train.early_eval:`` section."""

    every: int = key(0, min=0)  # steps between evaluations of the subset; 0: off
    until: int = key(0, min=0)  # the last step evaluated; 0: the whole run
    subset: int = key(256, min=2)  # dev examples scored (all of them when the dev set is smaller)
    seed: int = key(
        0, min=0
    )  # draws the subset; independent of the run's seed, so every run scores the same one


def stratified_subset(labels, size: int, seed: int) -> list[int]:
    """Indices of a subset of ``size`` examples (sorted), drawn with ``seed`` without replacement, stratified by label:
    each class gets its share of ``size`` in proportion to its count (largest remainders, ties to the smaller
    label). Float labels (regression scores, or no labels at all) give a plain random subset. All indices when ``size``
    is at least the number of examples."""
    n = len(labels)
    if n <= size:
        return list(range(n))
    rng = np.random.default_rng(seed)
    values = np.asarray(labels)
    if values.dtype.kind not in "iub":  # regression scores: no strata
        return sorted(int(i) for i in rng.choice(n, size=size, replace=False))
    classes, counts = np.unique(values, return_counts=True)
    exact = counts * size / n
    share = np.floor(exact).astype(int)
    order = sorted(range(len(classes)), key=lambda c: (-(exact[c] - share[c]), classes[c]))
    for c in order[: size - int(share.sum())]:
        share[c] += 1
    chosen: list[int] = []
    for c, k in zip(classes, share, strict=True):
        members = np.flatnonzero(values == c)
        chosen += [int(i) for i in rng.choice(members, size=int(k), replace=False)]
    return sorted(chosen)


def subset_record(labels, indices: list[int], cfg: EarlyEvalConfig) -> dict:
    """What identifies the subset in a summary or results row: settings, size, per-class counts and a digest of the
    indices (the summary also keeps the indices themselves)."""
    per_class: dict[str, int] = {}
    if labels is not None:
        for i in indices:
            per_class[str(labels[i])] = per_class.get(str(labels[i]), 0) + 1
    digest = hashlib.sha256(json.dumps(indices).encode("utf-8")).hexdigest()
    return {
        "every": cfg.every,
        "until": cfg.until,
        "seed": cfg.seed,
        "size": len(indices),
        "per_class": dict(sorted(per_class.items())),
        "indices_sha256": digest,
    }


def _short(x: float) -> float:
    """A loss with 4 significant digits: the per-step record stays small in results rows."""
    return float(f"{x:.4g}")


class EarlyEvalHook(TrainHook):
    """Scores the fixed dev subset at step 0 and every ``every`` steps up to ``until``, and keeps every step's
    training loss (module doc). Checkpointed, so a resumed or rolled-back run keeps the record of the steps it
    keeps."""

    state_key = "early_eval"

    def __init__(self, cfg: EarlyEvalConfig, job, eval_batch_size: int) -> None:
        self.cfg = cfg
        self.job = job
        labels = getattr(job.dev_set, "labels", None)
        self.labels = list(labels) if labels is not None and job.majority_rate is not None else None
        strata = self.labels if self.labels is not None else np.zeros(len(job.dev_set))  # floats: no strata
        self.indices = stratified_subset(strata, cfg.subset, cfg.seed)
        self.record = subset_record(self.labels, self.indices, cfg)
        lengths = [job.dev_lengths[i] for i in self.indices]
        sampler = BucketBatchSampler(lengths, eval_batch_size, shuffle=False)
        self.loader = DataLoader(
            Subset(job.dev_set, self.indices),
            batch_sampler=sampler,
            collate_fn=job.dev_collate,
            generator=torch.Generator(),
        )
        self.accelerator = None
        self.curve: list[list[float]] = []  # [step, main metric]
        self.losses: list[float] = []  # the training loss of step i + 1 at index i

    def setup(self, accelerator) -> None:
        self.accelerator = accelerator
        self.loader = accelerator.prepare(self.loader)

    def _due(self, step: int) -> bool:
        c = self.cfg
        return step % c.every == 0 and (not c.until or step <= c.until)

    def on_step(self, step: int, loss: float | None, model) -> dict | None:
        if loss is not None:
            del self.losses[step - 1 :]  # (a rollback restores the list with the checkpoint; this is a guard)
            self.losses.append(_short(loss))
        if not self._due(step) or (self.curve and self.curve[-1][0] >= step):
            return None
        metrics = self.job.evaluate(model, self.loader, self.accelerator)
        self.curve.append([step, metrics[self.job.main_metric]])
        return {"step": step, "early_eval": metrics}

    def summary_fields(self, model) -> dict:
        return {
            "early_eval": {**self.record, "indices": self.indices, "curve": self.curve},
            "train_loss": self.losses,
        }

    def state_dict(self):
        return {"curve": self.curve, "losses": self.losses}

    def load_state_dict(self, state) -> None:
        if state:
            self.curve = [list(p) for p in state["curve"]]
            self.losses = list(state["losses"])


def early_eval_hooks(cfg, job) -> list[TrainHook]:
    """The hook of ``train.early_eval`` (a mapping or an :class:`EarlyEvalConfig`) when its ``every`` is set; none
    otherwise."""
    conf = getattr(cfg, "early_eval", None)
    if not conf:
        return []
    conf = conf if isinstance(conf, EarlyEvalConfig) else EarlyEvalConfig(**conf)
    return [EarlyEvalHook(conf, job, cfg.eval_batch_size)] if conf.every else []
