"""``bermo-prune probe-study SPEC.yaml``: a probing study of a sweep's models, resumable across machines.

A sweep's models exist only on the machine that trained them (``runs/`` is not committed), and a long sweep runs
over many sessions on fresh machines. So the study does not probe everything at once: every call probes the
spec's models that exist now and are not yet in ``results.jsonl`` (the pretrained encoder, and each planned sweep
cell whose row is in the sweep's ``results.jsonl`` and whose ``model/`` is on disk), appends their rows after
every task, records each probed run in ``probed.json`` (its dev accuracy, remaining weights and BERMo mix, from
the sweep's row; for a run trained again by ``bench --retrain``, from its last row in the sweep's
``retrained.jsonl``, with the recorded dev accuracy beside it) and rewrites ``REPORT.md``. Killed, it loses at most the task in progress. ``--report-only``
rewrites the report from the committed rows.

The spec (paths relative to where bermo-prune runs, the repository root, as a sweep spec's ``output_dir``)::

    tasks_dir: runs/probing_semantic          # SentEval-format TASK.txt files, made by tasks_command
    tasks_command: bermo-prune probe-data runs/probing_semantic --text ...
    tasks: [past_present, subj_number, obj_number, odd_man_out, coordination_inversion, dependency_tree_depth]
    semantic: [past_present, subj_number, obj_number, odd_man_out, coordination_inversion]
    sweep: benchmarks/sst2_minilm_ref         # the sweep's output_dir: its results.jsonl and runs/<cell>
    pretrained: minilm-l6                     # the encoder before fine-tuning (a model name or directory)
    arms: [bert, bermo]                       # the first is the baseline, the second is compared with it
    conditions:                               # the sweep cell of every arm and fine-tuning seed
      dense: {cell: "{arm}_none_dense_s{seed}", seeds: [0, 1, 2]}
    poolings: [cls, mean]
    claim: {condition: dense, pooling: cls, classifier: logreg, size: 0.0267}
    output_dir: benchmarks/probing_semantic

Probes per model and task: both poolings from one forward pass; logistic regression at every layer (and BERMo's
mix), the MLP at what the model's classifier reads (the last layer; for BERMo its mix and its last layer).
Fine-tuned models get ``probe_seeds`` probe seeds (default 1: the intervals are over fine-tuning seeds), the
pretrained encoder ``pretrained_probe_seeds`` (default 3); the cells the verdicts read (the claim's pooling and
classifier at what each classifier reads) get ``claim_probe_seeds`` (default 3), whose mean is the run's value.
Every row keeps which test examples its probe got right (``te_correct``, hex bits), for a bootstrap over test
sentences. A task file that differs from the one the rows were
made on (``tasks.json`` keeps every file's sha256) is an error, not a silent mix of two task sets.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..bench.sweep import MODEL_STATUSES, RETRAINED
from ..errors import InputError, RecipeError
from ..fields import build, check_sections, schema, section_map, subsection
from ..fields import key as spec_key
from ..models import resolve_model_name
from ..recipe import read_yaml
from ..rundir import atomic_write, find_model
from .probing import baseline_rows, encode_labels, fit_probe, pooled_features
from .report import BASELINES
from .tasks import SPLITS, read_senteval

POOLINGS = ("cls", "mean")
CLASSIFIERS = ("logreg", "mlp")
RESULTS = "results.jsonl"
PROBED = "probed.json"
TASKS = "tasks.json"
PRETRAINED = "pretrained"  # the run, arm and condition name of the encoder before fine-tuning


@dataclass
class ConditionConfig:
    """One entry of ``conditions``: the sweep cell of an arm and fine-tuning seed, and the seeds."""

    cell: str = spec_key(None, required=True)  # with {arm} and {seed}
    seeds: list[int] = spec_key(None, kind="list_int", min=0, min_items=1, required=True)


@dataclass
class ClaimConfig:
    """The comparison the verdict reads, fixed before the numbers."""

    condition: str = spec_key(None, required=True)
    pooling: str = spec_key("cls", choices=POOLINGS)
    classifier: str = spec_key("logreg", choices=CLASSIFIERS)
    size: float = spec_key(0.0267, min=0)  # the claimed average improvement on the semantic tasks


@dataclass
class StudyConfig:
    tasks_dir: str = spec_key(None, required=True)
    tasks_command: str = spec_key(None, required=True)
    tasks: list[str] = spec_key(None, min_items=1, required=True)
    semantic: list[str] = spec_key(None, min_items=1, required=True)
    sweep: str = spec_key(None, required=True)
    pretrained: str | None = spec_key(None)
    arms: list[str] = spec_key(None, min_items=2, required=True)
    conditions: dict[str, ConditionConfig] = section_map(ConditionConfig, required=True)
    poolings: list[str] | None = spec_key(
        None, kind="list_str", choices=POOLINGS, min_items=1
    )  # default: both
    probe_seeds: int = spec_key(1, min=1)
    claim_probe_seeds: int = spec_key(3, min=1)  # probe seeds of the cells the verdicts read
    pretrained_probe_seeds: int = spec_key(3, min=1)
    claim: ClaimConfig = subsection(ClaimConfig)
    output_dir: str = spec_key(None, required=True)


STUDY_SCHEMA = schema(StudyConfig)


@dataclass(frozen=True)
class Planned:
    """One model the study probes."""

    run: str  # the sweep cell, or ``pretrained``
    arm: str
    condition: str
    ft_seed: int | None


@dataclass
class Study:
    path: Path
    conf: StudyConfig
    planned: list[Planned]

    @property
    def out(self) -> Path:
        return Path(self.conf.output_dir)

    def task_file(self, task: str) -> Path:
        return Path(self.conf.tasks_dir) / f"{task}.txt"


def load_study(path: str | Path) -> Study:
    """Read and check a study spec (every problem at once, naming the key)."""
    source = str(path)
    problems: list[str] = []
    values, _ = check_sections(read_yaml(path), source, None, STUDY_SCHEMA, problems)
    conf = build(StudyConfig, values)
    conf.poolings = conf.poolings or list(POOLINGS)
    if conf.semantic and conf.tasks:
        for task in conf.semantic:
            if task not in conf.tasks:
                problems.append(f"semantic: {task!r} is not one of tasks")
    if conf.arms and len(set(conf.arms)) != len(conf.arms):
        problems.append("arms: an arm is named twice")
    if conf.arms and PRETRAINED in conf.arms:
        problems.append(f"arms: {PRETRAINED!r} is the encoder before fine-tuning, not an arm")
    for label, cond in (conf.conditions or {}).items():
        if cond.cell and ("{arm}" not in cond.cell or "{seed}" not in cond.cell):
            problems.append(f"conditions.{label}.cell: must hold {{arm}} and {{seed}}")
    if conf.claim.condition and conf.conditions and conf.claim.condition not in conf.conditions:
        problems.append(f"claim.condition: {conf.claim.condition!r} is not one of conditions")
    if conf.claim.pooling and conf.poolings and conf.claim.pooling not in conf.poolings:
        problems.append(f"claim.pooling: {conf.claim.pooling!r} is not one of poolings")
    if problems:
        raise RecipeError(source, problems)
    planned = [Planned(PRETRAINED, PRETRAINED, PRETRAINED, None)] if conf.pretrained else []
    for label, cond in conf.conditions.items():
        for seed in cond.seeds:
            for arm in conf.arms:
                planned.append(Planned(cond.cell.format(arm=arm, seed=seed), arm, label, seed))
    return Study(Path(path), conf, planned)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_rows(out: Path) -> list[dict]:
    """The study's rows; InputError naming the file and line of a row given twice (two merged copies of the
    file would otherwise be averaged silently)."""
    path = out / RESULTS
    if not path.is_file():
        return []
    rows, seen = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        key = tuple(row.get(k) for k in ("task", "run", "pooling", "classifier", "layer", "seed"))
        if key in seen:
            raise InputError(
                f"{path}: line {number}: the same row as line {seen[key]} ({', '.join(map(str, key))})"
            )
        seen[key] = number
        rows.append(row)
    return rows


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _sweep_rows(study: Study, name: str = RESULTS) -> dict[str, dict]:
    """The sweep's rows by run (the last row of a run wins)."""
    path = Path(study.conf.sweep) / name
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["run"]: r for r in rows}


def _model_row(study: Study, sweep: dict[str, dict], run: str) -> tuple[dict, dict]:
    """The row of the model on disk for ``run``, and what probed.json adds about it: a run trained again on this
    machine (``bench --retrain``, whose last row in the sweep's ``retrained.jsonl`` is the model now on disk) gives
    its new row, with the recorded dev accuracy beside it; otherwise the sweep's row."""
    again = _sweep_rows(study, RETRAINED).get(run)
    if again is None or again.get("status") not in MODEL_STATUSES:
        return sweep.get(run, {}), {}
    return again, {
        "retrained": again.get("retrained"),
        "recorded_dev_accuracy": sweep.get(run, {}).get("final"),
    }


def available(study: Study, done: set[str]) -> tuple[list[tuple[Planned, Path]], list[str]]:
    """``(models to probe now, notes)``: planned runs not yet probed whose model is on this machine; the notes
    say why each other unprobed run is left (not run yet, not finished, no model here)."""
    sweep = _sweep_rows(study)
    todo, notes = [], []
    for p in study.planned:
        if p.run in done:
            continue
        if p.run == PRETRAINED:
            todo.append((p, Path(resolve_model_name(study.conf.pretrained))))
            continue
        row = sweep.get(p.run)
        directory = Path(study.conf.sweep) / "runs" / p.run
        if row is None:
            notes.append(f"{p.run}: not in the sweep's results yet")
        elif row.get("status") != "ok":
            notes.append(f"{p.run}: the sweep's run ended {row.get('status')!r}; nothing to probe")
        elif not (directory / "model" / "config.json").is_file():
            notes.append(f"{p.run}: finished on another machine; its model is not here")
        else:
            todo.append((p, directory))
    return todo, notes


def check_tasks(study: Study) -> dict[str, dict]:
    """Every task file exists and, where rows were made before, is the same file (sha256); ``{task: info}``."""
    recorded = _read_json(study.out / TASKS)
    info = {}
    for task in study.conf.tasks:
        path = study.task_file(task)
        if not path.is_file():
            raise InputError(f"{path}: no such task file; make the tasks with: {study.conf.tasks_command}")
        digest = _sha256(path)
        if task in recorded and recorded[task]["sha256"] != digest:
            raise InputError(
                f"{path}: not the file this study's rows were probed on (sha256 {digest[:12]}, recorded "
                f"{recorded[task]['sha256'][:12]}); regenerate it with: {study.conf.tasks_command}"
            )
        info[task] = {"sha256": digest}
    return info


def read_layers(arm_is_bermo: bool, layers: list[str]) -> list[str]:
    """What the model's classifier reads, where the MLP probe goes: the last layer; for BERMo its mix first."""
    last = max((x for x in layers if x.isdigit()), key=int)
    return ["mix", last] if arm_is_bermo else [last]


def probe_model(study: Study, planned: Planned, directory: Path, task, log=print) -> list[dict]:
    """Every row of one model on one task (both poolings; logreg at every layer, the MLP at what it reads)."""
    sentences = [s for split in SPLITS for _, s in task.examples[split]]
    feats = pooled_features(directory, sentences, tuple(study.conf.poolings))
    bounds, start = {}, 0
    for split in SPLITS:
        bounds[split] = (start, start + len(task.examples[split]))
        start += len(task.examples[split])
    labels = encode_labels(task)
    seeds = study.conf.pretrained_probe_seeds if planned.run == PRETRAINED else study.conf.probe_seeds
    claim = study.conf.claim
    rows = []
    for pooling in study.conf.poolings:
        layers = list(feats[pooling])
        bermo = "mix" in layers
        reads = read_layers(bermo, layers)
        for classifier in CLASSIFIERS:
            for layer in layers if classifier == "logreg" else reads:
                split_feats = {s: feats[pooling][layer][a:b] for s, (a, b) in bounds.items()}
                n = seeds
                if (pooling, classifier) == (claim.pooling, claim.classifier) and layer in reads:
                    n = max(seeds, study.conf.claim_probe_seeds)  # the verdict's cells: more probe seeds
                for seed in range(n):
                    r = fit_probe(split_feats, labels, classifier, seed, correct=True)
                    rows.append(
                        {
                            "task": task.name,
                            "run": planned.run,
                            "arm": planned.arm,
                            "condition": planned.condition,
                            "ft_seed": planned.ft_seed,
                            "pooling": pooling,
                            "classifier": classifier,
                            "layer": layer,
                            "seed": seed,
                            **r,
                        }
                    )
        log(
            f"{task.name} {planned.run} {pooling}: logreg "
            + " ".join(
                f"{r['layer']}={r['te']:.3f}"
                for r in rows
                if r["pooling"] == pooling and r["classifier"] == "logreg" and r["seed"] == 0
            )
        )
    return rows


def study_baselines(task, seeds: int = 3) -> list[dict]:
    """The task's majority-class and bag-of-words rows, named as the study's rows are."""
    return baseline_rows(task, range(seeds), lambda name: {"run": name, "arm": name, "condition": None})


def _save(study: Study, rows: list[dict]) -> None:
    atomic_write(study.out / RESULTS, "".join(json.dumps(r) + "\n" for r in rows))


def run_study(study: Study, log=print, only: list[str] | None = None) -> list[dict]:
    """Probe what is here and not yet probed (``only``: just these runs), then write the report."""
    from .study_report import write_study_report

    out = study.out
    out.mkdir(parents=True, exist_ok=True)
    info = check_tasks(study)
    rows = read_rows(out)
    done_pairs = {(r["run"], r["task"]) for r in rows}
    complete = {p.run for p in study.planned if all((p.run, t) in done_pairs for t in study.conf.tasks)}
    todo, notes = available(study, complete)
    if only:
        unknown = sorted(set(only) - {p.run for p in study.planned})
        if unknown:
            raise InputError(f"--run {unknown[0]}: not a run of {study.path}")
        todo = [(p, d) for p, d in todo if p.run in only]
    for note in notes:
        log(f"left: {note}")
    recorded = _read_json(out / TASKS)
    sweep = _sweep_rows(study)
    probed = _read_json(out / PROBED)
    tasks = {}
    for name in study.conf.tasks:
        if (BASELINES[0], name) in done_pairs and not todo:
            continue
        tasks[name] = read_senteval(study.task_file(name))
        if (BASELINES[0], name) not in done_pairs:
            rows += study_baselines(tasks[name])
            _save(study, rows)
            done_pairs.add((BASELINES[0], name))
        recorded[name] = {**info[name], "examples": {s: len(tasks[name].examples[s]) for s in SPLITS}}
        atomic_write(out / TASKS, json.dumps(recorded, indent=1) + "\n")
    for planned, directory in todo:
        find_model(directory)
        log(f"probing {planned.run} ({directory})")
        for name in study.conf.tasks:
            if (planned.run, name) in done_pairs:
                continue
            rows += probe_model(study, planned, directory, tasks[name], log)
            _save(study, rows)
            done_pairs.add((planned.run, name))
        row, extra = _model_row(study, sweep, planned.run)
        probed[planned.run] = {
            "arm": planned.arm,
            "condition": planned.condition,
            "ft_seed": planned.ft_seed,
            "dev_accuracy": row.get("final"),
            "remaining": row.get("remaining"),
            "mix": row.get("mix"),
            "probed_on": datetime.date.today().isoformat(),
            **extra,
        }
        atomic_write(out / PROBED, json.dumps(probed, indent=1, sort_keys=True) + "\n")
    return write_study_report(study, rows)
