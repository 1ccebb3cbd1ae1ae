"""Recipes: one YAML file describes a run; this module is the one place that validates it.

A recipe has the sections ``task``, ``seed``, ``output_dir``, ``data``, ``model``, ``pruning``, ``train``,
``divergence``, ``checkpoint`` and ``distill`` (see ``recipes/*.yaml``; every key has a default except ``task``).
:func:`load_recipe` reads a file, applies ``key=value`` overrides and returns a :class:`Recipe`, or raises one
:class:`~bermo_prune.errors.RecipeError` listing *every* problem: YAML syntax (with line and column), unknown
keys (with a "did you mean"), wrong types, values out of range, and cross-field rules (for example a pruning
schedule that would end after training does). Nothing is read or written beyond the recipe itself.

Each section's keys, defaults and bounds come from the dataclass next to the code that uses it (:data:`SECTIONS`,
through :mod:`.fields`), each method's rules from its Pruner class, a schedule's from :class:`.ScheduleConfig`.

Length (about 400 lines): recipe validation has one place, so the checker, the cross-field rules, overrides and
YAML errors stay here.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .data import TASKS, DataConfig
from .distill import DistillConfig
from .early_eval import EarlyEvalConfig
from .errors import RecipeError
from .fields import F, section
from .fields import key as recipe_key
from .models import ModelSpec
from .pruners import pruner_class
from .pruners.base import SCHEDULE_VALUES
from .pruners.config import NO_PRUNING, SHARED_PRUNER_FIELDS, PruningConfig
from .rundir import CheckpointConfig
from .schedule import ScheduleConfig
from .tracking import DivergenceConfig
from .train_config import TrainConfig

TOP_SECTIONS = ("data", "model", "pruning", "train", "divergence", "checkpoint", "distill")


@dataclass(kw_only=True)
class Recipe:
    """A validated recipe: the top-level keys, and plain dicts per section with every key present (defaults filled
    in; each section's keys, defaults and bounds are those of its dataclass, see :data:`SECTIONS`)."""

    source: str
    task: str = recipe_key(None, required=True, choices=tuple(TASKS))
    seed: int = recipe_key(42, min=0)
    output_dir: str | None = recipe_key(None)
    data: dict
    model: dict
    pruning: dict
    train: dict
    divergence: dict
    checkpoint: dict
    distill: dict

    def to_dict(self) -> dict:
        """The resolved recipe (what ``recipe.yaml`` in a run directory holds)."""
        return {
            "task": self.task,
            "seed": self.seed,
            "output_dir": self.output_dir,
            **{name: copy.deepcopy(getattr(self, name)) for name in TOP_SECTIONS},
        }

    @property
    def pruned(self) -> bool:
        return self.pruning["method"] != NO_PRUNING

    @property
    def data_source(self) -> str:
        """``data.source`` with ``auto`` resolved: synthetic task, else local when a path is given, else hub."""
        src = self.data["source"]
        if src != "auto":
            return src
        if self.task == "synthetic":
            return "synthetic"
        return "local" if (self.data["path"] or self.data["train_file"]) else "hub"


# ---- the sections: each derived from its dataclass (fields.section), in the order recipe.yaml writes them ----
SECTIONS: dict[str, dict[str, F]] = {
    "": section(Recipe),
    "data": section(DataConfig),
    "model": section(ModelSpec),
    "pruning": {**section(PruningConfig), "schedule": F("section")},
    "pruning.schedule": section(ScheduleConfig),
    "train": {**section(TrainConfig), "early_eval": F("section")},
    "train.early_eval": section(EarlyEvalConfig),
    "divergence": section(DivergenceConfig),
    "checkpoint": section(CheckpointConfig),
    "distill": section(DistillConfig),
}


# ---- parsing -------------------------------------------------------------------------------------------------
def _did_you_mean(key: str, options) -> str:
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number(value: Any) -> float | None:
    """Accept ints, floats and numeric strings (YAML 1.1 reads ``3e-5`` as a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _check(path: str, spec: F, value: Any, problems: list[str]) -> Any:
    """The value converted to its kind, or the default after recording a problem."""
    if value is None:
        if not spec.nullable:
            problems.append(f"{path}: must not be empty")
        return spec.default
    kind = spec.kind
    out: Any = value
    if kind == "int":
        num = _number(value)
        if num is None or not math.isfinite(num) or num != int(num):
            problems.append(f"{path}: expected an integer, got {value!r}")
            return spec.default
        out = int(num)
    elif kind == "float":
        num = _number(value)
        if num is None or not math.isfinite(num):
            problems.append(f"{path}: expected a number, got {value!r}")
            return spec.default
        out = num
    elif kind == "steps":
        num = _number(value)
        if num is None or not math.isfinite(num) or num < 0 or (num >= 1 and num != int(num)):
            problems.append(
                f"{path}: expected a step count (integer >= 0) or a fraction of the run in [0, 1), got {value!r}"
            )
            return spec.default
        out = int(num) if (isinstance(value, int) or num >= 1) else num
    elif kind == "bool":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true or false, got {value!r}")
            return spec.default
    elif kind == "str":
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            problems.append(f"{path}: expected a string, got {value!r}")
            return spec.default
        out = str(value)
    elif kind == "list_str":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{path}: expected a list of strings, got {value!r}")
            return spec.default
    elif kind == "name_or_numbers":
        if isinstance(value, list):
            nums = [_number(v) if not isinstance(v, str) else None for v in value]
            if not value or any(n is None or not math.isfinite(n) for n in nums):
                problems.append(f"{path}: expected a name or a non-empty list of numbers, got {value!r}")
                return spec.default
            return [float(n) for n in nums]
        if not isinstance(value, str):
            problems.append(f"{path}: expected a name or a list of numbers, got {value!r}")
            return spec.default
    elif kind in ("dict", "dict_str"):
        if not isinstance(value, dict) or (
            kind == "dict_str" and not all(isinstance(v, str) for v in value.values())
        ):
            problems.append(f"{path}: expected a mapping, got {value!r}")
            return spec.default
        out = dict(value)
    choices = spec.choices() if callable(spec.choices) else spec.choices
    if choices is not None and kind == "list_str":  # a list of names: each one of the choices
        unknown = [v for v in out if v not in choices]
        if unknown:
            problems.append(
                f"{path}: unknown value {unknown[0]!r}{_did_you_mean(unknown[0], choices)}; "
                f"use any of {', '.join(choices)}"
            )
            return spec.default
    elif choices is not None and out not in choices:
        problems.append(
            f"{path}: unknown value {out!r}{_did_you_mean(str(out), choices)}; use one of {', '.join(choices)}"
        )
        return spec.default
    if kind in ("int", "float") and out is not None:
        if spec.min is not None and (out <= spec.min if spec.min_open else out < spec.min):
            problems.append(f"{path}: must be {'>' if spec.min_open else '>='} {spec.min:g}, got {out:g}")
            return spec.default
        if spec.max is not None and out > spec.max:
            problems.append(f"{path}: must be <= {spec.max:g}, got {out:g}")
            return spec.default
    return out


def _section(name: str, raw: Any, problems: list[str], schema: dict | None = None) -> dict:
    schema = SECTIONS if schema is None else schema
    specs = schema[name]
    label = name or "recipe"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{label}: expected a mapping of keys, got {raw!r}")
        raw = {}
    out: dict[str, Any] = {}
    known = set(specs) | ({n for n in schema if n and "." not in n} if name == "" else set())
    for key in raw:
        if not isinstance(key, str) or key not in known:
            where = f"{name}.{key}" if name else str(key)
            problems.append(f"{where}: unknown key{_did_you_mean(str(key), known)}")
    for key, spec in specs.items():
        path = f"{name}.{key}" if name else key
        if spec.kind == "section":
            out[key] = _section(path, raw.get(key), problems, schema)
            continue
        if key not in raw:
            if spec.required:
                problems.append(f"{path}: missing (required)")
            out[key] = spec.default
            continue
        out[key] = _check(path, spec, raw[key], problems)
    return out


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
            hint = _did_you_mean(str(key), fields)
            valid = ", ".join(fields) or "none"
            problems.append(
                f"pruning.options.{key}: unknown option of method {method!r}{hint}; valid: {valid}"
            )
            continue
        default = fields[key].default
        kind = "bool" if isinstance(default, bool) else "float" if isinstance(default, int | float) else "str"
        out[key] = _check(f"pruning.options.{key}", F(kind, default), value, problems)
    return out


def _cross_checks(r: dict, problems: list[str]) -> None:
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
    if r["model"]["hidden_size"] % r["model"]["num_heads"]:
        problems.append(
            f"model.hidden_size ({r['model']['hidden_size']}) must be divisible by model.num_heads "
            f"({r['model']['num_heads']})"
        )
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
        schedule_problems(pruning, steps, problems)


def schedule_problems(pruning: dict, run_steps: int, problems: list[str]) -> None:
    """Rules that need the run's length: the schedule must fit in, and end before, training."""
    problems += ScheduleConfig(**pruning["schedule"]).problems(run_steps)


# ---- overrides -------------------------------------------------------------------------------------------------
def apply_overrides(raw: dict, overrides: list[str], problems: list[str], schema: dict | None = None) -> None:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to the raw recipe mapping in place."""
    schema = SECTIONS if schema is None else schema
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"override {item!r}: expected key=value, e.g. train.lr=3e-5")
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        parts = key.split(".")
        section = ".".join(parts[:-1])
        known_sections = {s for s in schema if s} | ({"pruning.options"} if "pruning" in schema else set())
        if section and section not in known_sections and not section.startswith("data.columns"):
            problems.append(
                f"override {key}: unknown section {section!r}{_did_you_mean(section, known_sections)}"
            )
            continue
        node = raw
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value


def _yaml_error(source: str, exc: yaml.YAMLError) -> RecipeError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return RecipeError(
            source, [f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"]
        )
    return RecipeError(source, [f"YAML syntax error: {problem}"])


def parse_recipe(raw: Any, source: str = "<recipe>", overrides: list[str] | None = None) -> Recipe:
    """Validate a raw mapping (already loaded YAML) plus overrides; raise RecipeError with every problem."""
    problems: list[str] = []
    r, _ = parse_sections(raw, source, overrides, SECTIONS, problems)
    r["pruning"]["options"] = _pruner_options(r["pruning"]["method"], r["pruning"]["options"], problems)
    if not problems:
        _cross_checks(r, problems)
    if problems:
        raise RecipeError(source, problems)
    _fill_schedule_start(r["pruning"])
    return Recipe(source=source, **r)


def _fill_schedule_start(pruning: dict) -> None:
    """After validation: a ramp without ``initial`` starts where the method's schedule value starts (all weights
    remaining, threshold 0, lambda 0)."""
    sched = pruning["schedule"]
    if pruning["method"] != NO_PRUNING and sched["kind"] != "constant" and sched["initial"] is None:
        key = pruner_class(pruning["method"]).schedule_key_for(pruning["options"] or {})
        sched["initial"] = SCHEDULE_VALUES[key][0]


def parse_sections(
    raw: Any, source: str, overrides: list[str] | None, schema: dict, problems: list[str]
) -> tuple[dict, dict]:
    """Overrides applied, then every section of ``schema`` checked: ``(values, raw)``; problems collected."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(
            source, [f"expected a mapping of sections at the top level, got {type(raw).__name__}"]
        )
    raw = copy.deepcopy(raw)
    if overrides:
        apply_overrides(raw, overrides, problems, schema)
    values = _section("", raw, problems, schema)
    for name in schema:
        if name and "." not in name:
            values[name] = _section(name, raw.get(name), problems, schema)
    return values, raw


def read_yaml(path: str | Path) -> Any:
    """A recipe file's YAML, or a RecipeError naming the file (and the line of a syntax error)."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(source, ["no such file"]) from None
    except IsADirectoryError:
        raise RecipeError(source, ["is a directory, not a recipe file"]) from None
    except UnicodeDecodeError:
        raise RecipeError(source, ["not UTF-8 text"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None
    return raw


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a ``run`` recipe file."""
    return parse_recipe(read_yaml(path), str(path), overrides)


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
