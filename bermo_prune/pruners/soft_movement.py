"""Soft movement pruning: a threshold on sigmoid scores plus a penalty that pushes scores down.

Sanh, Wolf & Rush 2020, soft variant, as in the authors' code (transformers ``examples/research_projects/
movement-pruning``: ``emmental/modules/binarizer.py`` ``ThresholdBinarizer`` with ``sigmoid=True``, and
``masked_run_glue.py`` ``regularization(mode="l1")`` and ``schedule_threshold``):

    M = 1[sigmoid(S) > tau]                       W' = W * M   (straight-through: dL/dS = dL/dW' * W)
    floor: a matrix keeping fewer than int(0.005 n) + 1 of its n units keeps its int(0.005 n) + 1 highest scores
    loss += lambda_t * mean_matrices( mean_{w in matrix} sigmoid(S_w) )

tau follows the schedule (e.g. cubic from 0 to ``final_threshold``) and lambda rises with it,
lambda_t = final_lambda * tau_t / tau_final. The penalty averages per-matrix means, as the reference does, so a
small matrix weighs as much as a large one and the paper's lambda values mean the same here; the floor keeps every
matrix alive (the reference's "at least 0.5% of the weights are remaining"). At block, row and head granularity a
unit's score stands for all its weights (a tied head's "matrix" is its layer's attention or FFN). The reached
sparsity is whatever the scores end up giving: a larger ``final_lambda`` gives a sparser model. Defaults: score_init
0 (sigmoid 0.5, all kept at tau 0), final_lambda 10, score learning rate 1e-2.

Target control (``target_control=True``): the schedule's value is the remaining-weights target t (e.g. cubic from
1.0 to 0.10) and the penalty is the augmented Lagrangian of :func:`~.base.lagrangian` on the share r the threshold
keeps, l (r - t) + rho (r - t)^2. tau ramps with the target as the reference's threshold ramps:

    tau_t = final_threshold * (1 - t_t) / (1 - t_final)

so tau is 0 (nothing masked) while the target is 1, and final_threshold once the target is final; for the cubic
(or linear) target schedule this is exactly the reference's ``schedule_threshold`` from 0 to ``final_threshold``
with the same warm-up and cool-down, since both are the same polynomial of the step. (Before this, tau sat at
``final_threshold`` from step 0, so scores that fell below it during the warm-up were masked while the schedule
still asked for every weight.) r is a count, so the
scores receive (l + 2 rho (r - t)) times the gradient of the reference's penalised quantity, the size-weighted mean
sigmoid(S): pushed down while more than t remains, up while less does (r is counted at the current tau). This
replaces ``final_lambda``; the per-matrix floor still holds.

**The cap.** Where the threshold keeps more weights than the target allows, the mask keeps only the target's share
of the highest scores over all matrices (a tighter global threshold on the same scores; the floor applies after it),
so the mask never lags the target. It is needed because the push cannot be tuned once for every model: a score
feels (l + 2 rho (r - t)) sigmoid'(S) / N, so on all-MiniLM-L6-v2 (N = 10.6M) at the reference's score lr of 1e-2
the threshold alone lagged the ramp all the way (0.42 remaining at the 0.29 target mid-ramp, 0.150 at the end for a
target of 0.10, BERT at 3 epochs), while a push strong enough to dominate the task gradient moves every score at
Adam's full step and no longer selects. Integrating the lag into the multiplier wound it up and overshot (from that
run's step 4500: lagrange_lr 100 ended at 0.088; on a 16k-weight BERT with the push scaled down alike, rho 1.5, it
ended at 0.008 for 0.03). So the multiplier's step defaults to 0: the quadratic term pulls the threshold's own
share down to the target, the cap holds the mask at it while the threshold still keeps more, and once the
threshold keeps no more than the target the method is the reference's threshold alone. ``lagrange_lr`` > 0 adds
gradient ascent on l once the target has stopped moving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from . import register_pruner
from .base import (
    Pruner,
    StraightThroughMask,
    TargetControl,
    WarmTopK,
    count_ones,
    keep_top,
    lagrangian,
    sigmoid_dot,
)

#: the reference's floor: at least this share of each matrix (plus one unit) stays
FLOOR_SHARE = 0.005


def cap_to_budget(
    mask: torch.Tensor,
    scores: torch.Tensor,
    sizes: torch.Tensor,
    budget: float,
    warm: WarmTopK | None = None,
    unit_size: float | None = None,
) -> None:
    """Where ``mask`` keeps more than ``budget`` weights, keep only the highest-scored units that fit it, in place.

    A tighter global threshold on the same scores: the units kept are a subset of those ``mask`` kept. Units of
    one size (weight granularity, or blocks of one shape; ``unit_size`` when the caller knows it, else read from
    ``sizes``) keep exactly ``floor(budget / size)``; units of mixed sizes (heads and FFN neurons) are taken in score
    order, a unit that no longer fits is skipped and smaller ones after it still fill the budget.
    """
    if unit_size is None and bool((sizes == sizes[0]).all()):
        unit_size = float(sizes[0])
    kept = count_ones(mask) * unit_size if unit_size else float((mask.double() * sizes.double()).sum())
    if kept <= budget:
        return
    mask.zero_()
    if unit_size:
        (warm.keep_top if warm is not None else keep_top)(mask, scores, int(budget / unit_size + 1e-9))
        return
    order = torch.argsort(scores, descending=True, stable=True)
    left = budget + 1e-6
    for _ in range(64):  # each round takes the score-ordered prefix of the units that still fit what is left
        fits = order[sizes[order] <= left]
        if fits.numel() == 0:
            break
        cumulative = sizes[fits].double().cumsum(0)
        take = fits[cumulative <= left]
        mask[take] = 1.0
        left -= float(cumulative[take.numel() - 1])
        order = fits[take.numel() :]


@register_pruner("soft_movement")
@dataclass
class SoftMovementPruner(TargetControl, Pruner):
    """Soft movement pruning.

    Attributes:
        final_lambda: penalty weight when the threshold reaches its final value.
        final_threshold: the schedule's final threshold tau_f (lambda is scaled by tau_t / tau_f); under target
            control, the threshold tau reaches when the target does (it ramps from 0 with the target).
        score_init: initial value of every score.
        target_control: the schedule gives a remaining-weights target, reached through an augmented Lagrangian
            instead of ``final_lambda`` (see the module doc).
        lagrange_rho: the fixed quadratic weight of the augmented Lagrangian (target control).
        lagrange_lr: the gradient-ascent step of its multiplier (target control; 0: no integral, see the module doc).
    """

    final_lambda: float = 10.0
    final_threshold: float = 0.1
    score_init: float = 0.0
    target_control: bool = False
    lagrange_rho: float = 1000.0
    lagrange_lr: float = 0.0
    schedule_key: ClassVar[str] = "threshold"

    @classmethod
    def schedule_fields(cls, options):
        # Without target control the schedule's final threshold is tau_f; under it tau is an option.
        return () if options.get("target_control") else ("final_threshold",)

    @classmethod
    def options_from_schedule(cls, options, schedule):
        if options.get("target_control"):
            return {}
        return {"final_threshold": schedule["value"] if schedule["kind"] == "constant" else schedule["final"]}

    @classmethod
    def recipe_problems(cls, options, schedule):
        if not options.get("target_control") and schedule["kind"] != "constant" and not schedule["final"]:
            return ["pruning.schedule.final: soft movement needs a final threshold > 0"]
        return []

    def create_scores(self, layout):
        return torch.full((layout.total_units,), float(self.score_init))

    def bind_schedule(self, schedule) -> None:
        # Under target control tau follows the target's progress to its final value (see the module doc).
        self._target_final = schedule(schedule.end_step())

    def threshold(self, value: float) -> float:
        """tau now: the schedule's value, or under target control ``final_threshold`` scaled by the target's
        progress from 1 to its final value (0 while the target is 1)."""
        if not self.target_control:
            return value
        final = getattr(self, "_target_final", None)
        if final is None:  # not attached to a schedule
            return self.final_threshold
        if final >= 1.0:  # a schedule that never asks for less than every weight
            return 0.0
        progress = min(max((1.0 - value) / (1.0 - final), 0.0), 1.0)
        return self.final_threshold * progress

    def compute_mask(self, layout, state, value):
        scores = state.scores.detach()
        mask = torch.empty(scores.shape, dtype=state.mask.dtype, device=scores.device)
        # a compare written into the float mask: a boolean result and its cast took about 4x as long (10.6M scores)
        torch.gt(torch.sigmoid(scores), self.threshold(value), out=mask)
        if self.target_control:
            sizes = layout.unit_sizes.to(scores.device)
            budget = value * layout.total_weights
            cap_to_budget(mask, scores, sizes, budget, self.warm_topk, layout.uniform_unit_size)
        for sl in layout.local_sets:  # the per-matrix floor; runs only when masks are recomputed
            floor = int(FLOOR_SHARE * (sl.stop - sl.start)) + 1
            if mask[sl].sum() < floor:
                mask[sl] = 0.0
                keep_top(mask[sl], scores[sl], floor)
        return mask

    def log_fields(self, layout, state, value):
        """Under target control, the share the threshold alone keeps (``threshold_remaining``): above the target
        while the cap holds the mask at it, at or below once the threshold decides alone."""
        if not self.target_control:
            return {}
        return {
            "threshold_remaining": float(
                self.threshold_share(layout, torch.sigmoid(state.scores.detach()), value)
            )
        }

    def threshold_share(self, layout, probs: torch.Tensor, target: float) -> torch.Tensor:
        """The share of the weights whose unit's sigmoid score ``probs`` is above tau now (a 0-d tensor)."""
        tau = self.threshold(target)
        size = layout.uniform_unit_size
        # an integer count, exact at any size (count_ones: a sum below 2^24 units, else a count)
        if size is not None:
            above = torch.gt(probs.detach(), tau, out=self._scratch(probs))
            share = count_ones(above) * size / layout.total_weights
            return torch.tensor(share, dtype=probs.dtype, device=probs.device)
        above = probs.detach() > tau
        sizes = layout.unit_sizes.to(probs.device)
        return (above.to(probs.dtype) * sizes).sum() / layout.total_weights

    def __getstate__(self):  # a copy or pickle leaves the scratch buffer behind (it is refilled at every use)
        return {k: v for k, v in vars(self).items() if k != "_share_buffer"}

    def _scratch(self, like: torch.Tensor) -> torch.Tensor:
        """A float32 buffer shaped like ``like``, reused between calls (the threshold share's compare): a boolean
        compare and a count took about 9 ms on 10.6M scores, this compare and a sum about 3."""
        buf = getattr(self, "_share_buffer", None)
        stale = buf is not None and buf.is_inference() and not torch.is_inference_mode_enabled()
        if buf is None or stale or buf.shape != like.shape or buf.device != like.device:
            buf = self._share_buffer = torch.empty(like.shape, dtype=torch.float32, device=like.device)
        return buf

    def effective_weight(self, target, weight, state, training):
        scores = state.part("scores", target)
        return StraightThroughMask.apply(weight, scores, target.full_mask, target.block)

    def penalty(self, layout, state, value):
        if self.target_control:
            return self.target_penalty(layout, state, value)
        lam = self.final_lambda * value / self.final_threshold if self.final_threshold else self.final_lambda
        return lam * sigmoid_dot(state.scores, layout.matrix_mean_weights.to(state.scores.device))

    def target_penalty(self, layout, state, target: float) -> torch.Tensor:
        """The augmented Lagrangian on the share the threshold keeps now; the scores feel it through the reference's
        own penalised quantity (their sigmoid), pushed down while too many weights remain and up while too few."""
        probs = torch.sigmoid(state.scores.detach())  # (units,), once for the share and the surrogate
        gap = self.threshold_share(layout, probs, target) - target
        size = layout.uniform_unit_size
        per_unit = (
            size / layout.total_weights
            if size is not None
            else layout.unit_sizes.to(probs.device) / layout.total_weights
        )
        surrogate = sigmoid_dot(state.scores, per_unit, probs)  # the size-weighted mean sigmoid(S)
        push = (state.multipliers.detach()[0] + 2 * self.lagrange_rho * gap) * (
            surrogate - surrogate.detach()
        )
        return lagrangian(state.multipliers, gap, self.lagrange_rho) + push
