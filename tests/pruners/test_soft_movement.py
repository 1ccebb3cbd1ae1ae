"""`pruners/soft_movement.py`: a stronger penalty prunes more."""

import pytest
import torch

from bermo_prune.pruners import get_pruner
from bermo_prune.pruners.base import keep_top
from bermo_prune.pruners.soft_movement import FLOOR_SHARE, SoftMovementPruner, cap_to_budget
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


class _Recomputed(SoftMovementPruner):
    """Soft movement's mask and threshold share as they were before the float compares (a boolean compare, then a
    cast or a count)."""

    def compute_mask(self, layout, state, value):
        scores = state.scores.detach()
        mask = (torch.sigmoid(scores) > self.threshold(value)).to(state.mask.dtype)
        if self.target_control:
            sizes = layout.unit_sizes.to(scores.device)
            cap_to_budget(
                mask, scores, sizes, value * layout.total_weights, self.warm_topk, layout.uniform_unit_size
            )
        for sl in layout.local_sets:
            floor = int(FLOOR_SHARE * (sl.stop - sl.start)) + 1
            if mask[sl].sum() < floor:
                mask[sl] = 0.0
                keep_top(mask[sl], scores[sl], floor)
        return mask

    def threshold_share(self, layout, probs, target):
        above = probs.detach() > self.threshold(target)
        share = int(torch.count_nonzero(above)) * layout.uniform_unit_size / layout.total_weights
        return torch.tensor(share, dtype=probs.dtype, device=probs.device)


@pytest.mark.parametrize("update_every", [1, 3])
def test_float_compares_change_no_step_of_a_target_controlled_run(update_every):
    """The mask and the threshold's share written by float compares (faster than a boolean compare and a cast or
    count) leave a run bit for bit what the boolean path gives: penalties, logged shares, masks and scores at every
    step, while the threshold's share falls from 1 and the cap holds the mask below it.

    (A cache of sigmoid(S) between the mask and the next penalty was tried and dropped: the fused AdamW step does not
    bump the scores' version counter, so no cheap key tells it stale; this test caught it.)"""
    from transformers import BertForSequenceClassification

    from bermo_prune.engine import prune
    from bermo_prune.optim import make_optimizer
    from bermo_prune.schedule import Scheduler

    from ..conftest import tiny_config

    traces = []
    for cls in (SoftMovementPruner, _Recomputed):
        torch.manual_seed(0)
        model = BertForSequenceClassification(tiny_config(vocab_size=100, max_position_embeddings=32))
        pruner = cls(target_control=True, lagrange_rho=1.5)
        handle = prune(
            model, Scheduler(pruner, Cubic(1.0, 0.1, total=60, warmup=10, cooldown=20), update_every)
        )
        opt = make_optimizer(handle.param_groups(lr=3e-4, score_lr=0.1), 3e-4)
        g = torch.Generator().manual_seed(1)
        trace = []
        for _ in range(70):
            x = torch.randint(1, 100, (16, 12), generator=g)
            penalty = handle.penalty()
            loss = model(input_ids=x, labels=(x[:, 0] > 50).long()).loss + penalty
            loss.backward()
            opt.step()
            opt.zero_grad()
            handle.step()
            logged = pruner.log_fields(handle.layout, handle.state, handle.value)["threshold_remaining"]
            trace.append(
                (
                    float(penalty.detach()),
                    logged,
                    handle.state.mask.clone(),
                    handle.state.scores.detach().clone(),
                )
            )
        traces.append(trace)
    faster, recomputed = traces
    shares = [t[1] for t in recomputed]
    # the threshold's share moves through the ramp
    assert any(0.1 < s < 0.9 for s in shares) and min(shares) < 0.01
    assert any(t[1] > float(t[2].mean()) + 0.05 for t in recomputed)  # and the cap keeps fewer than it does
    for a, b in zip(faster, recomputed, strict=True):
        assert a[0] == b[0] and a[1] == b[1]
        assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


def test_the_share_buffer_survives_inference_mode_and_is_not_pickled():
    """The threshold share's reused float buffer: a first call under ``torch.inference_mode()`` (an eval loop) must
    not leave an inference tensor that a later training-mode call cannot write; a pickle leaves it behind."""
    import pickle
    from types import SimpleNamespace

    pruner = get_pruner("soft_movement", target_control=True, final_threshold=0.5)
    pruner._target_final = 0.1
    layout = SimpleNamespace(uniform_unit_size=1.0, unit_sizes=torch.ones(4), total_weights=4)
    probs = torch.tensor([0.2, 0.6, 0.9, 0.51])
    with torch.inference_mode():
        assert float(pruner.threshold_share(layout, probs, 0.1)) == 0.75
    # before the buffer was renewed here, this call failed: an in-place update to an inference tensor
    assert float(pruner.threshold_share(layout, probs, 0.1)) == 0.75
    assert not hasattr(pickle.loads(pickle.dumps(pruner)), "_share_buffer")
