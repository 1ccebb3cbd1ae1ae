"""The flat unit layout every pruning method works on, shared by the engine and the pruners.

A :class:`Target` is one pruned matrix (where its units sit in the flat vector, how a unit maps onto the weight,
its weight-shaped mask); a :class:`Layout` is all of them; :class:`PruningState` holds the flat per-unit tensors
(scores, multipliers, the binary unit mask) on the model. :mod:`bermo_prune.engine` builds them;
:mod:`bermo_prune.pruners` read them. Neither imports the other's internals.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

#: the name of the weight-shaped mask buffer on a masked linear (read it through :attr:`Target.full_mask`)
FULL_MASK = "_bp_full_mask"


@dataclass
class Target:
    """One pruned matrix: where its units sit in the flat layout and how a unit maps onto the weight."""

    name: str
    module: nn.Linear
    role: str
    layer: int | None
    block: tuple[int, int]  # (rows, cols) of one unit
    grid: tuple[int, int]  # units along (rows, cols)
    offset: int = 0
    index: int = 0  # position in the layout's target list
    #: flat positions of this target's units when units are tied across matrices (head granularity: one
    #: position per head shared by Q, K, V and attention-out; one per FFN neuron shared by FFN-in and FFN-out);
    #: None: the target owns the contiguous slice ``offset : offset + units``.
    tie: torch.Tensor | None = None

    def gather(self, flat: torch.Tensor) -> torch.Tensor:
        """This target's values of a flat per-unit tensor, shaped as its unit grid."""
        if self.tie is not None:
            return flat[self.tie].view(self.grid)
        return flat[self.offset : self.offset + self.units].view(self.grid)

    @property
    def full_mask(self) -> torch.Tensor:
        """The weight-shaped mask of this matrix (the unit mask expanded, kept as a buffer on the module and
        refreshed whenever the unit mask changes): what a pruner multiplies the weight by."""
        return getattr(self.module, FULL_MASK)

    @property
    def units(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def weights(self) -> int:
        return self.module.weight.numel()

    def to_units(self, w: torch.Tensor, reduce: str = "mean") -> torch.Tensor:
        """(out, in) -> flat (units,), reducing each unit with ``reduce``."""
        if self.block == (1, 1):
            return w.reshape(-1)
        g0, g1 = self.grid
        b0, b1 = self.block
        tiles = w.reshape(g0, b0, g1, b1)
        return (tiles.mean(dim=(1, 3)) if reduce == "mean" else tiles.sum(dim=(1, 3))).reshape(-1)

    def expand(self, unit_grid: torch.Tensor) -> torch.Tensor:
        """(grid) -> (out, in): every weight takes its unit's value."""
        if self.block == (1, 1):
            return unit_grid.reshape(self.module.weight.shape)
        g0, g1 = self.grid
        b0, b1 = self.block
        return unit_grid.reshape(g0, 1, g1, 1).expand(g0, b0, g1, b1).reshape(g0 * b0, g1 * b1)


@dataclass
class Layout:
    """All targets and their flat unit layout.

    ``local_sets`` are the slices of the flat vector that ``scope="local"`` ranks separately: one per matrix, or
    with tied units one per structure (a layer's heads, a layer's FFN neurons).
    """

    targets: list[Target]
    unit_sizes: torch.Tensor  # (total_units,) weights per unit (summed over the matrices a tied unit spans)
    local_sets: list[slice]
    tied: bool = False

    @property
    def total_units(self) -> int:
        return int(self.unit_sizes.numel())

    @property
    def total_weights(self) -> int:
        return sum(t.weights for t in self.targets)

    @functools.cached_property
    def uniform_unit_size(self) -> float | None:
        """The one size every unit has (weight granularity: 1; blocks of one shape), or None where sizes mix."""
        size = float(self.unit_sizes[0])
        return size if bool((self.unit_sizes == size).all()) else None

    @functools.cached_property
    def matrix_mean_weights(self) -> torch.Tensor:
        """Per-unit weights ``w`` such that ``(w * x).sum()`` is the mean over matrices of each matrix's mean of ``x``
        over its weights (a matrix = a local set: one matrix, or one tied structure at head granularity).

        This is how the reference implementations normalise their penalties (Sanh et al.'s ``regularization()``
        averages per-matrix means), so a published lambda means the same here: a small matrix weighs as much as a
        large one.
        """
        w = torch.empty_like(self.unit_sizes)
        for sl in self.local_sets:
            w[sl] = self.unit_sizes[sl] / self.unit_sizes[sl].sum()
        return w / len(self.local_sets)


class PruningState(nn.Module):
    """Flat per-unit tensors, registered on the model as ``bermo_pruning``."""

    def __init__(
        self, scores: torch.Tensor | None, total_units: int, multipliers: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.scores = nn.Parameter(scores) if scores is not None else None
        #: Lagrange multipliers of a target-controlled penalty method (trained by gradient ascent), or None
        self.multipliers = nn.Parameter(multipliers) if multipliers is not None else None
        self.register_buffer("mask", torch.ones(total_units))  # binary, per unit
        self.gates: torch.Tensor | None = None  # per-forward gates of stochastic methods (not saved)
        self.unit_counts: list[int] = []  # units per target, in layout order (set by the handle)
        self._parts: dict[str, tuple[torch.Tensor, ...]] | None = None  # per-forward split cache

    def begin_forward(self) -> None:
        """A model forward starts: :meth:`part` splits each flat tensor once for every target until it ends."""
        self._parts = {}

    def end_forward(self) -> None:
        """The model forward ended: :meth:`part` slices again (and the split tensors are released)."""
        self._parts = None

    def part(self, kind: str, target: Target) -> torch.Tensor:
        """``target``'s slice of the flat ``scores`` or ``gates``, shaped as its unit grid.

        Inside a model forward the flat tensor is split once for all targets, so the backward pass
        concatenates the unit gradients in one op; slicing it per target would make autograd zero-fill and add
        a full-size gradient for every target, which cost more than the pruning itself. Outside a model
        forward (a target module called on its own) it falls back to slicing.
        """
        flat = getattr(self, kind)
        if self._parts is None or target.tie is not None:  # tied units: a gather over a few hundred values
            return target.gather(flat)
        parts = self._parts.get(kind)
        if parts is None:
            parts = self._parts[kind] = flat.split(self.unit_counts)
        return parts[target.index].view(target.grid)

    def forward(self, *args, **kwargs):  # pragma: no cover - a container, never called
        raise RuntimeError("PruningState is a container")
