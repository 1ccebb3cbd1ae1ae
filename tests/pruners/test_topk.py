"""Warm-started top-k (:class:`~bermo_prune.pruners.base.WarmTopK`): the same units as a fresh selection, exactly
k of them, found from the last call's threshold."""

from __future__ import annotations

import torch

from bermo_prune.pruners.base import WarmTopK, keep_top, topk_mask


class Slices:
    """What topk_mask needs of a layout: the matrices' unit ranges."""

    def __init__(self, sizes):
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self.local_sets = [slice(a, a + n) for a, n in zip(starts, sizes, strict=True)]


def fresh(layout, scores, remaining, scope):
    return topk_mask(layout, scores, remaining, scope)


def test_warm_selections_equal_fresh_ones_while_scores_drift_and_the_target_ramps():
    g = torch.Generator().manual_seed(0)
    layout = Slices([3000, 3000, 12000])
    scores = torch.randn(18000, generator=g)
    for scope in ("local", "global"):
        warm = WarmTopK()
        for step in range(60):
            remaining = 0.1 + 0.9 * (1 - min(step / 50, 1.0)) ** 3  # ramps, then holds at 0.1
            scores += 0.01 * torch.randn(18000, generator=g)  # an optimizer step's drift
            expected = fresh(layout, scores, remaining, scope)
            got = topk_mask(layout, scores, remaining, scope, warm)
            assert torch.equal(got, expected), (scope, step)
        # keep_top ran only where there was no threshold: at k = n (step 0) and at the first k < n (step 1)
        assert warm.fallbacks == (6 if scope == "local" else 2)


def test_a_large_jump_widens_the_band_and_still_selects_exactly():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(5000, generator=g)
    warm = WarmTopK()
    layout = Slices([5000])
    topk_mask(layout, scores, 0.5, "local", warm)
    scores = scores + 2.0 * torch.randn(5000, generator=g)  # far more than the band
    got = topk_mask(layout, scores, 0.2, "local", warm)
    assert torch.equal(got, fresh(layout, scores, 0.2, "local")) and warm.fallbacks == 1


def test_ties_at_the_boundary_keep_exactly_k_and_never_a_lower_value():
    scores = torch.cat([torch.full((500,), 1.0), torch.zeros(1000), torch.full((500,), -1.0)])
    warm = WarmTopK()
    layout = Slices([2000])
    topk_mask(
        layout, scores + 1e-3 * torch.arange(2000.0), 0.3, "local", warm
    )  # a threshold from distinct values
    mask = topk_mask(layout, scores, 0.6, "local", warm)  # the 1,200th and 1,201st values tie at 0
    kept = mask.bool()
    assert int(mask.sum()) == 1200 and scores[kept].min() >= scores[~kept].max()
    assert warm.fallbacks == 2  # no threshold splits a tie: keep_top decides


def test_zero_and_all_and_the_reused_buffer():
    warm = WarmTopK()
    scores = torch.randn(100, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(100)
    warm.keep_top(mask, scores, 0)
    assert int(mask.sum()) == 0
    warm.keep_top(mask, scores, 100)
    assert int(mask.sum()) == 100
    first = warm.buffer(scores)
    first.fill_(7.0)  # whatever the last selection left: every value is overwritten
    assert warm.buffer(scores) is first
    expected = torch.zeros(100)
    keep_top(expected, scores, 37)
    assert torch.equal(topk_mask(Slices([100]), scores, 0.37, "local", warm), expected)
    first.fill_(7.0)
    assert torch.equal(topk_mask(Slices([100]), scores, 0.37, "local", warm), expected)  # the warm path too
    first.fill_(7.0)
    assert int(topk_mask(Slices([100]), scores, 0.0, "local", warm).sum()) == 0


def test_half_precision_importance_still_keeps_exactly_k():
    """A float16 mask would count only up to 2048 exactly; the buffer is float32 whatever the importance's dtype."""
    values = torch.arange(20480, dtype=torch.int16).view(torch.float16)  # 20,480 distinct finite fp16 values
    values = values[torch.randperm(20480, generator=torch.Generator().manual_seed(3))]
    warm = WarmTopK()
    layout = Slices([20480])
    topk_mask(layout, values, 10241 / 20480, "global", warm)
    mask = topk_mask(layout, values, 10240 / 20480, "global", warm)
    assert (
        int(mask.sum()) == 10240 and mask.dtype == torch.float32
    )  # (adjacent fp16 values: keep_top decides)
    assert torch.equal(mask, fresh(layout, values, 10240 / 20480, "global").float())


def test_infinite_boundary_values_keep_no_state_and_still_select_exactly():
    """An infinite k-th or (k+1)-th value gives no finite gap to size a band from: the slice keeps no threshold and
    every call falls back to keep_top (a blown-up weight under magnitude pruning must not crash the run)."""
    layout = Slices([3])
    for values, k in (
        (torch.tensor([float("inf"), 1.0, 0.0]), 1),
        (torch.tensor([2.0, 1.0, -float("inf")]), 2),
    ):
        warm = WarmTopK()
        for _ in range(3):
            got = topk_mask(layout, values, k / 3, "local", warm)
            assert torch.equal(got, fresh(layout, values, k / 3, "local"))
        assert warm.fallbacks == 3
