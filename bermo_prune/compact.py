"""Turn structured sparsity into a smaller dense model: remove pruned attention heads and FFN neurons physically.

Unstructured zeros shrink nothing at inference. After head, row or block pruning has emptied whole heads or FFN
neurons, :func:`compact` slices them out of the weight matrices, giving a smaller dense model of the same family
(BERT, RoBERTa, ELECTRA, DistilBERT, plain or BERMo; the family's role table in :mod:`bermo_prune.families` says
where each matrix sits) whose outputs equal the masked (hardened) model's:

* a head goes when its attention-output columns are all zero (it contributes nothing), or when its value rows are
  all zero (its output is then the constant ``W_o[:, head] @ b_v[head]``, since attention rows sum to one; that
  constant is folded into the attention-output bias);
* an FFN neuron goes when its FFN-out column is zero, or when its FFN-in row is zero (its contribution is then the
  constant ``W_2[:, j] * act(b_1[j])``, folded into the FFN-out bias).

A layer keeps at least one head and one neuron (zeroed when everything was pruned), because transformers' attention
cannot reshape zero heads. Per-layer head counts and FFN sizes are written to the config (``layer_heads``,
``layer_intermediate_sizes``): a compacted BERMo reloads with ``from_pretrained`` natively, a compacted plain model
with :func:`load_compact` (plain transformers would build full-size layers). transformers 5 has no ``prune_heads``.
This is direct slicing along the two structures every family shares (a head spans Q/K/V rows and attention-out
columns; a neuron spans an FFN-in row and an FFN-out column), checked against the masked model's outputs for every
family in the tests; a traced dependency graph (torch-pruning) would add a dependency and tracing of transformers'
attention dispatch without removing anything this needs.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer

from .bermo import is_bermo_config
from .engine import MaskedLinear
from .families import ATTENTION_ROLES, LAYER_FFN, LAYER_HEADS, ROLES, Family, family_of, new_linear
from .modelcard import CARD, compact_card
from .models import load_compact
from .rundir import find_model


@torch.no_grad()
def _take(linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    w = linear.weight
    w = w[rows] if rows is not None else w
    w = w[:, cols] if cols is not None else w
    new = new_linear(w.shape[1], w.shape[0], linear)
    new.weight.copy_(w)
    if linear.bias is not None:
        new.bias.copy_(linear.bias[rows] if rows is not None else linear.bias)
    return new


@torch.no_grad()
def _compact_attention(family: Family, layer: nn.Module) -> int:
    """Remove the layer's empty heads; returns how many heads carry something (0: a silent one is kept)."""
    att_out = family.linear(layer, "attn_out")
    value = family.linear(layer, "value")
    d, n_heads = family.head_size(layer), family.heads(layer)
    wo = att_out.weight.view(att_out.out_features, n_heads, d)
    wv = value.weight.view(n_heads, d, -1)
    out_zero = (wo == 0).all(dim=2).all(dim=0)  # (heads,)
    v_zero = (wv == 0).all(dim=2).all(dim=1) & ~out_zero
    if bool(v_zero.any()) and value.bias is not None:
        bv = value.bias.view(n_heads, d)
        for h in torch.nonzero(v_zero).flatten().tolist():
            att_out.bias += wo[:, h, :] @ bv[h]
    keep = torch.nonzero(~(out_zero | v_zero)).flatten()
    silent = keep.numel() == 0
    if silent:
        keep = torch.tensor([0])
    idx = (keep[:, None] * d + torch.arange(d)[None, :]).flatten().to(att_out.weight.device)
    for role in ATTENTION_ROLES:
        family.set_linear(layer, role, _take(family.linear(layer, role), rows=idx))
    family.set_linear(layer, "attn_out", _take(att_out, cols=idx))
    if silent:
        family.linear(layer, "attn_out").weight.zero_()
    family.set_heads(layer, int(keep.numel()))
    return 0 if silent else int(keep.numel())


@torch.no_grad()
def _compact_ffn(family: Family, layer: nn.Module) -> int:
    """Remove the layer's empty FFN neurons; returns how many carry something (0: a silent one is kept)."""
    w1, w2 = family.linear(layer, "ffn_in"), family.linear(layer, "ffn_out")
    col_zero = (w2.weight == 0).all(dim=0)
    row_zero = (w1.weight == 0).all(dim=1) & ~col_zero
    if bool(row_zero.any()):
        b1 = w1.bias if w1.bias is not None else torch.zeros(w1.out_features, device=w1.weight.device)
        w2.bias += w2.weight[:, row_zero] @ family.act(layer)(b1[row_zero])
    keep = torch.nonzero(~(col_zero | row_zero)).flatten()
    silent = keep.numel() == 0
    if silent:
        keep = torch.tensor([0], device=w1.weight.device)
    family.set_linear(layer, "ffn_in", _take(w1, rows=keep))
    family.set_linear(layer, "ffn_out", _take(w2, cols=keep))
    if silent:
        family.linear(layer, "ffn_out").weight.zero_()
    return 0 if silent else int(keep.numel())


@torch.no_grad()
def compact(model: nn.Module) -> dict:
    """Remove empty heads and FFN neurons in place; returns what was kept per layer.

    Works on any registered family (BERT, RoBERTa, ELECTRA, DistilBERT; plain or BERMo). The model must carry no
    masks (``handle.harden()`` first). Outputs are unchanged up to float rounding of the folded biases.
    """
    if any(isinstance(m, MaskedLinear) for m in model.modules()):
        raise ValueError("the model still has pruning masks attached; call handle.harden() before compact()")
    family = family_of(model)
    layers = family.layer_list(model)
    heads_kept = [_compact_attention(family, layer) for layer in layers]
    ffn_kept = [_compact_ffn(family, layer) for layer in layers]
    config = getattr(model, "config", None)
    if config is not None:
        setattr(config, LAYER_HEADS, [family.heads(layer) for layer in layers])
        setattr(config, LAYER_FFN, [family.linear(layer, "ffn_in").out_features for layer in layers])
    return {"heads": heads_kept, "intermediate": ffn_kept}


# ---- counting and timing -------------------------------------------------------------------------------------------
def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def encoder_macs(model: nn.Module, seq_len: int) -> int:
    """Multiply-accumulates of the encoder for one sequence: its linears plus attention scores and mixing.

    Per layer: ``L * (in * out)`` for Q, K, V, attention-out, FFN-in, FFN-out, plus ``2 * L^2 * heads * d`` for
    ``Q K^T`` and ``A V``. Embedding lookups, layer norms and softmax are not multiply-accumulates of note.
    """
    family = family_of(model)
    total = 0
    for layer in family.layer_list(model):
        linears = [family.linear(layer, role) for role in ROLES]
        total += seq_len * sum(m.in_features * m.out_features for m in linears)
        total += 2 * seq_len * seq_len * family.heads(layer) * family.head_size(layer)
    return total


@torch.inference_mode()
def latency(
    model: nn.Module, batch: int, seq_len: int, repeats: int = 5, warmup: int = 2, vocab: int = 1000
) -> float:
    """Median seconds of one forward pass on random token ids (eval mode, no grad)."""
    model.eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (batch, seq_len), generator=g)
    mask = torch.ones_like(ids)
    for _ in range(warmup):
        model(input_ids=ids, attention_mask=mask)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(input_ids=ids, attention_mask=mask)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---- the command -------------------------------------------------------------------------------------------------
def compact_run(
    run_dir: str | Path, output: str | Path | None = None, batch: int = 1, length: int = 128, repeats: int = 5
) -> dict:
    """``bermo-prune compact``: compact RUN_DIR/model (or a model directory), save it, measure before and after."""
    run_dir = Path(run_dir)
    model_dir, _ = find_model(run_dir)
    out = Path(output) if output is not None else run_dir / "compact"
    model = load_compact(model_dir).eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    probe = torch.randint(5, vocab, (4, min(length, 64)), generator=g)

    def stats(m) -> dict:
        return {
            "parameters": count_parameters(m),
            "encoder_macs": encoder_macs(m, length),
            "latency_s": latency(m, batch, length, repeats=repeats, vocab=vocab),
        }

    before = stats(model)
    small = copy.deepcopy(model)
    kept = compact(small)
    after = stats(small)
    with torch.inference_mode():
        diff = float((small(input_ids=probe).logits - model(input_ids=probe).logits).abs().max())
    out.mkdir(parents=True, exist_ok=True)
    small.save_pretrained(out)
    if (model_dir / "tokenizer_config.json").is_file():
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    report = {
        "model": str(model_dir),
        "output": str(out),
        "kept": kept,
        "before": before,
        "after": after,
        "speedup": before["latency_s"] / after["latency_s"],
        "setting": {"batch": batch, "length": length, "threads": torch.get_num_threads()},
        "max_abs_logit_difference": diff,
    }
    (out / "compact.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    source = model_dir / CARD
    text = source.read_text(encoding="utf-8") if source.is_file() else None
    (out / CARD).write_text(compact_card(report, text, is_bermo_config(small.config)), encoding="utf-8")
    return report


def format_compact(report: dict) -> str:
    b, a, s = report["before"], report["after"], report["setting"]
    rows = [
        ("compacted model", report["output"]),
        ("heads per layer", str(report["kept"]["heads"])),
        ("FFN neurons per layer", str(report["kept"]["intermediate"])),
        (
            "parameters",
            f"{b['parameters']:,} -> {a['parameters']:,} ({a['parameters'] / b['parameters']:.2f}x)",
        ),
        (
            f"encoder MACs (length {s['length']})",
            f"{b['encoder_macs']:,} -> {a['encoder_macs']:,} ({a['encoder_macs'] / b['encoder_macs']:.2f}x)",
        ),
        (
            f"latency (batch {s['batch']}, {s['threads']} threads)",
            f"{b['latency_s'] * 1000:.1f} ms -> {a['latency_s'] * 1000:.1f} ms ({report['speedup']:.2f}x faster)",
        ),
        ("max |logit difference|", f"{report['max_abs_logit_difference']:.2e}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
