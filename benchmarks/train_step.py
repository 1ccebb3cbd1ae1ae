"""Fine-tuning step time on all-MiniLM-L6-v2 (the study's encoder), as ratios to the plain dense step measured side by
side in one run: the options that make a step faster (frozen word embeddings, bf16 autocast) and the cost of
movement pruning with masks recomputed every step (the reference-pace study's setting), its top-k warm-started
from the last selection (the default) or fresh, and of soft movement as that study runs it (target control, tau
ramping with the target, the cap, masks every step).

A step is what :class:`~bermo_prune.train.Trainer` does: forward, loss (+ the pruning penalty), backward, grad
clipping, fused AdamW (over the model and, when pruning, the scores), then ``handle.step()``. Variants are timed in
interleaved rounds on the same SST-2 batches (``--data``, else random tokens); a row gives the median step, the
ratio of medians to ``dense`` and the spread of the per-round ratios (min-max).

The pruned variants run in the middle of a cubic ramp to 10% (the remaining share falls at every step, as in the
study's ramp), with their scores drawn from N(0, 0.1) first (soft movement's from N(-0.5, 1): about 2% of
the sigmoid scores lie below tau there, so the threshold keeps more than the target and the cap sets the mask, as
in the study's ramp): scores all at their initial 0 would tie, and a real
run reaches the ramp after a warm-up of straight-through updates that has spread them.

    .venv/bin/python benchmarks/train_step.py                 # batch 32, max length 64, 2 threads
    .venv/bin/python benchmarks/train_step.py --steps 4 --rounds 2
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch
from distill_step import batches, step_timing_arguments, student_and_teacher
from transformers.utils import logging as hf_logging

from bermo_prune.allocator import retain_freed_memory
from bermo_prune.engine import prune
from bermo_prune.optim import make_optimizer
from bermo_prune.pruners import get_pruner
from bermo_prune.schedule import Cubic, Scheduler

#: name -> (freeze word embeddings, bf16 autocast, pruning: None, "warm" or "fresh")
VARIANTS = {
    "dense": (False, False, None),
    "dense, frozen word embeddings": (True, False, None),
    "dense, bf16 autocast": (False, True, None),
    "movement every step, warm top-k": (False, False, "warm"),
    "movement every step, fresh top-k": (False, False, "fresh"),
    "movement every step, warm, frozen emb.": (True, False, "warm"),
    "soft movement as the study runs it": (False, False, "soft"),
}


def build(freeze: bool, prune_with: str | None):
    torch.manual_seed(0)
    model, _, _, _ = student_and_teacher()
    model.train()
    if freeze:
        model.get_input_embeddings().weight.requires_grad_(False)
    if prune_with is None:
        return (
            model,
            None,
            make_optimizer([{"params": [p for p in model.parameters() if p.requires_grad]}], 3e-5),
        )
    if prune_with == "soft":  # the reference-pace study's soft movement: target control, tau ramping, the cap
        pruner = get_pruner(
            "soft_movement", target_control=True, final_threshold=0.1, lagrange_rho=1000.0, lagrange_lr=0.0
        )
    else:
        pruner = get_pruner("movement")
    if prune_with == "fresh":
        pruner.warm_topk = None
    scheduler = Scheduler(pruner, Cubic(1.0, 0.1, total=3157, warmup=0), update_every=1)
    handle = prune(model, scheduler)
    with torch.no_grad():
        # soft movement: the threshold keeps more than the target, so the cap sets the mask (as mid-ramp in the study)
        mean, std = (-0.5, 1.0) if prune_with == "soft" else (0.0, 0.1)
        handle.state.scores.normal_(mean, std, generator=torch.Generator().manual_seed(0))
    scheduler.step = 1000  # mid-ramp: about 0.34 remaining, falling every step
    handle.update_masks()
    groups = handle.param_groups(lr=3e-5, score_lr=1e-2)
    groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
    return model, handle, make_optimizer([g for g in groups if g["params"]], 3e-5)


def train_step(model, handle, opt, batch: dict, cast=None) -> float:
    """One step as the Trainer takes it (forward under ``cast``, loss + penalty, backward, clipping, AdamW, then
    ``handle.step()``); returns the seconds ``handle.step()`` took (0.0 for a dense model)."""
    with cast if cast is not None else contextlib.nullcontext():
        loss = model(**batch).loss
        if handle is not None:
            loss = loss + handle.penalty()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if handle is None:
        return 0.0
    t0 = time.perf_counter()
    handle.step()
    return time.perf_counter() - t0


def main() -> None:
    args = step_timing_arguments(__doc__, steps=6)
    retain_freed_memory()  # as bermo-prune's training processes do (BERMO_PRUNE_MALLOC=system: without)
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    _, _, tokenizer, name = student_and_teacher()
    data = [
        {k: v for k, v in b.items() if k != "index"}
        for b in batches(tokenizer, args.data, args.steps, args.batch, args.length)
    ]
    built = {key: build(freeze, how) for key, (freeze, _, how) in VARIANTS.items()}
    in_handle: dict[str, list[float]] = {k: [] for k in VARIANTS}  # handle.step(): schedule and masks

    def step(key, b) -> None:
        model, handle, opt = built[key]
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if VARIANTS[key][1] else None
        spent = train_step(model, handle, opt, b, cast)
        if handle is not None:
            in_handle[key].append(spent)

    for key in VARIANTS:
        for b in data[:2]:
            step(key, b)  # warm-up
    rounds: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for _ in range(args.rounds):
        for key in VARIANTS:
            t0 = time.perf_counter()
            for b in data:
                step(key, b)
            rounds[key].append((time.perf_counter() - t0) / len(data))
    base = statistics.median(rounds["dense"])
    print(
        f"torch {torch.__version__}, {args.threads} threads, {name}, batch {args.batch}, max length {args.length}"
    )
    print(f"{'variant':<40} {'ms/step':>8} {'ratio':>6}  {'per-round ratios':<16} {'of it: masks':>12}")
    for key, t in rounds.items():
        med = statistics.median(t)
        per_round = [a / d for a, d in zip(t, rounds["dense"], strict=True)]
        masks = f"{statistics.median(in_handle[key]) * 1000:>9.1f} ms" if in_handle[key] else ""
        print(
            f"{key:<40} {med * 1000:>8.1f} {med / base:>6.3f}  {min(per_round):.3f}-{max(per_round):<10.3f} {masks:>12}"
        )
    for key, (_, _, how) in VARIANTS.items():
        handle = built[key][1]
        if how in ("warm", "soft"):
            topk = handle.pruner.warm_topk
            print(
                f"{key}: {topk.fallbacks} fresh selections (first calls, ties) at {handle.value:.3f} remaining"
            )


if __name__ == "__main__":
    main()
