"""`pruners/magnitude.py`: the kept units are exactly those with the largest mean |W|, per matrix or over all."""

import pytest
import torch
from transformers import BertForSequenceClassification

from bermo_prune.engine import prune
from bermo_prune.pruners import get_pruner
from bermo_prune.schedule import Constant, Scheduler

from ..conftest import tiny_config


def _magnitude(granularity: str, scope: str, remaining: float):
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config())
    pruner = get_pruner("magnitude", granularity=granularity, scope=scope, block_rows=8, block_cols=8)
    return prune(model, Scheduler(pruner, Constant(remaining)))


@pytest.mark.parametrize("granularity", ["weight", "row", "block"])
def test_each_matrix_keeps_its_largest_units(granularity):
    handle = _magnitude(granularity, "local", 0.3)
    handle.update_masks()
    for t in handle.layout.targets:
        importance = t.to_units(t.module.weight.detach().abs())  # mean |W| per unit
        kept = t.gather(handle.state.mask).reshape(-1)
        k = round(0.3 * t.units)
        assert int(kept.sum()) == k
        assert importance[kept == 1].min() >= importance[kept == 0].max()


def test_global_scope_ranks_every_weight_together():
    handle = _magnitude("weight", "global", 0.2)
    first = handle.layout.targets[0]
    with torch.no_grad():
        first.module.weight.mul_(3.0)  # one matrix of larger weights: a global cut keeps more of it
    handle.update_masks()
    weights = torch.cat([t.module.weight.detach().abs().reshape(-1) for t in handle.layout.targets])
    mask = handle.state.mask
    assert int(mask.sum()) == round(0.2 * weights.numel())
    assert weights[mask == 1].min() >= weights[mask == 0].max()
    shares = [float(t.gather(mask).mean()) for t in handle.layout.targets]
    assert shares[0] > 0.5 and max(shares[1:]) < 0.2  # a local cut would keep 0.2 of each


def test_hardening_keeps_exactly_the_kept_weights():
    handle = _magnitude("weight", "local", 0.5)
    handle.update_masks()
    expected = {t.name: t.module.weight.detach() * t.full_mask for t in handle.layout.targets}
    model = handle.harden()
    for name, weight in expected.items():
        hardened = model.get_submodule(name).weight.detach()
        assert torch.equal(hardened, weight) and int((hardened != 0).sum()) == round(0.5 * weight.numel())
