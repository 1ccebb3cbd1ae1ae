"""The pruning engine, tested for every registered pruner and granularity."""

import copy
import math

import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from bermo_prune.bermo import BermoForSequenceClassification, bermo_config_from_bert
from bermo_prune.engine import MaskedLinear, prune
from bermo_prune.pruners import GRANULARITIES, available_pruners, get_pruner, register_pruner
from bermo_prune.pruners.base import StraightThroughMask
from bermo_prune.pruners.l0 import HardConcreteGate
from bermo_prune.schedule import Constant, Cubic, Scheduler

from .conftest import tiny_config

STEPS = 30


def schedule_for(pruner, total=STEPS):
    return {
        "remaining": Cubic(1.0, 0.3, total=total, warmup=3, cooldown=5),
        "threshold": Cubic(0.0, 0.1, total=total),
        "lambda": Cubic(0.0, 2.0, total=total),
    }[pruner.schedule_key]


def make(method, granularity, arch="bert", seed=0, update_every=5, **kwargs):
    torch.manual_seed(seed)
    if arch == "bert":
        model = BertForSequenceClassification(tiny_config())
    else:
        model = BermoForSequenceClassification(bermo_config_from_bert(tiny_config()))
    pruner = get_pruner(method, granularity=granularity, block_rows=8, block_cols=8, **kwargs)
    handle = prune(model, Scheduler(pruner, schedule_for(pruner), update_every=update_every))
    return model, handle


def data(seed=1, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, 120, (n, 10), generator=g), torch.randint(0, 2, (n,), generator=g)


def train(model, handle, steps, optimizer=None, score_lr=0.05):
    x, y = data()
    optimizer = optimizer or torch.optim.AdamW(handle.param_groups(lr=1e-3, score_lr=score_lr))
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(input_ids=x, labels=y).loss + handle.penalty()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        handle.step()
        losses.append(float(loss.detach()))
    return optimizer, losses


MATRIX = [(m, g) for m in available_pruners() for g in GRANULARITIES]


def test_registry_lists_the_four_methods():
    assert available_pruners() == ["l0", "magnitude", "movement", "soft_movement"]
    with pytest.raises(ValueError, match="unknown pruning method 'snip'; use one of l0, magnitude"):
        get_pruner("snip")
    with pytest.raises(ValueError, match="unknown granularity 'tile'"):
        get_pruner("movement", granularity="tile")


def test_default_targets_are_the_encoder_linears(tiny_bermo):
    handle = prune(tiny_bermo, Scheduler(get_pruner("magnitude"), Constant(1.0)))
    names = [t.name for t in handle.layout.targets]
    assert len(names) == 12  # 2 layers x (Q, K, V, attention out, FFN in, FFN out)
    assert all(n.startswith("bert.encoder.layer.") for n in names)
    assert handle.layout.total_weights == 2 * (4 * 32 * 32 + 2 * 32 * 64)
    assert isinstance(tiny_bermo.bert.pooler.dense, nn.Linear) and not isinstance(
        tiny_bermo.classifier, MaskedLinear
    )
    assert not isinstance(tiny_bermo.bert.pooler.dense, MaskedLinear)


@pytest.mark.parametrize("method,granularity", MATRIX)
def test_masks_binary_zero_after_steps_and_structured(method, granularity):
    model, handle = make(method, granularity)
    train(model, handle, STEPS)
    model.eval()
    mask = handle.state.mask
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    for t in handle.layout.targets:
        full = t.full_mask
        eff = handle.pruner.effective_weight(t, t.module.weight, handle.state, training=False)
        assert torch.equal(eff, t.module.weight * full)
        assert (eff[full == 0] == 0).all()
        # The mask is constant inside every unit: block, row/column or head.
        assert torch.equal(t.expand(t.to_units(full)), full)
        if granularity == "head" and t.role == "qkv":
            assert t.block == (16, 32)  # head_size x hidden
        if granularity == "head" and t.role == "attn_out":
            assert t.block == (32, 16)
        if granularity in ("row", "head") and t.role == "ffn_out":
            assert t.block == (32, 1)  # whole FFN neurons (columns)
        if granularity == "block":
            assert t.block == (8, 8)
    if granularity == "head":  # one unit per head / FFN neuron, shared by every matrix it spans
        structures: dict = {}
        for t in handle.layout.targets:
            key = (t.layer, t.role.startswith("ffn"))
            structures.setdefault(key, []).append(t.gather(mask).flatten())
        assert len(structures) == 4
        for units in structures.values():
            assert len(units) in (2, 4) and all(torch.equal(u, units[0]) for u in units)


@pytest.mark.parametrize("method,granularity", MATRIX)
def test_hardened_outputs_equal_masked_outputs(method, granularity):
    model, handle = make(method, granularity)
    train(model, handle, STEPS)
    model.eval()
    x, _ = data(seed=9)
    with torch.no_grad():
        masked = model(input_ids=x).logits
    handle.harden()
    assert not any(isinstance(m, MaskedLinear) for m in model.modules())
    assert not any("bermo_pruning" in k for k in model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=x).logits, masked, rtol=0, atol=1e-6)


@pytest.mark.parametrize("method,granularity", MATRIX)
def test_state_round_trip_resumes_identically(method, granularity):
    model, handle = make(method, granularity)
    opt, _ = train(model, handle, 12)
    saved = (copy.deepcopy(model.state_dict()), handle.state_dict(), copy.deepcopy(opt.state_dict()))
    torch.manual_seed(123)
    train(model, handle, 10, optimizer=opt)
    model.eval()
    x, _ = data(seed=9)
    with torch.no_grad():
        want = model(input_ids=x).logits

    model2, handle2 = make(
        method, granularity, seed=77
    )  # different init: everything must come from the state
    model2.load_state_dict(saved[0])
    handle2.load_state_dict(saved[1])
    opt2 = torch.optim.AdamW(handle2.param_groups(lr=1e-3, score_lr=0.05))
    opt2.load_state_dict(saved[2])
    torch.manual_seed(123)
    train(model2, handle2, 10, optimizer=opt2)
    model2.eval()
    with torch.no_grad():
        torch.testing.assert_close(model2(input_ids=x).logits, want, rtol=0, atol=0)
    assert handle2.scheduler.step == 22 and torch.equal(handle2.state.mask, handle.state.mask)


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize(
    "method", [m for m in available_pruners() if get_pruner(m).schedule_key == "remaining"]
)
@pytest.mark.parametrize("scope", ["local", "global"])
def test_topk_methods_keep_exact_counts(method, granularity, scope):
    model, handle = make(method, granularity, scope=scope)
    train(model, handle, STEPS)
    value = handle.value
    assert value == pytest.approx(0.3)
    mask = handle.state.mask
    if scope == "global":
        assert int(mask.sum()) == round(0.3 * handle.layout.total_units)
    else:
        for t in handle.layout.targets:
            assert int(t.gather(mask).sum()) == round(0.3 * t.units)
    s = handle.sparsity()
    if granularity == "weight":
        expected = (
            round(0.3 * 1024) * 8 + round(0.3 * 2048) * 4 if scope == "local" else round(0.3 * s["total"])
        )
        assert s["kept"] == expected
    # The report, checked against what the masks zero (counted, not recomputed the report's way).
    zeros = {t.name: int((t.full_mask == 0).sum()) for t in handle.layout.targets}
    assert s["kept"] == s["total"] - sum(zeros.values()) and s["total"] == handle.layout.total_weights
    for t in handle.layout.targets:
        assert s["per_matrix"][t.name] == pytest.approx(1 - zeros[t.name] / t.weights)
    model_params = sum(p.numel() for n, p in model.named_parameters() if "bermo_pruning" not in n)
    assert s["total_parameters"] == model_params
    assert s["nonzero_parameters"] == model_params - sum(zeros.values())
    assert set(s["per_layer"]) == {"0", "1"}


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


def test_expected_l0_matches_closed_form():
    model, handle = make("l0", "weight")
    with torch.no_grad():
        handle.state.scores.copy_(torch.linspace(-4, 4, handle.layout.total_units))
    pruner = handle.pruner
    beta, left, right = 2 / 3, -0.1, 1.1
    expected = sum(
        1 / (1 + math.exp(-(a - beta * math.log(-left / right)))) for a in handle.state.scores.tolist()
    )
    assert float(pruner.expected_l0(handle.layout, handle.state).detach()) == pytest.approx(
        expected, rel=1e-5
    )
    # The penalty is the reference's: lambda times the mean over matrices of each matrix's expected density.
    gates = [1 / (1 + math.exp(-(a - beta * math.log(-left / right)))) for a in handle.state.scores.tolist()]
    densities, start = [], 0
    for t in handle.layout.targets:
        densities.append(sum(gates[start : start + t.units]) / t.units)
        start += t.units
    handle.scheduler.step = STEPS  # lambda at its final value, 2.0
    assert float(handle.penalty().detach()) == pytest.approx(2.0 * sum(densities) / len(densities), rel=1e-5)
    assert len(set(round(d, 3) for d in densities)) > 1  # matrices differ, so the normalisation matters


def test_fused_hard_concrete_gate_equals_the_composed_formula():
    torch.manual_seed(0)
    log_alpha = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    z = HardConcreteGate.apply(log_alpha, 2 / 3, -0.1, 1.1)
    g = torch.randn(1000, dtype=torch.float64)
    (z * g).sum().backward()
    torch.manual_seed(1)  # the same uniform draw, through plain autograd ops
    u = torch.empty_like(log_alpha).uniform_(1e-6, 1 - 1e-6)
    a = log_alpha.detach().clone().requires_grad_(True)
    z_ref = (torch.sigmoid((torch.log(u) - torch.log1p(-u) + a) / (2 / 3)) * 1.2 - 0.1).clamp(0, 1)
    (z_ref * g).sum().backward()
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(log_alpha.grad, a.grad)
    assert 100 < int((z == 0).sum()) < 400 and 100 < int((z == 1).sum()) < 400  # both clamps exercised


def test_l0_gates_are_stochastic_in_training_and_binary_at_eval():
    model, handle = make("l0", "weight")
    with torch.no_grad():
        handle.state.scores.copy_(torch.randn(handle.layout.total_units))
    handle.update_masks()
    x, _ = data()
    model.train()
    model(input_ids=x)
    g1 = handle.state.gates.clone()
    model(input_ids=x)
    assert not torch.equal(g1, handle.state.gates)
    assert g1.min() >= 0 and g1.max() <= 1 and (g1 == 0).any() and (g1 == 1).any()  # stretched and clamped
    model.eval()
    model(input_ids=x)
    assert handle.state.gates is None
    torch.testing.assert_close(handle.state.mask, (handle.state.scores > 0).float())


def test_soft_movement_prunes_more_as_lambda_grows():
    remaining = []
    for lam in (0.0, 0.1, 1.0):
        model, handle = make("soft_movement", "weight", final_lambda=lam, final_threshold=0.5)
        handle.scheduler.schedule = Cubic(0.0, 0.5, total=40)
        train(model, handle, 40, score_lr=0.05)
        handle.update_masks()
        remaining.append(handle.sparsity()["remaining"])
    assert remaining[0] > remaining[1] > remaining[2]


@pytest.mark.parametrize("arch", ["bert", "bermo"])
def test_hardened_model_reloads_with_plain_transformers(tmp_path, arch):
    model, handle = make("movement", "weight", arch=arch)
    train(model, handle, STEPS)
    model.eval()
    x, _ = data(seed=4)
    with torch.no_grad():
        masked = model(input_ids=x).logits
    remaining = handle.sparsity()["remaining"]
    handle.harden().save_pretrained(tmp_path)
    loader = BertForSequenceClassification if arch == "bert" else AutoModelForSequenceClassification
    again = loader.from_pretrained(tmp_path).eval()
    assert type(again) is (
        BertForSequenceClassification if arch == "bert" else BermoForSequenceClassification
    )
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=x).logits, masked, rtol=0, atol=1e-6)
    q = again.bert.encoder.layer[0].attention.self.query.weight
    assert (q == 0).float().mean().item() == pytest.approx(1 - 0.3, abs=0.01)
    assert remaining == pytest.approx(0.3, abs=0.002)


def test_attaching_twice_is_refused_and_custom_targets_work(tiny_bert):
    prune(tiny_bert, Scheduler(get_pruner("magnitude"), Constant(0.5)))
    with pytest.raises(ValueError, match="already has masks attached"):
        prune(tiny_bert, Scheduler(get_pruner("magnitude"), Constant(0.5)))
    torch.manual_seed(0)
    other = BertForSequenceClassification(tiny_config())
    h = prune(other, Scheduler(get_pruner("magnitude"), Constant(0.5)), targets=[r"intermediate\.dense$"])
    assert [t.role for t in h.layout.targets] == ["ffn_in", "ffn_in"]
    with pytest.raises(ValueError, match="no nn.Linear matches"):
        prune(
            BertForSequenceClassification(tiny_config()),
            Scheduler(get_pruner("magnitude")),
            targets=["nothing"],
        )
    with pytest.raises(ValueError, match="not divisible into 5x5 blocks"):
        prune(
            BertForSequenceClassification(tiny_config()),
            Scheduler(get_pruner("magnitude", granularity="block", block_rows=5, block_cols=5)),
        )


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


@pytest.mark.parametrize("granularity", ["weight", "head", "row"])
def test_remaining_is_the_sparsity_reports_share(granularity):
    model = BertForSequenceClassification(tiny_config())
    h = prune(model, Scheduler(get_pruner("magnitude", granularity=granularity), Constant(0.3)))
    report = h.sparsity()
    assert h.remaining() == pytest.approx(report["remaining"], abs=1e-12)
    assert h.remaining() == report["kept"] / report["total"] and report["kept"] < report["total"]
