"""Sweep throughput on all-MiniLM-L6-v2: one worker with every core's threads against one worker per core.

A sweep on a small machine chooses how to split its cores: ``workers: 1`` gives one run all of them (torch
threads = cores), ``workers: N`` runs N runs side by side with cores // N threads each. Which finishes the sweep
sooner depends on how well one step's matrices use several threads. This script measures it side by side in one
run: the same total work, the same SST-2 batches, timed in interleaved rounds, per layout ``PxT`` (P processes of T
torch threads each). A round of a layout splits ``--steps`` batches among its P processes, starts them together
(after their models are built and warmed up, so start-up is not timed) and times until the last one finishes; the
ratio is the wall time of the first layout (the baseline) over each layout's: above 1, the layout finishes the same
work sooner.

The step is the reference-pace study's: fine-tuning with movement pruning, masks recomputed every step, in the
middle of a cubic ramp to 10% (``train_step.py``'s set-up: scores drawn from N(0, 0.1), warm top-k), or the dense
step (``--method dense``). Batches are the study's: the full SST-2 training set, truncated to 64 tokens, cut by the
training sampler (length buckets of 50 batches, seed 0), the first batches of its first epoch. Evaluation and
checkpoint writes, a few percent of a run, are not timed.

    .venv/bin/python benchmarks/sweep_throughput.py                        # 1x2 against 2x1, movement
    .venv/bin/python benchmarks/sweep_throughput.py --method dense --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from bermo_prune.allocator import retain_freed_memory
from bermo_prune.data.batching import BucketBatchSampler, Collator


def study_batches(data: Path, n: int, batch: int, length: int) -> list[dict]:
    """The first ``n`` batches of the study's first epoch: the training sampler's length buckets, seed 0."""
    from distill_step import student_and_teacher

    _, _, tokenizer, _ = student_and_teacher()
    with open(data / "train.tsv", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    enc = tokenizer([r[0] for r in rows], truncation=True, max_length=length)
    lengths = [len(ids) for ids in enc["input_ids"]]
    sampler = BucketBatchSampler(lengths, batch, bucket_factor=50, seed=0)
    collate = Collator(0)
    out = []
    for idx in sampler.batches()[:n]:
        out.append(collate([(enc["input_ids"][i], enc["token_type_ids"][i], int(rows[i][1])) for i in idx]))
    return out


def worker(method: str, threads: int, batches: list[dict], barrier, results) -> None:
    """Build, warm up on two batches, wait for the others, then time every batch given."""
    retain_freed_memory()  # as bermo-prune's training processes do
    torch.set_num_threads(threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from train_step import build, train_step

    model, handle, opt = build(False, "warm" if method == "movement" else None)
    for b in batches[:2]:
        train_step(model, handle, opt, b)
    barrier.wait()
    t0 = time.perf_counter()
    for b in batches:
        train_step(model, handle, opt, b)
    results.put(time.perf_counter() - t0)


def run_layout(ctx, method: str, procs: int, threads: int, batches: list[dict]) -> float:
    """Wall time, from the common start to the last process's end, of ``batches`` split among ``procs``."""
    share = len(batches) // procs
    barrier, results = ctx.Barrier(procs + 1), ctx.Queue()
    ps = [
        ctx.Process(
            target=worker, args=(method, threads, batches[i * share : (i + 1) * share], barrier, results)
        )
        for i in range(procs)
    ]
    for p in ps:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    times = [results.get() for _ in ps]
    wall = time.perf_counter() - t0
    for p in ps:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a worker of layout {procs}x{threads} failed (exit code {p.exitcode})")
    return max(wall, *times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--layouts", nargs="+", default=["1x2", "2x1"], help="PxT: P processes of T threads (first: base)"
    )
    ap.add_argument("--method", choices=["movement", "dense"], default="movement")
    ap.add_argument(
        "--steps", type=int, default=24, help="timed steps per layout per round, split among its processes"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/sst2"))
    args = ap.parse_args()
    layouts = []
    for text in args.layouts:
        p, _, t = text.partition("x")
        if not (p.isdigit() and t.isdigit() and int(p) > 0 and int(t) > 0):
            raise SystemExit(f"--layouts: {text!r} is not PxT (for example 2x1)")
        if args.steps % int(p):
            raise SystemExit(f"--steps {args.steps} does not split evenly among {p} processes")
        layouts.append((int(p), int(t)))
    hf_logging.disable_progress_bar()
    if not (args.data / "train.tsv").is_file():
        raise SystemExit(f"--data: no train.tsv in {args.data}")
    hf_logging.set_verbosity_error()
    batches = study_batches(args.data, args.steps + 2 * max(p for p, _ in layouts), args.batch, args.length)
    timed = batches[: args.steps]
    ctx = mp.get_context("spawn")
    walls: dict[tuple[int, int], list[float]] = {lay: [] for lay in layouts}
    for _ in range(args.rounds):
        for lay in layouts:
            walls[lay].append(run_layout(ctx, args.method, *lay, timed))
    tokens = sum(int(b["attention_mask"].sum()) for b in timed)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.method} step, {args.steps} SST-2 batches of "
        f"{args.batch} (<= {args.length} tokens, {tokens / args.steps / args.batch:.1f} real tokens a sentence), "
        f"{args.rounds} interleaved rounds"
    )
    base = statistics.median(walls[layouts[0]])
    print(
        f"{'layout':<8} {'wall s':>8} {'s/step':>8} {'throughput vs ' + args.layouts[0]:>18}  per-round ratios"
    )
    for lay, w in walls.items():
        med = statistics.median(w)
        per_round = [b / x for b, x in zip(walls[layouts[0]], w, strict=True)]
        print(
            f"{lay[0]}x{lay[1]:<6} {med:>8.2f} {med / args.steps:>8.3f} {base / med:>18.3f}  "
            f"{min(per_round):.3f}-{max(per_round):.3f}"
        )


if __name__ == "__main__":
    main()
