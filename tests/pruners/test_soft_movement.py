"""`pruners/soft_movement.py`: a stronger penalty prunes more."""

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
