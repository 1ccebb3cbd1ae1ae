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


def _warm_up(
    method: str | None, clip: float, init: float = 0.02
) -> tuple[dict[str, torch.Tensor], list[float], float, torch.Tensor]:
    """8 warm-up steps with the trainer's optimizer groups and gradient-norm clip (over ``model.parameters()``,
    which holds the pruning scores): the weights after them, the clipped norms, the scores' gradient norm at the first
    step, and the first step's clipped gradient of one encoder matrix."""
    from bermo_prune.optim import decay_groups

    torch.manual_seed(0)
    model = BertForSequenceClassification(
        tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=init)
    ).train()
    groups = decay_groups(model.parameters(), 1e-3, 0.01)
    handle = None
    if method is not None:
        schedule = Cubic(1.0, 0.25, total=100, warmup=50, cooldown=10)
        handle = prune(model, Scheduler(get_pruner(method), schedule, update_every=1))
        groups = handle.param_groups(1e-3, 1e-2, 0.01, groups)
    opt = make_optimizer(groups, 1e-3)
    g = torch.Generator().manual_seed(1)
    norms, score_norm = [], 0.0
    for step in range(8):
        x = torch.randint(1, 120, (16, 10), generator=g)
        model(input_ids=x, labels=(x[:, 0] > 60).long()).loss.backward()
        scores = None if handle is None else handle.state.scores
        if step == 0 and scores is not None and scores.grad is not None:
            score_norm = float(scores.grad.norm())
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
        if step == 0:
            first_grad = model.bert.encoder.layer[0].attention.self.query.weight.grad.clone()
        opt.step()
        opt.zero_grad()
        if handle is not None:
            handle.step()
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith(STATE_NAME)}
    return weights, norms, score_norm, first_grad


def test_movement_warm_up_steps_the_weights_as_dense_but_its_scores_share_the_clipped_norm():
    """While the gradient-norm clip is inactive, movement's warm-up takes the dense run's weight steps bit for bit.
    Its scores train in the warm-up and, as in the reference (``masked_run_glue.py`` clips ``model.parameters()``,
    which hold its ``mask_scores``), their gradients count in the clipped norm: at the first step the norm is the
    dense one plus the scores' share, so where the clip is active the weights' gradients are scaled by a smaller
    factor than the dense run's (benchmarks/sst2_minilm_ref/notes.md, thirteenth sitting). Magnitude, with no
    trained scores, has the dense norm. The clip here is called as the trainer calls it (``bermo_prune/train.py``:
    ``clip_grad_norm_(model.parameters(), max_grad_norm)``); the test shows what that call sees."""
    dense, dense_norms, _, dense_grad = _warm_up(None, 1e3)
    movement, movement_norms, score_norm, movement_grad = _warm_up("movement", 1e3)
    assert all(torch.equal(dense[k], movement[k]) for k in dense) and torch.equal(dense_grad, movement_grad)
    assert max(dense_norms) < 1e3 and score_norm > 0.0
    assert movement_norms[0] > dense_norms[0]
    assert movement_norms[0] ** 2 == pytest.approx(dense_norms[0] ** 2 + score_norm**2, rel=1e-5)
    magnitude, magnitude_norms, _, _ = _warm_up("magnitude", 1e3)
    assert magnitude_norms == dense_norms and all(torch.equal(dense[k], magnitude[k]) for k in dense)
    # With an active clip (0.05, below every step's norm) the same gradient is scaled by clip / norm, and the
    # movement run's norm holds the scores' share: its clipped weight gradients are smaller by the norms' ratio.
    # The score gradient is the weight gradient times the weight, so its share grows with the weights' size: at
    # this tiny model's default init (0.02) it moves the norm by about one float32 ulp; weights of a pretrained
    # encoder's size (init 0.1) make it visible.
    _, dense_norms, _, dense_grad = _warm_up(None, 0.05, init=0.1)
    _, movement_norms, _, movement_grad = _warm_up("movement", 0.05, init=0.1)
    assert min(dense_norms) > 0.05 and not torch.equal(dense_grad, movement_grad)
    ratio = dense_norms[0] / movement_norms[0]
    assert ratio < 1.0
    torch.testing.assert_close(movement_grad, dense_grad * ratio, rtol=1e-4, atol=1e-9)
