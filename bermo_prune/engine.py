"""``prune(model, scheduler)``: attach masks to a model's target linears and return a handle for any training loop.

    handle = prune(model, Scheduler(get_pruner("movement"), Cubic(1.0, 0.1, total=1000)))
    optimizer = torch.optim.AdamW(handle.param_groups(lr=3e-5, score_lr=1e-2))
    for batch in loader:
        loss = model(**batch).loss + handle.penalty()
        loss.backward(); optimizer.step(); optimizer.zero_grad()
        handle.step()
    handle.harden()          # zeros baked in, the model is a plain transformers model again

How it works. Every target ``nn.Linear`` becomes a :class:`MaskedLinear` (same weights, same state-dict names)
whose forward uses the pruner's effective weight, by default ``W * M``. All per-unit state (scores, the binary
unit mask) lives in one flat vector per kind in a small module registered on the model as ``bermo_pruning``,
so it moves with ``.to()``, is synchronised by DDP, is saved in ``model.state_dict()`` and costs one tensor op
for a penalty or a global top-k. Masks are recomputed only when the scheduler says so (every N steps), so a
training step costs the dense step plus one multiply per target weight.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .families import ROLE_KIND, available_families, find_family, get_family
from .layout import FULL_MASK, Layout, PruningState, Target
from .optim import decay_groups
from .pruners.base import Pruner
from .schedule import Scheduler

logger = logging.getLogger(__name__)

STATE_NAME = "bermo_pruning"


def _role_of(name: str, table: list[tuple[str, str]]) -> str:
    """The engine's kind of matrix (qkv, attn_out, ffn_in, ffn_out) for a module name, or "other"."""
    for pattern, role in table:
        if re.search(pattern, name):
            return ROLE_KIND[role]
    return "other"


def _unit_block(pruner: Pruner, role: str, weight_shape: torch.Size, head_size: int | None, name: str):
    out, inp = weight_shape
    g = pruner.granularity
    if g == "weight":
        return (1, 1)
    if g == "block":
        b = (pruner.block_rows, pruner.block_cols)
        if out % b[0] or inp % b[1]:
            raise ValueError(f"{name}: weight {out}x{inp} is not divisible into {b[0]}x{b[1]} blocks")
        return b
    column_roles = ("attn_out", "ffn_out")  # their input dimension is the head dims / FFN neurons
    if g == "row" or role in ("ffn_in", "ffn_out", "other"):
        if g == "head" and role == "other":
            raise ValueError(f"{name}: head granularity needs a BERT attention or FFN matrix")
        return (out, 1) if role in column_roles else (1, inp)
    # head granularity on attention matrices
    if head_size is None:
        raise ValueError("head granularity needs the model's num_attention_heads (config) or num_heads=")
    return (out, head_size) if role == "attn_out" else (head_size, inp)


class MaskedLinear(nn.Linear):
    """An ``nn.Linear`` whose forward uses its pruner's effective weight (``W * M`` unless the method says else).

    Instances are made by class swap in :func:`prune`; weight and bias keep their names and storage.
    """

    _bp_target: Target
    _bp_handle: Pruning

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._bp_handle
        weight = h.pruner.effective_weight(self._bp_target, self.weight, h.state, self.training)
        return F.linear(x, weight, self.bias)


class Pruning:
    """The handle :func:`prune` returns: step, penalty, sparsity, harden, state_dict."""

    def __init__(
        self,
        model: nn.Module,
        scheduler: Scheduler,
        targets: Iterable[str] | None = None,
        num_heads: int | None = None,
    ) -> None:
        self.model = model
        self.scheduler = scheduler
        self.pruner: Pruner = scheduler.pruner
        if any(isinstance(m, MaskedLinear) for m in model.modules()):
            raise ValueError("this model already has masks attached; harden() it first")
        # The family's role table: (regex, role) of Movement Pruning's count (Q, K, V, attention output, FFN in,
        # FFN out); embeddings, pooler, classifier and the BERMo mix never match.
        family = find_family(model)
        if targets is None:
            if family is None:
                raise ValueError(
                    f"{type(model).__name__} belongs to no known encoder family "
                    f"({', '.join(available_families())}); pass targets= (regular expressions on module names)"
                )
            table = family.target_patterns()
            targets = [p for p, _ in table]
        else:  # custom patterns: a matrix's role still comes from its family's table (any family's if unknown)
            families = [family] if family else [get_family(n) for n in available_families()]
            table = [row for f in families for row in f.target_patterns()]
        targets = list(targets)
        patterns = [re.compile(p) for p in targets]
        config = getattr(model, "config", None)
        num_heads = num_heads or getattr(config, "num_attention_heads", None)
        found: list[Target] = []
        for name, module in model.named_modules():
            if type(module) is nn.Linear and any(p.search(name) for p in patterns):
                role = _role_of(name, table)
                head_size = module.out_features // num_heads if num_heads and role == "qkv" else None
                if role == "attn_out" and num_heads:
                    head_size = module.in_features // num_heads
                block = _unit_block(self.pruner, role, module.weight.shape, head_size, name)
                grid = (module.out_features // block[0], module.in_features // block[1])
                layer = re.search(r"layer\.(\d+)\.", name)
                found.append(Target(name, module, role, int(layer.group(1)) if layer else None, block, grid))
        if not found:
            raise ValueError(f"no nn.Linear matches the target patterns {list(targets)}")
        offset = 0
        for i, t in enumerate(found):
            t.offset, t.index = offset, i
            offset += t.units
        device = found[0].module.weight.device
        if self.pruner.granularity == "head":
            self.layout, offset = _tied_layout(found)
        else:
            sizes = torch.cat([torch.full((t.units,), float(t.block[0] * t.block[1])) for t in found])
            sets = [slice(t.offset, t.offset + t.units) for t in found]
            self.layout = Layout(found, sizes, sets)
        self.layout.unit_sizes = self.layout.unit_sizes.to(device)
        for t in found:
            if t.tie is not None:
                t.tie = t.tie.to(device)
        scores = self.pruner.create_scores(self.layout)
        multipliers = self.pruner.create_multipliers()
        self.state = PruningState(scores, offset, multipliers).to(device)
        self.state.unit_counts = [t.units for t in found]
        self.pruner.bind_schedule(self.scheduler.schedule)
        model.add_module(STATE_NAME, self.state)
        for t in found:
            t.module.__class__ = MaskedLinear
            t.module._bp_target = t
            t.module._bp_handle = self
            t.module.register_buffer(FULL_MASK, torch.ones_like(t.module.weight), persistent=False)
        self._hooks = [self.state.register_load_state_dict_post_hook(lambda *_: self._refresh_full_masks())]
        self._hooks.append(model.register_forward_pre_hook(self._before_forward))
        self._hooks.append(model.register_forward_hook(self._after_forward))
        self._hardened = False
        self.update_masks()

    # ---- training-loop API -------------------------------------------------------------------------------
    def _before_forward(self, module, args):
        self.state.begin_forward()
        if self.scheduler.started():
            self.pruner.before_forward(self.layout, self.state, module.training)
        else:  # warm-up: no gate is sampled, every mask is one (see update_masks), so the forward is dense
            self.state.gates = None

    def _after_forward(self, module, args, output):
        self.state.end_forward()

    def param_groups(
        self,
        lr: float,
        score_lr: float | None = None,
        weight_decay: float = 0.0,
        groups: list[dict] | None = None,
    ) -> list[dict]:
        """AdamW groups: model weights (decay on matrices only), then the pruning scores at ``score_lr``.

        ``groups``: the model's groups to start from (default: :func:`~bermo_prune.optim.decay_groups` of the
        model's parameters at ``lr`` and ``weight_decay``); the handle's own tensors are taken out of them."""
        scores, multipliers = self.state.scores, self.state.multipliers
        own = {id(scores), id(multipliers)}
        if groups is None:
            groups = decay_groups(self.model.parameters(), lr, weight_decay)
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in own]} for g in groups]
        if scores is not None:
            slr = score_lr if score_lr is not None else self.pruner.default_score_lr
            groups.append({"params": [scores], "lr": slr, "weight_decay": 0.0, "name": "pruning_scores"})
        # Lagrange multipliers are not in any group: step() moves them by plain gradient ascent, whose step is
        # proportional to the constraint gap (Adam's normalised step keeps them moving at full speed when the gap
        # is tiny, and the constraint oscillates).
        return [g for g in groups if g["params"]]

    def penalty(self) -> torch.Tensor:
        """The method's regulariser at the current step (0 for methods without one, and during the warm-up)."""
        if not self.scheduler.started():
            return torch.zeros((), device=self.state.mask.device)
        p = self.pruner.penalty(self.layout, self.state, self.scheduler.value())
        return p if p is not None else torch.zeros((), device=self.state.mask.device)

    def step(self) -> None:
        """Advance the schedule by one optimizer step; recompute masks when due. Call after ``optimizer.step()``.

        A target-controlled method's Lagrange multipliers take their step here (the pruner's
        ``step_multipliers``, which consumes the gradient of the last backward).
        """
        self.pruner.step_multipliers(self.state, self.scheduler)
        self.scheduler.step += 1
        # Before the schedule starts the masks stay at one (set when attached), so nothing is recomputed there.
        started = self.scheduler.started()
        if started and (self.scheduler.due() or self.scheduler.step == self.scheduler.schedule.start_step()):
            self.update_masks()

    @torch.no_grad()
    def update_masks(self) -> None:
        """Recompute the binary masks for the current scheduled value now (all ones before the schedule starts:
        warm-up means warm-up, whatever the method or the schedule's initial value)."""
        if self.scheduler.started():
            mask = self.pruner.compute_mask(self.layout, self.state, self.scheduler.value())
        else:
            mask = torch.ones_like(self.state.mask)
        self.state.mask.copy_(mask)
        self._refresh_full_masks()

    @torch.no_grad()
    def _refresh_full_masks(self) -> None:
        for t in self.layout.targets:
            t.full_mask.copy_(t.expand(t.gather(self.state.mask)))

    @torch.no_grad()
    def remaining(self) -> float:
        """The share of the prunable weights the masks keep now (``sparsity()["remaining"]``, in one product)."""
        return (
            float(self.state.mask @ self.layout.unit_sizes.to(self.state.mask.device))
            / self.layout.total_weights
        )

    @property
    def value(self) -> float:
        """The scheduled value now (remaining fraction, threshold or lambda)."""
        return self.scheduler.value()

    # ---- reporting -------------------------------------------------------------------------------------
    @torch.no_grad()
    def sparsity(self) -> dict:
        """Remaining target weights overall, per layer and per matrix, plus parameter totals.

        Remaining weights follow Movement Pruning: the share of the encoder's prunable linear weights that are
        kept (``remaining``); ``kept`` and ``total`` are the counts. ``total_parameters`` counts the whole model
        (pruning scores excluded) and ``nonzero_parameters`` what is left after the masks.
        """
        per_matrix, per_layer_kept, per_layer_total = {}, {}, {}
        kept_total = 0
        for t in self.layout.targets:
            kept = int(t.gather(self.state.mask).sum().item()) * t.block[0] * t.block[1]
            kept_total += kept
            per_matrix[t.name] = kept / t.weights
            key = str(t.layer)
            per_layer_kept[key] = per_layer_kept.get(key, 0) + kept
            per_layer_total[key] = per_layer_total.get(key, 0) + t.weights
        total = self.layout.total_weights
        model_params = sum(
            p.numel() for n, p in self.model.named_parameters() if not n.startswith(STATE_NAME)
        )
        return {
            "remaining": kept_total / total,
            "kept": kept_total,
            "total": total,
            "per_layer": {k: per_layer_kept[k] / per_layer_total[k] for k in per_layer_kept},
            "per_matrix": per_matrix,
            "total_parameters": model_params,
            "nonzero_parameters": model_params - (total - kept_total),
        }

    # ---- end of pruning ------------------------------------------------------------------------------------
    @torch.no_grad()
    def harden(self) -> nn.Module:
        """Bake the masks into the weights and detach everything: the model is a plain model again.

        Outputs after ``harden()`` equal the masked model's in eval mode. Scores, gates, hooks and the
        ``bermo_pruning`` module are removed, so ``save_pretrained`` writes a standard checkpoint.
        """
        if self._hardened:
            return self.model
        for t in self.layout.targets:
            m = t.module
            m.weight.mul_(getattr(m, FULL_MASK))
            delattr(m, FULL_MASK)
            del m._bp_target
            del m._bp_handle
            m.__class__ = nn.Linear
        for h in self._hooks:
            h.remove()
        delattr(self.model, STATE_NAME)
        self._hardened = True
        return self.model

    def state_dict(self) -> dict:
        """The handle's own state (the scheduler step; scores and masks are in ``model.state_dict()``)."""
        return {
            "method": getattr(self.pruner, "name", type(self.pruner).__name__),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        self._refresh_full_masks()


def _tied_layout(targets: list[Target]) -> tuple[Layout, int]:
    """Head granularity: one unit per attention head (shared by Q, K, V, attention-out) and per FFN neuron
    (shared by FFN-in and FFN-out) of each layer, so a pruned head or neuron is gone from every matrix it spans
    and :func:`~bermo_prune.compact.compact` can remove it physically."""
    structures: dict[tuple, list[Target]] = {}
    for t in targets:
        kind = "attention" if t.role in ("qkv", "attn_out") else "ffn"
        structures.setdefault((t.layer, kind), []).append(t)
    sizes, sets, offset = [], [], 0
    for members in structures.values():
        counts = {t.units for t in members}
        if len(counts) != 1:
            names = ", ".join(t.name for t in members)
            raise ValueError(f"head granularity: {names} do not have the same number of heads/neurons")
        n = counts.pop()
        tie = torch.arange(offset, offset + n)
        for t in members:
            t.tie = tie
        sizes.append(torch.full((n,), float(sum(t.block[0] * t.block[1] for t in members))))
        sets.append(slice(offset, offset + n))
        offset += n
    return Layout(targets, torch.cat(sizes), sets, tied=True), offset


def prune(
    model: nn.Module,
    scheduler: Scheduler,
    targets: Iterable[str] | None = None,
    num_heads: int | None = None,
) -> Pruning:
    """Attach masks to ``model``'s target linears in place and return the :class:`Pruning` handle.

    Args:
        model: any module; for a BERT, RoBERTa, ELECTRA or DistilBERT model (plain or BERMo) the encoder's Q, K, V,
            attention-output, FFN-in and FFN-out matrices are found from its family's role table.
        scheduler: the pruner and its schedule.
        targets: regular expressions on module names (``re.search``) selecting the ``nn.Linear`` to prune, instead
            of the family's matrices (needed for a model of no known family).
        num_heads: attention heads, for head granularity when the model has no ``config.num_attention_heads``.
    """
    return Pruning(model, scheduler, targets, num_heads)
