"""``bermo-prune bench SPEC.yaml``: a grid of runs (models x methods x targets x seeds) from one base recipe.

    base: ../../recipes/sst2_movement.yaml     # relative to the spec file
    overrides: [data.path=../shared/data/sst2, train.max_steps=600]
    tasks: [sst2]                              # optional: one grid per task (task=... override)
    models: [bert, bermo]
    methods:
      none: {}                                 # the dense baseline (one run per model and seed)
      movement: {targets: [0.5, 0.2, 0.1, 0.05]}            # remaining fractions (pruning.schedule.final)
      soft_movement:                           # a method's own overrides come before its target
        targets: [10, 50]
        key: pruning.options.final_lambda
        overrides: [pruning.schedule.initial=0, pruning.schedule.final=0.1]
    seeds: [0, 1, 2]
    workers: auto                              # parallel runs; torch threads = cores // workers each
    output_dir: runs/bench                     # relative to the working directory

Each run has its own directory under ``OUTPUT/runs/``. A finished run (its ``summary.json`` exists) is skipped, a
half-finished one resumes from its checkpoint, and a failed or diverged run is recorded in the results, never
dropped. ``OUTPUT/results.jsonl`` holds one row per run.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from ..errors import RecipeError
from ..pruners import available_pruners
from ..recipe import NO_PRUNING, load_recipe, read_yaml

SPEC_KEYS = ("base", "overrides", "tasks", "models", "methods", "seeds", "workers", "output_dir")
RESULTS = "results.jsonl"
SWEEP_LOG = "sweep.json"


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    model: str
    method: str
    target: float | None
    seed: int
    key: str | None  # the recipe key the target sets
    task: str | None = None  # None: the base recipe's task
    extra: tuple[str, ...] = ()  # the method's own overrides (e.g. a threshold schedule for soft movement)

    @property
    def name(self) -> str:
        target = "dense" if self.target is None else f"{self.target:g}"
        prefix = f"{self.task}_" if self.task else ""
        return f"{prefix}{self.model}_{self.method}_{target}_s{self.seed}"

    def overrides(self) -> list[str]:
        out = [f"model.arch={self.model}", f"pruning.method={self.method}", f"seed={self.seed}"]
        if self.task:
            out.append(f"task={self.task}")
        out += self.extra
        if self.target is not None:
            out.append(f"{self.key}={self.target}")
        return out


@dataclass
class Spec:
    source: str
    base: Path
    overrides: list[str]
    cells: list[Cell]
    workers: int
    output_dir: Path


def load_spec(path: str | Path) -> Spec:
    """Read and validate a sweep spec; every cell's recipe is validated too (all problems at once)."""
    source = str(path)
    raw = read_yaml(path)
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise RecipeError(source, ["expected a mapping with base, models, methods and seeds"])
    for key in raw:
        if key not in SPEC_KEYS:
            problems.append(f"{key}: unknown key; valid: {', '.join(SPEC_KEYS)}")
    base = raw.get("base")
    if not isinstance(base, str):
        problems.append("base: required: the recipe every run starts from")
        base_path = Path()
    else:
        base_path = (Path(path).parent / base).resolve()
        if not base_path.is_file():
            problems.append(f"base: {base_path}: no such recipe")
    overrides = raw.get("overrides") or []
    models = raw.get("models") or []
    methods = raw.get("methods") or {}
    seeds = raw.get("seeds") or []
    tasks = raw.get("tasks") or [None]
    if not isinstance(tasks, list) or not all(t is None or isinstance(t, str) for t in tasks):
        problems.append(f"tasks: expected a list of task names, got {tasks!r}")
        tasks = [None]
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        problems.append("overrides: expected a list of key=value strings")
        overrides = []
    if not models or any(m not in ("bert", "bermo") for m in models):
        problems.append(f"models: expected a list of bert and/or bermo, got {models!r}")
    if not isinstance(methods, dict) or not methods:
        problems.append("methods: expected a mapping of method -> {targets: [...]}")
        methods = {}
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        problems.append(f"seeds: expected a list of non-negative integers, got {seeds!r}")
    cells: list[Cell] = []
    for method, conf in methods.items():
        conf = conf or {}
        if method != NO_PRUNING and method not in available_pruners():
            problems.append(f"methods.{method}: unknown method; use none, {', '.join(available_pruners())}")
            continue
        targets = conf.get("targets") if isinstance(conf, dict) else None
        key = conf.get("key", "pruning.schedule.final") if isinstance(conf, dict) else None
        extra = conf.get("overrides", []) if isinstance(conf, dict) else []
        if not isinstance(extra, list) or not all(isinstance(o, str) for o in extra):
            problems.append(f"methods.{method}.overrides: expected a list of key=value strings")
            continue
        if method == NO_PRUNING:
            targets = [None]
        elif (
            not isinstance(targets, list)
            or not targets
            or not all(isinstance(t, int | float) for t in targets)
        ):
            problems.append(f"methods.{method}.targets: expected a list of numbers")
            continue
        for task in tasks:
            for model in models:
                for target in targets:
                    for seed in seeds:
                        value = None if target is None else float(target)
                        cells.append(Cell(model, method, value, seed, key, task, tuple(extra)))
    workers = raw.get("workers", "auto")
    cores = os.cpu_count() or 1
    if workers == "auto":
        workers = max(1, cores // 2)
    if not isinstance(workers, int) or workers < 1:
        problems.append(f"workers: expected a positive integer or auto, got {workers!r}")
        workers = 1
    if problems:
        raise RecipeError(source, problems)
    for cell in cells:  # every run's recipe must validate before anything starts
        try:
            load_recipe(base_path, [*overrides, *cell.overrides()])
        except RecipeError as exc:
            problems += [f"{cell.name}: {p}" for p in exc.problems]
    if problems:
        raise RecipeError(source, problems)
    output = Path(raw.get("output_dir") or Path("runs") / Path(path).stem)
    return Spec(source, base_path, overrides, cells, workers, output)


def _run_cell(base: str, overrides: list[str], out: str, threads: int) -> dict:
    """One run in a worker process; returns a results row (never raises)."""
    import torch

    from ..runner import SUMMARY, run_recipe

    torch.set_num_threads(threads)
    out_path = Path(out)
    try:
        recipe = load_recipe(base, [*overrides, f"train.threads={threads}"])
        # Finished: skipped; checkpointed: resumed; anything else (never started, killed before a checkpoint):
        # started again.
        keep = (out_path / SUMMARY).is_file() or (out_path / "checkpoint" / "state.pt").is_file()
        result = run_recipe(recipe, out_path, resume=keep, overwrite=not keep, progress=False)
        return {"status": "ok", "summary": result.summary, "skipped": result.skipped}
    except Exception as exc:  # a failed run is a result too
        return {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc()[-2000:],
        }


def _row(cell: Cell, outcome: dict) -> dict:
    row = {
        "run": cell.name,
        "model": cell.model,
        "method": cell.method,
        "target": cell.target,
        "target_key": cell.key if cell.target is not None else None,
        "seed": cell.seed,
        "status": outcome["status"],
    }
    if outcome["status"] != "ok":
        return {**row, "error": outcome["error"]}
    s = outcome["summary"]
    main = s["main_metric"]
    div = s["divergence"]
    return {
        **row,
        "status": "diverged-stopped" if div["stopped"] else "ok",
        "remaining": s["remaining"],
        "metric": main,
        "final": s["final"][main],
        "best": s["best"][main],
        "diverged": div["diverged"],
        "divergence_kind": div["first_kind"],
        "divergence_step": div["first_step"],
        "steps": s["steps"],
        "curve": [[h["step"], h["eval"][main]] for h in s["history"]],
        "mix": s.get("mix"),
        "wall_time_s": s["wall_time_s"],
    }


def record_sitting(spec: Spec, started: float, finished: float, ran: int, skipped: int, threads: int) -> dict:
    """Append one sitting (one ``bench`` invocation) to ``OUTPUT/sweep.json``: the spec it ran (path and text),
    start and end times, workers and threads, runs finished in it and runs skipped as already finished. ``elapsed_s`` sums the sittings: the sweep's
    wall-clock time however many times it was resumed."""
    path = spec.output_dir / SWEEP_LOG
    meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"sittings": []}
    meta["spec"] = spec.source
    meta["spec_text"] = Path(spec.source).read_text(encoding="utf-8")
    meta["output_dir"] = str(spec.output_dir)
    stamp = "%Y-%m-%dT%H:%M:%S%z"
    meta["sittings"].append(
        {
            "started": time.strftime(stamp, time.localtime(started)),
            "finished": time.strftime(stamp, time.localtime(finished)),
            "elapsed_s": round(finished - started, 1),
            "workers": spec.workers,
            "threads_per_worker": threads,
            "ran": ran,
            "skipped": skipped,
        }
    )
    meta["elapsed_s"] = round(sum(s["elapsed_s"] for s in meta["sittings"]), 1)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return meta


def run_sweep(spec: Spec, log=print) -> list[dict]:
    """Run (or resume) every cell; returns and writes the results rows in grid order, and records the sitting
    in ``sweep.json``."""
    started = time.time()
    runs = spec.output_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    threads = max(1, cores // spec.workers)
    jobs = [(c, str(spec.base), spec.overrides + c.overrides(), str(runs / c.name)) for c in spec.cells]
    rows: dict[str, dict] = {}
    skipped = 0
    try:
        with ProcessPoolExecutor(max_workers=spec.workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_run_cell, base, ov, out, threads): cell for cell, base, ov, out in jobs}
            for fut in futures:
                cell = futures[fut]
                outcome = fut.result()
                rows[cell.name] = _row(cell, outcome)
                skipped += bool(outcome.get("skipped"))
                state = "skipped (finished)" if outcome.get("skipped") else rows[cell.name]["status"]
                log(f"{cell.name}: {state}")
    finally:  # an interrupted sitting still counts towards the sweep's time
        record_sitting(spec, started, time.time(), len(rows) - skipped, skipped, threads)
    ordered = [rows[c.name] for c in spec.cells]
    tmp = spec.output_dir / (RESULTS + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in ordered), encoding="utf-8")
    os.replace(tmp, spec.output_dir / RESULTS)
    return ordered
