"""Soft movement pruning: a threshold on sigmoid scores plus a penalty that pushes scores down.

Sanh, Wolf & Rush 2020, soft variant:

    M = 1[sigmoid(S) > tau]                      W' = W * M   (straight-through: dL/dS = dL/dW' * W)
    loss += lambda * mean_w sigmoid(S)            (mean over every target weight)

tau follows the schedule (e.g. cubic from 0 to ``final_threshold``) and lambda rises with it,
lambda_t = final_lambda * tau_t / tau_final, as in the paper's code. The reached sparsity is whatever the scores
end up giving: a larger ``final_lambda`` gives a sparser model. Defaults: score_init 0 (sigmoid 0.5, all kept at
tau 0), final_lambda 10, score learning rate 1e-2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from . import register_pruner
from .base import Pruner, StraightThroughMask


@register_pruner("soft_movement")
@dataclass
class SoftMovementPruner(Pruner):
    """Soft movement pruning.

    Attributes:
        final_lambda: penalty weight when the threshold reaches its final value.
        final_threshold: the schedule's final threshold tau_f (lambda is scaled by tau_t / tau_f).
        score_init: initial value of every score.
    """

    final_lambda: float = 10.0
    final_threshold: float = 0.1
    score_init: float = 0.0
    schedule_key: ClassVar[str] = "threshold"

    def create_scores(self, layout):
        return torch.full((layout.total_units,), float(self.score_init))

    def compute_mask(self, layout, state, value):
        return (torch.sigmoid(state.scores.detach()) > value).to(state.mask.dtype)

    def effective_weight(self, target, weight, state, training):
        scores = state.part("scores", target)
        return StraightThroughMask.apply(weight, scores, target.module._bp_full_mask, target.block)

    def penalty(self, layout, state, value):
        lam = self.final_lambda * value / self.final_threshold if self.final_threshold else self.final_lambda
        # Weighted by unit size so that the penalty is the mean over weights whatever the granularity.
        return lam * (torch.sigmoid(state.scores) * layout.unit_sizes).sum() / layout.total_weights

    def initial_value(self):
        return 0.0
