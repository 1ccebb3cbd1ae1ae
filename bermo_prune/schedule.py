"""Schedules (pure functions of the step) and the :class:`Scheduler` that drives a pruner with one.

A schedule maps an optimizer step to a value: the remaining-weight fraction for top-k methods, the threshold for
soft movement, the penalty weight lambda for L0. Schedules hold no state; the Scheduler holds the step count, so a
resume restores one integer and continues exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .fields import key

SCHEDULES: dict[str, type[Schedule]] = {}


def _register(cls):
    SCHEDULES[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Schedule:
    """Base class: ``schedule(step) -> value``."""

    kind: ClassVar[str] = ""

    def __call__(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def end_step(self) -> int:
        """The first step from which the value no longer changes."""
        return 0

    def start_step(self) -> int:
        """The first step at which the method may remove or down-weight anything (the end of the warm-up).

        Before it the engine keeps every mask at one, adds no penalty and samples no gate, so the forward pass
        equals the dense model's (the scores of a score-based method still receive their gradient, as in the
        references)."""
        return 0


@_register
@dataclass(frozen=True)
class Cubic(Schedule):
    """Cubic decay with warmup and cooldown (Zhu & Gupta 2017; Sanh et al. 2020).

    v_t = v_i                                                   for t < t_i
    v_t = v_f + (v_i - v_f) (1 - (t - t_i) / (T - t_i - t_f))^3  for t_i <= t < T - t_f
    v_t = v_f                                                   for t >= T - t_f

    Attributes:
        initial: v_i. final: v_f. total: T, the run's steps. warmup: t_i. cooldown: t_f.
    """

    kind: ClassVar[str] = "cubic"
    initial: float = 1.0
    final: float = 0.1
    total: int = 1000
    warmup: int = 0
    cooldown: int = 0
    power: ClassVar[int] = 3

    def __post_init__(self) -> None:
        if self.total - self.warmup - self.cooldown <= 0:
            raise ValueError(
                f"warmup ({self.warmup}) + cooldown ({self.cooldown}) must be less than total ({self.total})"
            )

    def __call__(self, step: int) -> float:
        span = self.total - self.warmup - self.cooldown
        if step < self.warmup:
            return float(self.initial)
        if step >= self.warmup + span:
            return float(self.final)
        progress = (step - self.warmup) / span
        return float(self.final + (self.initial - self.final) * (1.0 - progress) ** self.power)

    def end_step(self) -> int:
        return self.total - self.cooldown

    def start_step(self) -> int:
        return self.warmup


@_register
@dataclass(frozen=True)
class Linear(Cubic):
    """Linear ramp from ``initial`` to ``final`` between warmup and ``total - cooldown``."""

    kind: ClassVar[str] = "linear"
    power: ClassVar[int] = 1


@_register
@dataclass(frozen=True)
class Constant(Schedule):
    """The same value at every step."""

    kind: ClassVar[str] = "constant"
    value: float = 1.0

    def __call__(self, step: int) -> float:
        return float(self.value)


@_register
@dataclass(frozen=True)
class OneShot(Schedule):
    """``initial`` before step ``at``, ``final`` from it on (one-shot pruning)."""

    kind: ClassVar[str] = "one_shot"
    initial: float = 1.0
    final: float = 0.1
    at: int = 0

    def __call__(self, step: int) -> float:
        return float(self.final if step >= self.at else self.initial)

    def end_step(self) -> int:
        return self.at

    def start_step(self) -> int:
        return self.at


#: a schedule's arguments that are values in the method's units (the rest are step counts)
VALUE_ARGS = ("initial", "final", "value")


@dataclass
class ScheduleConfig:
    """A recipe's ``pruning.schedule`` section: the schedule's kind and arguments, step arguments given as counts
    or as fractions of the schedule's length (``total``; the run's length when empty). :meth:`build` makes the
    :class:`Schedule`; which arguments a kind takes comes from its class."""

    kind: str = key("cubic", choices=tuple(SCHEDULES))
    initial: float | None = key(None)
    final: float | None = key(None)
    value: float | None = key(None)
    warmup: int | float = key(0, kind="steps")
    cooldown: int | float = key(0, kind="steps")
    total: int | None = key(None, min=1)
    at: int | float = key(0, kind="steps")

    def value_args(self) -> tuple[str, ...]:
        """The values this kind takes (``initial``, ``final`` or ``value``), in its class's order."""
        return tuple(f.name for f in dataclasses.fields(SCHEDULES[self.kind]) if f.name in VALUE_ARGS)

    def length(self, run_steps: int) -> int:
        return self.total if self.total is not None else run_steps

    @staticmethod
    def steps(value: int | float, total: int) -> int:
        """A step argument as a count: fractions (floats) of ``total`` are rounded."""
        return int(round(value * total)) if isinstance(value, float) else int(value)

    def build(self, run_steps: int) -> Schedule:
        """The schedule this section describes for a run of ``run_steps`` optimizer steps."""
        cls = SCHEDULES[self.kind]
        total = self.length(run_steps)
        args: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "total":
                args["total"] = total
            elif f.name in VALUE_ARGS:
                args[f.name] = getattr(self, f.name)
            else:
                args[f.name] = self.steps(getattr(self, f.name), total)
        return cls(**args)

    def problems(self, run_steps: int) -> list[str]:
        """Rules that need the run's length: the schedule must fit in, and end before, training."""
        out = []
        total = self.length(run_steps)
        if self.total is not None and self.total > run_steps:
            out.append(
                f"pruning.schedule.total: {self.total} steps, but training runs {run_steps}: the schedule "
                "would not reach its final value before training ends"
            )
        args = {f.name for f in dataclasses.fields(SCHEDULES[self.kind])}
        if {"warmup", "cooldown"} <= args:
            warm, cool = self.steps(self.warmup, total), self.steps(self.cooldown, total)
            if warm + cool >= total:
                out.append(
                    f"pruning.schedule.warmup + cooldown: {warm} + {cool} steps leave no room to prune in a "
                    f"{total}-step schedule"
                )
        if "at" in args and self.steps(self.at, total) >= run_steps:
            out.append(
                f"pruning.schedule.at: step {self.steps(self.at, total)} is not before the run ends "
                f"({run_steps} steps)"
            )
        return out


@dataclass
class Scheduler:
    """Decides when and how much: applies ``schedule`` to ``pruner`` every ``update_every`` steps.

    Attributes:
        pruner: the method (which weights go); see :mod:`bermo_prune.pruners`.
        schedule: step -> value, in the pruner's ``schedule_key`` units (remaining fraction, threshold, lambda).
        update_every: recompute masks every N optimizer steps (and always at the schedule's end), so the per-step
            cost is only the masked multiply; 1 recomputes every step.
        step: optimizer steps taken so far (the only state; restored on resume).
    """

    pruner: Any
    schedule: Schedule = field(default_factory=Constant)
    update_every: int = 10
    step: int = 0

    def __post_init__(self) -> None:
        if self.update_every < 1:
            raise ValueError("update_every must be at least 1")

    def value(self, step: int | None = None) -> float:
        return self.schedule(self.step if step is None else step)

    def started(self, step: int | None = None) -> bool:
        """Whether the schedule's warm-up is over at ``step`` (default: now); see :meth:`Schedule.start_step`."""
        return (self.step if step is None else step) >= self.schedule.start_step()

    def due(self) -> bool:
        """Whether masks are recomputed at the current step."""
        return self.step % self.update_every == 0 or self.step == self.schedule.end_step()

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])
