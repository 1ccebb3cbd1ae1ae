"""`layout`: the flat unit layout (offsets, unit grids, unit sizes, local sets, tied heads) and the state's split
of its flat tensors per target."""

import pytest
import torch
from transformers import BertForSequenceClassification

from bermo_prune.engine import prune
from bermo_prune.pruners import get_pruner
from bermo_prune.schedule import Constant, Scheduler

from .conftest import tiny_config


def _layout(granularity: str, **kw):
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config())
    handle = prune(model, Scheduler(get_pruner("movement", granularity=granularity, **kw), Constant(0.5)))
    return handle


def test_weight_units_tile_the_flat_vector_in_target_order():
    handle = _layout("weight")
    layout = handle.layout
    assert len(layout.targets) == 2 * 6  # two layers of Q, K, V, attention-out, FFN-in, FFN-out
    offset = 0
    for i, t in enumerate(layout.targets):
        assert (t.index, t.offset, t.block, t.units) == (i, offset, (1, 1), t.weights)
        offset += t.units
    assert layout.total_units == offset == layout.total_weights
    assert layout.uniform_unit_size == 1.0 and len(layout.local_sets) == len(layout.targets)
    # a matrix's slice of a flat tensor maps back onto its weight, and expand undoes to_units
    t = layout.targets[3]
    flat = torch.arange(layout.total_units, dtype=torch.float32)
    torch.testing.assert_close(
        t.expand(t.gather(flat)), flat[t.offset : t.offset + t.units].view(t.module.weight.shape)
    )


def test_blocks_average_and_expand():
    handle = _layout("block", block_rows=8, block_cols=16)
    t = handle.layout.targets[0]  # query: 32 x 32
    assert (t.block, t.grid) == ((8, 16), (4, 2))
    w = torch.arange(32 * 32, dtype=torch.float32).view(32, 32)
    units = t.to_units(w)
    assert units.shape == (8,) and float(units[0]) == pytest.approx(float(w[:8, :16].mean()))
    assert float(t.to_units(w, reduce="sum")[0]) == pytest.approx(float(w[:8, :16].sum()))
    assert torch.equal(t.expand(units.view(t.grid))[:8, :16], torch.full((8, 16), float(units[0])))
    assert handle.layout.uniform_unit_size == 8 * 16


def test_heads_are_tied_across_their_matrices_and_sizes_mix():
    handle = _layout("head")
    layout = handle.layout
    assert layout.tied and layout.uniform_unit_size is None  # heads and FFN neurons span different sizes
    q, k, v, out = layout.targets[:4]
    assert torch.equal(q.tie, k.tie) and torch.equal(q.tie, v.tie) and torch.equal(q.tie, out.tie)
    heads = q.tie.numel()
    assert heads == 2 and float(layout.unit_sizes[q.tie[0]]) == 4 * 32 * 16  # 4 matrices x hidden x head size
    # the per-matrix mean weights sum to one over the layout (each local set weighs the same)
    assert float(layout.matrix_mean_weights.sum()) == pytest.approx(1.0)


def test_the_state_splits_its_flat_tensors_once_per_forward():
    handle = _layout("weight")
    state, t = handle.state, handle.layout.targets[5]
    sliced = state.part("scores", t)
    state.begin_forward()
    split = state.part("scores", t)
    assert state._parts is not None and "scores" in state._parts
    state.end_forward()
    assert state._parts is None and torch.equal(sliced, split) and split.shape == t.grid
