"""Typed recipe keys: one source for a section's keys, defaults and bounds.

Each section of a recipe is a dataclass next to the code that uses it (``DataConfig``, ``ModelSpec``,
``PruningConfig``, ``ScheduleConfig``, ``TrainConfig``, ``DivergenceConfig``, ``CheckpointConfig``,
``DistillConfig``; the top level is ``Recipe`` itself). It declares each recipe key as a field made by :func:`key`,
which carries the key's bounds and allowed values next to its default; :func:`section` turns the dataclass into
the table :mod:`bermo_prune.recipe` validates against (the kind and whether the key may be empty come from the
field's annotation). A key's default is therefore written once, in the dataclass, and the recipe's defaults cannot
drift from the code's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

    # int, float, str, bool, list_str, dict_str, dict, section, steps (int steps or a fraction in [0, 1)),
    # name_or_numbers (one of ``choices``, or a list of numbers)
    kind: str
    default: Any = None
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # min is exclusive
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None  # a callable: read at check time
    required: bool = False


def key(
    default: Any = None,
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
    required: bool = False,
    kind: str | None = None,
) -> Any:
    """A dataclass field that is also a recipe key, with its bounds (``min`` exclusive when ``min_open``),
    allowed values (a tuple, or a function returning them when the set can grow after import) and whether a
    recipe must give it. The kind of value comes from the annotation unless ``kind`` names one the annotation
    cannot say (``steps``: a step count or a fraction of the run in [0, 1))."""
    meta = {
        "min": min,
        "max": max,
        "min_open": min_open,
        "choices": choices,
        "required": required,
        "kind": kind,
    }
    return dataclasses.field(default=default, metadata={"recipe_key": meta})


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
        meta = f.metadata.get("recipe_key")
        if meta is None or f.name in exclude:
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
