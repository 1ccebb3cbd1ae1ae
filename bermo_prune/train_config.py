"""The training hyperparameters (a recipe's ``train`` section) and the run length they give.

:class:`TrainConfig` is the one source of the ``train`` keys, their defaults and bounds (fields made by
:func:`~bermo_prune.fields.key`); the loop (:mod:`bermo_prune.train`), the jobs, the hooks and pretraining read it.
:func:`section_hooks` builds the hooks its keys ask for.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from .early_eval import EarlyEvalConfig, early_eval_hooks  # the section's dataclass lives with its hook
from .errors import InputError, RecipeError
from .fields import build, key, subsection
from .hooks import FreezeEmbeddingsHook, TrainHook
from .sinks import available_sinks, log_sinks

#: ``train.mix_lr``'s default: BERMo's layer mix in its own AdamW group at this rate (see optim.split_mix_group)
DEFAULT_MIX_LR = 1e-2
#: ``train.mixed_precision`` values (Accelerate's)
PRECISIONS = ("no", "fp16", "bf16")
#: ``train.precision`` values and the ``train.mixed_precision`` each one means (one setting under two names)
PRECISION_NAMES = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
#: the other way: ``train.mixed_precision`` -> ``train.precision``
PRECISION_OF = {v: k for k, v in PRECISION_NAMES.items()}


@dataclass
class TrainConfig:
    """Training hyperparameters. The fields made by :func:`~bermo_prune.fields.key` are the recipe's ``train:``
    keys, with their bounds (:func:`~bermo_prune.fields.section` derives the recipe's table from them)."""

    epochs: float = key(1.0, min=0.0, min_open=True)
    max_steps: int | None = key(None, min=1)
    # end the run after this many steps while the lr and pruning schedules still span the whole run (epochs or
    # max_steps): the first stop_after steps are exactly the full run's (a convergence study needs only its start)
    stop_after: int | None = key(None, min=1)
    batch_size: int = key(32, min=1)
    eval_batch_size: int = key(128, min=1)
    lr: float = key(3e-5, min=0.0, min_open=True)
    # BERMo's layer mix gets its own rate (see optim.split_mix_group); None: train.lr. Read by the runner, which
    # gives it to the mix's hook (hooks.MixHook); the loop never reads it.
    mix_lr: float | None = key(DEFAULT_MIX_LR, min=0.0, min_open=True)
    weight_decay: float = key(0.0, min=0.0)
    warmup_ratio: float = key(0.1, min=0.0, max=1.0)
    max_length: int = key(128, min=8)
    bucket_factor: int = key(50, min=1)
    eval_every: int = key(0, min=0)
    eval_at_start: bool = False
    log_every: int = key(10, min=1)
    seed: int = 42
    max_grad_norm: float = key(1.0, min=0.0)
    mixed_precision: str = key("no", choices=PRECISIONS)
    # the same setting by the name of the number format: fp32 (mixed_precision no), bf16, fp16; the recipe
    # check fills each from the other (resolve_precision), so a resolved recipe gives both. The loop reads
    # mixed_precision only: code that builds a TrainConfig itself sets that one.
    precision: str = key("fp32", choices=tuple(PRECISION_NAMES))
    # keep the word embeddings at their pretrained values (hooks.FreezeEmbeddingsHook): a faster AdamW step
    freeze_embeddings: bool = key(False)
    threads: int | None = key(None, min=1)
    # logging sinks besides metrics.jsonl (bermo_prune.sinks): [tensorboard]; empty: none
    log_to: list[str] | None = key(
        None, choices=available_sinks
    )  # read at check time: a sink registered later counts
    # the recipe's train.early_eval section (bermo_prune.early_eval.EarlyEvalConfig's keys): a fixed dev subset scored
    # every few steps early on, and the training loss of every step; None or every=0: off
    early_eval: EarlyEvalConfig = subsection(EarlyEvalConfig)
    progress: bool = True

    def __post_init__(self) -> None:
        # One setting under two names (resolve_precision fills both for a recipe). Code sets mixed_precision: a
        # precision left at its default follows it; any other disagreement is an error, not a silent pick.
        if PRECISION_NAMES.get(self.precision) == self.mixed_precision:
            return
        if self.precision == "fp32" and self.mixed_precision in PRECISION_OF:
            self.precision = PRECISION_OF[self.mixed_precision]
            return
        raise ValueError(
            f"TrainConfig: precision {self.precision!r} disagrees with mixed_precision {self.mixed_precision!r} "
            "(one setting, two names; in code set mixed_precision)"
        )

    @classmethod
    def from_section(cls, values: dict, rename: dict | None = None, **extra) -> TrainConfig:
        """The config of a validated recipe section plus fields that are not recipe keys (``seed``, ``progress``,
        ...). ``rename`` maps a section key to its field where the section renamed it (pretraining's
        ``seq_length`` is ``max_length``)."""
        rename = rename or {}
        names = {f.name for f in dataclasses.fields(cls)}
        own = {rename.get(k, k): v for k, v in values.items() if rename.get(k, k) in names}
        return build(cls, own, **extra)


def resolve_precision(train: dict, raw: dict, overrides: list[str] | None, problems: list[str]) -> None:
    """``train.precision`` and ``train.mixed_precision`` name one setting: fill one from the other in place.

    ``train`` is the checked section, ``raw`` the recipe with its ``key=value`` ``overrides`` applied (which names
    it set). An override wins over the file, and of two overrides the later one (as for one key given twice: a
    sweep joins its spec's overrides and a cell's), so ``run runs/x/recipe.yaml train.precision=fp32`` works on a
    resolved recipe, which holds both; two names in the file that disagree are a problem, not a silent pick.
    """
    means = {
        "precision": PRECISION_NAMES.get(train["precision"]),
        "mixed_precision": train["mixed_precision"],
    }
    keys = (o.split("=", 1)[0].strip().removeprefix("train.") for o in overrides or [])
    overridden = [k for k in keys if k in means]
    # a train section that is not a mapping was a problem before this runs
    given = [n for n in means if n in (raw.get("train") or {})]
    pick = overridden[-1:] or given or ["mixed_precision"]
    if len({means[n] for n in pick}) > 1:
        problems.append(
            f"train.precision: {train['precision']!r} disagrees with train.mixed_precision "
            f"{train['mixed_precision']!r} (one setting, two names: set one; precision {train['precision']} is "
            f"mixed_precision {PRECISION_NAMES[train['precision']]})"
        )
        return
    train["mixed_precision"] = means[pick[0]]
    train["precision"] = PRECISION_OF[means[pick[0]]]


def refuse_unusable_precision(mixed_precision: str, source: str | None = None) -> None:
    """Raise :func:`precision_problem`'s problem, if any: a ``RecipeError`` naming ``source`` (a recipe or spec),
    else an ``InputError``; run, pretraining, a local sweep and the loop call it before they read or write."""
    problem = precision_problem(mixed_precision)
    if problem:
        raise RecipeError(source, [problem]) if source else InputError(problem)


def precision_problem(mixed_precision: str, device: str | None = None) -> str | None:
    """The problem with fp16 on a run that will not be on a CUDA device (``device``: its type; None: the one this
    process's Accelerate state uses), else None.

    Without CUDA (or under ``accelerate launch --cpu``) the loop runs on the CPU, and there Accelerate leaves fp16
    without autocast or gradient scaling: the run would train in fp32 under an fp16 label (and ``eval`` would
    score it under an fp16 autocast it never had). bf16 autocasts on a CPU too.
    """
    if mixed_precision != "fp16":
        return None
    if device is None:
        from .dist import process_state  # here: dist imports Accelerate's state, which this module need not

        device = process_state().device.type
    if device == "cuda":
        return None
    return (
        "train.precision (train.mixed_precision): fp16 needs a CUDA GPU; on the CPU Accelerate does not autocast "
        "fp16, so the run would be fp32: use bf16 or fp32 here (a run begun in fp16: start it again with "
        "--overwrite)"
    )


def total_steps(cfg: TrainConfig, num_train: int, processes: int = 1) -> int:
    """Optimizer steps of a run: ``max_steps`` or ``epochs`` worth of global batches (``batch_size`` examples on
    each of ``processes`` data-parallel processes per step, as :class:`~bermo_prune.data.BucketBatchSampler`
    cuts them)."""
    if cfg.max_steps:
        return cfg.max_steps
    size = cfg.batch_size * processes
    batches = num_train // size + (num_train % size >= processes)
    return max(1, math.ceil(cfg.epochs * batches))


def section_hooks(cfg: TrainConfig, job, output_dir: str | Path | None) -> list[TrainHook]:
    """The hooks a ``train`` section asks for: frozen word embeddings (``freeze_embeddings``), logging sinks
    (``log_to``, with a run directory) and the early evaluation (``early_eval``)."""
    return [
        *([FreezeEmbeddingsHook()] if cfg.freeze_embeddings else []),
        *log_sinks(cfg.log_to, output_dir),
        *early_eval_hooks(cfg, job),
    ]
