"""Movement pruning: learn importance scores S from how weights move during fine-tuning.

Sanh, Wolf & Rush 2020 ("Movement Pruning: Adaptive Sparsity by Fine-Tuning"), hard (top-k) variant, as in the
authors' code (transformers ``examples/research_projects/movement-pruning``: ``emmental/modules/binarizer.py``
``TopKBinarizer``, ``emmental/modules/masked_nn.py`` ``MaskedLinear``):

    forward:  W' = W * TopK(S)            (M = 1 for the k highest scores)
    backward: dL/dS = dL/dW' * W          (straight-through; summed over a unit for blocks/rows/heads)

so a score grows when its weight moves away from zero. Scores have their own learning rate (default 1e-2, the
paper's mask_scores_learning_rate) and start at ``score_init`` (0). The schedule's value is the remaining
fraction (paper: cubic from 1.0 to e.g. 0.10 with warmup and cooldown). Masks are recomputed every
``update_every`` steps of the scheduler; the reference recomputes them at every forward, which ``update_every=1``
reproduces exactly (``tests/test_reference.py`` checks masks and losses step by step against a plain-line copy of
the reference). One deliberate difference: the reference keeps ``ceil(r n)`` weights per matrix, we keep
``round(r n)`` so the reached share equals the scheduled one (at most one weight per matrix apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register_pruner
from .base import Pruner, StraightThroughMask, topk_mask


@register_pruner("movement")
@dataclass
class MovementPruner(Pruner):
    """Hard movement pruning with straight-through top-k.

    Attributes:
        score_init: initial value of every score.
    """

    score_init: float = 0.0

    def create_scores(self, layout):
        return torch.full((layout.total_units,), float(self.score_init))

    def compute_mask(self, layout, state, value):
        return topk_mask(layout, state.scores.detach(), value, self.scope, self.warm_topk)

    def effective_weight(self, target, weight, state, training):
        scores = state.part("scores", target)
        return StraightThroughMask.apply(weight, scores, target.full_mask, target.block)
