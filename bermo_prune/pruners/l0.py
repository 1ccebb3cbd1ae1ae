"""L0 regularisation with hard-concrete gates.

Louizos, Welling & Kingma 2018 ("Learning Sparse Neural Networks through L0 Regularization"). Each unit has a
gate z in [0, 1] with learnable log-alpha:

    u ~ U(eps, 1 - eps),  s = sigmoid((log u - log(1 - u) + log_alpha) / beta),  z = clamp(s (r - l) + l, 0, 1)
    W' = W * z                                         (training: a fresh sample at every forward)
    loss += lambda * mean_matrices( E[L0 of the matrix] / its weights ),
    E[L0] = sum_units size_u * sigmoid(log_alpha_u - beta log(-l / r))

with stretch l = -0.1, r = 1.1, temperature beta = 2/3 and eps = 1e-6. The sampling is CoFi's ``_sample_z``
(Xia et al. 2022, ``models/l0_module.py``: ``uniform_(eps, 1 - eps)``, then the stretched, clamped sigmoid) and
Louizos et al.'s; Sanh et al.'s ``emmental/modules/masked_nn.py`` draws ``uniform_()`` and clamps it to
[1e-4, 1 - 1e-4] instead, which only trims the tails. On CPU in float32 the uniform draws here come from a PCG64 stream
filled on several threads, clamped to [eps, 1 - eps] (:func:`uniform_noise`; torch's serial generator cost more than the
rest of the gate's forward). The penalty averages per-matrix expected densities, as Sanh
et al.'s ``regularization(mode="l0")`` does, so its lambda values mean the same here.

Evaluation gate (a choice, documented): we use the binary deterministic gate z = 1[log_alpha > 0], i.e. the unit
is kept when the noise-free gate clamp(sigmoid(log_alpha)(r - l) + l, 0, 1) exceeds 0.5. The references differ:
Sanh et al. evaluate with that noise-free gate as a *continuous* multiplier (non-zero wherever
log_alpha > -2.4, scaling kept weights by values below 1), and CoFi keeps soft values for the units it keeps and
zeroes the expected number of smallest. A binary gate makes the pruned model a plain masked model: kept counts are
exact integers, hardening is exact, and ``compact()`` removes exactly the zeros; the price is that evaluation does
not rescale the kept weights (at convergence most log-alphas sit far from 0, where both gates agree). The
schedule's value is lambda (e.g. cubic from 0 up to the final lambda). Defaults: log_alpha starts at 3 (every gate
open), score learning rate 1e-1.

Target control (``target_control=True``, after CoFi's Lagrangian, Xia et al. 2022
``l0_module.lagrangian_regularization``): the schedule's value is the remaining-weights target t (e.g. cubic from
1.0 down to 0.10) and the penalty becomes the augmented Lagrangian

    loss += U (l (r - t) + rho (r - t)^2),      r = E[L0] / N   (expected remaining share of all N target weights)

over the U gated units. The factor U makes the push on one gate, U * dr/dgate = (unit size / mean unit size) *
dP(open)/dlog_alpha, independent of the model's size: without it the push shrinks as 1/N while the task's gradient
on a gate does not, and gains that tracked the ramp on a tiny BERT (16k weights) lagged on all-MiniLM-L6-v2 (10.6M
weights: 0.174 reached for a target of 0.10). rho is fixed (``lagrange_rho``, 3e-3). Measured on MiniLM (SST-2, 800 steps):
at 1e-3 it reached 0.103 for 0.10 but lagged to 0.052 for 0.03; at 1e-2 it reached 0.030 and 0.100, but the
gates closed so uniformly that at 0.10 the binary evaluation gate no longer matched the trained stochastic one
(training loss 0.3, dev accuracy 0.485); 3e-3 reached 0.034 for 0.03 (dev 0.799) and 0.100 for 0.10 (dev 0.722, against 0.810 at 1e-3). The multiplier l rises by plain
gradient ascent on r - t (``lagrange_lr``, 3e-5) once the target has stopped moving (integrating during the ramp
wound it up and overshot the final target on the tiny model); CoFi learns the quadratic weight too, which
oscillated here (see :func:`~.base.lagrangian`). The evaluation gate is then CoFi's deterministic one, made binary:
each matrix keeps round(E[L0 of the matrix]) units, those with the highest log-alpha, so the reached share is the
expected share the Lagrangian drives to t.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from . import register_pruner
from .base import Pruner, TargetControl, keep_top, lagrangian, sigmoid_dot

#: values per chunk of :func:`uniform_noise`'s parallel fill (even, so every chunk starts on a 64-bit output)
NOISE_CHUNK = 1 << 21
assert NOISE_CHUNK % 2 == 0, "an odd chunk would start inside a 64-bit output of the stream"
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    pid = os.getpid()
    key = (pid, workers)  # a forked child gets its own pool (the parent's threads do not exist there)
    if key not in _pools:
        # pools inherited from a parent process: their threads are gone
        for stale in [k for k in _pools if k[0] != pid]:
            del _pools[stale]
        _pools[key] = ThreadPoolExecutor(workers, thread_name_prefix="bermo-prune-noise")
    return _pools[key]


def uniform_noise(like: torch.Tensor, low: float = 1e-6, high: float = 1 - 1e-6) -> torch.Tensor:
    """A fresh tensor shaped as ``like``, uniform on [low, high]: the hard-concrete gates' noise.

    On CPU in float32 (the case that costs: one draw per weight at weight granularity, 12.6M a step on a 4-layer
    hidden-512 BERT) the values are one PCG64 stream (numpy), seeded by one draw from torch's default generator, so
    ``torch.manual_seed`` and a checkpoint's saved torch RNG state fix them as they fix torch's own draws. The stream
    is filled in chunks of :data:`NOISE_CHUNK` on torch's number of threads, each chunk's generator advanced to its
    place (numpy makes two float32 from each 64-bit output), so the values equal one serial fill whatever the
    thread count. torch's CPU ``uniform_`` is a serial Mersenne twister: about 40-50 ms for 12.6M values here,
    against about 15 ms for this fill on 2 threads. Values are numpy's 24-bit floats in [0, 1) clamped to
    [low, high] (as Sanh et al. clamp theirs; CoFi scales torch's draw into (eps, 1 - eps): the two differ only
    for draws within 1e-6 of an end). Elsewhere (a GPU, another dtype) it is torch's ``uniform_(low, high)``.
    numpy promises the same stream only within one build of numpy, so a run repeats bit for bit (and resumes
    exactly) in one environment; a test pins the first values to notice a change.
    """
    out = torch.empty(like.shape, dtype=like.dtype, device=like.device)
    if out.device.type != "cpu" or out.dtype != torch.float32 or out.numel() == 0:
        return out.uniform_(low, high)
    seed = int(torch.randint(0, 2**62, (1,), dtype=torch.int64))
    flat = out.view(-1).numpy()
    starts = range(0, flat.size, NOISE_CHUNK)

    def fill(start: int) -> None:
        bits = np.random.PCG64(seed)
        bits.advance(start // 2)
        np.random.Generator(bits).random(out=flat[start : start + NOISE_CHUNK], dtype=np.float32)

    workers = min(torch.get_num_threads(), len(starts))
    if workers <= 1:
        for start in starts:
            fill(start)
    else:
        list(_pool(workers).map(fill, starts))  # numpy releases the GIL while it fills
    return out.clamp_(low, high)


class HardConcreteGate(torch.autograd.Function):
    """z = clamp(sigmoid((logit(u) + log_alpha) / beta) (r - l) + l, 0, 1) with u ~ U(0, 1), in one buffer.

    The forward runs in place on the noise buffer (:func:`uniform_noise`) and saves only z; the backward recovers
    s = (z - l) / (r - l) and returns dz/dlog_alpha = (r - l) s (1 - s) / beta where 0 < z < 1 (the clamp's
    gradient is 0 elsewhere), in place. Half the memory passes of the composed autograd ops, which matters with
    one gate per weight. The clamp's zeros come from a float indicator, z - z^2 > 0 (exactly where 0 < z < 1 in
    float32), multiplied in: boolean masks and ``masked_fill`` over 12.6M values took about 26 ms here against about
    6. Same gradient as masking, except that a non-finite incoming gradient at a clamped gate gives NaN there
    instead of 0, and a zero may carry the sign of the incoming gradient.
    """

    @staticmethod
    def forward(ctx, log_alpha, beta, left, right):  # noqa: D102
        z = uniform_noise(log_alpha).logit_()
        z.add_(log_alpha).mul_(1.0 / beta).sigmoid_().mul_(right - left).add_(left).clamp_(0.0, 1.0)
        ctx.save_for_backward(z)
        ctx.consts = (beta, left, right)
        return z

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (z,) = ctx.saved_tensors
        beta, left, right = ctx.consts
        s = (z - left).mul_(1.0 / (right - left))
        # s (1 - s) grad (r - l) / beta, zero where the clamp held z at 0 or 1
        d = s.addcmul_(s, s, value=-1.0).mul_(grad).mul_((right - left) / beta)
        return d.mul_(torch.addcmul(z, z, z, value=-1.0).gt_(0.0)), None, None, None


@register_pruner("l0")
@dataclass
class L0Pruner(TargetControl, Pruner):
    """Hard-concrete L0 gates.

    Attributes:
        stretch_left, stretch_right: the stretch interval (l, r).
        temperature: beta.
        init_log_alpha: initial log-alpha of every gate.
        target_control: the schedule gives a remaining-weights target instead of lambda (see the module doc).
        lagrange_rho: the fixed quadratic weight of the augmented Lagrangian (target control).
        lagrange_lr: the gradient-ascent step of its multiplier (target control).
    """

    stretch_left: float = -0.1
    stretch_right: float = 1.1
    temperature: float = 2.0 / 3.0
    init_log_alpha: float = 3.0
    target_control: bool = False
    lagrange_rho: float = 3e-3
    lagrange_lr: float = 3e-5
    schedule_key: ClassVar[str] = "lambda"
    default_score_lr: ClassVar[float] = 1e-1

    def create_scores(self, layout):
        return torch.full((layout.total_units,), float(self.init_log_alpha))

    def compute_mask(self, layout, state, value):
        scores = state.scores.detach()
        if not self.target_control:
            return (scores > 0).to(state.mask.dtype)
        # CoFi's deterministic gate, binary: each matrix keeps as many units as its gates are expected to keep,
        # those with the highest log-alpha, so the reached share is the expected one the Lagrangian controls.
        p = self.open_probability(scores)
        mask = torch.zeros_like(state.mask)
        for sl in layout.local_sets:
            keep_top(mask[sl], scores[sl], int(round(float(p[sl].sum()))))
        return mask

    def open_probability(self, log_alpha: torch.Tensor) -> torch.Tensor:
        """P(z != 0) of each gate under the hard-concrete distribution."""
        shift = self.temperature * math.log(-self.stretch_left / self.stretch_right)
        return (log_alpha - shift).sigmoid_()

    def before_forward(self, layout, state, training):
        if not training:
            state.gates = None
            return
        # One draw for every unit of every target: a single fused op per forward, not a loop over matrices.
        state.gates = HardConcreteGate.apply(
            state.scores, self.temperature, self.stretch_left, self.stretch_right
        )

    def effective_weight(self, target, weight, state, training):
        if not training or state.gates is None:
            return weight * target.full_mask
        z = state.part("gates", target)
        return weight * target.expand(z)

    def expected_l0(self, layout, state) -> torch.Tensor:
        """Expected number of non-zero target weights, sum_u size_u * P(z_u != 0)."""
        size = layout.uniform_unit_size
        sizes = size if size is not None else layout.unit_sizes.to(state.scores.device)
        return sigmoid_dot(state.scores, sizes, self.open_probability(state.scores.detach()))

    def expected_density(self, layout, state) -> torch.Tensor:
        """Mean over matrices of each matrix's expected share of non-zero gates (the penalised quantity)."""
        weights = layout.matrix_mean_weights.to(state.scores.device)
        return sigmoid_dot(state.scores, weights, self.open_probability(state.scores.detach()))

    def penalty(self, layout, state, value):
        if self.target_control:  # value: the remaining share the schedule asks for now
            gap = self.expected_l0(layout, state) / layout.total_weights - value
            return lagrangian(state.multipliers, gap, self.lagrange_rho, force=layout.total_units)
        return value * self.expected_density(layout, state)
