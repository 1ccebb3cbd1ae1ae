"""Where a pruned training step spends its time: phase times and the top operators, next to the dense step.

The companion of ``overhead.py`` (which gives the ratios): the same 4-layer BERT, batch, length, ramp position and
fused AdamW, but each step is cut into phases timed separately, in interleaved rounds (medians over rounds):

- ``forward``: the model's forward, the pruner's per-forward work included (gate sampling, masked weights);
- ``penalty``: ``handle.penalty()`` (penalty methods only);
- ``backward``: ``loss.backward()``;
- ``optimizer``: the fused AdamW step over weights and scores, and ``zero_grad``;
- ``prune step``: ``handle.step()`` (the schedule, and the masks when they are recomputed).

``--ops`` adds a ``torch.profiler`` table per variant: the operators with the largest self CPU time over a few
steps, so the cost of a phase can be traced to its kernels.

``--malloc`` picks the allocator setting: ``retain`` (what bermo-prune's training processes do,
:mod:`bermo_prune.allocator`), ``system`` (glibc as it starts), or ``both``: each round runs once under each setting,
in two fresh processes one after the other, the first setting alternating (malloc settings cannot be undone inside a
process); the tables give both, their step ratio and each setting's peak resident memory.

    .venv/bin/python benchmarks/step_profile.py --hidden 512 --methods l0 soft_movement movement
    .venv/bin/python benchmarks/step_profile.py --hidden 512 --methods l0 --ops 12
    .venv/bin/python benchmarks/step_profile.py --hidden 512 --malloc both
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bermo_prune.allocator import ENV, retain_freed_memory

sys.path.insert(0, str(Path(__file__).parent))
from overhead import build  # noqa: E402  (the same model, ramp position and optimizer as the ratios)

PHASES = ("forward", "penalty", "backward", "optimizer", "prune step")


def timed_step(model, handle, opt, x, y) -> list[float]:
    """One training step; the time of each phase in seconds."""
    t = [time.perf_counter()]
    loss = model(input_ids=x, labels=y).loss
    t.append(time.perf_counter())
    if handle is not None:
        loss = loss + handle.penalty()
    t.append(time.perf_counter())
    loss.backward()
    t.append(time.perf_counter())
    opt.step()
    opt.zero_grad(set_to_none=True)
    t.append(time.perf_counter())
    if handle is not None:
        handle.step()
    t.append(time.perf_counter())
    return [b - a for a, b in zip(t, t[1:], strict=False)]


def measure(args) -> dict[str, list[list[float]]]:
    """variant name -> one list of phase means (seconds) per round, in interleaved rounds."""
    variants = [None] + [(m, args.granularity, args.every, False) for m in args.methods]
    names = ["dense"] + args.methods
    models = [build(args.hidden, v, 3157) for v in variants]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(5, 8000, (args.batch, args.length), generator=g)
    y = torch.randint(0, 2, (args.batch,), generator=g)
    per: dict[str, list[list[float]]] = {n: [] for n in names}
    for _r in range(args.rounds):
        for name, (model, handle, opt) in zip(names, models, strict=True):
            for _ in range(2):
                timed_step(model, handle, opt, x, y)
            steps = [timed_step(model, handle, opt, x, y) for _ in range(args.steps)]
            per[name].append([statistics.fmean(s[p] for s in steps) for p in range(len(PHASES))])
    if args.ops:
        from torch.profiler import ProfilerActivity, profile

        for name, (model, handle, opt) in zip(names, models, strict=True):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(args.steps):
                    timed_step(model, handle, opt, x, y)
            print(f"\n{name}: top operators by self CPU time over {args.steps} steps")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops))
    return per


def table(per: dict[str, list[list[float]]]) -> dict[str, float]:
    """Print one row per variant (median phase times over rounds, ms); return each variant's median step."""
    print(f"{'variant':<14}" + "".join(f"{p:>12}" for p in PHASES) + f"{'step':>10}{'ratio':>8}")
    totals = {}
    for name, rounds in per.items():
        med = [statistics.median(r[p] for r in rounds) * 1000 for p in range(len(PHASES))]
        totals[name] = statistics.median(sum(r) for r in rounds) * 1000
        print(
            f"{name:<14}"
            + "".join(f"{m:>12.1f}" for m in med)
            + f"{totals[name]:>10.1f}{totals[name] / totals['dense']:>8.3f}"
        )
    return totals


def both(args, argv: list[str]) -> None:
    """Each round once under each malloc setting, in fresh processes; both tables and the step ratios."""
    per = {"system": {}, "retain": {}}
    peak = {"system": [], "retain": []}
    for r in range(args.rounds):
        for mode in list(per)[:: 1 if r % 2 == 0 else -1]:  # alternate which setting goes first
            cmd = [sys.executable, __file__, *argv, "--malloc", mode, "--rounds", "1", "--json"]
            env = {**os.environ, ENV: "system" if mode == "system" else ""}
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            child = json.loads(out.splitlines()[-1])
            peak[mode].append(child["peak_rss_mb"])
            for name, rounds in child["per"].items():
                per[mode].setdefault(name, []).extend(rounds)
    totals = {}
    for mode, label in (
        ("system", "glibc as it starts"),
        ("retain", "freed memory retained (bermo-prune's training processes)"),
    ):
        print(
            f"\nmalloc: {label}; peak resident memory {statistics.median(peak[mode]):.0f} MB (median over processes)"
        )
        totals[mode] = table(per[mode])
    print("\nstep time, retained / system (median over rounds; per-round range):")
    for name in per["system"]:
        ratios = [sum(a) / sum(b) for a, b in zip(per["retain"][name], per["system"][name], strict=True)]
        print(
            f"{name:<14}{totals['retain'][name] / totals['system'][name]:>8.3f}"
            f"  ({min(ratios):.3f}-{max(ratios):.3f})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--methods", nargs="+", default=["movement", "soft_movement", "l0", "magnitude"])
    ap.add_argument("--granularity", default="weight")
    ap.add_argument("--every", type=int, default=10, help="update_every (default: 10)")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument(
        "--ops", type=int, default=0, help="also print the N operators with the most self CPU time"
    )
    ap.add_argument("--malloc", choices=("retain", "system", "both"), default="retain")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a child of --malloc both
    argv = sys.argv[1:]
    args = ap.parse_args(argv)
    if args.malloc == "both":
        return both(args, [a for a in argv if a not in ("--malloc", "both")])
    if args.malloc == "retain":
        retain_freed_memory()
    torch.set_num_threads(args.threads)
    per = measure(args)
    if args.json:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(json.dumps({"per": per, "peak_rss_mb": peak}))
        return None
    print(
        f"torch {torch.__version__}, {args.threads} threads; 4-layer hidden-{args.hidden} BERT, batch {args.batch}, "
        f"length {args.length}, {args.granularity} granularity, update_every {args.every}; malloc {args.malloc}; "
        f"medians over {args.rounds} rounds of {args.steps} steps, ms"
    )
    table(per)
    return None


if __name__ == "__main__":
    main()
