"""BERT-family encoders as data: one small role table per family, read by the engine, BERMo, models and compact.

Every family here is a post-LN transformer encoder whose layers hold Q, K, V, an attention-output projection and a
two-matrix FFN; they differ only in where those sit and what the attributes are called. A :class:`Family` records
that once (paths inside one layer, the attribute holding the head count, the FFN activation, the classifier's base
attribute), so nothing else branches on a family name:

======== ==================== =========================================== ==================== ============
family   layers (in the base) Q, K, V / attention-out                     FFN in / out         head count
======== ==================== =========================================== ==================== ============
bert     encoder.layer        attention.self.{query,key,value} /          intermediate.dense / num_attention
                              attention.output.dense                      output.dense         _heads
roberta  encoder.layer        as bert                                     as bert              as bert
electra  encoder.layer        as bert                                     as bert              as bert
distilbert transformer.layer  attention.{q_lin,k_lin,v_lin} / .out_lin    ffn.lin1 / ffn.lin2  n_heads
======== ==================== =========================================== ==================== ============

A new family is one :func:`register_family` call. Its BERMo variant is added in :mod:`bermo_prune.bermo`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertModel,
    ElectraConfig,
    ElectraForSequenceClassification,
    ElectraModel,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaModel,
)

#: the prunable roles of Movement Pruning's count, in a layer's order
ROLES = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")
#: what a role is to the engine's unit layout: Q/K/V are head rows, attention-out and FFN-out take head / neuron
#: columns, FFN-in neuron rows
ROLE_KIND = {
    "query": "qkv",
    "key": "qkv",
    "value": "qkv",
    "attn_out": "attn_out",
    "ffn_in": "ffn_in",
    "ffn_out": "ffn_out",
}


@dataclass(frozen=True)
class Family:
    """Where one encoder family keeps what pruning, BERMo and compaction touch.

    Attributes:
        name: the family's key (the plain model's ``model_type``).
        config_class, base_class, classifier_class: the transformers classes of the plain family.
        prefix: the classifier's attribute holding the base model (``bert``, ``roberta``, ...).
        layers: path from the base model to its ``nn.ModuleList`` of layers.
        paths: role -> path of that ``nn.Linear`` inside one layer (every role of :data:`ROLES`).
        attention: path inside one layer to the module that holds the head count and ``attention_head_size``.
        heads_attr: that module's head-count attribute (``all_head_size`` is kept in step where it exists).
        activation: path inside one layer to the FFN activation (a callable).
        scratch: generic from-scratch fields (see :func:`scratch_config`) -> this family's config keywords.
        head_weights: name prefixes of the classifier's task-head weights (fresh when loading a bare encoder).
    """

    name: str
    config_class: type
    base_class: type
    classifier_class: type
    prefix: str
    layers: str
    paths: dict[str, str]
    attention: str
    heads_attr: str
    activation: str
    scratch: Callable[[dict], dict] = field(repr=False)
    head_weights: tuple[str, ...] = ("classifier.",)

    # ---- finding modules ------------------------------------------------------------------------------------
    def base(self, model: nn.Module) -> nn.Module:
        """The base encoder of a classifier (or the model itself when it is a base model)."""
        return getattr(model, self.prefix, model)

    def layer_list(self, model: nn.Module) -> nn.ModuleList:
        return self.base(model).get_submodule(self.layers)

    def linear(self, layer: nn.Module, role: str) -> nn.Linear:
        return layer.get_submodule(self.paths[role])

    def set_linear(self, layer: nn.Module, role: str, new: nn.Linear) -> None:
        parent, _, attr = self.paths[role].rpartition(".")
        setattr(layer.get_submodule(parent) if parent else layer, attr, new)

    def attention_module(self, layer: nn.Module) -> nn.Module:
        return layer.get_submodule(self.attention)

    def heads(self, layer: nn.Module) -> int:
        return int(getattr(self.attention_module(layer), self.heads_attr))

    def head_size(self, layer: nn.Module) -> int:
        return int(self.attention_module(layer).attention_head_size)

    def set_heads(self, layer: nn.Module, heads: int) -> None:
        """Record a new head count on the attention module (its forward reshapes by head size, not count)."""
        att = self.attention_module(layer)
        setattr(att, self.heads_attr, heads)
        if hasattr(att, "all_head_size"):
            att.all_head_size = heads * self.head_size(layer)

    def act(self, layer: nn.Module) -> Callable:
        return operator.attrgetter(self.activation)(layer)

    def target_patterns(self) -> list[tuple[str, str]]:
        """``(regex, role)`` per prunable matrix; the regex finds it by module name in a base model or classifier."""
        return [(rf"(^|\.){re.escape(self.layers)}\.\d+\.{re.escape(self.paths[r])}$", r) for r in ROLES]


_BERT_PATHS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
}


def _bert_fields(f: dict) -> dict:
    return {
        "vocab_size": f["vocab_size"],
        "hidden_size": f["hidden_size"],
        "num_hidden_layers": f["num_layers"],
        "num_attention_heads": f["num_heads"],
        "intermediate_size": f["intermediate_size"],
        "max_position_embeddings": f["max_position_embeddings"],
        "hidden_dropout_prob": f["dropout"],
        "attention_probs_dropout_prob": f["dropout"],
        "pad_token_id": f["pad_token_id"],
    }


def _roberta_fields(f: dict) -> dict:
    # RoBERTa numbers positions from pad_token_id + 1, so it needs that many more position embeddings; two token
    # types so a WordPiece tokenizer's sentence-pair ids stay in range.
    return {
        **_bert_fields(f),
        "max_position_embeddings": f["max_position_embeddings"] + f["pad_token_id"] + 1,
        "type_vocab_size": 2,
        "bos_token_id": None,
        "eos_token_id": None,
    }


def _electra_fields(f: dict) -> dict:
    return {**_bert_fields(f), "embedding_size": f["hidden_size"]}


def _distilbert_fields(f: dict) -> dict:
    return {
        "vocab_size": f["vocab_size"],
        "dim": f["hidden_size"],
        "n_layers": f["num_layers"],
        "n_heads": f["num_heads"],
        "hidden_dim": f["intermediate_size"],
        "max_position_embeddings": f["max_position_embeddings"],
        "dropout": f["dropout"],
        "attention_dropout": f["dropout"],
        "pad_token_id": f["pad_token_id"],
    }


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make ``family`` known to the engine, models and compaction (its name is the registry key)."""
    _FAMILIES[family.name] = family
    return family


def available_families() -> list[str]:
    return list(_FAMILIES)


def get_family(name: str) -> Family:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(
            f"unknown model family {name!r}; use one of {', '.join(available_families())}"
        ) from None


def family_of(obj) -> Family:
    """The family of a model, or of a config (a BERMo variant belongs to the family it mixes)."""
    config = getattr(obj, "config", obj)
    for family in _FAMILIES.values():
        if isinstance(config, family.config_class):
            return family
    kind = getattr(config, "model_type", type(config).__name__)
    raise ValueError(
        f"model type {kind!r} is not a supported encoder family ({', '.join(available_families())})"
    )


def find_family(obj) -> Family | None:
    """Like :func:`family_of`, but None for a model that belongs to no registered family."""
    try:
        return family_of(obj)
    except ValueError:
        return None


def scratch_config(family: Family, bermo_config_class: type | None = None, **fields):
    """A from-scratch config of ``family`` from generic fields (vocab_size, hidden_size, num_layers, num_heads,
    intermediate_size, max_position_embeddings, dropout, pad_token_id); extra keywords pass through."""
    generic = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size")
    generic += ("max_position_embeddings", "dropout", "pad_token_id")
    base = {k: fields.pop(k) for k in generic}
    cls = bermo_config_class or family.config_class
    return cls(**family.scratch(base), **fields)


def _bert_layout(
    name: str, config: type, base: type, classifier: type, scratch: Callable[[dict], dict]
) -> Family:
    """A family with BERT's module layout (``encoder.layer.N.attention.self.query`` ...)."""
    return Family(
        name=name,
        config_class=config,
        base_class=base,
        classifier_class=classifier,
        prefix=name,
        layers="encoder.layer",
        paths=_BERT_PATHS,
        attention="attention.self",
        heads_attr="num_attention_heads",
        activation="intermediate.intermediate_act_fn",
        scratch=scratch,
    )


register_family(_bert_layout("bert", BertConfig, BertModel, BertForSequenceClassification, _bert_fields))
register_family(
    _bert_layout("roberta", RobertaConfig, RobertaModel, RobertaForSequenceClassification, _roberta_fields)
)
register_family(
    _bert_layout("electra", ElectraConfig, ElectraModel, ElectraForSequenceClassification, _electra_fields)
)
register_family(
    Family(
        name="distilbert",
        config_class=DistilBertConfig,
        base_class=DistilBertModel,
        classifier_class=DistilBertForSequenceClassification,
        prefix="distilbert",
        layers="transformer.layer",
        paths={
            "query": "attention.q_lin",
            "key": "attention.k_lin",
            "value": "attention.v_lin",
            "attn_out": "attention.out_lin",
            "ffn_in": "ffn.lin1",
            "ffn_out": "ffn.lin2",
        },
        attention="attention",
        heads_attr="n_heads",
        activation="ffn.activation",
        scratch=_distilbert_fields,
        head_weights=("classifier.", "pre_classifier."),
    )
)


# ---- per-layer shapes (a compacted model's config records them) ----------------------------------------------------
#: config attributes of a compacted model: per-layer head counts and FFN sizes (:mod:`bermo_prune.compact`)
LAYER_HEADS = "layer_heads"
LAYER_FFN = "layer_intermediate_sizes"
#: the roles whose rows are heads
ATTENTION_ROLES = ("query", "key", "value")


def has_layer_shapes(config) -> bool:
    """Whether ``config`` records per-layer shapes (a compacted model)."""
    return getattr(config, LAYER_HEADS, None) is not None or getattr(config, LAYER_FFN, None) is not None


def new_linear(inp: int, out: int, like: nn.Linear) -> nn.Linear:
    """A fresh ``inp -> out`` linear with ``like``'s bias, device and dtype."""
    return nn.Linear(inp, out, bias=like.bias is not None, device=like.weight.device, dtype=like.weight.dtype)


def _resize_attention(family: Family, layer: nn.Module, heads: int) -> None:
    size = heads * family.head_size(layer)
    for role in ATTENTION_ROLES:
        old = family.linear(layer, role)
        family.set_linear(layer, role, new_linear(old.in_features, size, old))
    out = family.linear(layer, "attn_out")
    family.set_linear(layer, "attn_out", new_linear(size, out.out_features, out))
    family.set_heads(layer, heads)


def _resize_ffn(family: Family, layer: nn.Module, size: int) -> None:
    w1, w2 = family.linear(layer, "ffn_in"), family.linear(layer, "ffn_out")
    family.set_linear(layer, "ffn_in", new_linear(w1.in_features, size, w1))
    family.set_linear(layer, "ffn_out", new_linear(size, w2.out_features, w2))


def apply_layer_shapes(model: nn.Module, config) -> None:
    """Give each encoder layer the head count and FFN size its config records (fresh weights, to be loaded)."""
    heads = getattr(config, LAYER_HEADS, None)
    ffn = getattr(config, LAYER_FFN, None)
    if heads is None and ffn is None:
        return
    family = family_of(model)
    for i, layer in enumerate(family.layer_list(model)):
        if heads is not None and heads[i] != family.heads(layer):
            _resize_attention(family, layer, heads[i])
        if ffn is not None and ffn[i] != family.linear(layer, "ffn_in").out_features:
            _resize_ffn(family, layer, ffn[i])
