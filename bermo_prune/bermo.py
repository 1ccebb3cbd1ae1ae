"""BERMo: a BERT-family encoder whose task head reads a learned scalar mix of all layers.

BERMo (Bhardwaj et al., "BERMo: What can BERT learn from ELMo?", arXiv 2110.15802) keeps the encoder and changes
what the task head sees: instead of the last layer alone, an ELMo-style scalar mix of the hidden states,

    h_mix = gamma * sum_j softmax(w)_j * h_j          (at every token)

then the family's usual head (BERT: [CLS] -> pooler -> classifier; RoBERTa/ELECTRA: their classification head on
the first token; DistilBERT: pre-classifier on [CLS]). The mix adds exactly ``num_mixed + 1`` parameters (``w``
and ``gamma``). ``h_j`` runs over the embedding output and every encoder layer by default (``mix_layers="all"``, as
ELMo mixes its token layer too), or over the encoder layers only (``mix_layers="encoder"``). With
``mix_layer_norm=True`` each ``h_j`` is normalised before mixing with AllenNLP's ScalarMix ``do_layer_norm``
semantics: one mean and variance per layer over all non-padding positions and features.

Public transformers API only: a BERMo base model is the family's own base model whose ``forward`` calls the
parent's public ``forward`` with ``output_hidden_states=True`` and mixes the returned states; the classifier is the
family's own classifier (its ``__init__`` runs unchanged) with the base model swapped for the BERMo one. Weight
names are the family's plus ``<prefix>.scalar_mix.weights`` and ``<prefix>.scalar_mix.gamma``, so a checkpoint of
the plain family loads into BERMo (fresh, uniform mix) and back (mix dropped).

Variants: ``bermo`` (BERT), ``bermo-roberta``, ``bermo-electra``, ``bermo-distilbert``. The Auto classes know
them once :mod:`bermo_prune` is imported, so ``save_pretrained``/``from_pretrained`` and ``pipeline`` work.

Length (about 360 lines): the mix, its options and a config, base model and classifier for each of four families
belong together; splitting them would scatter one architecture over files.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
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

from .families import Family, apply_layer_shapes, family_of

MIX_LAYER_CHOICES = ("all", "encoder")
#: named starts of the mix: ``uniform`` (zero logits) and ``last`` (one-hot on the last layer, frozen)
MIX_INIT_CHOICES = ("uniform", "last")
#: the logit of every other state under ``mix_init="last"``: its softmax weight underflows to exactly 0.0
_OFF_LOGIT = -1e4
#: config keys that only a BERMo config carries
MIX_KEYS = (
    "mix_layers",
    "mix_layer_norm",
    "mix_trainable",
    "mix_gamma_trainable",
    "mix_init",
    "mix_gamma_init",
)
_NOT_COPIED = ("model_type", "architectures", "transformers_version")


@dataclass
class MixOptions:
    """The scalar-mix options every BERMo config carries (a dataclass base of each variant's config).

    Attributes:
        mix_layers: ``"all"`` mixes the embedding output and every encoder layer (L + 1 states, as ELMo);
            ``"encoder"`` mixes the L encoder layers only.
        mix_layer_norm: normalise each state before mixing (AllenNLP ScalarMix ``do_layer_norm``).
        mix_trainable: learn ``w`` and ``gamma``; when False they stay at their initial values.
        mix_gamma_trainable: learn ``gamma`` (with ``mix_trainable``); when False only ``w`` learns and
            ``gamma`` stays at ``mix_gamma_init``.
        mix_init: initial ``w``: a list (one logit per mixed state); None or ``"uniform"``: zeros, a uniform
            softmax; ``"last"``: the whole weight on the last layer (the other logits at -1e4, whose softmax is
            exactly 0) with ``w`` frozen while ``gamma`` trains (as ``mix_gamma_trainable`` says): BERT's
            information path with BERMo's head scale, the control arm that separates "BERMo reads all layers"
            from "BERMo has a learned scale".
        mix_gamma_init: initial ``gamma``.
    """

    mix_layers: str = "all"
    mix_layer_norm: bool = False
    mix_trainable: bool = True
    mix_gamma_trainable: bool = True
    mix_init: list[float] | str | None = None
    mix_gamma_init: float = 1.0

    @property
    def num_mixed_states(self) -> int:
        return self.num_hidden_layers + (1 if self.mix_layers == "all" else 0)


def initial_logits(init: list[float] | str | None, num_states: int) -> torch.Tensor:
    """The mix's starting logits for a ``mix_init`` value (see :class:`MixOptions`)."""
    if init is None or init == "uniform":
        return torch.zeros(num_states)
    if init == "last":
        out = torch.full((num_states,), _OFF_LOGIT)
        out[-1] = 0.0
        return out
    return torch.tensor([float(v) for v in init])


class ScalarMix(nn.Module):
    """``gamma * sum_j softmax(w)_j * h_j`` over a list of same-shaped hidden states."""

    def __init__(
        self,
        num_states: int,
        layer_norm: bool = False,
        trainable: bool = True,
        init: list[float] | str | None = None,
        gamma_init: float = 1.0,
        gamma_trainable: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(init, str) and init not in MIX_INIT_CHOICES:
            raise ValueError(f"mix_init must be a list of logits or one of {MIX_INIT_CHOICES}, got {init!r}")
        if isinstance(init, list | tuple) and len(init) != num_states:
            raise ValueError(f"mix_init has {len(init)} values but {num_states} states are mixed")
        self.num_states = num_states
        self.layer_norm = layer_norm
        self.init = init
        self.gamma_init = float(gamma_init)
        self.trainable = trainable
        self.gamma_trainable = trainable and gamma_trainable
        # "last" fixes the layer weights (a one-hot is a fixed point of softmax's gradient in any case).
        self.weights_trainable = trainable and init != "last"
        self.weights = nn.Parameter(torch.zeros(num_states))  # (num_states,)
        self.gamma = nn.Parameter(torch.zeros(1))  # (1,)
        self.sync_requires_grad()
        self.reset_parameters()

    def sync_requires_grad(self) -> None:
        """Set ``requires_grad`` from the configuration. ``from_pretrained`` in transformers 5 materialises new
        parameters with ``requires_grad=True`` whatever the module set, so loaders call this after loading; the
        forward pass also detaches a frozen scalar, so a frozen value cannot move even if a caller forgets."""
        self.weights.requires_grad_(self.weights_trainable)
        self.gamma.requires_grad_(self.gamma_trainable)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The configured start: ``w = mix_init`` (zeros: a uniform mix), ``gamma = mix_gamma_init``."""
        self.weights.copy_(initial_logits(self.init, self.num_states))
        self.gamma.fill_(self.gamma_init)

    def forward(self, states: tuple[torch.Tensor, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mix ``states`` (each (batch, seq, hidden)); ``mask`` (batch, seq) marks real tokens for layer norm."""
        if len(states) != self.num_states:
            raise ValueError(f"expected {self.num_states} hidden states, got {len(states)}")
        stacked = torch.stack(states, dim=0)  # (num_states, batch, seq, hidden)
        if self.layer_norm:
            stacked = self.normalise(stacked, mask)
        weights = self.weights if self.weights_trainable else self.weights.detach()
        gamma = self.gamma if self.gamma_trainable else self.gamma.detach()
        probs = torch.softmax(weights, dim=0).to(stacked.dtype)  # (num_states,)
        return gamma.to(stacked.dtype) * torch.einsum("l,lbsh->bsh", probs, stacked)

    @staticmethod
    def normalise(stacked: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """One mean/variance per layer over every non-padding position and feature (AllenNLP semantics)."""
        hidden = stacked.shape[-1]
        if mask is None:
            mask = stacked.new_ones(stacked.shape[1:3])
        m = mask.to(stacked.dtype)[None, :, :, None]  # (1, batch, seq, 1)
        count = m.sum() * hidden
        mean = (stacked * m).sum(dim=(1, 2, 3), keepdim=True) / count
        var = (((stacked - mean) * m) ** 2).sum(dim=(1, 2, 3), keepdim=True) / count
        return (stacked - mean) / torch.sqrt(var + 1e-12)

    def mix_weights(self) -> dict[str, list[float] | float]:
        """The normalised per-state weights (softmax of ``w``) and ``gamma``, as plain floats."""
        with torch.no_grad():
            return {
                "layer_weights": torch.softmax(self.weights.float(), 0).tolist(),
                "gamma": float(self.gamma.float()),
            }


class BermoBaseMixin:
    """Turns a family's base model into BERMo's: ``last_hidden_state`` is the scalar mix of its hidden states.

    Placed before the family's base class (``class BermoRobertaModel(BermoBaseMixin, RobertaModel)``). The
    pooler, where the family has one, is applied to the mix's first position, so any head placed on top reads the
    mix. ``hidden_states`` are returned only when asked for, as by the plain model.
    """

    def __init__(self, config, *args, **kwargs) -> None:
        if config.mix_layers not in MIX_LAYER_CHOICES:
            raise ValueError(f"mix_layers must be one of {MIX_LAYER_CHOICES}, got {config.mix_layers!r}")
        super().__init__(config, *args, **kwargs)
        self.scalar_mix = ScalarMix(
            config.num_mixed_states,
            layer_norm=config.mix_layer_norm,
            trainable=config.mix_trainable,
            init=config.mix_init,
            gamma_init=config.mix_gamma_init,
            gamma_trainable=config.mix_gamma_trainable,
        )
        # A compacted BERMo records per-layer head counts and FFN sizes: build those shapes, so from_pretrained
        # loads it natively.
        apply_layer_shapes(self, config)
        self.post_init()

    # transformers documents this hook for models that add their own nn.Parameter (PreTrainedModel._init_weights:
    # "In case a model adds an explicit nn.Parameter, this method should also be overridden"): a mix missing from a
    # checkpoint is materialised uninitialised and must start at its configured values.
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, ScalarMix):
            module.reset_parameters()
            return
        super()._init_weights(module)

    def forward(
        self, input_ids=None, attention_mask=None, *args, output_hidden_states=None, return_dict=None, **kw
    ):
        out = super().forward(
            input_ids, attention_mask, *args, output_hidden_states=True, return_dict=True, **kw
        )
        states = tuple(out.hidden_states)  # embedding output + one per layer, each (batch, seq, hidden)
        mixed = states if self.config.mix_layers == "all" else states[1:]
        token_mask = attention_mask if attention_mask is not None else states[0].new_ones(states[0].shape[:2])
        fields = dict(out.items())
        fields["last_hidden_state"] = self.scalar_mix(mixed, token_mask)  # (batch, seq, hidden)
        if getattr(self, "pooler", None) is not None:
            fields["pooler_output"] = self.pooler(fields["last_hidden_state"])
        fields["hidden_states"] = states if output_hidden_states else None
        result = type(out)(**fields)
        return result if return_dict is not False else result.to_tuple()

    def mix_weights(self) -> dict[str, list[float] | float]:
        """The learned per-state weights (softmax) and gamma; state 0 is the embedding output when mixed."""
        return self.scalar_mix.mix_weights()


class BermoClassifierMixin:
    """The family's own sequence classifier (its ``__init__``, head and losses unchanged) on the BERMo base.

    Placed before the family's classifier class; ``bermo_base_class`` names the BERMo base model to use.
    """

    bermo_base_class: type

    def __init__(self, config) -> None:
        super().__init__(config)
        family = family_of(config)
        plain = getattr(self, family.prefix)
        # Keep the plain model's pooler choice (RoBERTa's classifier builds its base without one).
        kwargs = {"add_pooling_layer": False} if getattr(plain, "pooler", True) is None else {}
        setattr(self, family.prefix, self.bermo_base_class(config, **kwargs))
        self.post_init()

    def mix_weights(self) -> dict[str, list[float] | float]:
        """The learned per-state weights (softmax) and gamma."""
        return getattr(self, family_of(self.config).prefix).mix_weights()


# ---- the variants: a config, a base model and a classifier per family ---------------------------------------------
@strict
class BermoConfig(BertConfig, MixOptions):
    """A :class:`~transformers.BertConfig` plus the scalar-mix options (:class:`MixOptions`)."""

    model_type = "bermo"


class BermoModel(BermoBaseMixin, BertModel):
    """The BERT encoder whose outputs are the scalar mix of its hidden states."""

    config_class = BermoConfig


class BermoForSequenceClassification(BermoClassifierMixin, BertForSequenceClassification):
    """BERT's sequence-classification head (losses, ``problem_type``) on the BERMo mix."""

    config_class = BermoConfig
    bermo_base_class = BermoModel


@strict
class BermoRobertaConfig(RobertaConfig, MixOptions):
    model_type = "bermo-roberta"


class BermoRobertaModel(BermoBaseMixin, RobertaModel):
    config_class = BermoRobertaConfig


class BermoRobertaForSequenceClassification(BermoClassifierMixin, RobertaForSequenceClassification):
    config_class = BermoRobertaConfig
    bermo_base_class = BermoRobertaModel


@strict
class BermoElectraConfig(ElectraConfig, MixOptions):
    model_type = "bermo-electra"


class BermoElectraModel(BermoBaseMixin, ElectraModel):
    config_class = BermoElectraConfig


class BermoElectraForSequenceClassification(BermoClassifierMixin, ElectraForSequenceClassification):
    config_class = BermoElectraConfig
    bermo_base_class = BermoElectraModel


@strict
class BermoDistilBertConfig(DistilBertConfig, MixOptions):
    model_type = "bermo-distilbert"


class BermoDistilBertModel(BermoBaseMixin, DistilBertModel):
    config_class = BermoDistilBertConfig


class BermoDistilBertForSequenceClassification(BermoClassifierMixin, DistilBertForSequenceClassification):
    config_class = BermoDistilBertConfig
    bermo_base_class = BermoDistilBertModel


#: family name -> its BERMo classifier (the config and base model are its ``config_class`` / ``bermo_base_class``)
BERMO_CLASSIFIERS: dict[str, type] = {
    "bert": BermoForSequenceClassification,
    "roberta": BermoRobertaForSequenceClassification,
    "electra": BermoElectraForSequenceClassification,
    "distilbert": BermoDistilBertForSequenceClassification,
}


def is_bermo_config(config) -> bool:
    return isinstance(config, MixOptions)


def bermo_classifier(family: Family | str) -> type:
    """The BERMo sequence classifier of a family."""
    name = family if isinstance(family, str) else family.name
    return BERMO_CLASSIFIERS[name]


def bermo_config_from(config, **mix_options):
    """The BERMo config of ``config``'s family with every field of ``config`` plus the given mix options."""
    cls = bermo_classifier(family_of(config)).config_class
    fields = {k: v for k, v in config.to_dict().items() if k not in _NOT_COPIED}
    fields.update(mix_options)
    return cls(**fields)


def plain_config_from(config):
    """The plain family config of ``config`` (a BERMo config loses its mix options)."""
    cls = family_of(config).config_class
    return cls(**{k: v for k, v in config.to_dict().items() if k not in _NOT_COPIED and k not in MIX_KEYS})


def bermo_config_from_bert(bert_config: BertConfig, **mix_options) -> BermoConfig:
    """A :class:`BermoConfig` with every field of ``bert_config`` plus the given mix options."""
    return bermo_config_from(bert_config, **mix_options)


def mix_weights(model: nn.Module) -> dict[str, list[float] | float] | None:
    """The BERMo mix of ``model`` (any wrapper holding a :class:`ScalarMix`), or None for a plain model."""
    for module in model.modules():
        if isinstance(module, ScalarMix):
            return module.mix_weights()
    return None


for _classifier in BERMO_CLASSIFIERS.values():
    _config = _classifier.config_class
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _classifier.bermo_base_class, exist_ok=True)
    AutoModelForSequenceClassification.register(_config, _classifier, exist_ok=True)
