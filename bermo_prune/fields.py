"""Typed recipe keys and the one checker: a section's keys, defaults and bounds live on its dataclass.

Each section of a recipe is a dataclass next to the code that uses it (``DataConfig``, ``ModelSpec``,
``PruningConfig``, ``ScheduleConfig``, ``TrainConfig``, ``DivergenceConfig``, ``CheckpointConfig``,
``DistillConfig``; the top level is ``Recipe`` itself). It declares each recipe key as a field made by :func:`key`,
which carries the key's bounds and allowed values next to its default, and each nested section as a field made by
:func:`subsection`. :func:`schema` turns the dataclass into the table the checker reads (the kind and whether the
key may be empty come from the field's annotation), :func:`build` makes the instances of a checked recipe and
:func:`values_of` writes them back as plain data. A key's default is therefore written once, in the dataclass.

The checker (:func:`check_sections`: overrides, unknown keys with a "did you mean", types, bounds, allowed values,
every problem collected) takes its table explicitly: run recipes (:mod:`bermo_prune.recipe`), pretraining recipes
(:mod:`bermo_prune.pretrain`) and sweep specs (:mod:`bermo_prune.bench.sweep`) all use it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import RecipeError

#: a field's annotation (without ``| None``) -> the kind of recipe value it takes
_KINDS = {
    "int": "int",
    "float": "float",
    "str": "str",
    "bool": "bool",
    "list[str]": "list_str",
    "dict[str, str]": "dict_str",
    "dict": "dict",
}


@dataclass(frozen=True)
class F:
    """One recipe key: its type, default, bounds and allowed values."""

    # int, float, str, bool, list_str, list_int, list_float, dict_str, dict, section, steps (int steps or a
    # fraction in [0, 1)), name_or_numbers (one of ``choices``, or a list of numbers), int_or_name (an integer or
    # one of ``choices``), section_map (labels to sections of one dataclass; with ``choices``, also a list of
    # labels)
    kind: str
    default: Any = None
    nullable: bool = False
    min: float | None = None  # for list_int: every item's
    max: float | None = None
    min_open: bool = False  # min is exclusive
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None  # a callable: read at check time
    required: bool = False
    min_items: int = 0  # list and map kinds: the fewest items


def key(
    default: Any = None,
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
    required: bool = False,
    kind: str | None = None,
    min_items: int = 0,
) -> Any:
    """A dataclass field that is also a recipe key, with its bounds (``min`` exclusive when ``min_open``),
    allowed values (a tuple, or a function returning them when the set can grow after import) and whether a
    recipe must give it. The kind of value comes from the annotation unless ``kind`` names one the annotation
    cannot say (``steps``: a step count or a fraction of the run in [0, 1); ``list_int``, ``list_float``,
    ``int_or_name``). ``min_items``: the fewest items of a list."""
    meta = {
        "min": min,
        "max": max,
        "min_open": min_open,
        "choices": choices,
        "required": required,
        "kind": kind,
        "min_items": min_items,
    }
    return dataclasses.field(default=default, metadata={"recipe_key": meta})


def section_map(
    cls: type, *, names: tuple[str, ...] | None = None, required: bool = False, min_items: int = 1
) -> Any:
    """A dataclass field whose value maps labels to sections of dataclass ``cls`` (a sweep's ``methods``). With
    ``names``, a list of those names is also accepted, each label with the section's defaults."""
    meta = {"cls": cls, "choices": names, "required": required, "min_items": min_items}
    return dataclasses.field(default=None, metadata={"recipe_map": meta})


def section(
    cls: type,
    defaults: dict[str, Any] | None = None,
    exclude: tuple[str, ...] = (),
    rename: dict | None = None,
) -> dict[str, F]:
    """The recipe keys of dataclass ``cls``, in field order: every field made by :func:`key`, except ``exclude``;
    ``defaults`` replaces some defaults and ``rename`` some key names (a recipe that uses the same settings under
    other values or names, such as pretraining's ``train`` section)."""
    defaults, rename = defaults or {}, rename or {}
    out: dict[str, F] = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        if "recipe_section" in f.metadata:
            out[rename.get(f.name, f.name)] = F("section")
            continue
        if "recipe_map" in f.metadata:
            m = f.metadata["recipe_map"]
            out[f.name] = F(
                "section_map", choices=m["choices"], required=m["required"], min_items=m["min_items"]
            )
            continue
        meta = f.metadata.get("recipe_key")
        if meta is None:
            continue
        meta = dict(meta)
        parts = [p.strip() for p in str(f.type).split("|")]
        named = [p for p in parts if p != "None"]
        kind = meta.pop("kind") or (_KINDS.get(named[0]) if len(named) == 1 else None)
        if kind is None:  # pragma: no cover - a programming error
            raise TypeError(
                f"{cls.__name__}.{f.name}: a recipe key must be one of {tuple(_KINDS)} (or None), not {f.type}; "
                "or name its kind"
            )
        default = defaults.get(f.name, f.default)
        out[rename.get(f.name, f.name)] = F(kind, default, nullable="None" in parts, **meta)
    return out


def subsection(cls: type) -> Any:
    """A dataclass field that is a nested recipe section of dataclass ``cls`` (``pruning.schedule``): its default is
    ``cls()``; :func:`section` marks it, :func:`schema` adds its table, :func:`build` and :func:`values_of` recurse."""
    return dataclasses.field(default_factory=cls, metadata={"recipe_section": cls})


def schema(cls: type, name: str = "") -> dict[str, dict[str, F]]:
    """The checker's table of dataclass ``cls`` and its subsections: ``{section path: {key: F}}``, ``""`` for
    ``cls`` itself, in field order."""
    out = {name: section(cls)}
    for f in dataclasses.fields(cls):
        path = f"{name}.{f.name}" if name else f.name
        if "recipe_section" in f.metadata:
            out.update(schema(f.metadata["recipe_section"], path))
        elif "recipe_map" in f.metadata:  # every label's section: ``PATH.*``
            out.update(schema(f.metadata["recipe_map"]["cls"], f"{path}.*"))
    return out


def build(cls: type, values: dict, **extra) -> Any:
    """The instance of dataclass ``cls`` a checked section's ``values`` describe (subsections built too)."""
    kwargs = dict(extra)
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if "recipe_section" in f.metadata:
            value = build(f.metadata["recipe_section"], value or {})
        elif "recipe_map" in f.metadata and value is not None:
            value = {label: build(f.metadata["recipe_map"]["cls"], v) for label, v in value.items()}
        kwargs[f.name] = value
    return cls(**kwargs)


def values_of(obj) -> dict:
    """A section instance's recipe keys and subsections as plain data, in field order (what ``recipe.yaml``
    writes)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if "recipe_section" in f.metadata:
            out[f.name] = values_of(getattr(obj, f.name))
        elif "recipe_key" in f.metadata:
            out[f.name] = copy.deepcopy(getattr(obj, f.name))
    return out


# ---- the checker: a raw mapping against a schema {section name: {key: F}} -------------------------------------------------------------------------------------------------
def did_you_mean(key: str, options) -> str:
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


def check(path: str, spec: F, value: Any, problems: list[str]) -> Any:
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
        if isinstance(value, bool) and isinstance(spec.choices, tuple):
            # YAML 1.1 reads an unquoted no / yes / off / on as a boolean: give back the allowed value so spelled
            # (``mixed_precision: no``, ``train.mixed_precision=no``)
            spelled = [c for c in spec.choices if yaml.safe_load(c) is value]
            value = spelled[0] if len(spelled) == 1 else value
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            problems.append(f"{path}: expected a string, got {value!r}")
            return spec.default
        out = str(value)
    elif kind == "list_str":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{path}: expected a list of strings, got {value!r}")
            return spec.default
    elif kind == "list_int":
        low = "" if spec.min is None else " non-negative" if spec.min == 0 else f" >= {spec.min:g}"
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and (spec.min is None or v >= spec.min)
            for v in value
        ):
            problems.append(f"{path}: expected a list of{low} integers, got {value!r}")
            return spec.default
    elif kind == "list_float":
        nums = (
            [_number(v) if not isinstance(v, str) else None for v in value]
            if isinstance(value, list)
            else None
        )
        if nums is None or any(n is None or not math.isfinite(n) for n in nums):
            problems.append(f"{path}: expected a list of numbers, got {value!r}")
            return spec.default
        out = nums
    elif kind == "int_or_name":
        names = spec.choices() if callable(spec.choices) else spec.choices or ()
        if isinstance(value, str) and value in names:
            return value
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or (spec.min is not None and value < spec.min)
        ):
            bound = f" >= {spec.min:g}" if spec.min is not None else ""
            problems.append(f"{path}: expected an integer{bound} or {' or '.join(names)}, got {value!r}")
            return spec.default
        return value
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
    if isinstance(out, list) and len(out) < spec.min_items:
        problems.append(f"{path}: give at least {spec.min_items} item{'s' if spec.min_items > 1 else ''}")
        return spec.default
    choices = spec.choices() if callable(spec.choices) else spec.choices
    if choices is not None and kind == "list_str":  # a list of names: each one of the choices
        unknown = [v for v in out if v not in choices]
        if unknown:
            problems.append(
                f"{path}: unknown value {unknown[0]!r}{did_you_mean(unknown[0], choices)}; "
                f"use any of {', '.join(choices)}"
            )
            return spec.default
    elif choices is not None and out not in choices:
        problems.append(
            f"{path}: unknown value {out!r}{did_you_mean(str(out), choices)}; use one of {', '.join(choices)}"
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


def _section(name: str, raw: Any, problems: list[str], schema: dict, where: str | None = None) -> dict:
    """One section checked (its subsections recursively): every key present, defaults filled in. ``name`` is the
    section's entry in ``schema``; ``where`` its path in messages when that differs (a labelled section of a
    map: ``methods.movement`` for ``methods.*``)."""
    specs = schema[name]
    name_in_schema, name = name, where if where is not None else name
    label = name or "recipe"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{label}: expected a mapping of keys, got {raw!r}")
        raw = {}
    out: dict[str, Any] = {}
    known = set(specs)
    for key in raw:
        if not isinstance(key, str) or key not in known:
            where = f"{name}.{key}" if name else str(key)
            problems.append(f"{where}: unknown key{did_you_mean(str(key), known)}")
    for key, spec in specs.items():
        path = f"{name}.{key}" if name else key
        entry = f"{name_in_schema}.{key}" if name_in_schema else key
        if spec.kind == "section":
            out[key] = _section(entry, raw.get(key), problems, schema, path)
            continue
        if spec.kind == "section_map":
            if key not in raw and spec.required:
                problems.append(f"{path}: missing (required)")
            out[key] = _section_map(entry, path, spec, raw.get(key), problems, schema) if key in raw else None
            continue
        if key not in raw:
            if spec.required:
                problems.append(f"{path}: missing (required)")
            out[key] = spec.default
            continue
        out[key] = check(path, spec, raw[key], problems)
    return out


def _section_map(entry: str, path: str, spec: F, raw: Any, problems: list[str], schema: dict) -> dict | None:
    """A map of labels to sections (``entry.*`` in ``schema``); with ``spec.choices``, a list of those labels too."""
    choices = spec.choices() if callable(spec.choices) else spec.choices
    if choices is not None and isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        unknown = [v for v in raw if v not in choices]
        if unknown:
            problems.append(
                f"{path}: unknown {unknown[0]!r}{did_you_mean(unknown[0], choices)}; name any of "
                f"{', '.join(choices)}, or give a mapping of labels to sections"
            )
            return None
        raw = dict.fromkeys(raw)
    if not isinstance(raw, dict):
        listed = f"a list of {', '.join(choices)}, or " if choices is not None else ""
        problems.append(f"{path}: expected {listed}a mapping of labels to sections, got {raw!r}")
        return None
    if len(raw) < spec.min_items:
        problems.append(f"{path}: give at least {spec.min_items} item{'s' if spec.min_items > 1 else ''}")
        return None
    return {
        label: _section(f"{entry}.*", conf, problems, schema, f"{path}.{label}")
        for label, conf in raw.items()
    }


# ---- overrides -------------------------------------------------------------------------------------------------
def apply_overrides(raw: dict, overrides: list[str], problems: list[str], schema: dict) -> None:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to the raw recipe mapping in place. A key's section
    must be one of ``schema``'s, or a mapping-valued key (``pruning.options``, ``data.columns``)."""
    free = [
        f"{n}.{k}" if n else k
        for n, specs in schema.items()
        for k, f in specs.items()
        if f.kind.startswith("dict")
    ]
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
        known_sections = {s for s in schema if s} | set(free)
        if section and section not in known_sections:
            problems.append(
                f"override {key}: unknown section {section!r}{did_you_mean(section, known_sections)}"
            )
            continue
        node = raw
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (plain PyYAML keeps the last silently, so
    a recipe's second ``lr:`` would quietly win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first on line {first})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _yaml_error(source: str, exc: yaml.YAMLError) -> RecipeError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return RecipeError(
            source, [f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"]
        )
    return RecipeError(source, [f"YAML syntax error: {problem}"])


def check_sections(
    raw: Any, source: str, overrides: list[str] | None, schema: dict, problems: list[str]
) -> tuple[dict, dict]:
    """Overrides applied, then every section of ``schema`` checked from the top (``""``): ``(values, raw)``;
    problems collected. The checker of run recipes, pretraining recipes and sweep specs."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(
            source, [f"expected a mapping of sections at the top level, got {type(raw).__name__}"]
        )
    raw = copy.deepcopy(raw)
    if overrides:
        apply_overrides(raw, overrides, problems, schema)
    return _section("", raw, problems, schema), raw


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
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None
    return raw
