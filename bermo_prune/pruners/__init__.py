"""Pruning methods behind a registry: one file per method, the file name is the registry key.

``get_pruner("movement", granularity="block")`` builds one; ``available_pruners()`` lists them. A new method is a
file here with ``@register_pruner("<name>")`` on a :class:`Pruner` dataclass, plus its import below.
"""

from __future__ import annotations

from .base import GRANULARITIES, SCOPES, Pruner

_REGISTRY: dict[str, type[Pruner]] = {}


def register_pruner(name: str):
    """Class decorator: make a :class:`Pruner` subclass available as ``name`` (the recipe's ``method:``)."""

    def wrap(cls: type[Pruner]) -> type[Pruner]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"pruner {name!r} is already registered")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return wrap


def available_pruners() -> list[str]:
    return sorted(_REGISTRY)


def pruner_class(name: str) -> type[Pruner]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown pruning method {name!r}; use one of {', '.join(available_pruners())}"
        ) from None


def get_pruner(name: str, **kwargs) -> Pruner:
    """An instance of the method ``name`` with ``kwargs`` as its hyperparameters."""
    return pruner_class(name)(**kwargs)


# Explicit imports register the built-in methods (after the registry exists).
from . import l0, magnitude, movement, soft_movement  # noqa: E402,F401

__all__ = [
    "GRANULARITIES",
    "SCOPES",
    "Pruner",
    "available_pruners",
    "get_pruner",
    "pruner_class",
    "register_pruner",
]
