"""`pruners/base.py` and the registry: exact top-k selection (`keep_top`), a new method is one registered class."""

import pytest
import torch
from transformers import BertForSequenceClassification

from bermo_prune.engine import prune
from bermo_prune.pruners import available_pruners, get_pruner, register_pruner
from bermo_prune.schedule import Constant, Scheduler

from ..conftest import tiny_config


def test_registry_lists_the_four_methods():
    assert available_pruners() == ["l0", "magnitude", "movement", "soft_movement"]
    with pytest.raises(ValueError, match="unknown pruning method 'snip'; use one of l0, magnitude"):
        get_pruner("snip")
    with pytest.raises(ValueError, match="unknown granularity 'tile'"):
        get_pruner("movement", granularity="tile")


def test_a_new_method_is_one_registered_class():
    from dataclasses import dataclass

    from bermo_prune.pruners import _REGISTRY
    from bermo_prune.pruners.base import Pruner, topk_mask

    @register_pruner("random_for_test")
    @dataclass
    class RandomPruner(Pruner):
        def compute_mask(self, layout, state, value):
            return topk_mask(layout, torch.rand(layout.total_units), value, self.scope)

    try:
        model = BertForSequenceClassification(tiny_config())
        h = prune(model, Scheduler(get_pruner("random_for_test"), Constant(0.5)))
        assert h.sparsity()["remaining"] == pytest.approx(0.5)
    finally:
        del _REGISTRY["random_for_test"]


@pytest.mark.parametrize("ties", [False, True])
def test_keep_top_selects_exactly_the_k_highest_on_either_side_with_and_without_ties(ties):
    """The comparison shortcut gives the same set as the selection by index; with a tie at the boundary the
    indices decide and the count stays exact."""
    from bermo_prune.pruners.base import keep_top

    g = torch.Generator().manual_seed(0)
    values = torch.randn(1001, generator=g)
    if ties:
        values = (values * 4).round() / 4  # many equal values, so the boundary is tied
    order = torch.sort(values, descending=True, stable=True)
    for k in (0, 1, 100, 500, 501, 900, 1000, 1001):
        mask = torch.zeros(1001)
        keep_top(mask, values, k)
        assert int(mask.sum()) == k
        if k and k < 1001:
            kept, dropped = values[mask == 1], values[mask == 0]
            assert kept.min() >= dropped.max()  # the k highest (any of the tied ones at the boundary)
            if not ties:
                want = torch.zeros(1001)
                want[order.indices[:k]] = 1.0
                assert torch.equal(mask, want)


@pytest.mark.parametrize("per_unit", ["tensor", "float"])
def test_sigmoid_dot_matches_the_composed_ops_in_value_and_gradient(per_unit):
    from bermo_prune.pruners.base import sigmoid_dot

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(5000, generator=g) * 4).requires_grad_()
    w = torch.rand(5000, generator=g) if per_unit == "tensor" else 0.37
    shift = 1.3  # L0 passes sigmoid(x - shift) as probs; the gradient is that sigmoid's
    ref_x = x.detach().clone().requires_grad_()
    ref = (torch.sigmoid(ref_x - shift) * w).sum()
    ref.backward(torch.tensor(2.5))
    got = sigmoid_dot(x, w, torch.sigmoid(x.detach() - shift))
    got.backward(torch.tensor(2.5))
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-6, atol=1e-9)
    # without probs it computes sigmoid(x) itself
    torch.testing.assert_close(sigmoid_dot(x, w), (torch.sigmoid(x) * w).sum(), rtol=1e-6, atol=0)


def test_sigmoid_dot_takes_per_unit_weights_of_another_dtype():
    """Scores cast after prune() (model.to(torch.bfloat16)) meet the layout's float32 weights."""
    from bermo_prune.pruners.base import sigmoid_dot

    x = torch.linspace(-3, 3, 64, dtype=torch.bfloat16).requires_grad_()
    w = torch.full((64,), 0.5)
    got = sigmoid_dot(x, w)
    got.backward()
    assert got.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), (torch.sigmoid(x.float()) * 0.5).sum(), rtol=2e-2, atol=0)
