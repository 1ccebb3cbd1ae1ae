"""A recipe's ``pruning`` section as a dataclass: its keys, defaults and bounds, and what it builds.

:class:`PruningConfig` is the one source of the section's keys (:mod:`bermo_prune.recipe` derives its checks from
it); its ``schedule`` is the ``pruning.schedule`` section (:class:`~bermo_prune.schedule.ScheduleConfig`'s keys) and
its ``options`` are the method's own hyperparameters (the fields of the method's :class:`~.base.Pruner` class).
A validated section builds the pruner (:meth:`PruningConfig.build_pruner`) and the scheduler that drives it
(:meth:`PruningConfig.build_scheduler`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..fields import key, subsection, values_of
from ..schedule import ScheduleConfig, Scheduler
from . import available_pruners, get_pruner, pruner_class
from .base import GRANULARITIES, SCOPES, Pruner

#: ``pruning.method`` value for dense fine-tuning (the baseline every sweep needs).
NO_PRUNING = "none"
#: Pruner fields a recipe sets from the section's own keys, never through ``pruning.options``.
SHARED_PRUNER_FIELDS = ("granularity", "scope", "block_rows", "block_cols")


def _methods() -> tuple[str, ...]:
    """The registered methods when a recipe is checked (a method registered after import included)."""
    return (NO_PRUNING, *available_pruners())


@dataclass
class PruningConfig:
    """The ``pruning`` section: which method, at which granularity, on which schedule."""

    method: str = key(NO_PRUNING, choices=_methods)
    granularity: str = key(Pruner.granularity, choices=GRANULARITIES)
    scope: str = key(Pruner.scope, choices=SCOPES)
    block_rows: int = key(Pruner.block_rows, min=1)
    block_cols: int = key(Pruner.block_cols, min=1)
    update_every: int = key(Scheduler.update_every, min=1)
    score_lr: float | None = key(None, min=0.0, min_open=True)  # empty: the method's default_score_lr
    targets: list[str] | None = key(None)  # module-name patterns; empty: every prunable matrix
    options: dict | None = key(None)
    schedule: ScheduleConfig = subsection(ScheduleConfig)  # the pruning.schedule section

    def build_pruner(self) -> Pruner:
        """The pruner instance this (validated) section describes; schedule-borne options filled in."""
        options = dict(self.options or {})
        from_schedule = pruner_class(self.method).options_from_schedule(options, values_of(self.schedule))
        shared = {name: getattr(self, name) for name in SHARED_PRUNER_FIELDS}
        return get_pruner(self.method, **{**options, **from_schedule, **shared})

    def build_scheduler(self, run_steps: int) -> Scheduler:
        """The pruner driven by this section's schedule over a run of ``run_steps`` optimizer steps."""
        schedule = self.schedule.build(run_steps)
        return Scheduler(self.build_pruner(), schedule, update_every=self.update_every)
