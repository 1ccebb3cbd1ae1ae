"""CPU inference latency of a compacted encoder versus the dense one, as ratios measured side by side in one run.

For each structured sparsity (share of attention heads and FFN neurons removed in every layer) a BERT is
head-pruned with tied units (``granularity="head"``: a head spans Q, K, V and attention-out, a neuron FFN-in and
FFN-out), hardened and compacted. Every setting (batch, length) times the dense model and the compacted ones in
interleaved rounds, so machine drift hits them alike; ratio = median(dense) / median(compacted), followed by the
spread of the per-round ratios (min-max).

    .venv/bin/python benchmarks/speedup.py                       # bert-base shape (12 x 768), 2 threads
    .venv/bin/python benchmarks/speedup.py --layers 4 --hidden 256 --rounds 3   # quicker
    .venv/bin/python benchmarks/speedup.py --profile                             # and where each model's time goes

``--profile`` adds, per setting, one profiled forward of every model (``torch.profiler``, self CPU time by op),
split into what compaction shrinks with the removed share (the linear layers' matmuls, attention's score and
context products, softmax and per-head copies, the FFN's GELU) and what it cannot shrink (layer norms, residual adds, the embedding
lookups, the classifier head, copies and views): the second part is a fixed per-call cost that keeps the speedup
below the MAC ratio when the shrinking part gets small.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import BertConfig, BertForSequenceClassification

from bermo_prune.compact import compact, count_parameters, encoder_macs
from bermo_prune.engine import prune
from bermo_prune.pruners import get_pruner
from bermo_prune.schedule import Constant, Scheduler


def build(cfg: BertConfig, removed: float):
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg).eval()
    if removed:
        handle = prune(model, Scheduler(get_pruner("magnitude", granularity="head"), Constant(1.0 - removed)))
        handle.harden()
        compact(model)
    return model


#: ops whose work shrinks with the heads and FFN neurons removed (everything else is a fixed cost per call)
#: (``copy_`` is mostly attention's per-head transposes made contiguous, which shrink with the heads)
SHRINKING = (
    "addmm",
    "mm",
    "bmm",
    "matmul",
    "baddbmm",
    "linear",
    "softmax",
    "gelu",
    "scaled_dot_product",
    "copy_",
)


@torch.inference_mode()
def profile_split(model, ids, mask, forwards: int = 3) -> tuple[float, float, list[tuple[str, float]]]:
    """Milliseconds of self CPU time per forward (mean of ``forwards``) in ops that shrink with compaction, in the
    rest, and the rest by op (largest first)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(forwards):
            model(input_ids=ids, attention_mask=mask)
    shrinking, fixed = 0.0, {}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        ms = event.self_cpu_time_total / 1000 / forwards
        if any(k in event.key for k in SHRINKING):
            shrinking += ms
        else:
            fixed[event.key] = ms
    return shrinking, sum(fixed.values()), sorted(fixed.items(), key=lambda kv: -kv[1])


@torch.inference_mode()
def once(model, ids, mask) -> float:
    t0 = time.perf_counter()
    model(input_ids=ids, attention_mask=mask)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds per setting (median)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="print where each model's forward spends its time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        intermediate_size=4 * args.hidden,
        num_labels=2,
    )
    variants = [0.0, *args.sparsities]
    models = [build(cfg, s) for s in variants]
    print(f"torch {torch.__version__}, {args.threads} threads; {args.layers}-layer hidden-{args.hidden} BERT")
    print(f"{'removed':>8} {'heads/layer':>11} {'params':>12} {'MACs@128':>10}")
    for s, m in zip(variants, models, strict=True):
        heads = m.bert.encoder.layer[0].attention.self.num_attention_heads
        print(f"{s:>8.0%} {heads:>11} {count_parameters(m):>12,} {encoder_macs(m, 128) / 1e9:>9.2f}G")
    print(
        f"\n{'batch':>5} {'length':>6} {'dense ms':>9} "
        + " ".join(f"{f'{s:.0%} removed (median, per-round)':>30}" for s in args.sparsities)
    )
    for batch in args.batches:
        for length in args.lengths:
            g = torch.Generator().manual_seed(0)
            ids = torch.randint(5, cfg.vocab_size, (batch, length), generator=g)
            mask = torch.ones_like(ids)
            times: list[list[float]] = [[] for _ in models]
            for m in models:  # warm-up
                once(m, ids, mask)
            for _ in range(args.rounds):
                for i, m in enumerate(models):
                    times[i].append(once(m, ids, mask))
            med = [statistics.median(t) for t in times]
            cells = []
            for i in range(1, len(models)):  # the ratio of medians, and the spread of the per-round ratios
                per_round = [d / c for d, c in zip(times[0], times[i], strict=True)]
                cells.append(
                    f"{med[i] * 1000:>9.1f} ({med[0] / med[i]:.2f}x, {min(per_round):.2f}-{max(per_round):.2f})"
                )
            print(f"{batch:>5} {length:>6} {med[0] * 1000:>9.1f} " + " ".join(cells))
            if args.profile:
                splits = [profile_split(m, ids, mask) for m in models]
                for s, (shrinking, fixed, by_op) in zip(variants, splits, strict=True):
                    top = ", ".join(f"{k[6:]} {ms:.1f}" for k, ms in by_op[:4])
                    print(
                        f"{'':>13} profile, {s:.0%} removed: shrinking ops {shrinking:.1f} ms "
                        f"(dense / this {splits[0][0] / shrinking:.2f}x), fixed ops {fixed:.1f} ms ({top})"
                    )


if __name__ == "__main__":
    main()
