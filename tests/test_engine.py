"""The pruning engine, tested for every registered pruner and granularity."""

import copy

import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from bermo_prune.bermo import BermoForSequenceClassification
from bermo_prune.engine import MaskedLinear, prune
from bermo_prune.pruners import GRANULARITIES, available_pruners, get_pruner
from bermo_prune.schedule import Constant, Scheduler

from .conftest import STEPS, tiny_config
from .conftest import pruned_tiny as make
from .conftest import token_batch as data
from .conftest import train_pruned as train

MATRIX = [(m, g) for m in available_pruners() for g in GRANULARITIES]


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


@pytest.mark.parametrize("granularity", ["weight", "head", "row"])
def test_remaining_is_the_sparsity_reports_share(granularity):
    model = BertForSequenceClassification(tiny_config())
    h = prune(model, Scheduler(get_pruner("magnitude", granularity=granularity), Constant(0.3)))
    report = h.sparsity()
    assert h.remaining() == pytest.approx(report["remaining"], abs=1e-12)
    assert h.remaining() == report["kept"] / report["total"] and report["kept"] < report["total"]
