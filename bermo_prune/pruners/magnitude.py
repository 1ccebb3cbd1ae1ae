"""Magnitude pruning: keep the units with the largest |W|.

Han et al. 2015 ("Learning both weights and connections"), with the gradual cubic schedule of Zhu & Gupta 2017
as the usual schedule. Importance of a unit is mean |W| over it (a single weight, block, row or head):

    M = TopK(|W|, k),  k = round(remaining * units)   per matrix (scope=local) or over all targets (global)

Defaults: weight granularity, local scope, the schedule's value is the remaining fraction (e.g. cubic 1.0 -> 0.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import register_pruner
from .base import Pruner, topk_mask, unit_mean_abs


@register_pruner("magnitude")
@dataclass
class MagnitudePruner(Pruner):
    """Keep the largest-magnitude units; no learnable scores."""

    def compute_mask(self, layout, state, value):
        return topk_mask(layout, unit_mean_abs(layout), value, self.scope, self.warm_topk)
