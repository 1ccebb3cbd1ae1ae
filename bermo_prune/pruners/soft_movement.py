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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from . import register_pruner
from .base import Pruner, StraightThroughMask, keep_top

#: the reference's floor: at least this share of each matrix (plus one unit) stays
FLOOR_SHARE = 0.005


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
        scores = state.scores.detach()
        mask = (torch.sigmoid(scores) > value).to(state.mask.dtype)
        for sl in layout.local_sets:  # the per-matrix floor; runs only when masks are recomputed
            floor = int(FLOOR_SHARE * (sl.stop - sl.start)) + 1
            if mask[sl].sum() < floor:
                mask[sl] = 0.0
                keep_top(mask[sl], scores[sl], floor)
        return mask

    def effective_weight(self, target, weight, state, training):
        scores = state.part("scores", target)
        return StraightThroughMask.apply(weight, scores, target.module._bp_full_mask, target.block)

    def penalty(self, layout, state, value):
        lam = self.final_lambda * value / self.final_threshold if self.final_threshold else self.final_lambda
        weights = layout.matrix_mean_weights.to(state.scores.device)
        return lam * (torch.sigmoid(state.scores) * weights).sum()

    def initial_value(self):
        return 0.0
