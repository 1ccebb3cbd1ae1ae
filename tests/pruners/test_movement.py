"""`pruners/movement.py`: the straight-through score gradient (dS = dW' * W, summed over a unit)."""

import torch

from bermo_prune.pruners.base import StraightThroughMask


def test_straight_through_score_gradient_is_grad_times_weight():
    torch.manual_seed(0)
    w = torch.randn(6, 4, requires_grad=True)
    scores = torch.randn(6, 4, requires_grad=True)
    mask = (scores > 0).float()
    x = torch.randn(5, 4)
    out = (x @ StraightThroughMask.apply(w, scores, mask, (1, 1)).T).pow(2).sum()
    out.backward()
    w_masked = (w.detach() * mask).requires_grad_(True)
    (x @ w_masked.T).pow(2).sum().backward()
    torch.testing.assert_close(scores.grad, w_masked.grad * w.detach())
    torch.testing.assert_close(w.grad, w_masked.grad * mask)
    # Units larger than one weight: the unit's score gradient is the sum of grad * W over the unit.
    blocks = torch.randn(3, 2, requires_grad=True)
    (x @ StraightThroughMask.apply(w.detach(), blocks, torch.ones(6, 4), (2, 2)).T).pow(2).sum().backward()
    dense = w.detach().clone().requires_grad_(True)
    (x @ dense.T).pow(2).sum().backward()
    torch.testing.assert_close(blocks.grad, (dense.grad * w.detach()).view(3, 2, 2, 2).sum(dim=(1, 3)))
