"""Independent reference checks: each method against a plain-line copy of its reference implementation.

The references are re-typed here in a few lines each, from the authors' code (transformers
``examples/research_projects/movement-pruning/emmental``: ``TopKBinarizer``, ``ThresholdBinarizer``,
``MaskedLinear.forward``, ``masked_run_glue.regularization``; CoFi ``l0_module._sample_z``), and share nothing with
the engine: per-matrix score parameters, a binarizer recomputed at every forward, a straight-through backward that
hands the mask's gradient to the scores. A tiny BERT is trained side by side, same seed, same batches, same AdamW
groups; masks must be identical at every step and losses equal. A deliberately wrong straight-through on the
reference side must make the check fail (tested below), so the check has power.
"""

from __future__ import annotations

import copy
import math
import types

import pytest
import torch
import torch.nn.functional as F
from transformers import BertForSequenceClassification

from bermo_prune.engine import prune
from bermo_prune.optim import decay_groups
from bermo_prune.pruners import get_pruner
from bermo_prune.pruners.l0 import HardConcreteGate, uniform_noise
from bermo_prune.schedule import Cubic, Scheduler

from .conftest import tiny_config

STEPS = 40
SCHEDULE = dict(total=30, warmup=4, cooldown=6)


def tiny_model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    # no dropout: both sides must see the same function
    config = tiny_config(
        vocab_size=100, max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    return BertForSequenceClassification(config).train()


def batches(n: int):
    g = torch.Generator().manual_seed(7)
    return [
        (torch.randint(1, 100, (8, 12), generator=g), torch.randint(0, 2, (8,), generator=g))
        for _ in range(n)
    ]


TARGET_SUFFIXES = (
    "query",
    "key",
    "value",
    "attention.output.dense",
    "intermediate.dense",
    "layer.0.output.dense",
)


def target_linears(model) -> list[tuple[str, torch.nn.Linear]]:
    """The six encoder matrices per layer, in module order (what the engine targets for BERT)."""
    found = []
    for name, module in model.named_modules():
        if type(module) is not torch.nn.Linear or ".encoder.layer." not in name:
            continue
        found.append((name, module))
    return found


# ---- the references, re-typed ------------------------------------------------------------------------------------
class RefTopK(torch.autograd.Function):
    """emmental TopKBinarizer: the k highest scores of the matrix are 1; straight-through backward."""

    @staticmethod
    def forward(ctx, scores, k):
        mask = torch.zeros_like(scores)
        idx = scores.flatten().sort(descending=True).indices
        mask.view(-1)[idx[:k]] = 1.0
        return mask

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def threshold_with_floor(scores, tau, cut=None):
    """emmental's sigmoid threshold mask, optionally cut to scores >= ``cut``, then the floor of int(0.005 n) + 1."""
    n = scores.numel()
    n_min = int(0.005 * n) + 1
    mask = (torch.sigmoid(scores) > tau).to(scores.dtype)
    if cut is not None:
        mask = mask * (scores >= cut).to(scores.dtype)
    if mask.sum() < n_min:
        k_threshold = scores.flatten().kthvalue(max(n - n_min, 1)).values
        mask = (scores > k_threshold).to(scores.dtype)
    return mask


class RefThreshold(torch.autograd.Function):
    """emmental ThresholdBinarizer(sigmoid=True), with its floor of int(0.005 n) + 1 weights per matrix."""

    @staticmethod
    def forward(ctx, scores, tau):
        return threshold_with_floor(scores, tau)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class RefCappedThreshold(torch.autograd.Function):
    """RefThreshold with a global cut (our target control's cap): where the threshold keeps more weights than the
    target allows, a weight must also score at least ``cut``, the budget-th highest score of all matrices; the
    per-matrix floor applies after the cap."""

    @staticmethod
    def forward(ctx, scores, value):
        tau, cut = value
        return threshold_with_floor(scores, tau, cut)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class WrongTopK(RefTopK):
    """A deliberately wrong straight-through (the scores get the gradient's sign flipped)."""

    @staticmethod
    def backward(ctx, grad):
        return -grad, None


def attach_reference(model, binarize, value_of):
    """Every target linear gets its own score matrix and a forward that binarizes at every call."""
    scores = torch.nn.ParameterList()
    state = {"value": None, "masks": []}
    for _, module in target_linears(model):
        s = torch.nn.Parameter(torch.zeros_like(module.weight))
        scores.append(s)

        def forward(self, x, s=s):
            mask = binarize(s, state["value"])
            state["masks"].append(mask.detach().clone())
            return F.linear(x, mask * self.weight, self.bias)

        module.forward = types.MethodType(forward, module)
    state["value_of"] = value_of
    return scores, state


def reference_regularization(scores) -> torch.Tensor:
    """masked_run_glue.regularization(mode="l1"): the mean over matrices of mean sigmoid(score)."""
    return sum(torch.norm(torch.sigmoid(s), p=1) / s.numel() for s in scores) / len(scores)


def optimizer(model_params, score_params, lr=1e-3, score_lr=1e-2):
    groups = decay_groups(model_params, lr, 0.01)
    groups.append({"params": list(score_params), "lr": score_lr, "weight_decay": 0.0})
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, foreach=False)


def run_reference(binarize, value_of, penalty=None, score_lr=1e-2, after_step=None, value_from_scores=None):
    model = tiny_model()
    scores, state = attach_reference(model, binarize, value_of)
    opt = optimizer([p for p in model.parameters()], scores, score_lr=score_lr)
    losses, masks = [], []
    for step, (x, y) in enumerate(batches(STEPS)):
        state["value"] = value_of(step) if value_from_scores is None else value_from_scores(step, scores)
        state["masks"] = []
        loss = model(input_ids=x, labels=y).loss
        if penalty is not None:
            loss = loss + penalty(step, scores)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if after_step is not None:
            after_step(step)
        losses.append(float(loss.detach()))
        masks.append(torch.cat([m.flatten() for m in state["masks"]]))
    return losses, masks


def run_engine(pruner, schedule, score_lr=1e-2):
    model = tiny_model()
    handle = prune(model, Scheduler(pruner, schedule, update_every=1))
    scores = [handle.state.scores]
    own = (handle.state.scores, handle.state.multipliers)  # multipliers: plain ascent in handle.step()
    opt = optimizer(
        [p for p in model.parameters() if all(p is not o for o in own)], scores, score_lr=score_lr
    )
    losses, masks = [], []
    for x, y in batches(STEPS):
        masks.append(torch.cat([t.full_mask.flatten() for t in handle.layout.targets]))
        loss = model(input_ids=x, labels=y).loss + handle.penalty()
        loss.backward()
        opt.step()
        opt.zero_grad()
        handle.step()
        losses.append(float(loss.detach()))
    return losses, masks


def assert_same_run(engine, reference):
    (losses, masks), (ref_losses, ref_masks) = engine, reference
    for step, (m, r) in enumerate(zip(masks, ref_masks, strict=True)):
        assert torch.equal(m, r), f"masks differ at step {step}: {(m != r).sum().item()} weights"
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ref_losses), rtol=1e-5, atol=1e-6)


# ---- movement ----------------------------------------------------------------------------------------------------
def movement_schedule():
    return Cubic(1.0, 0.25, **SCHEDULE)


def test_movement_matches_the_reference_topk_straight_through():
    schedule = movement_schedule()
    sizes = [m.weight.numel() for _, m in target_linears(tiny_model())]
    assert len(sizes) == 12
    # The reference keeps ceil(r n) per matrix, the engine round(r n) (the scheduled share exactly); the same
    # count on both sides here, so the check is about which weights, not how many.
    engine = run_engine(get_pruner("movement"), schedule)
    reference = run_reference(lambda s, r: RefTopK.apply(s, int(round(r * s.numel()))), schedule)
    assert_same_run(engine, reference)
    assert engine[1][-1].mean().item() == pytest.approx(0.25)  # the schedule's end was reached
    assert (engine[1][-1] != engine[1][SCHEDULE["warmup"] + 2]).any()  # masks moved while pruning


def test_a_wrong_straight_through_fails_the_movement_check():
    schedule = movement_schedule()
    engine = run_engine(get_pruner("movement"), schedule)
    wrong = run_reference(lambda s, r: WrongTopK.apply(s, int(round(r * s.numel()))), schedule)
    with pytest.raises(AssertionError, match="masks differ"):
        assert_same_run(engine, wrong)


# ---- soft movement -----------------------------------------------------------------------------------------------
def test_soft_movement_matches_the_reference_threshold_floor_and_penalty():
    """A large lambda and score lr, so the per-matrix floor (0.5% + 1) is reached in 40 steps."""
    final_lambda, final_tau = 400.0, 0.1
    schedule = Cubic(0.0, final_tau, **SCHEDULE)
    pruner = get_pruner("soft_movement", final_lambda=final_lambda, final_threshold=final_tau)

    def penalty(step, scores):
        return final_lambda * schedule(step) / final_tau * reference_regularization(scores)

    engine = run_engine(pruner, schedule, score_lr=0.2)
    reference = run_reference(RefThreshold.apply, schedule, penalty, score_lr=0.2)
    assert_same_run(engine, reference)
    sizes = [m.weight.numel() for _, m in target_linears(tiny_model())]
    last = engine[1][-1].split(sizes)
    floors = [int(0.005 * n) + 1 for n in sizes]
    assert any(int(m.sum()) == f for m, f in zip(last, floors, strict=True))  # the floor was exercised
    assert all(int(m.sum()) >= f for m, f in zip(last, floors, strict=True))


def test_soft_movement_under_target_control_ramps_the_reference_threshold_and_matches_a_plain_loop():
    """Target control: the reference's threshold schedule (cubic from 0 to tau_f, the same warm-up and cool-down)
    with the augmented Lagrangian on the kept share written out in plain lines, per-matrix scores, the multiplier
    raised by l += lr (r - t) once the target is final, and the cap: where the threshold keeps more than the target,
    only the target's share of highest scores (over all matrices) stays. Masks identical at every step, losses
    equal."""
    final_target, final_tau, rho, lagrange_lr = 0.25, 0.1, 1000.0, 0.5
    target = Cubic(1.0, final_target, **SCHEDULE)
    tau = Cubic(0.0, final_tau, **SCHEDULE)  # the reference's schedule_threshold, initial_threshold 0
    pruner = get_pruner(
        "soft_movement",
        target_control=True,
        final_threshold=final_tau,
        lagrange_rho=rho,
        lagrange_lr=lagrange_lr,
    )
    sizes = [m.weight.numel() for _, m in target_linears(tiny_model())]
    total = sum(sizes)
    lam = {"value": 0.0}

    def penalty(step, scores):
        if step < SCHEDULE["warmup"]:
            return 0.0
        probs = [torch.sigmoid(s) for s in scores]
        kept = sum((p.detach() > tau(step)).sum() for p in probs) / total
        surrogate = sum(p.sum() for p in probs) / total
        gap = kept - target(step)
        term = (
            lam["value"] * gap
            + rho * gap**2
            + (lam["value"] + 2 * rho * gap) * (surrogate - surrogate.detach())
        )
        if step >= target.end_step():  # the multiplier's ascent step, taken after this step's backward
            lam["next"] = lam["value"] + lagrange_lr * float(gap)
        return term

    def step_multiplier(step):
        lam["value"] = lam.pop("next", lam["value"])

    capped = []

    def tau_and_cut(step, scores):
        flat = torch.cat([s.detach().flatten() for s in scores])
        budget = int(target(step) * total + 1e-9)
        if int((torch.sigmoid(flat) > tau(step)).sum()) <= budget:
            return tau(step), None
        capped.append(step)
        return tau(step), flat.sort(descending=True).values[budget - 1]

    engine = run_engine(pruner, target, score_lr=0.2)
    reference = run_reference(
        RefCappedThreshold.apply, None, penalty, 0.2, step_multiplier, value_from_scores=tau_and_cut
    )
    assert_same_run(engine, reference)
    assert all(bool(m.all()) for m in engine[1][: SCHEDULE["warmup"]])  # nothing masked during the warm-up
    assert engine[1][-1].mean().item() < 0.6  # and it pruned once the schedule ran
    assert lam["value"] != 0.0  # the multiplier moved in the cool-down
    assert capped and len(capped) < STEPS - SCHEDULE["warmup"]  # the cap bound at some steps, not at all
    floors = sum(int(0.005 * n) + 1 for n in sizes)
    for step in range(
        STEPS
    ):  # the mask never keeps more than the target (plus at most the per-matrix floors)
        assert engine[1][step].sum().item() <= int(target(step) * total + 1e-9) + floors, step

    # The old rule (tau at its final value from step 0) is not the reference's: the check catches it.
    lam.clear()
    lam["value"] = 0.0
    fixed = run_reference(
        RefCappedThreshold.apply,
        None,
        penalty,
        0.2,
        step_multiplier,
        value_from_scores=lambda step, scores: (final_tau, tau_and_cut(step, scores)[1]),
    )
    with pytest.raises(AssertionError, match="masks differ"):
        assert_same_run(engine, fixed)
    # Without the cap (the reference's threshold alone) the masks differ too: the check sees the cap.
    lam.clear()
    lam["value"] = 0.0
    uncapped = run_reference(RefThreshold.apply, tau, penalty, score_lr=0.2, after_step=step_multiplier)
    with pytest.raises(AssertionError, match="masks differ"):
        assert_same_run(engine, uncapped)


def test_soft_movement_threshold_under_target_control_is_the_reference_ramp():
    target = Cubic(1.0, 0.1, total=100, warmup=10, cooldown=30)
    reference = Cubic(0.0, 0.2, total=100, warmup=10, cooldown=30)
    pruner = get_pruner("soft_movement", target_control=True, final_threshold=0.2)
    pruner.bind_schedule(target)
    for step in (0, 9, 10, 11, 40, 69, 70, 99):
        assert pruner.threshold(target(step)) == pytest.approx(reference(step), abs=1e-12), step
    assert pruner.threshold(target(0)) == 0.0 and pruner.threshold(target(99)) == pytest.approx(0.2)


# ---- L0 --------------------------------------------------------------------------------------------------------------
def reference_sample_z(log_alpha, temperature=2 / 3, limit_a=-0.1, limit_b=1.1, epsilon=1e-6):
    """CoFi l0_module._sample_z (Louizos et al.): the stretched, clamped hard-concrete sample, on the engine's
    uniform draws (CoFi draws torch's ``uniform_(epsilon, 1 - epsilon)``; the noise source is tested on its own in
    tests/pruners/test_l0.py)."""
    eps = uniform_noise(log_alpha, epsilon, 1 - epsilon)
    z = torch.sigmoid((torch.log(eps / (1 - eps)) + log_alpha) / temperature)
    z = z * (limit_b - limit_a) + limit_a
    return F.hardtanh(z, min_val=0.0, max_val=1.0)


def test_l0_gate_sampling_and_gradient_match_the_reference():
    log_alpha = torch.linspace(-4, 4, 4001, requires_grad=True)
    torch.manual_seed(3)
    ours = HardConcreteGate.apply(log_alpha, 2 / 3, -0.1, 1.1)
    la = log_alpha.detach().clone().requires_grad_(True)
    torch.manual_seed(3)
    ref = reference_sample_z(la)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)  # the same draws, the same gate
    assert 0 < (ours == 0).sum() < 4001 and 0 < (ours == 1).sum() < 4001  # both clamps exercised
    g = torch.randn(4001, generator=torch.Generator().manual_seed(0))
    (ours * g).sum().backward()
    (ref * g).sum().backward()
    torch.testing.assert_close(log_alpha.grad, la.grad, rtol=1e-4, atol=1e-6)


def test_l0_penalty_is_the_reference_per_matrix_expected_density():
    """Sanh et al.'s regularization(mode="l0"): mean over matrices of sigmoid(log_alpha - beta log(-l/r)) means."""
    model = tiny_model()
    pruner = get_pruner("l0")
    handle = prune(model, Scheduler(pruner, Cubic(0.0, 1.0, total=10)))
    with torch.no_grad():
        handle.state.scores.copy_(torch.randn_like(handle.state.scores) * 3)
    parts = handle.state.scores.detach().split([t.units for t in handle.layout.targets])
    shift = 2 / 3 * math.log(0.1 / 1.1)
    want = sum(torch.sigmoid(p - shift).sum() / p.numel() for p in parts) / len(parts)
    torch.testing.assert_close(pruner.expected_density(handle.layout, handle.state).detach(), want)
    handle.scheduler.step = 5
    torch.testing.assert_close(
        handle.penalty().detach(), handle.value * want
    )  # lambda (the schedule) times it


def test_l0_training_matches_a_reference_loop_with_cofi_sampling():
    """Hard-concrete gates sampled once per forward for every matrix (CoFi's formula on the engine's uniform draws),
    the per-matrix L0 penalty, 25 steps."""
    lam = 2.0
    schedule = Cubic(0.0, lam, total=20, warmup=2, cooldown=4)
    steps = 25

    model = tiny_model()
    handle = prune(model, Scheduler(get_pruner("l0"), schedule, update_every=1))
    opt = optimizer(
        [p for p in model.parameters() if p is not handle.state.scores], [handle.state.scores], 1e-3, 0.1
    )
    torch.manual_seed(11)
    ours = []
    for x, y in batches(steps):
        loss = model(input_ids=x, labels=y).loss + handle.penalty()
        loss.backward()
        opt.step()
        opt.zero_grad()
        handle.step()
        ours.append(float(loss.detach()))

    ref_model = tiny_model()
    linears = target_linears(ref_model)
    log_alphas = torch.nn.ParameterList(
        torch.nn.Parameter(torch.full_like(m.weight, 3.0)) for _, m in linears
    )
    gates: dict[int, torch.Tensor] = {}
    now = {"step": 0}

    def sample(module, args):  # one draw for all matrices at each model forward, in the engine's unit order
        if now["step"] < schedule.warmup:  # warm-up means warm-up: no gate before the schedule starts (ours)
            gates.update({i: torch.ones_like(a) for i, a in enumerate(log_alphas)})
            return
        z = reference_sample_z(torch.cat([a.flatten() for a in log_alphas]))
        for i, part in enumerate(z.split([a.numel() for a in log_alphas])):
            gates[i] = part.view_as(log_alphas[i])

    ref_model.register_forward_pre_hook(sample)
    for i, (_, module) in enumerate(linears):

        def forward(self, x, i=i):
            return F.linear(x, self.weight * gates[i], self.bias)

        module.forward = types.MethodType(forward, module)
    shift = 2 / 3 * math.log(0.1 / 1.1)
    ref_opt = optimizer(list(ref_model.parameters()), log_alphas, 1e-3, 0.1)
    torch.manual_seed(11)
    ref = []
    for step, (x, y) in enumerate(batches(steps)):
        now["step"] = step
        density = sum(torch.sigmoid(a - shift).sum() / a.numel() for a in log_alphas) / len(log_alphas)
        loss = ref_model(input_ids=x, labels=y).loss
        if step >= schedule.warmup:  # no penalty term (not even lambda = 0) before the schedule starts
            loss = loss + schedule(step) * density
        loss.backward()
        ref_opt.step()
        ref_opt.zero_grad()
        ref.append(float(loss.detach()))
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(ref), rtol=1e-4, atol=1e-5)
    learned = torch.cat([a.detach().flatten() for a in log_alphas])
    torch.testing.assert_close(handle.state.scores.detach(), learned, rtol=1e-4, atol=1e-4)
    assert ours[-1] != ours[0] and (learned - 3.0).abs().max() > 0.5


def test_engine_model_and_reference_start_identical():
    a, b = tiny_model(), copy.deepcopy(tiny_model())
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb)
