"""Training-step overhead of each pruning method and granularity, as a ratio to the dense step.

Measured side by side in one run: every variant is timed in interleaved rounds (dense, method A, method B, ...,
dense, method A, ...) so machine drift hits all of them alike; the ratio is median(variant) / median(dense).
A step is forward + backward + fused AdamW (what ``fine_tune`` uses) + ``handle.step()`` (+ the penalty for penalty methods).
Like bermo-prune's training processes, the process keeps freed memory for reuse (:mod:`bermo_prune.allocator`); run with
``BERMO_PRUNE_MALLOC=system`` to measure glibc's default, and ``step_profile.py`` for where the time goes.

    .venv/bin/python benchmarks/overhead.py                 # 4-layer hidden 256 and 512, batch 32, length 64
    .venv/bin/python benchmarks/overhead.py --hidden 256 --steps 5 --rounds 2   # quicker
    .venv/bin/python benchmarks/overhead.py --methods movement magnitude --granularities weight --every 1

Pruned variants start a third of the way into a 3,157-step cubic ramp to 10% (the reference-pace study's ramp,
so the target moves at every step as much as in a real run), movement's scores drawn from N(0, 0.1) (scores all at
their initial 0 would tie; a real run reaches its ramp after a warm-up that has spread them).

Each row prints the median step over rounds, the ratio of medians, and the spread of the per-round ratios (each
round's variant time over the same round's dense time: min-max). Rows marked ``fresh top-k`` select with a fresh
``torch.topk`` per matrix instead of from the last selection's thresholds (:class:`~bermo_prune.pruners.base.
WarmTopK`, the default), side by side in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import BertConfig, BertForSequenceClassification

from bermo_prune.allocator import retain_freed_memory
from bermo_prune.engine import prune
from bermo_prune.optim import make_optimizer
from bermo_prune.pruners import GRANULARITIES, available_pruners, get_pruner
from bermo_prune.schedule import Cubic, Scheduler


def build(hidden: int, variant: tuple[str, str, int, bool] | None, total: int):
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=8000,
        hidden_size=hidden,
        num_hidden_layers=4,
        num_attention_heads=hidden // 64,
        intermediate_size=4 * hidden,
        num_labels=2,
    )
    model = BertForSequenceClassification(cfg).train()
    if variant is None:
        return model, None, make_optimizer([{"params": list(model.parameters())}], 1e-4)
    method, granularity, every, fresh = variant
    pruner = get_pruner(method, granularity=granularity)
    if fresh:
        pruner.warm_topk = None  # topk_mask's plain path: a fresh selection per matrix
    schedule = {
        "remaining": Cubic(1.0, 0.1, total=total),
        "threshold": Cubic(0.0, 0.1, total=total),
        "lambda": Cubic(0.0, 1.0, total=total),
    }[pruner.schedule_key]
    scheduler = Scheduler(pruner, schedule, update_every=every)
    handle = prune(model, scheduler)
    if (
        method == "movement"
    ):  # scores spread as a warm-up of straight-through updates leaves them (see the doc)
        with torch.no_grad():
            handle.state.scores.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(0))
    scheduler.step = total // 3  # inside the ramp, where the remaining share falls at every step
    handle.update_masks()
    return model, handle, make_optimizer(handle.param_groups(lr=1e-4), 1e-4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--steps", type=int, default=6, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--methods", nargs="+", default=None, help="only these methods (default: all)")
    ap.add_argument("--granularities", nargs="+", default=list(GRANULARITIES))
    ap.add_argument("--every", type=int, nargs="+", default=[10], help="update_every values (default: 10)")
    ap.add_argument(
        "--no-every-step",
        action="store_true",
        help="leave out the movement-every-step rows (warm and fresh top-k)",
    )
    args = ap.parse_args()
    retain_freed_memory()  # as bermo-prune's training processes do (BERMO_PRUNE_MALLOC=system: without)
    torch.set_num_threads(args.threads)

    methods = args.methods or available_pruners()
    variants: list[tuple[str, str, int, bool] | None] = [None]
    variants += [(m, g, e, False) for m in methods for g in args.granularities for e in args.every]
    if not args.no_every_step:
        variants += [(m, "weight", 1, f) for m in ("movement", "magnitude") for f in (False, True)]
    variants = list(dict.fromkeys(variants))
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, length {args.length}")
    for hidden in args.hidden:
        total = 3157  # the reference-pace study's ramp: a step moves the target as a real run's does
        models = [build(hidden, v, total) for v in variants]
        g = torch.Generator().manual_seed(0)
        x = torch.randint(5, 8000, (args.batch, args.length), generator=g)
        y = torch.randint(0, 2, (args.batch,), generator=g)
        times: list[list[float]] = [[] for _ in variants]

        def one_step(model, handle, opt, x=x, y=y):
            loss = model(input_ids=x, labels=y).loss
            if handle is not None:
                loss = loss + handle.penalty()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if handle is not None:
                handle.step()

        for _r in range(args.rounds):
            for i, (model, handle, opt) in enumerate(models):
                for _ in range(2):  # warm caches for this variant
                    one_step(model, handle, opt)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    one_step(model, handle, opt)
                times[i].append((time.perf_counter() - t0) / args.steps)
        dense = statistics.median(times[0])
        spread = max(times[0]) / min(times[0]) - 1
        print(
            f"\n4-layer hidden-{hidden} BERT: dense step {dense * 1000:.0f} ms (rounds within {spread:.1%})"
        )
        print(
            f"{'method':<14} {'granularity':<11} {'update_every':>12} {'top-k':>6} {'step ms':>8} {'ratio':>6}"
            f"  {'per-round ratios':>16}"
        )
        for v, t in zip(variants[1:], times[1:], strict=True):
            med = statistics.median(t)
            per_round = [a / b for a, b in zip(t, times[0], strict=True)]
            topk = "fresh" if v[3] else "warm"
            print(
                f"{v[0]:<14} {v[1]:<11} {v[2]:>12} {topk:>6} {med * 1000:>8.0f} {med / dense:>6.3f}"
                f"  {min(per_round):.3f}-{max(per_round):.3f}"
            )


if __name__ == "__main__":
    main()
