"""Recipes: one YAML file describes a run; this module is the one place that validates it.

A recipe has the sections ``task``, ``seed``, ``output_dir``, ``data``, ``model``, ``pruning``, ``train``,
``divergence``, ``checkpoint`` and ``distill`` (see ``recipes/*.yaml``; every key has a default except ``task``).
:func:`load_recipe` reads a file, applies ``key=value`` overrides and returns a :class:`Recipe`, or raises one
:class:`~bermo_prune.errors.RecipeError` listing *every* problem: YAML syntax (with line and column), unknown
keys (with a "did you mean"), wrong types, values out of range, and cross-field rules (for example a pruning
schedule that would end after training does). Nothing is read or written beyond the recipe itself.

Each section is the dataclass next to the code that uses it, and its keys, defaults and bounds are that
dataclass's fields (:data:`SECTIONS`, through :mod:`.fields`, whose checker this module runs); each method's rules
come from its Pruner class, a schedule's from :class:`.ScheduleConfig`. This module adds the rules across sections.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .data import TASKS, DataConfig
from .distill import DistillConfig
from .errors import RecipeError
from .fields import F, build, check_sections, did_you_mean, read_yaml, schema, subsection, values_of
from .fields import check as check_value
from .fields import key as recipe_key
from .models import ModelSpec, shape_problems
from .pruners import pruner_class
from .pruners.base import SCHEDULE_VALUES
from .pruners.config import NO_PRUNING, SHARED_PRUNER_FIELDS, PruningConfig
from .rundir import CheckpointConfig
from .schedule import ScheduleConfig
from .tracking import DivergenceConfig
from .train_config import TrainConfig, resolve_precision

__all__ = [
    "Recipe",
    "SECTIONS",
    "dump_recipe",
    "load_recipe",
    "parse_recipe",
    "read_yaml",
    "schedule_problems",
]


@dataclass(kw_only=True)
class Recipe:
    """A validated recipe: the top-level keys and one dataclass instance per section, every key present (defaults
    filled in)."""

    source: str
    task: str = recipe_key(None, required=True, choices=tuple(TASKS))
    seed: int = recipe_key(42, min=0)
    output_dir: str | None = recipe_key(None)
    data: DataConfig = subsection(DataConfig)
    model: ModelSpec = subsection(ModelSpec)
    pruning: PruningConfig = subsection(PruningConfig)
    train: TrainConfig = subsection(TrainConfig)
    divergence: DivergenceConfig = subsection(DivergenceConfig)
    checkpoint: CheckpointConfig = subsection(CheckpointConfig)
    distill: DistillConfig = subsection(DistillConfig)

    def to_dict(self) -> dict:
        """The resolved recipe as plain data (what ``recipe.yaml`` in a run directory holds)."""
        return values_of(self)

    @property
    def pruned(self) -> bool:
        return self.pruning.method != NO_PRUNING

    @property
    def data_source(self) -> str:
        """``data.source`` with ``auto`` resolved: synthetic task, else local when a path is given, else hub."""
        src = self.data.source
        if src != "auto":
            return src
        if self.task == "synthetic":
            return "synthetic"
        return "local" if (self.data.path or self.data.train_file) else "hub"


#: the checker's table: each section derived from its dataclass, in the order recipe.yaml writes them
SECTIONS: dict[str, dict[str, F]] = schema(Recipe)


def _pruner_options(method: str, options: dict | None, problems: list[str]) -> dict:
    if method == NO_PRUNING or not options:
        if options and method == NO_PRUNING:
            problems.append("pruning.options: set, but pruning.method is 'none'")
        return {}
    cls = pruner_class(method)
    from_schedule = (*SHARED_PRUNER_FIELDS, *cls.schedule_fields(options))
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in from_schedule}
    out = {}
    for key, value in options.items():
        if key not in fields:
            hint = did_you_mean(str(key), fields)
            valid = ", ".join(fields) or "none"
            problems.append(
                f"pruning.options.{key}: unknown option of method {method!r}{hint}; valid: {valid}"
            )
            continue
        default = fields[key].default
        kind = "bool" if isinstance(default, bool) else "float" if isinstance(default, int | float) else "str"
        out[key] = check_value(f"pruning.options.{key}", F(kind, default), value, problems)
    return out


def _cross_checks(r: dict, raw: dict, overrides: list[str] | None, problems: list[str]) -> None:
    data, pruning, train, div, ckpt = r["data"], r["pruning"], r["train"], r["divergence"], r["checkpoint"]
    src = data["source"]
    if r["task"] == "synthetic" and src not in ("auto", "synthetic"):
        problems.append(f"data.source: the synthetic task is generated, not read ({src!r} given)")
    if src == "synthetic" and r["task"] not in (None, "synthetic"):
        problems.append(f"data.source: 'synthetic' only serves task 'synthetic', not {r['task']!r}")
    if src == "local" and not (data["path"] or data["train_file"]):
        problems.append(
            "data.path: required when data.source is 'local' (a directory with train and dev files)"
        )
    if bool(data["train_file"]) != bool(data["dev_file"]) and not data["path"]:
        problems.append("data.train_file, data.dev_file: give both, or data.path")
    if div["policy"] == "rollback" and not ckpt["every"]:
        problems.append(
            "divergence.policy: 'rollback' needs checkpoints to roll back to; set checkpoint.every"
        )
    problems += shape_problems(r["model"]["hidden_size"], r["model"]["num_heads"])
    resolve_precision(train, raw, overrides, problems)
    if train.get("freeze_embeddings") and not r["model"]["name"]:
        problems.append(
            "train.freeze_embeddings: the model is built from scratch (model.name is null), so its word "
            "embeddings are random; freeze only a pretrained encoder's"
        )
    method = pruning["method"]
    sched = pruning["schedule"]
    if method == NO_PRUNING:
        return
    cls = pruner_class(method)
    key = cls.schedule_key_for(pruning["options"] or {})
    kind = sched["kind"]
    fields = ScheduleConfig(**sched).value_args()
    for name in ("initial", "final", "value"):
        if sched[name] is not None and name not in fields:
            problems.append(
                f"pruning.schedule.{name}: not used by a {kind!r} schedule (it takes {', '.join(fields)})"
            )
    _, valid, rule = SCHEDULE_VALUES[key]
    if kind != "constant":
        if sched["final"] is None:
            problems.append(f"pruning.schedule.final: required: the final {key} of method {method!r}")
    elif sched["value"] is None:
        problems.append(f"pruning.schedule.value: required: the constant {key} of method {method!r}")
    for name in fields:
        v = sched[name]
        if v is not None and not valid(v):
            problems.append(f"pruning.schedule.{name}: {rule}, got {v:g}")
    problems += cls.recipe_problems(pruning["options"] or {}, sched)
    steps = train["max_steps"]
    if steps is not None:
        problems += ScheduleConfig(**sched).problems(steps)


def schedule_problems(pruning: PruningConfig, run_steps: int, problems: list[str]) -> None:
    """Rules that need the run's length: the schedule must fit in, and end before, training."""
    problems += pruning.schedule.problems(run_steps)


def parse_recipe(raw: Any, source: str = "<recipe>", overrides: list[str] | None = None) -> Recipe:
    """Validate a raw mapping (already loaded YAML) plus overrides; raise RecipeError with every problem."""
    problems: list[str] = []
    r, given = check_sections(raw, source, overrides, SECTIONS, problems)
    r["pruning"]["options"] = _pruner_options(r["pruning"]["method"], r["pruning"]["options"], problems)
    if not problems:
        _cross_checks(r, given, overrides, problems)
    if problems:
        raise RecipeError(source, problems)
    _fill_schedule_start(r["pruning"])
    return build(Recipe, r, source=source)


def _fill_schedule_start(pruning: dict) -> None:
    """After validation: a ramp without ``initial`` starts where the method's schedule value starts (all weights
    remaining, threshold 0, lambda 0)."""
    sched = pruning["schedule"]
    if pruning["method"] != NO_PRUNING and sched["kind"] != "constant" and sched["initial"] is None:
        key = pruner_class(pruning["method"]).schedule_key_for(pruning["options"] or {})
        sched["initial"] = SCHEDULE_VALUES[key][0]


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a ``run`` recipe file."""
    return parse_recipe(read_yaml(path), str(path), overrides)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML (``recipe.yaml``)."""
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
