"""The Pruner contract and the helpers the methods share.

A pruner decides *which* weights go. It works on *units*: single weights, blocks, rows/columns or heads, as the
granularity says; the engine lays every target's units out in one flat vector, so scores, masks, penalties and
global selections are single tensor operations rather than Python loops over parameters.

Contract:
  * ``create_scores(layout)``: the flat learnable per-unit tensor (movement scores, L0 log-alphas) or None.
  * ``compute_mask(layout, state, value)``: the binary unit mask for the scheduled ``value``.
  * ``effective_weight(target, weight, state, training)``: the weight a masked linear uses in its forward.
  * ``penalty(layout, state, value)``: a regulariser added to the loss, or None.
  * ``before_forward(layout, state, training)``: per-forward work (sampling L0 gates), once per model call.
  * ``log_fields(layout, state, value)``: the method's diagnostics for a logged step (soft movement's capped share).
  * ``bind_schedule(schedule)``: called once when the masks are attached, with the schedule the method runs under
    (a method whose rule depends on the schedule's end, such as soft movement's threshold under target control).
The engine keeps a method out of the warm-up: before ``schedule.start_step()`` it calls neither
``compute_mask`` (every mask is one), ``penalty`` nor ``before_forward``, so the forward equals the dense one.
  * ``create_multipliers()``: Lagrange multipliers of a target-controlled penalty, trained by gradient ascent
    (:class:`GradientAscent`), or None; ``step_multipliers(state, scheduler)`` moves them after each optimizer
    step (:class:`TargetControl` does both, with its method's ``lagrange_lr``).
Dataclass fields are the method's recipe arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..layout import Layout, PruningState, Target

GRANULARITIES = ("weight", "block", "row", "head")
SCOPES = ("local", "global")

#: what a schedule value can mean: (the schedule's default start, the check of a value, its rule in words)
SCHEDULE_VALUES: dict[str, tuple[float, object, str]] = {
    "remaining": (1.0, lambda v: 0.0 < v <= 1.0, "a remaining fraction must be in (0, 1]"),
    "threshold": (0.0, lambda v: 0.0 <= v < 1.0, "a sigmoid threshold must be in [0, 1)"),
    "lambda": (0.0, lambda v: v >= 0.0, "lambda must be >= 0"),
}


@dataclass
class Pruner:
    """Base class of every pruning method.

    Attributes:
        granularity: ``weight``, ``block`` (``block_rows`` x ``block_cols`` tiles), ``row`` (output rows of
            Q/K/V and FFN-in, input columns of attention-out and FFN-out, each matrix on its own), or ``head``
            (structured: one unit per attention head spanning Q, K, V and attention-out, one per FFN neuron
            spanning FFN-in's row and FFN-out's column; what :func:`~bermo_prune.compact.compact` removes).
        block_rows, block_cols: the tile shape for ``block``.
        scope: ``local`` keeps the same share in every matrix; ``global`` ranks all units together.
    """

    granularity: str = "weight"
    block_rows: int = 32
    block_cols: int = 32
    scope: str = "local"

    #: what the schedule's value means for this method: "remaining", "threshold" or "lambda".
    schedule_key: ClassVar[str] = "remaining"
    #: learning rate the recipe uses for this method's scores when none is given.
    default_score_lr: ClassVar[float] = 1e-2

    @classmethod
    def schedule_key_for(cls, options: dict) -> str:
        """What the schedule's value means for this method with these recipe ``options`` (a method whose options
        change it, such as a penalty method under target control, overrides this); a key of
        :data:`SCHEDULE_VALUES`."""
        return cls.schedule_key

    # ---- the method's recipe rules (read by bermo_prune.recipe; a registered method needs nothing else) -------
    @classmethod
    def schedule_fields(cls, options: dict) -> tuple[str, ...]:
        """Fields of this method that a recipe sets from ``pruning.schedule`` rather than ``pruning.options``."""
        return ()

    @classmethod
    def options_from_schedule(cls, options: dict, schedule: dict) -> dict:
        """The values of :meth:`schedule_fields` for a validated ``pruning.schedule`` section."""
        return {}

    @classmethod
    def recipe_problems(cls, options: dict, schedule: dict) -> list[str]:
        """The method's own rules on a recipe's (type-checked) pruning section, as messages naming their key."""
        return []

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"unknown granularity {self.granularity!r}; use one of {', '.join(GRANULARITIES)}"
            )
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; use one of {', '.join(SCOPES)}")
        if self.block_rows < 1 or self.block_cols < 1:
            raise ValueError("block_rows and block_cols must be positive")
        # What this instance's schedule value means (a target-controlled penalty method schedules remaining weights).
        self.schedule_key = self.schedule_key_for(vars(self))
        self.warm_topk = (
            WarmTopK()
        )  # top-k selections that start from the last one's thresholds (not a field)

    # ---- the contract -------------------------------------------------------------------------------------
    def create_scores(self, layout: Layout) -> torch.Tensor | None:
        return None

    def create_multipliers(self) -> torch.Tensor | None:
        """Lagrange multipliers trained by gradient ascent (target control), or None."""
        return None

    def compute_mask(self, layout: Layout, state: PruningState, value: float) -> torch.Tensor:
        raise NotImplementedError

    def effective_weight(self, target: Target, weight: torch.Tensor, state: PruningState, training: bool):
        return weight * target.full_mask

    def penalty(self, layout: Layout, state: PruningState, value: float) -> torch.Tensor | None:
        return None

    def before_forward(self, layout: Layout, state: PruningState, training: bool) -> None:
        return None

    def step_multipliers(self, state: PruningState, scheduler) -> None:
        """After an optimizer step, before the schedule advances: move the Lagrange multipliers (default: the
        method has none)."""
        return None

    def log_fields(self, layout: Layout, state: PruningState, value: float) -> dict:
        """The method's own diagnostics for a logged step's ``metrics.jsonl`` record (default: none)."""
        return {}

    def bind_schedule(self, schedule) -> None:
        """Called by :func:`~bermo_prune.engine.prune` with the :class:`~bermo_prune.schedule.Schedule` in use."""
        return None


class TargetControl:
    """For a penalty method that can be given a remaining-weights target instead of its own schedule value.

    Placed before :class:`Pruner`; the method declares the recipe fields ``target_control``, ``lagrange_rho`` and
    ``lagrange_lr`` and uses :func:`lagrangian` in its penalty when ``target_control`` is set.
    """

    @classmethod
    def schedule_key_for(cls, options: dict) -> str:
        return "remaining" if options.get("target_control") else cls.schedule_key

    def step_multipliers(self, state: PruningState, scheduler) -> None:
        """Plain gradient ascent on the multiplier, ``l += lagrange_lr (r - t)``, once the schedule has reached its
        final value (the gradient of the last backward, already negated by :class:`GradientAscent`, is consumed
        and cleared either way). Integrating only once the target has stopped moving: while it ramps, the
        quadratic term tracks it, and a multiplier summing the ramp's lag would wind up and overshoot."""
        multipliers = state.multipliers
        if multipliers is None or multipliers.grad is None:
            return
        if scheduler.step >= scheduler.schedule.end_step():
            with torch.no_grad():  # descending on the negated gradient ascends
                multipliers.sub_(self.lagrange_lr * multipliers.grad)
        multipliers.grad = None

    def create_multipliers(self) -> torch.Tensor | None:
        return torch.zeros(1) if self.target_control else None


def topk_mask(
    layout: Layout, importance: torch.Tensor, remaining: float, scope: str, warm: WarmTopK | None = None
) -> torch.Tensor:
    """A binary unit mask keeping the ``remaining`` share of units with the highest ``importance``.

    Exact counts: ``round(remaining * units)`` per matrix (local) or over all units (global). Ties are broken
    by index, never by keeping extra units. With ``warm`` (a :class:`WarmTopK` the caller keeps between calls),
    each selection starts from the threshold it found last time: the same units, found in a few comparison
    passes instead of a selection, and written into ``warm``'s own buffer (returned; valid until the next call).
    """
    if warm is None:
        mask = torch.zeros_like(importance)
        select = keep_top
    else:
        mask = warm.buffer(importance)
        select = warm.keep_top
    if scope == "global":
        select(mask, importance, int(round(remaining * importance.numel())))
        return mask
    for sl in layout.local_sets:
        select(mask[sl], importance[sl], int(round(remaining * (sl.stop - sl.start))))
    return mask


class WarmTopK:
    """Exact top-k selections that start from the last call's threshold, for importances that change a little
    between calls (scores after one optimizer step, |W| after one update).

    For each slice it keeps a threshold strictly between the k-th and (k+1)-th highest values of its last
    selection, and how many values lie per unit of importance around it. Next time: count the values above it; if
    exactly k are, those are the top k (every value above a threshold beats every value below it). Otherwise the
    values that crossed lie in a narrow band on one side of it, sized from that density to hold about twice as many
    values as must cross: they alone are ordered, the threshold moves between the new k-th and (k+1)-th values, and
    the count is checked. A band that holds too few values widens; a tie at the boundary (no threshold splits it) or
    a slice seen for the first time falls back to :func:`keep_top`. The kept set is always exactly k units and,
    where no tie straddles the boundary, the set :func:`keep_top` keeps (NaN values are never kept, where
    ``torch.topk`` may keep them). A selection whose count is off costs a few elementwise passes over the slice and
    a ``nonzero`` per band tried. A slice whose boundary value is infinite keeps no state (each call falls back).
    """

    def __init__(self) -> None:
        self._state: dict[tuple[int, int], tuple[float, float]] = {}  # (start, numel) -> (threshold, density)
        self._buffer: torch.Tensor | None = None
        self._scratch: torch.Tensor | None = None
        self.fallbacks = 0  # selections done by keep_top (first calls, ties, k of 0 or all)

    def buffer(self, like: torch.Tensor) -> torch.Tensor:
        """A float32 mask buffer shaped like ``like``, reused between calls (no fresh pages every step) and not
        cleared: :meth:`keep_top` overwrites every value of the slice it is given. Float32 whatever ``like``'s
        dtype, so that its sum counts units exactly (see :func:`count_ones`)."""
        if self._buffer is None or self._buffer.shape != like.shape or self._buffer.device != like.device:
            self._buffer = torch.zeros(like.shape, dtype=torch.float32, device=like.device)
        return self._buffer

    def keep_top(self, mask: torch.Tensor, importance: torch.Tensor, k: int) -> None:
        """:func:`keep_top`, except that ``mask`` may hold anything: it is set to 1 at the ``k`` highest values and
        to 0 elsewhere."""
        n = importance.numel()
        key = (importance.storage_offset(), n)
        if 0 < k < n and key in self._state:
            threshold, density = self._state[key]
            found = self._move(mask, importance, k, threshold, density, self._scratch_for(mask))
            if found is not None:
                self._state[key] = found
                return
        self.fallbacks += 1
        mask.zero_()
        keep_top(mask, importance, k)
        self._state.pop(key, None)
        if 0 < k < n:  # a threshold between the k-th and (k+1)-th values, for the next call
            kept = mask.bool()
            low = float(torch.where(kept, importance, torch.inf).min())
            high = float(torch.where(kept, -torch.inf, importance).max())
            if (
                math.isfinite(low) and math.isfinite(high) and high < low
            ):  # one gap is all there is for the density
                self._state[key] = (high + (low - high) / 2, 0.25 / (low - high))

    def _scratch_for(self, mask: torch.Tensor) -> torch.Tensor:
        """A float32 buffer of ``mask``'s size (a view of one kept for the largest slice seen)."""
        n = mask.numel()
        if self._scratch is None or self._scratch.numel() < n or self._scratch.device != mask.device:
            self._scratch = torch.empty(n, dtype=torch.float32, device=mask.device)
        return self._scratch[:n]

    @staticmethod
    def _move(
        mask: torch.Tensor, values: torch.Tensor, k: int, threshold: float, density: float, band: torch.Tensor
    ) -> tuple[float, float] | None:
        """Set ``mask`` to values > a threshold that keeps exactly ``k`` and return it with the density seen
        around it, or None where none is found (a tie, or adjacent floats, at the boundary; ``mask`` is then left
        to the caller). ``band`` is float32 scratch of the slice's size."""
        torch.gt(values, threshold, out=mask)
        count = count_ones(mask)
        if count == k:
            return threshold, density
        need = abs(count - k)
        width = max(2.0 * need / density, 1e-7)  # (floored as the fixed band of earlier versions was)
        for _ in range(16):  # widen the band until it holds the values that must cross, 4x each time
            if count > k:  # drop the `need` lowest values above the threshold: those in (t, t + width]
                torch.le(values, threshold + width, out=band).mul_(mask)
            else:  # add the `need` highest values at or below it: those in (t - width, t]
                torch.gt(values, threshold - width, out=band).sub_(mask)
            inside = values[band.bool()]
            m = inside.numel()
            if m > need:
                if count > k:
                    a, b = float(inside.kthvalue(need).values), float(inside.kthvalue(need + 1).values)
                    new = a + (b - a) / 2
                else:
                    a, b = (
                        float(inside.kthvalue(m - need + 1).values),
                        float(inside.kthvalue(m - need).values),
                    )
                    new = b + (a - b) / 2
                torch.gt(values, new, out=mask)
                return (new, m / width) if count_ones(mask) == k else None
            width *= 4.0
        return None


def count_ones(mask: torch.Tensor) -> int:
    """Ones in a 0/1 float mask: a float32 sum is exact below 2**24 units (and several times faster than a count);
    other dtypes, and larger masks, are counted."""
    if mask.dtype == torch.float32 and mask.numel() < 2**24:
        return int(mask.sum())
    return int(torch.count_nonzero(mask))


def keep_top(mask: torch.Tensor, importance: torch.Tensor, k: int) -> None:
    """Set the all-zero ``mask`` (a view is fine) to 1 at the ``k`` highest ``importance`` values, in place."""
    n = importance.numel()
    if k >= n:
        mask.fill_(1.0)
    elif k > 0:
        # Select the smaller side: topk of k or of n - k elements costs the same sort work either way.
        if k <= n - k:
            mask[torch.topk(importance, k, sorted=False).indices] = 1.0
        else:
            mask.fill_(1.0)
            mask[torch.topk(importance, n - k, largest=False, sorted=False).indices] = 0.0


def unit_mean_abs(layout: Layout) -> torch.Tensor:
    """Mean |W| of every unit, in the flat unit layout (magnitude importance at any granularity)."""
    if not layout.tied:
        return torch.cat([t.to_units(t.module.weight.detach().abs(), reduce="mean") for t in layout.targets])
    sums = torch.zeros_like(layout.unit_sizes)
    for t in layout.targets:  # a tied unit's mean runs over every matrix it spans
        sums.index_add_(0, t.tie, t.to_units(t.module.weight.detach().abs(), reduce="sum"))
    return sums / layout.unit_sizes


class StraightThroughMask(torch.autograd.Function):
    """Forward ``W * M``; backward ``dW = g * M`` and, for the unit scores, ``dS = sum_unit(g * W)``.

    The straight-through estimator of Movement Pruning (Sanh et al. 2020): the score gradient is the gradient
    of the masked weight times the weight, summed over each unit (a block, row or head) when units are larger
    than one weight.
    """

    @staticmethod
    def forward(ctx, weight, scores, full_mask, block):  # noqa: D102
        ctx.save_for_backward(weight, full_mask)
        ctx.block = block
        ctx.scores_shape = scores.shape
        return weight * full_mask

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        weight, full_mask = ctx.saved_tensors
        grad_weight = grad * full_mask if ctx.needs_input_grad[0] else None
        grad_scores = None
        if ctx.needs_input_grad[1]:
            gw = grad * weight
            bh, bw = ctx.block
            if (bh, bw) != (1, 1):
                out, inp = gw.shape
                gw = gw.view(out // bh, bh, inp // bw, bw).sum(dim=(1, 3))
            grad_scores = gw.reshape(ctx.scores_shape)
        return grad_weight, grad_scores, None, None


class SigmoidDot(torch.autograd.Function):
    """``sum_u w_u sigmoid(x_u)`` from ``probs`` = sigmoid(x) computed once by the caller; backward
    ``grad * w * probs (1 - probs)`` in one buffer.

    The penalties of soft movement and L0 are this sum over one score per unit, which at weight granularity is one
    per weight (12.6M on a 4-layer hidden-512 BERT). Composed from autograd ops it makes five full-size temporaries
    a step and recomputes the sigmoid the caller already needs (for the threshold's share, or the open
    probability); here the forward is one dot product and the backward two passes. ``w`` is a per-unit tensor or,
    where every unit weighs the same, a float (no vector of equal weights is read). Same value and gradient as
    ``(torch.sigmoid(x) * w).sum()`` up to float rounding (summation order).
    """

    @staticmethod
    def forward(ctx, x, probs, w):  # noqa: D102
        ctx.w = w if not isinstance(w, torch.Tensor) else None
        if isinstance(w, torch.Tensor):
            w = w.to(device=probs.device, dtype=probs.dtype)  # scores cast after prune() (bf16, a GPU)
            ctx.save_for_backward(probs, w)
            return torch.dot(probs, w)
        ctx.save_for_backward(probs)
        return probs.sum() * w

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        if ctx.w is None:
            probs, w = ctx.saved_tensors
            return torch.addcmul(probs, probs, probs, value=-1.0).mul_(w).mul_(grad), None, None
        (probs,) = ctx.saved_tensors
        return torch.addcmul(probs, probs, probs, value=-1.0).mul_(grad * ctx.w), None, None


def sigmoid_dot(x: torch.Tensor, w: torch.Tensor | float, probs: torch.Tensor | None = None) -> torch.Tensor:
    """``(torch.sigmoid(x) * w).sum()`` with the gradient reaching ``x`` only (see :class:`SigmoidDot`); ``probs``,
    when given, is ``sigmoid(x)`` (or ``sigmoid(x - shift)``) already computed, detached."""
    if probs is None:
        probs = torch.sigmoid(x.detach())
    return SigmoidDot.apply(x, probs, w)


class GradientAscent(torch.autograd.Function):
    """Identity forward, negated gradient: an optimizer that descends on the loss then ascends on these values.

    Placed on a Lagrange multiplier, a plain descent step on its gradient is an ascent step on the loss (see
    :meth:`~bermo_prune.engine.Pruning.step`).
    """

    @staticmethod
    def forward(ctx, x):  # noqa: D102
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        return -grad


def lagrangian(multiplier: torch.Tensor, gap: torch.Tensor, rho: float, force: float = 1.0) -> torch.Tensor:
    """``force * (l (r - t) + rho (r - t)^2)``: the augmented Lagrangian of the constraint "remaining share r = t".

    ``l`` (``multiplier``, one value) is trained by gradient ascent on ``r - t`` alone (its gradient is negated
    here and :meth:`~bermo_prune.engine.Pruning.step` takes a plain step on it); ``rho`` is fixed. ``force``
    multiplies what the scores feel, not the multiplier's step: a method passes its number of units so that the
    push on one unit, ``force * d r / d unit``, does not shrink as the model grows (a unit of one weight in a
    model of N weights moves r by 1 / N). CoFi (Xia et al. 2022) writes the same term with the quadratic weight
    learned too and both multipliers under Adam; measured on a tiny BERT (L0, 400 steps, target 0.10) that
    oscillated, while a fixed ``rho`` tracked the ramp.
    """
    lam = GradientAscent.apply(multiplier)[0]
    scores_side = force * (lam.detach() * gap + rho * gap * gap)
    return scores_side + (lam - lam.detach()) * gap.detach()  # value unchanged; gives l its gradient r - t
