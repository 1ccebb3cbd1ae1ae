"""Divergence: defined, detected, counted.

The BERMo paper's central claim is that BERT "commonly diverges" when pruned on small data such as SST-2 while
BERMo does not. Here divergence is an *event* with a step and a kind, detected from the training loss and the
evaluations, never eyeballed:

* ``non_finite_loss``: the training loss is NaN or infinite.
* ``loss_spike``: after ``spike_warmup_steps``, the recent loss (an exponential moving average over about 5
  steps) exceeds ``spike_factor`` times its long-run level (an average over about 50 steps) *and* that level
  plus ``spike_min_increase`` nats. Losses above ``spike_factor`` times the level do not move the level. A
  sustained rise, not one hard batch: a single batch at 1.4 among losses
  near 0.01 is not a spike, and neither is a loss near zero doubling.
* ``collapse``: after the model had learned (some evaluation reached the majority-class rate plus
  ``learned_margin``), an evaluation falls back to the majority-class rate (within ``collapse_margin``) or its
  predictions become constant (one class takes ``constant_share`` of them). Classification tasks only.
* ``no_learning``: the run ended and no evaluation ever reached the majority-class rate plus ``learned_margin``:
  training never got off the constant-prediction plateau (checked once, at the end; classification only).
  This is how BERT fails under movement pruning on small SST-2 runs, and it would otherwise be averaged into a
  mean accuracy as if it were a bad result rather than a failed run.

The policy (recipe ``divergence.policy``) says what the loop does on an event: ``record`` keeps going,
``stop`` ends the run (the CLI exits with its divergence code), ``rollback`` restores the last checkpoint
taken before the event, multiplies every learning rate by ``lr_factor`` and continues, at most ``max_retries``
times (then it stops).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .fields import key

#: ``divergence.policy`` values
POLICIES = ("record", "stop", "rollback")


@dataclass
class DivergenceConfig:
    """The recipe's ``divergence:`` section."""

    policy: str = key("record", choices=POLICIES)
    spike_factor: float = key(5.0, min=1.0, min_open=True)
    spike_min_increase: float = key(1.0, min=0.0)
    spike_warmup_steps: int = key(50, min=0)
    learned_margin: float = key(0.1, min=0.0, max=1.0)
    collapse_margin: float = key(0.02, min=0.0, max=1.0)
    constant_share: float = key(0.98, min=0.5, max=1.0)
    lr_factor: float = key(0.5, min=0.0, max=1.0, min_open=True)
    max_retries: int = key(3, min=0)


@dataclass
class Event:
    step: int
    kind: str
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DivergenceTracker:
    """Watches losses and evaluations; ``events`` survives rollbacks (it is the run's record)."""

    config: DivergenceConfig = field(default_factory=DivergenceConfig)
    majority_rate: float | None = None  # share of the most frequent dev label (classification)
    events: list[Event] = field(default_factory=list)
    retries: int = 0
    ema: float | None = None
    recent: float | None = None
    in_spike: bool = False
    seen: int = 0
    learned: bool = False
    ema_decay: float = 0.98
    recent_decay: float = 0.8

    # ---- detection -----------------------------------------------------------------------------------------
    def observe_loss(self, step: int, loss: float) -> Event | None:
        """Check one training loss; returns the event it raises, if any."""
        if not math.isfinite(loss):
            return self._event(step, "non_finite_loss", f"training loss is {loss}")
        c = self.config
        self.recent = (
            loss if self.recent is None else self.recent_decay * self.recent + (1 - self.recent_decay) * loss
        )
        if self.ema is not None and self.seen >= c.spike_warmup_steps:
            high = self.recent > c.spike_factor * self.ema and self.recent > self.ema + c.spike_min_increase
            if high and not self.in_spike:  # one event per rise, however long it lasts
                self.in_spike = True
                detail = f"recent loss {self.recent:.4g} is {self.recent / self.ema:.1f}x its running level {self.ema:.4g}"
                return self._event(step, "loss_spike", detail)
            self.in_spike = high
        if self.ema is None or loss <= c.spike_factor * self.ema:  # a suspicious loss does not move the level
            self.ema = loss if self.ema is None else self.ema_decay * self.ema + (1 - self.ema_decay) * loss
        self.seen += 1
        return None

    def observe_eval(self, step: int, metrics: dict) -> Event | None:
        """Check one evaluation (needs ``accuracy`` and ``majority_prediction_share``)."""
        if self.majority_rate is None or "accuracy" not in metrics:
            return None
        c = self.config
        acc = metrics["accuracy"]
        if not math.isfinite(metrics.get("loss", 0.0)) and self.learned:
            return self._event(step, "collapse", f"evaluation loss is {metrics['loss']}")
        if not self.learned:
            self.learned = acc >= self.majority_rate + c.learned_margin
            return None
        share = metrics.get("majority_prediction_share", 0.0)
        if acc <= self.majority_rate + c.collapse_margin:
            return self._event(
                step,
                "collapse",
                f"accuracy {acc:.4f} fell to the majority-class rate {self.majority_rate:.4f}",
            )
        if share >= c.constant_share:
            return self._event(step, "collapse", f"{share:.1%} of predictions are one class")
        return None

    def finish(self, step: int, best_accuracy: float | None) -> Event | None:
        """End-of-run check: ``no_learning`` if no evaluation reached the majority rate + ``learned_margin``.
        Idempotent (a resumed run that finishes again does not record it twice)."""
        if self.majority_rate is None or best_accuracy is None or self.learned:
            return None
        if any(e.kind == "no_learning" for e in self.events):
            return None
        return self._event(
            step,
            "no_learning",
            f"best accuracy {best_accuracy:.4f} never reached the majority-class rate {self.majority_rate:.4f} "
            f"+ {self.config.learned_margin:g}",
        )

    def _event(self, step: int, kind: str, detail: str) -> Event:
        event = Event(step, kind, detail)
        self.events.append(event)
        return event

    # ---- policy --------------------------------------------------------------------------------------------
    def action(self) -> str:
        """What to do about the event just raised: ``continue``, ``stop`` or ``rollback``."""
        policy = self.config.policy
        if policy == "record":
            return "continue"
        if policy == "rollback" and self.retries < self.config.max_retries:
            self.retries += 1
            return "rollback"
        return "stop"

    def after_rollback(self) -> None:
        """Reset the running loss level: the restored model starts from an earlier point."""
        self.ema = None
        self.recent = None
        self.in_spike = False
        self.seen = 0

    # ---- reporting and resume ------------------------------------------------------------------------------
    @property
    def diverged(self) -> bool:
        return bool(self.events)

    def summary(self) -> dict:
        first = self.events[0] if self.events else None
        return {
            "diverged": self.diverged,
            "first_step": first.step if first else None,
            "first_kind": first.kind if first else None,
            "events": [e.to_dict() for e in self.events],
            "rollbacks": self.retries,
            "policy": self.config.policy,
            "majority_rate": self.majority_rate,
            "definition": {
                "non_finite_loss": "training loss NaN or infinite",
                "loss_spike": f"recent loss (5-step EMA) > {self.config.spike_factor:g}x its running level (50-step "
                f"EMA) and > level + "
                f"{self.config.spike_min_increase:g}, after {self.config.spike_warmup_steps} steps",
                "collapse": "after an evaluation reached majority rate + "
                f"{self.config.learned_margin:g}: accuracy <= majority rate + {self.config.collapse_margin:g}, "
                f"or one class >= {self.config.constant_share:.0%} of predictions",
                "no_learning": "at the end of the run, no evaluation ever reached majority rate + "
                f"{self.config.learned_margin:g}",
            },
        }

    def state_dict(self) -> dict:
        return {
            "events": [e.to_dict() for e in self.events],
            "retries": self.retries,
            "ema": self.ema,
            "recent": self.recent,
            "in_spike": self.in_spike,
            "seen": self.seen,
            "learned": self.learned,
        }

    def load_state_dict(self, state: dict) -> None:
        self.events = [Event(**e) for e in state["events"]]
        self.retries = int(state["retries"])
        self.ema = state["ema"]
        self.recent = state["recent"]
        self.in_spike = bool(state["in_spike"])
        self.seen = int(state["seen"])
        self.learned = bool(state["learned"])
