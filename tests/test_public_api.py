"""The package uses public transformers API only, so a transformers release that renames private internals (5.24
changed ``BertModel._create_attention_masks``) cannot break it.

Checked on the syntax tree, not by eye: every ``obj._name`` the package touches must be a name the package defines
itself, and none of them may also be an attribute of a transformers model, config or tokenizer of any supported
family. The one exception is the override hook transformers documents for models that add their own
``nn.Parameter`` (``PreTrainedModel._init_weights``: "In case a model adds an explicit nn.Parameter, this method
should also be overridden"), which BERMo's mix needs.
"""

from __future__ import annotations

import ast

import pytest
import torch
from transformers import BertTokenizer, PreTrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from bermo_prune.bermo import bermo_classifier, bermo_config_from
from bermo_prune.families import available_families, get_family

from .conftest import ROOT, family_config

DOCUMENTED_HOOKS = {"_init_weights"}
PACKAGE = ROOT / "bermo_prune"


def _trees():
    return {p: ast.parse(p.read_text(), filename=str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _own_names(trees) -> set[str]:
    """Every underscore name the package itself defines: functions, classes, attributes it assigns, imports."""
    own: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for sub in ast.walk(t):
                        if isinstance(sub, ast.Attribute):
                            own.add(sub.attr)
                        elif isinstance(sub, ast.Name):
                            own.add(sub.id)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "register_buffer":
                if node.args and isinstance(node.args[0], ast.Constant):
                    own.add(node.args[0].value)  # module.register_buffer("_name", ...)
    return {n for n in own if isinstance(n, str) and _private(n)}


def _transformers_names() -> set[str]:
    """Attribute names of transformers' base classes and of a live model, config and tokenizer of every family,
    plain and BERMo (instances too, so attributes set in ``__init__`` count)."""
    names: set[str] = set()
    for cls in (PreTrainedModel, PreTrainedConfig, PreTrainedTokenizerBase, BertTokenizer):
        names |= set(dir(cls))
    torch_names = set(dir(torch.nn.Module()))
    for family in available_families():
        for config in (family_config(family), bermo_config_from(family_config(family))):
            model = (
                bermo_classifier(family)
                if hasattr(config, "mix_layers")
                else get_family(family).classifier_class
            )(config)
            names |= set(dir(config))
            for module in model.modules():
                names |= set(dir(module)) - torch_names
                names |= set(dir(type(module))) - set(dir(torch.nn.Module))
    return {n for n in names if _private(n)}


def _used(trees) -> list[tuple[str, int, str]]:
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                found.append((str(path.relative_to(ROOT)), node.lineno, node.attr))
    return found


@pytest.fixture(scope="module")
def names():
    """(the package's own underscore names, transformers' underscore names)"""
    return _own_names(_trees()), _transformers_names()


def _problems(trees, own: set[str], theirs: set[str]) -> list[str]:
    problems = []
    for where, line, name in _used(trees):
        if name in DOCUMENTED_HOOKS:
            continue
        if name in theirs:
            problems.append(f"{where}:{line}: .{name} is a private transformers attribute")
        elif name not in own:
            problems.append(
                f"{where}:{line}: .{name} is not defined by bermo_prune (someone else's private API)"
            )
    return problems


def test_no_private_transformers_attribute_is_touched(names):
    own, theirs = names
    problems = _problems(_trees(), own, theirs)
    assert not problems, "\n".join(problems)
    # the check is live: it knows transformers' private names, including the one 5.24 changed
    assert "_create_attention_masks" in theirs and "_init_weights" in theirs


def test_no_private_module_or_name_is_imported():
    problems = []
    for path, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")[0]
                if top in ("transformers", "torch", "huggingface_hub", "accelerate", "datasets"):
                    private_path = any(_private(part) for part in node.module.split("."))
                    private_name = any(_private(a.name) for a in node.names)
                    if private_path or private_name:
                        problems.append(
                            f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import ..."
                        )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "source,expected",
    [
        ("x = model._create_attention_masks(a)", "private transformers attribute"),
        ("y = thing._never_defined_anywhere", "not defined by bermo_prune"),
    ],
)
def test_the_check_flags_a_private_call(source, expected, names):
    """The same rule applied to a planted line: it must catch what the package must not do."""
    own, theirs = names
    problems = _problems({ROOT / "bermo_prune" / "planted.py": ast.parse(source)}, own, theirs)
    assert len(problems) == 1 and expected in problems[0]
