"""BERMo: BERT whose classifier reads a learned scalar mix of all layers.

BERMo (Bhardwaj et al., "BERMo: What can BERT learn from ELMo?", arXiv 2110.15802) keeps the BERT encoder and
changes what the task head sees: instead of the last layer alone, an ELMo-style scalar mix of the hidden states,

    h_mix = gamma * sum_j softmax(w)_j * h_j          (at every token)

then the usual BERT head ([CLS] -> pooler -> dropout -> classifier). The mix adds exactly ``num_mixed + 1``
parameters (``w`` and ``gamma``). ``h_j`` runs over the embedding output and every encoder layer by default
(``mix_layers="all"``, as ELMo mixes its token layer too), or over the encoder layers only
(``mix_layers="encoder"``). With ``mix_layer_norm=True`` each ``h_j`` is normalised before mixing with AllenNLP's
ScalarMix ``do_layer_norm`` semantics: one mean and variance per layer over all non-padding positions and features.

The classes are plain Hugging Face models: ``save_pretrained``/``from_pretrained`` work, the Auto classes know the
``bermo`` model type once :mod:`bermo_prune` is imported, and loading from a BERT checkpoint gives the BERT
weights with a fresh mix (``w = 0``: a uniform mix, ``gamma = 1``).
"""

from __future__ import annotations

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
)
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions

MIX_LAYER_CHOICES = ("all", "encoder")


@strict
class BermoConfig(BertConfig):
    """A :class:`~transformers.BertConfig` plus the scalar-mix options.

    Attributes:
        mix_layers: ``"all"`` mixes the embedding output and every encoder layer (L + 1 states, as ELMo);
            ``"encoder"`` mixes the L encoder layers only.
        mix_layer_norm: normalise each state before mixing (AllenNLP ScalarMix ``do_layer_norm``).
        mix_trainable: learn ``w`` and ``gamma``; when False they stay at their initial values.
        mix_init: initial ``w`` (one value per mixed state); None means zeros, a uniform softmax.
        mix_gamma_init: initial ``gamma``.
    """

    model_type = "bermo"

    mix_layers: str = "all"
    mix_layer_norm: bool = False
    mix_trainable: bool = True
    mix_init: list[float] | None = None
    mix_gamma_init: float = 1.0

    @property
    def num_mixed_states(self) -> int:
        return self.num_hidden_layers + (1 if self.mix_layers == "all" else 0)


class ScalarMix(nn.Module):
    """``gamma * sum_j softmax(w)_j * h_j`` over a list of same-shaped hidden states."""

    def __init__(
        self,
        num_states: int,
        layer_norm: bool = False,
        trainable: bool = True,
        init: list[float] | None = None,
        gamma_init: float = 1.0,
    ) -> None:
        super().__init__()
        if init is not None and len(init) != num_states:
            raise ValueError(f"mix_init has {len(init)} values but {num_states} states are mixed")
        self.num_states = num_states
        self.layer_norm = layer_norm
        w = torch.zeros(num_states) if init is None else torch.tensor(init, dtype=torch.float32)
        self.weights = nn.Parameter(w, requires_grad=trainable)  # (num_states,)
        self.gamma = nn.Parameter(torch.tensor([float(gamma_init)]), requires_grad=trainable)  # (1,)

    def forward(self, states: tuple[torch.Tensor, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mix ``states`` (each (batch, seq, hidden)); ``mask`` (batch, seq) marks real tokens for layer norm."""
        if len(states) != self.num_states:
            raise ValueError(f"expected {self.num_states} hidden states, got {len(states)}")
        stacked = torch.stack(states, dim=0)  # (num_states, batch, seq, hidden)
        if self.layer_norm:
            stacked = self._normalise(stacked, mask)
        probs = torch.softmax(self.weights, dim=0).to(stacked.dtype)  # (num_states,)
        return self.gamma.to(stacked.dtype) * torch.einsum("l,lbsh->bsh", probs, stacked)

    @staticmethod
    def _normalise(stacked: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # One mean/variance per layer over every non-padding position and feature (AllenNLP semantics).
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


class BermoModel(BertModel):
    """The BERT encoder whose outputs are the scalar mix of its hidden states.

    ``last_hidden_state`` is the mixed sequence and ``pooler_output`` the pooler applied to its [CLS] position,
    so any BERT head placed on top reads the mix. Weight names equal :class:`~transformers.BertModel`'s plus
    ``scalar_mix.weights`` and ``scalar_mix.gamma``.
    """

    config_class = BermoConfig

    def __init__(self, config: BermoConfig, add_pooling_layer: bool = True) -> None:
        if config.mix_layers not in MIX_LAYER_CHOICES:
            raise ValueError(f"mix_layers must be one of {MIX_LAYER_CHOICES}, got {config.mix_layers!r}")
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        self.scalar_mix = ScalarMix(
            config.num_mixed_states,
            layer_norm=config.mix_layer_norm,
            trainable=config.mix_trainable,
            init=config.mix_init,
            gamma_init=config.mix_gamma_init,
        )
        # A compacted BERMo records per-layer head counts and FFN sizes: build those shapes, so from_pretrained
        # loads it natively.
        from .compact import apply_layer_shapes

        apply_layer_shapes(self, config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Keep the mix at its configured start (uniform, gamma 1) whatever the generic initialiser does.
        if isinstance(module, ScalarMix):
            with torch.no_grad():
                init = self.config.mix_init
                module.weights.copy_(torch.zeros(module.num_states) if init is None else torch.tensor(init))
                module.gamma.fill_(float(self.config.mix_gamma_init))
            return
        super()._init_weights(module)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions | tuple:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        embedding_output = self.embeddings(
            input_ids=input_ids,
            position_ids=position_ids,
            token_type_ids=token_type_ids,
            inputs_embeds=inputs_embeds,
        )
        extended_mask, _ = self._create_attention_masks(
            attention_mask=attention_mask,
            encoder_attention_mask=None,
            embedding_output=embedding_output,
            encoder_hidden_states=None,
            past_key_values=None,
        )
        states = [embedding_output]  # embedding output + one entry per layer, each (batch, seq, hidden)
        hidden = embedding_output
        for layer in self.encoder.layer:
            hidden = layer(hidden, extended_mask)
            states.append(hidden)
        mixed = states if self.config.mix_layers == "all" else states[1:]
        token_mask = attention_mask
        if token_mask is None and input_ids is not None:
            token_mask = torch.ones_like(input_ids)
        sequence_output = self.scalar_mix(tuple(mixed), token_mask)  # (batch, seq, hidden)
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        out = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            hidden_states=tuple(states) if output_hidden_states else None,
        )
        return out if return_dict is not False else out.to_tuple()

    def mix_weights(self) -> dict[str, list[float] | float]:
        """The learned per-state weights (softmax) and gamma; state 0 is the embedding output when mixed."""
        return self.scalar_mix.mix_weights()


class BermoForSequenceClassification(BertForSequenceClassification):
    """BERT's sequence-classification head on the BERMo mix.

    Losses and ``problem_type`` handling (regression, single- and multi-label classification) are inherited
    unchanged from :class:`~transformers.BertForSequenceClassification`; only the encoder differs.
    """

    config_class = BermoConfig

    def __init__(self, config: BermoConfig) -> None:
        # Deliberately skip BertForSequenceClassification.__init__ so no throwaway BertModel is built.
        super(BertForSequenceClassification, self).__init__(config)
        self.num_labels = config.num_labels
        self.config = config
        self.bert = BermoModel(config)
        dropout = (
            config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def mix_weights(self) -> dict[str, list[float] | float]:
        """The learned per-state weights (softmax) and gamma."""
        return self.bert.mix_weights()


def bermo_config_from_bert(bert_config: BertConfig, **mix_options) -> BermoConfig:
    """A :class:`BermoConfig` with every field of ``bert_config`` plus the given mix options."""
    fields = bert_config.to_dict()
    fields.pop("model_type", None)
    fields.pop("architectures", None)
    fields.pop("transformers_version", None)
    fields.update(mix_options)
    return BermoConfig(**fields)


def mix_weights(model: nn.Module) -> dict[str, list[float] | float] | None:
    """The BERMo mix of ``model`` (any wrapper holding a :class:`ScalarMix`), or None for a plain BERT."""
    for module in model.modules():
        if isinstance(module, ScalarMix):
            return module.mix_weights()
    return None


AutoConfig.register("bermo", BermoConfig, exist_ok=True)
AutoModel.register(BermoConfig, BermoModel, exist_ok=True)
AutoModelForSequenceClassification.register(BermoConfig, BermoForSequenceClassification, exist_ok=True)
