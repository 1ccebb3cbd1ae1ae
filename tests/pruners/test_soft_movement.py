"""`pruners/soft_movement.py`: a stronger penalty prunes more."""

import pytest
import torch

from bermo_prune.pruners import get_pruner
from bermo_prune.schedule import Cubic

from ..conftest import pruned_tiny as make
from ..conftest import train_pruned as train


def test_soft_movement_prunes_more_as_lambda_grows():
    remaining = []
    for lam in (0.0, 0.1, 1.0):
        model, handle = make("soft_movement", "weight", final_lambda=lam, final_threshold=0.5)
        handle.scheduler.schedule = Cubic(0.0, 0.5, total=40)
        train(model, handle, 40, score_lr=0.05)
        handle.update_masks()
        remaining.append(handle.sparsity()["remaining"])
    assert remaining[0] > remaining[1] > remaining[2]


def test_the_threshold_share_counts_exactly_at_weight_granularity_and_weighs_mixed_units():
    from types import SimpleNamespace

    pruner = get_pruner("soft_movement", target_control=True, final_threshold=0.5)
    pruner._target_final = 0.1  # tau = 0.5 (1 - t) / 0.9: 0.5 at the final target
    probs = torch.tensor([0.2, 0.6, 0.9, 0.5, 0.51])
    ones = SimpleNamespace(uniform_unit_size=1.0, unit_sizes=torch.ones(5), total_weights=5)
    assert float(pruner.threshold_share(ones, probs, 0.1)) == pytest.approx(3 / 5, rel=1e-7)  # 0.6, 0.9, 0.51
    sizes = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    mixed = SimpleNamespace(uniform_unit_size=None, unit_sizes=sizes, total_weights=15)
    assert float(pruner.threshold_share(mixed, probs, 0.1)) == pytest.approx((2 + 3 + 5) / 15)
    assert float(pruner.threshold_share(ones, probs, 1.0)) == 1.0  # tau 0 while the target is 1
