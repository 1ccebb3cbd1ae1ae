"""Training-step overhead of each pruning method and granularity, as a ratio to the dense step.

Measured side by side in one run: every variant is timed in interleaved rounds (dense, method A, method B, ...,
dense, method A, ...) so machine drift hits all of them alike; the ratio is median(variant) / median(dense).
A step is forward + backward + fused AdamW (what ``fine_tune`` uses) + ``handle.step()`` (+ the penalty for penalty methods).

    .venv/bin/python benchmarks/overhead.py                 # 4-layer hidden 256 and 512, batch 32, length 64
    .venv/bin/python benchmarks/overhead.py --hidden 256 --steps 5 --rounds 2   # quicker
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import BertConfig, BertForSequenceClassification

from bermo_prune.engine import prune
from bermo_prune.optim import make_optimizer
from bermo_prune.pruners import GRANULARITIES, available_pruners, get_pruner
from bermo_prune.schedule import Cubic, Scheduler


def build(hidden: int, variant: tuple[str, str, int] | None, total: int):
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
    method, granularity, every = variant
    pruner = get_pruner(method, granularity=granularity)
    schedule = {
        "remaining": Cubic(1.0, 0.1, total=total),
        "threshold": Cubic(0.0, 0.1, total=total),
        "lambda": Cubic(0.0, 1.0, total=total),
    }[pruner.schedule_key]
    handle = prune(model, Scheduler(pruner, schedule, update_every=every))
    return model, handle, make_optimizer(handle.param_groups(lr=1e-4), 1e-4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--steps", type=int, default=6, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    variants: list[tuple[str, str, int] | None] = [None]
    variants += [(m, g, 10) for m in available_pruners() for g in GRANULARITIES]
    variants += [("movement", "weight", 1)]
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, length {args.length}")
    for hidden in args.hidden:
        total = args.rounds * (args.steps + 2) * 2
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
        print(f"\n4-layer hidden-{hidden} BERT: dense step {dense * 1000:.0f} ms")
        print(f"{'method':<14} {'granularity':<11} {'update_every':>12} {'step ms':>8} {'ratio':>6}")
        for v, t in zip(variants[1:], times[1:], strict=True):
            med = statistics.median(t)
            print(f"{v[0]:<14} {v[1]:<11} {v[2]:>12} {med * 1000:>8.0f} {med / dense:>6.3f}")


if __name__ == "__main__":
    main()
