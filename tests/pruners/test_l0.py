"""`pruners/l0.py`: the expected L0 and its per-matrix penalty, the fused hard-concrete gate, stochastic gates in training and binary ones at evaluation."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from bermo_prune.pruners.l0 import NOISE_CHUNK, HardConcreteGate, uniform_noise

from ..conftest import STEPS
from ..conftest import pruned_tiny as make
from ..conftest import token_batch as data


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


def test_float32_gate_on_the_parallel_noise_equals_the_composed_formula_with_exact_zeros_at_the_clamps():
    torch.manual_seed(0)
    log_alpha = (torch.randn(3 * NOISE_CHUNK // 2) * 3).requires_grad_(True)  # two chunks of the noise fill
    torch.manual_seed(1)
    z = HardConcreteGate.apply(log_alpha, 2 / 3, -0.1, 1.1)
    g = torch.randn(log_alpha.numel())
    (z * g).sum().backward()
    torch.manual_seed(1)
    u = uniform_noise(log_alpha)
    a = log_alpha.detach().clone().requires_grad_(True)
    z_ref = (torch.sigmoid((torch.log(u) - torch.log1p(-u) + a) / (2 / 3)) * 1.2 - 0.1).clamp(0, 1)
    (z_ref * g).sum().backward()
    torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(log_alpha.grad, a.grad, rtol=1e-4, atol=1e-6)
    clamped = (z == 0) | (z == 1)
    # both clamps and the inside exercised
    assert clamped.float().mean() > 0.2 and (~clamped).float().mean() > 0.2
    assert torch.equal(log_alpha.grad[clamped].abs(), torch.zeros(int(clamped.sum())))  # exact zeros, no leak
    assert bool((log_alpha.grad[~clamped] != 0).all())


def test_uniform_noise_is_one_pcg64_stream_seeded_by_torch_whatever_the_thread_count():
    n = 2 * NOISE_CHUNK + 3  # three chunks, the last one short and odd
    before = torch.get_num_threads()
    try:
        draws = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            torch.manual_seed(5)
            draws.append(uniform_noise(torch.empty(n)))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], draws[2])
    torch.manual_seed(5)
    # the one draw it takes from torch's generator
    seed = int(torch.randint(0, 2**62, (1,), dtype=torch.int64))
    serial = np.random.Generator(np.random.PCG64(seed)).random(n, dtype=np.float32)
    assert torch.equal(draws[0], torch.from_numpy(serial).clamp_(1e-6, 1 - 1e-6))
    lo, hi = torch.tensor([1e-6, 1 - 1e-6])  # the bounds in float32
    assert draws[0].min() >= lo and draws[0].max() <= hi
    assert stats.kstest(draws[0][:200_000].double().numpy(), "uniform").pvalue > 1e-3  # seeded: not flaky
    torch.manual_seed(5)
    uniform_noise(torch.empty(4))
    assert not torch.equal(uniform_noise(torch.empty(n)), draws[0])  # every call draws afresh
    # the stream itself, pinned: numpy promises it only within one build, so a change of numpy shows here
    torch.manual_seed(0)
    assert uniform_noise(torch.empty(4)).tolist() == [
        0.5255010724067688,
        0.7769574522972107,
        0.5242307782173157,
        0.641339898109436,
    ]
    # another dtype (or a GPU) keeps torch's own generator
    torch.manual_seed(5)
    want = torch.empty(10, dtype=torch.float64).uniform_(0.25, 0.5)
    torch.manual_seed(5)
    assert torch.equal(uniform_noise(torch.empty(10, dtype=torch.float64), 0.25, 0.5), want)


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
