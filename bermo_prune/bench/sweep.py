"""``bermo-prune bench SPEC.yaml``: a grid of runs (models x methods x targets x seeds) from one base recipe.

    base: ../../recipes/sst2_movement.yaml     # relative to the spec file
    overrides: [data.path=../shared/data/sst2, train.max_steps=600]
    tasks: [sst2]                              # optional: one grid per task (task=... override)
    models: [bert, bermo, bermo_last]          # named variants (MODEL_VARIANTS), or a mapping of your own:
    #   models: {bert: {}, bermo: {}, bermo_ln: {arch: bermo, overrides: [model.mix_layer_norm=true]}}
    methods:
      none: {}                                 # the dense baseline (one run per model and seed)
      movement: {targets: [0.5, 0.2, 0.1, 0.05]}            # remaining fractions (pruning.schedule.final)
      soft_movement:                           # a method's own overrides come before its target
        targets: [10, 50]
        key: pruning.options.final_lambda
        overrides: [pruning.schedule.initial=0, pruning.schedule.final=0.1]
      movement_kd:                             # a label: another series of the same method
        method: movement
        targets: [0.1]
        distill: true                          # teacher: the dense (none) run of the same task, model and seed
        seeds: [0, 1]                          # a series' own seeds (default: the spec's)
    seeds: [0, 1, 2]
    order: seed                                # or series: every seed of the first series before the next series
    primary: movement                          # optional: the one series the report's claim-1 test reads
    workers: auto                              # parallel runs; torch threads = cores // workers each
    output_dir: runs/bench                     # relative to the working directory

Each run has its own directory under ``OUTPUT/runs/``; ``OUTPUT/results.jsonl`` holds one row per finished run in
grid order and is rewritten (atomically) each time a run finishes, and ``OUTPUT/sweep.json`` logs each sitting as it
goes, so a sweep can be stopped at any time and both files committed. A run with a row in ``results.jsonl`` (other
than ``failed``) or a ``summary.json`` is skipped: a sweep resumes on a fresh machine from the committed results
alone (delete a row to redo that run). A half-finished run resumes from its checkpoint; a failed or diverged run is
recorded, never dropped. Runs go seed by seed (every cell of the first seed first), so a partial sweep covers the
whole grid at one seed before adding seeds; with ``order: series`` they go series by series (every seed of the first
series in ``methods``, seed by seed, then the next), so a study's primary series is complete first; the order
changes no run. Distilled runs go last, after their teachers, and a teacher known only
from ``results.jsonl`` is run again first (its model directory is needed; same seed, same model). ``bench --cells
PATTERN`` runs only the cells whose names match (shell-style patterns, e.g. ``'*_movement_0.1_s5'``) and the teachers
they need, in the same order; the others wait for a later sitting, and the sitting's entry in ``sweep.json`` records
the runs they chose. ``bench --cells PATTERN --retrain`` trains again the finished cells it names whose run directory
holds no model (a fresh machine, where a later study, such as probing, needs the model): their rows in
``results.jsonl`` stay as recorded, and each new run's row goes to ``OUTPUT/retrained.jsonl`` with how far it lies
from the recorded one (same seed; equal where the machine and the code give the same arithmetic).

Length (about 680 lines): the spec and its validation, the grid, the plan and the results/sitting records of one
resumable sweep; where runs execute is :mod:`.backends`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, RecipeError
from ..fields import build, check_sections, schema, section_map
from ..fields import key as spec_key
from ..pruners import available_pruners
from ..recipe import NO_PRUNING, load_recipe, read_yaml
from ..rundir import atomic_write
from ..signals import StopSignals
from ..train_config import refuse_unusable_precision
from .backends import make_backend

ARCHS = ("bert", "bermo")
#: the model arms a spec can name without defining them: label -> (model.arch, the arm's own overrides)
MODEL_VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bert": ("bert", ()),
    "bermo": ("bermo", ()),
    # the layer-routing control: BERMo's mix fixed one-hot on the last layer, gamma trained (BERT's information
    # path with BERMo's head scale)
    "bermo_last": ("bermo", ("model.mix_init=last",)),
}


@dataclass
class SeriesConfig:
    """One entry of a spec's ``methods``: a series of runs of one method."""

    targets: list[float] | None = spec_key(None, kind="list_float", min_items=1)  # the values ``key`` takes
    key: str = spec_key("pruning.schedule.final")  # the recipe key a target sets
    overrides: list[str] | None = spec_key(None)  # the series' own overrides, before its target
    method: str | None = spec_key(None)  # the method a labelled series runs (default: its label)
    distill: bool = spec_key(False)  # teacher: the dense run of the same task, model and seed
    seeds: list[int] | None = spec_key(None, kind="list_int", min=0, min_items=1)  # default: the spec's


@dataclass
class ArmConfig:
    """One entry of a spec's ``models`` mapping: a model arm (a named variant's label may map to nothing)."""

    arch: str | None = spec_key(None, choices=ARCHS)
    overrides: list[str] | None = spec_key(None)


#: ``order`` values: ``seed`` (every cell of the first seed first) or ``series`` (every seed of the first series first)
ORDERS = ("seed", "series")


@dataclass
class SpecConfig:
    """A sweep spec's keys (see the module doc)."""

    base: str = spec_key(None, required=True)  # the recipe every run starts from, relative to the spec
    overrides: list[str] | None = spec_key(None)
    tasks: list[str] | None = spec_key(None, min_items=1)
    models: dict[str, ArmConfig] = section_map(ArmConfig, names=tuple(MODEL_VARIANTS), required=True)
    methods: dict[str, SeriesConfig] = section_map(SeriesConfig, required=True)
    seeds: list[int] = spec_key(None, kind="list_int", min=0, min_items=1, required=True)
    workers: int | str = spec_key("auto", kind="int_or_name", choices=("auto",), min=1)
    output_dir: str | None = spec_key(None)  # relative to the working directory
    # the order runs go in: seed by seed over the whole grid, or series by series (each seed by seed)
    order: str = spec_key("seed", choices=ORDERS)
    # the series claim 1's test reads, fixed before the results (None: every undistilled series pooled)
    primary: str | None = spec_key(None)


#: the checker's table of a spec
SPEC_SCHEMA = schema(SpecConfig)


RESULTS = "results.jsonl"
SWEEP_LOG = "sweep.json"
RETRAINED = (
    "retrained.jsonl"  # bench --retrain: finished cells trained again for their models, one row per run
)
#: the statuses of a run that leaves its trained model in its run directory
MODEL_STATUSES = ("ok", "diverged-stopped")


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
    label: str | None = None  # the spec's name for this series when it differs from the method (movement_kd)
    teacher: str | None = None  # name of the cell whose model this one distills from
    arch: str | None = None  # model.arch of the arm (None: the arm's label is the arch)
    model_extra: tuple[str, ...] = ()  # the arm's own overrides (e.g. model.mix_init=last)

    @property
    def series(self) -> str:
        """The name results and the report group this run under."""
        return self.label or self.method

    @property
    def name(self) -> str:
        target = "dense" if self.target is None else f"{self.target:g}"
        prefix = f"{self.task}_" if self.task else ""
        return f"{prefix}{self.model}_{self.series}_{target}_s{self.seed}"

    def overrides(self) -> list[str]:
        out = [f"model.arch={self.arch or self.model}", *self.model_extra]
        out += [f"pruning.method={self.method}", f"seed={self.seed}"]
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
    order: str = "seed"
    primary: str | None = None


def load_spec(path: str | Path) -> Spec:
    """Read and validate a sweep spec; every cell's recipe is validated too (all problems at once)."""
    source = str(path)
    problems: list[str] = []
    values, _ = check_sections(read_yaml(path), source, None, SPEC_SCHEMA, problems)
    checked = list(problems)  # a series or arm whose own keys failed the checker gets no further rules
    conf = build(SpecConfig, values)
    base_path = Path()
    if conf.base is not None:
        base_path = (Path(path).parent / conf.base).resolve()
        if not base_path.is_file():
            problems.append(f"base: {base_path}: no such recipe")
    arms = _model_arms(conf.models or {}, problems, checked)
    output = Path(conf.output_dir or Path("runs") / Path(path).stem)
    seeds = conf.seeds or []
    methods = conf.methods or {}
    cells: list[Cell] = []
    for label, series in methods.items():
        if _flagged(checked, f"methods.{label}"):
            continue
        method = series.method or label
        if method != NO_PRUNING and method not in available_pruners():
            problems.append(f"methods.{label}: unknown method; use none, {', '.join(available_pruners())}")
            continue
        if label != method and (label == NO_PRUNING or label in available_pruners()):
            problems.append(f"methods.{label}.method: a label that names a method must run that method")
            continue
        if series.distill and (label == NO_PRUNING or NO_PRUNING not in methods):
            problems.append(
                f"methods.{label}.distill: the teacher is the dense run of the same model and seed: "
                "add `none: {}` to methods"
            )
            continue
        own_seeds = series.seeds or seeds
        dense = methods.get(NO_PRUNING)
        dense_seeds = (dense.seeds if dense is not None else None) or seeds
        if series.distill and not set(own_seeds) <= set(dense_seeds):
            problems.append(
                f"methods.{label}.seeds: a distilled series needs the dense run of each of its seeds "
                f"(dense seeds: {dense_seeds!r})"
            )
            continue
        if method == NO_PRUNING:
            targets: list[float | None] = [None]
        elif not series.targets:
            problems.append(f"methods.{label}.targets: required: the values of {series.key}")
            continue
        else:
            targets = list(series.targets)
        label_or_none = label if label != method else None
        for task in conf.tasks or [None]:
            for model, (arch, model_extra) in arms.items():
                for target in targets:
                    for seed in own_seeds:
                        teacher = (
                            Cell(model, NO_PRUNING, None, seed, None, task).name if series.distill else None
                        )
                        own = [*(series.overrides or [])]
                        if teacher:
                            own.append(f"distill.teacher={output / 'runs' / teacher}")
                        cells.append(
                            Cell(
                                model,
                                method,
                                target,
                                seed,
                                series.key,
                                task,
                                tuple(own),
                                label_or_none,
                                teacher,
                                None if arch == model else arch,
                                model_extra,
                            )
                        )
    workers = max(1, (os.cpu_count() or 1) // 2) if conf.workers == "auto" else conf.workers
    if conf.primary is not None and not _flagged(problems, "primary"):
        pruning = [
            label
            for label, series in (conf.methods or {}).items()
            if not (series and series.distill) and ((series and series.method) or label) != NO_PRUNING
        ]
        if conf.primary not in pruning:
            problems.append(
                f"primary: {conf.primary} is not an undistilled pruning series of methods; use one of "
                f"{', '.join(pruning) or 'none (there is no such series)'}"
            )
    if problems:
        raise RecipeError(source, problems)
    overrides = conf.overrides or []
    for cell in cells:  # every run's recipe must validate before anything starts
        try:
            load_recipe(base_path, [*overrides, *cell.overrides()])
        except RecipeError as exc:
            problems += [f"{cell.name}: {p}" for p in exc.problems]
    if problems:
        raise RecipeError(source, problems)
    return Spec(source, base_path, overrides, cells, workers, output, conf.order, conf.primary)


def _flagged(problems: list[str], path: str) -> bool:
    """Whether a problem names ``path`` or a key under it."""
    return any(p.startswith((f"{path}:", f"{path}.")) for p in problems)


def _model_arms(
    models: dict[str, ArmConfig], problems: list[str], checked: list[str]
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The spec's model arms: label -> (model.arch, the arm's own overrides). A named variant
    (:data:`MODEL_VARIANTS`) brings its own; a label of your own must give its arch. An arm with a problem in
    ``checked`` (the checker's) is left out."""
    arms = {}
    for label, arm in models.items():
        if _flagged(checked, f"models.{label}"):
            continue
        known = MODEL_VARIANTS.get(label)
        arch = arm.arch or (known[0] if known else None)
        if arch is None:
            problems.append(
                f"models.{label}: not a named variant ({', '.join(MODEL_VARIANTS)}): give its arch"
            )
            continue
        extra = (
            arm.overrides if arm.overrides is not None else (known[1] if known and arm.arch is None else ())
        )
        bad = [o for o in extra if "=" not in o]
        if bad:
            problems.append(f"models.{label}.overrides: expected key=value strings, got {bad[0]!r}")
            continue
        arms[label] = (arch, tuple(extra))
    return arms


def _run_cell(base: str, overrides: list[str], out: str, threads: int) -> dict:
    """One run in a worker process; returns a results row (never raises)."""
    # here for start-up time: validating a spec (`validate`, the parent of the workers) imports no training code
    import torch

    from ..errors import RunInterrupted
    from ..predict import split_predictions
    from ..rundir import SUMMARY, has_checkpoint
    from ..runner import run_recipe
    from .backends import request_stop, stop_requested

    if stop_requested():  # the sweep is stopping: a cell handed to this worker afterwards does not start
        return {"status": "interrupted", "error": "not started: the sweep was stopped"}
    torch.set_num_threads(threads)
    out_path = Path(out)
    try:
        recipe = load_recipe(base, [*overrides, f"train.threads={threads}"])
        # Finished: skipped; checkpointed: resumed; anything else (never started, killed before a checkpoint):
        # started again.
        keep = (out_path / SUMMARY).is_file() or has_checkpoint(out_path)
        result = run_recipe(recipe, out_path, resume=keep, overwrite=not keep, progress=False)
        outcome = {"status": "ok", "summary": result.summary, "skipped": result.skipped}
    except RunInterrupted as exc:  # not a result: the run resumes from its checkpoint in the next sitting
        request_stop()  # the run's own handler took the signal: no further cell starts in this worker
        return {"status": "interrupted", "error": str(exc)}
    except Exception as exc:  # a failed run is a result too
        return {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc()[-2000:],
        }
    # the finished run's dev predictions: a failure here leaves the run's result as it is and says why
    try:
        if _keeps_predictions(recipe.task):
            outcome["dev_predictions"] = split_predictions(out_path)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded in the row, the run stays ok
        outcome["dev_predictions_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return outcome


def _keeps_predictions(task: str) -> bool:
    """Whether a row keeps its model's dev predictions: classification tasks (class ids of one digit)."""
    from ..data import get_task

    spec = get_task(task)
    return not spec.is_regression and spec.num_labels <= 10


def _row(cell: Cell, outcome: dict) -> dict:
    row = {
        "run": cell.name,
        "model": cell.model,
        **({"arch": cell.arch, "model_overrides": list(cell.model_extra)} if cell.arch else {}),
        "method": cell.series,
        "pruning_method": cell.method,
        "teacher": cell.teacher,
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
        # a run ended by train.stop_after: where, and where its schedules end (absent for runs that ran to the end)
        **(
            {"stopped_after": s["steps"], "planned_steps": s["planned_steps"]}
            if s.get("planned_steps") and s["steps"] < s["planned_steps"] and not div["stopped"]
            else {}
        ),
        "curve": [[h["step"], h["eval"][main]] for h in s["history"]],
        "mix": s.get("mix"),
        "wall_time_s": s["wall_time_s"],
        # where it finished: device and library versions (absent from older rows)
        **({"environment": s["environment"]} if s.get("environment") else {}),
        **_fine_fields(s),
        # the final model's predicted class of every dev example, in the dev file's order (one digit each): the
        # report pairs runs with the bag-of-words baseline on the same examples (absent from older rows)
        **({"dev_predictions": outcome["dev_predictions"]} if outcome.get("dev_predictions") else {}),
        **(
            {"dev_predictions_error": outcome["dev_predictions_error"]}
            if "dev_predictions_error" in outcome
            else {}
        ),
    }


def _fine_fields(summary: dict) -> dict:
    """A run with ``train.early_eval`` (:mod:`bermo_prune.early_eval`): its curve on the fixed dev subset, what
    identifies the subset, and its training loss at every step. Nothing for other runs (their rows stay as they
    were)."""
    early = summary.get("early_eval")
    if not early:
        return {}
    fine = {k: v for k, v in early.items() if k not in ("indices", "curve")}
    return {"fine_curve": early["curve"], "fine_eval": fine, "train_loss": summary.get("train_loss")}


class SweepLog:
    """``OUTPUT/sweep.json``: the spec (path and text) and one entry per sitting (one ``bench`` invocation): start
    and latest time, workers and threads, the device, runs finished in it and runs skipped as already finished.
    The sitting's entry is rewritten after every run and when the sitting ends (stopped by a signal too, so its time
    includes the runs it cut off, which resume from their checkpoints); a killed sitting is logged up to its last
    finished run. A sitting limited by ``bench --cells`` lists the runs it was limited to.
    ``elapsed_s`` sums the sittings: the sweep's wall-clock time however many times it was resumed."""

    STAMP = "%Y-%m-%dT%H:%M:%S%z"

    def __init__(self, spec: Spec, threads: int, device: str, only: set[str] | None = None):
        self.path = spec.output_dir / SWEEP_LOG
        self.meta = (
            json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {"sittings": []}
        )
        self.meta["spec"] = spec.source
        self.meta["spec_text"] = Path(spec.source).read_text(encoding="utf-8")
        self.meta["output_dir"] = str(spec.output_dir)
        # the runs the spec plans (the report's completeness)
        self.meta["cells"] = [c.name for c in spec.cells]
        self.meta.pop("primary", None)
        if spec.primary:
            self.meta["primary"] = spec.primary  # claim 1's series (bench/verdicts.py reads it from here)
        self.started = time.time()
        self.sitting = {
            "started": time.strftime(self.STAMP, time.localtime(self.started)),
            "workers": spec.workers,
            "threads_per_worker": threads,
            "device": device,
            "ran": 0,
            "skipped": 0,
        }
        if only is not None:  # bench --cells: the runs this sitting was limited to, in grid order
            self.sitting["cells"] = [c.name for c in spec.cells if c.name in only]
        self.meta["sittings"].append(self.sitting)

    def update(self, ran: int, skipped: int) -> dict:
        now = time.time()
        self.sitting.update(
            finished=time.strftime(self.STAMP, time.localtime(now)),
            elapsed_s=round(now - self.started, 1),
            ran=ran,
            skipped=skipped,
        )
        self.meta["elapsed_s"] = round(sum(s.get("elapsed_s", 0) for s in self.meta["sittings"]), 1)
        atomic_write(self.path, json.dumps(self.meta, indent=1) + "\n")
        return self.meta


class _Unlogged:
    """The sitting log of ``bench --retrain``: nothing is written to ``sweep.json``."""

    def update(self, ran: int, skipped: int) -> dict:
        return {}


def read_results(output_dir: Path) -> dict[str, dict]:
    """The rows of an earlier sitting's ``results.jsonl`` by run name (empty if there is none)."""
    path = output_dir / RESULTS
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["run"]: r for r in rows}


def write_results(spec: Spec, rows: dict[str, dict]) -> list[dict]:
    """Rewrite ``OUTPUT/results.jsonl`` atomically: one row per cell that has one, in grid order."""
    ordered = [rows[c.name] for c in spec.cells if c.name in rows]
    atomic_write(spec.output_dir / RESULTS, "".join(json.dumps(r) + "\n" for r in ordered))
    return ordered


def select_cells(specs: list[Spec], patterns: list[str], teachers: bool = True) -> list[set[str]]:
    """Per spec, the names of the cells matching any of ``patterns`` (``bench --cells``) and, with ``teachers``, the
    teachers those need; a pattern that matches no cell of any spec is an error (a typo would otherwise run
    nothing)."""
    chosen = [
        {c.name for c in spec.cells if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)}
        for spec in specs
    ]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(c.name, pattern) for spec in specs for c in spec.cells):
            names = [c.name for c in specs[0].cells]
            example = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise InputError(
                f"--cells: {pattern!r} matches no run of {specs[0].source} (its runs: {example})"
            )
    for spec, names in zip(specs, chosen, strict=True):
        if teachers:
            names |= {c.teacher for c in spec.cells if c.name in names and c.teacher}
    return chosen


def has_model(spec: Spec, name: str) -> bool:
    """Whether the run directory of cell ``name`` holds its trained model."""
    return (spec.output_dir / "runs" / name / "model" / "config.json").is_file()


def plan(
    spec: Spec, recorded: dict[str, dict], only: set[str] | None = None, retrain: bool = False
) -> tuple[list[Cell], list[Cell], list[Cell]]:
    """(cells already finished per ``results.jsonl``, cells to run first, distilled cells to run after them).

    The cells to run go seed by seed in grid order (with ``order: series``, series by series and seed by seed
    within each); a finished teacher of a distilled cell still to run is run
    again when its run directory holds no model (a fresh machine resuming from committed results). With ``only``
    (names from :func:`select_cells`), cells outside it are left for a later sitting; with ``retrain`` too, the
    finished cells in ``only`` whose run directory holds no model are run again (:func:`run_sweep` keeps their
    recorded rows)."""
    done = {c.name for c in spec.cells if recorded.get(c.name, {}).get("status", "failed") != "failed"}
    needed = {c.teacher for c in spec.cells if c.teacher and c.name not in done}
    if retrain and only is not None:
        needed |= only
    for name in needed & done:
        if not has_model(spec, name):
            done.discard(name)
    seed_rank = {s: i for i, s in enumerate(dict.fromkeys(c.seed for c in spec.cells))}
    series_rank = {s: i for i, s in enumerate(dict.fromkeys(c.series for c in spec.cells))}
    by_series = spec.order == "series"
    todo = sorted(
        (c for c in spec.cells if c.name not in done and (only is None or c.name in only)),
        key=lambda c: (series_rank[c.series] if by_series else 0, seed_rank[c.seed]),  # stable: grid order
    )
    finished = [c for c in spec.cells if c.name in done]
    return finished, [c for c in todo if not c.teacher], [c for c in todo if c.teacher]


def retrain_plan(spec: Spec, only: set[str]) -> tuple[set[str], list[str]]:
    """``bench --cells ... --retrain``: (the finished cells to train again, the named cells kept because their model
    is on disk). A named cell whose model is missing is trained again, and so is the teacher it distills from when
    that teacher's model is missing too. Raises :class:`InputError` (before anything runs) for a named run or needed
    teacher without a finished row, and for a run directory that holds a finished run's ``summary.json`` but no
    model (training there would only read the old summary back)."""
    recorded = read_results(spec.output_dir)

    def unfinished(names):
        return [
            c.name
            for c in spec.cells
            if c.name in names and recorded.get(c.name, {}).get("status", "failed") == "failed"
        ]

    def refuse(names, why):
        if names:
            verb = "has" if len(names) == 1 else "have"
            raise InputError(f"--retrain: {', '.join(names)} {verb} {why}")

    refuse(unfinished(only), f"no finished row in {spec.output_dir / RESULTS} (run it without --retrain)")
    kept = [c.name for c in spec.cells if c.name in only and has_model(spec, c.name)]
    again = {c.name for c in spec.cells if c.name in only and not has_model(spec, c.name)}
    teachers = {
        c.teacher for c in spec.cells if c.name in again and c.teacher and not has_model(spec, c.teacher)
    }
    refuse(
        unfinished(teachers),
        f"no finished row in {spec.output_dir / RESULTS}, and a run to retrain distills from it",
    )
    again |= teachers
    stale = [
        str(spec.output_dir / "runs" / n)
        for n in sorted(again)
        if (spec.output_dir / "runs" / n / "summary.json").is_file()
    ]
    if stale:
        raise InputError(
            f"--retrain: {stale[0]} holds a finished run's summary.json but no model/: move the directory away to "
            "train the run again"
        )
    return again, kept


def retrained_row(row: dict, recorded: dict) -> dict:
    """A cell's new run (``bench --retrain``) beside its recorded row: the new row, the recorded final and best,
    and their differences; ``same_evaluations`` counts the evaluation steps both curves have where the metric is
    equal to 1e-12, out of ``evaluations`` (the steps of either)."""
    new = dict(row.get("curve") or [])
    old = dict(recorded.get("curve") or [])
    both = [s for s in new if s in old]
    diff = lambda a, b: None if a is None or b is None else a - b  # noqa: E731
    return {
        **row,
        "recorded": {"final": recorded.get("final"), "best": recorded.get("best")},
        "final_minus_recorded": diff(row.get("final"), recorded.get("final")),
        "best_minus_recorded": diff(row.get("best"), recorded.get("best")),
        "same_evaluations": sum(abs(new[s] - old[s]) <= 1e-12 for s in both),
        "evaluations": len(set(new) | set(old)),
        "max_abs_curve_difference": max((abs(new[s] - old[s]) for s in both), default=None),
        "retrained": time.strftime(SweepLog.STAMP, time.localtime()),
    }


def _retrained_text(entry: dict) -> str:
    if entry["status"] not in MODEL_STATUSES:
        return f"retrained: {entry['status']} ({entry.get('error', '')})"
    return (
        f"retrained: final {entry['final']:.4f} (recorded {entry['recorded']['final']:.4f}), "
        f"{entry['same_evaluations']} of {entry['evaluations']} evaluations equal"
    )


def run_sweep(
    spec: Spec,
    log=print,
    backend: str = "local",
    address: str | None = None,
    only: set[str] | None = None,
    retrain: bool = False,
    retrained: list[dict] | None = None,
) -> list[dict]:
    """Run (or resume) every cell on ``backend`` (``local`` or ``ray``, see :mod:`.backends`), or only the cells
    named in ``only``; returns the results rows in grid order. ``results.jsonl`` and the sitting's entry in
    ``sweep.json`` are rewritten after each run. With ``retrain`` (and ``only``), the finished cells of ``only``
    whose model is not on disk are trained again (:func:`retrain_plan`): ``results.jsonl`` and ``sweep.json`` are
    not written, and the new rows are appended to ``retrained.jsonl`` (:func:`retrained_row`) and to ``retrained``
    when given."""
    # fp16 that this machine's workers would train in fp32: said before anything starts
    for cell in spec.cells if backend == "local" else []:
        if only is None or cell.name in only:
            train = load_recipe(spec.base, [*spec.overrides, *cell.overrides()]).train
            refuse_unusable_precision(train.mixed_precision, f"{spec.source}: {cell.name}")
    runs = (spec.output_dir / "runs").resolve()
    runs.mkdir(parents=True, exist_ok=True)
    recorded = read_results(spec.output_dir)
    again: set[str] = set()  # --retrain: the finished cells trained again (their recorded rows stay)
    if retrain:
        if only is None:
            raise InputError("--retrain: name the finished runs to train again with --cells")
        again, kept = retrain_plan(spec, only)
        for name in kept:
            log(f"{name}: kept (its model is here; --retrain trains only runs whose model is missing)")
        only = again
    finished, first, students = plan(spec, recorded, only, retrain)
    if retrain:
        finished = []  # a retrain sitting lists only what it trains
    # Every recorded row of the grid stays until its cell's new run replaces it: a teacher run again for its model
    # (or a failed cell run again) keeps its row if this sitting is stopped before that run ends.
    rows: dict[str, dict] = {c.name: recorded[c.name] for c in spec.cells if c.name in recorded}
    skipped, ran = len(finished), 0
    with make_backend(backend, spec.workers, address) as pool, StopSignals(pool.stop) as stop:
        # a retrain sitting adds no result, so it is not one of the sweep's sittings (retrained.jsonl times it)
        sweep_log = _Unlogged() if retrain else SweepLog(spec, pool.threads, pool.describe(), only)
        for cell in finished:
            log(f"{cell.name}: skipped (finished)")
        sweep_log.update(ran, skipped)
        # a retrain sitting never writes results.jsonl (a sitting of the sweep may be writing it)
        if not retrain:
            write_results(spec, rows)
        for wave in (first, students):  # a teacher finishes before its students start
            if stop.received:
                break
            futures = {
                pool.submit(
                    _run_cell,
                    str(spec.base),
                    spec.overrides + c.overrides(),
                    str(runs / c.name),
                    pool.threads,
                ): c
                for c in wave
            }
            for fut in futures:
                cell = futures[fut]
                if stop.received and fut.cancel():
                    continue
                try:
                    outcome = fut.result()
                except Exception as exc:  # a worker ended outright (a signal before its training began)
                    if not stop.received:
                        raise
                    log(f"{cell.name}: interrupted (worker ended: {type(exc).__name__})")
                    continue
                if outcome["status"] == "interrupted":
                    log(f"{cell.name}: interrupted ({outcome['error']})")
                    stop.received = stop.received or "a signal to a run"
                    continue
                if cell.name in again:  # its recorded row stays; the new run is logged beside it
                    if outcome.get(
                        "skipped"
                    ):  # retrain_plan refuses such a directory; never log it as retrained
                        raise InputError(
                            f"--retrain: {runs / cell.name} says its run is finished; nothing trained"
                        )
                    entry = retrained_row(_row(cell, outcome), recorded[cell.name])
                    with open(spec.output_dir / RETRAINED, "a", encoding="utf-8") as f:
                        f.write(json.dumps(entry) + "\n")
                    if retrained is not None:
                        retrained.append(entry)
                    ran += 1
                    log(f"{cell.name}: {_retrained_text(entry)}")
                    sweep_log.update(ran, skipped)
                    continue
                rows[cell.name] = _row(cell, outcome)
                if outcome.get("skipped"):
                    skipped += 1
                else:
                    ran += 1
                state = "skipped (finished)" if outcome.get("skipped") else rows[cell.name]["status"]
                log(f"{cell.name}: {state}")
                write_results(spec, rows)
                sweep_log.update(ran, skipped)
        # the sitting's end: a stopped sitting's time includes its cut-off runs
        sweep_log.update(ran, skipped)
    if retrain:
        return [rows[c.name] for c in spec.cells if c.name in rows]
    return write_results(spec, rows)
