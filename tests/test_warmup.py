"""Warm-up means warm-up: before the schedule starts, no method removes or down-weights anything.

For every method and mode (top-k, threshold, penalty, target control; a schedule whose initial value already asks
for pruning too), the pruned model's training-mode forward equals a plain copy's with the same weights at every
warm-up step, bit for bit; once the schedule has started it differs (so the check has power). Scores still train
during the warm-up where the method's reference trains them (movement's straight-through gradient).
"""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from bermo_prune.engine import STATE_NAME, prune
from bermo_prune.optim import make_optimizer
from bermo_prune.pruners import get_pruner
from bermo_prune.schedule import Cubic, OneShot, Scheduler

from .conftest import tiny_config

WARMUP, TOTAL = 6, 24

CASES = {
    "magnitude": ({}, Cubic(1.0, 0.25, total=TOTAL, warmup=WARMUP, cooldown=4)),
    "magnitude, initial 0.5": ({}, Cubic(0.5, 0.25, total=TOTAL, warmup=WARMUP, cooldown=4)),
    "movement": ({}, Cubic(1.0, 0.25, total=TOTAL, warmup=WARMUP, cooldown=4)),
    "movement, one-shot": ({}, OneShot(1.0, 0.25, at=WARMUP)),
    "soft_movement": ({"final_lambda": 50.0}, Cubic(0.0, 0.3, total=TOTAL, warmup=WARMUP, cooldown=4)),
    "soft_movement, target control": (
        {"target_control": True, "final_threshold": 0.3},
        Cubic(1.0, 0.25, total=TOTAL, warmup=WARMUP, cooldown=4),
    ),
    "l0": ({}, Cubic(0.0, 2.0, total=TOTAL, warmup=WARMUP, cooldown=4)),
    "l0, target control": (
        {"target_control": True},
        Cubic(1.0, 0.25, total=TOTAL, warmup=WARMUP, cooldown=4),
    ),
}


def dense_copy(model) -> BertForSequenceClassification:
    """A plain model holding the pruned model's current weights (its masks, scores and gates left out)."""
    plain = BertForSequenceClassification(model.config).train()
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith(STATE_NAME)}
    plain.load_state_dict(weights)
    return plain


@pytest.mark.parametrize("case", list(CASES))
def test_the_forward_during_the_warm_up_equals_the_dense_one(case):
    options, schedule = CASES[case]
    torch.manual_seed(0)
    config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(config).train()
    handle = prune(model, Scheduler(get_pruner(case.split(",")[0], **options), schedule, update_every=1))
    opt = make_optimizer(handle.param_groups(lr=1e-3, score_lr=0.3), 1e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, 120, (16, 10), generator=g)
    y = (x[:, 0] > 60).long()
    scores_at_start = None if handle.state.scores is None else handle.state.scores.detach().clone()
    differs_after, scores_at_warmup_end = [], None
    for step in range(TOTAL):
        if step == WARMUP and scores_at_start is not None:
            scores_at_warmup_end = handle.state.scores.detach().clone()
        torch.manual_seed(100 + step)  # the same draws for both forwards (none is taken in the warm-up)
        pruned = model(input_ids=x).logits
        torch.manual_seed(100 + step)
        dense = dense_copy(model)(input_ids=x).logits
        if step < WARMUP:
            assert torch.equal(pruned, dense), (
                f"{case}: forward differs from the dense one at warm-up step {step}"
            )
            assert handle.sparsity()["remaining"] == 1.0 and float(handle.penalty()) == 0.0
        else:
            differs_after.append(not torch.equal(pruned, dense))
        loss = model(input_ids=x, labels=y).loss + handle.penalty()
        loss.backward()
        opt.step()
        opt.zero_grad()
        handle.step()
    assert any(differs_after), f"{case}: never pruned after the warm-up"
    assert handle.sparsity()["remaining"] < 1.0
    if case.startswith(
        "movement"
    ):  # its scores learned from the straight-through gradient during the warm-up
        assert not torch.equal(scores_at_warmup_end, scores_at_start)
