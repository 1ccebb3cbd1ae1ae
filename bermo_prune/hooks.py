"""The training loop's seams: what pruning, BERMo's layer mix and distillation add to a step.

:class:`~bermo_prune.train.Trainer` knows none of these features; it calls its hooks, in order, at fixed points:

=================  ===================================================================================
``wrap_data``      once: wrap the training set and collate (distillation adds example indices)
``param_groups``   once: regroup the optimizer's parameters (the scores' group, the mix's group)
``setup``          once, after Accelerate has prepared the model (move a teacher to the device)
``loss``           every step: add to the loss (the penalty) or mix into it (the teacher's term)
``after_step``     after every optimizer step (the schedule and the masks move)
``on_step``        at the run's start (``loss`` None) and after every optimizer step, with the step's task loss
                   (the global mean) and the model: may return a record for ``metrics.jsonl`` (the early
                   evaluations of :mod:`.early_eval`)
``log_fields``     at every logged step: fields of the ``metrics.jsonl`` record (``progress_fields`` picks
                   from that record what the progress bar shows)
``before_eval``    before an evaluation (the final masks are computed before the last one)
``eval_fields``    fields of an evaluation record (remaining weights, the mix)
``summary_fields`` fields of the run's summary
``state_dict``     the hook's part of the checkpoint, under ``state_key``; ``load_state_dict`` on resume
``on_record``      every record written to ``metrics.jsonl`` (main process): logging sinks (:mod:`.sinks`)
``close``          once, when the run ends (however it ends)
=================  ===================================================================================

Every method has a do-nothing default, so a hook overrides only what it needs. The order of the list matters
where two hooks touch the same thing: :func:`~bermo_prune.runner.feature_hooks` puts distillation first (its loss
is the mix of the task loss and the teacher's term, to which the penalty is then added), pruning next, the mix last;
:func:`~bermo_prune.train_config.section_hooks` adds those the ``train`` section asks for. The runner composes a
run's list; the Trainer calls whatever it is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .bermo import mix_weights
from .distill import INDEX_KEY, Distiller, IndexedCollate, IndexedSplit
from .errors import InputError
from .optim import split_mix_group

if TYPE_CHECKING:
    from .engine import Pruning
    from .train_config import TrainConfig


class TrainHook:
    """One feature of a training run, plugged into the :class:`~bermo_prune.train.Trainer` (see the module doc)."""

    #: the checkpoint key of this hook's state (None: it keeps none)
    state_key: str | None = None
    #: batch keys this hook's ``wrap_data`` adds; the trainer takes them out before the model's forward and
    #: passes them to ``loss`` as ``extras``
    batch_keys: tuple[str, ...] = ()

    def wrap_data(self, dataset, collate):
        return dataset, collate

    def param_groups(self, groups: list[dict], model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
        return groups

    def setup(self, accelerator) -> None:
        pass

    def loss(
        self, loss: torch.Tensor, task_loss: torch.Tensor, out, batch: dict, extras: dict
    ) -> torch.Tensor:
        return loss

    def after_step(self) -> None:
        pass

    def on_step(self, step: int, loss: float | None, model: torch.nn.Module) -> dict | None:
        return None

    def log_fields(self) -> dict:
        return {}

    def progress_fields(self, record: dict) -> dict[str, str]:
        return {}

    def before_eval(self, step: int, total_steps: int) -> None:
        pass

    def eval_fields(self, model: torch.nn.Module) -> dict:
        return {}

    def summary_fields(self, model: torch.nn.Module) -> dict:
        return {}

    def state_dict(self):
        return None

    def load_state_dict(self, state) -> None:
        pass

    def on_record(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass


class PruningHook(TrainHook):
    """A :func:`~bermo_prune.engine.prune` handle: its scores train in their own group at ``score_lr``, its penalty
    joins the loss, its schedule advances after every optimizer step, and the remaining weights are logged."""

    state_key = "pruning"

    def __init__(self, handle: Pruning, score_lr: float | None = None) -> None:
        self.handle = handle
        self.score_lr = score_lr
        self._penalty: torch.Tensor | None = None

    def param_groups(self, groups, model, cfg):
        return self.handle.param_groups(cfg.lr, self.score_lr, cfg.weight_decay, groups)

    def loss(self, loss, task_loss, out, batch, extras):
        self._penalty = self.handle.penalty()
        return loss + self._penalty

    def after_step(self) -> None:
        self.handle.step()

    def log_fields(self) -> dict:
        h = self.handle
        fields = {h.pruner.schedule_key: h.value}
        if self._penalty is not None:
            fields["penalty"] = float(self._penalty.detach())
        fields["remaining"] = h.remaining()
        if h.scheduler.started():
            fields.update(h.pruner.log_fields(h.layout, h.state, h.value))
        return fields

    def progress_fields(self, record: dict) -> dict[str, str]:
        return {"remaining": f"{record['remaining']:.3f}"}

    def before_eval(self, step, total_steps):
        if step == total_steps:
            self.handle.update_masks()  # the final masks are the ones evaluated, hardened and reported

    def eval_fields(self, model):
        return {"remaining": self.handle.sparsity()["remaining"]}

    def summary_fields(self, model):
        return {"method": getattr(self.handle.pruner, "name", None), "sparsity": self.handle.sparsity()}

    def state_dict(self):
        return self.handle.state_dict()

    def load_state_dict(self, state) -> None:
        self.handle.load_state_dict(state)


class MixHook(TrainHook):
    """BERMo's layer mix: its own AdamW group at ``mix_lr`` (a recipe's ``train.mix_lr``; see
    :func:`~bermo_prune.optim.split_mix_group`; None: the mix stays in the encoder's group), and the learned
    weights in every evaluation record and the summary. A plain model passes through unchanged."""

    def __init__(self, mix_lr: float | None) -> None:
        self.mix_lr = mix_lr

    def param_groups(self, groups, model, cfg):
        return split_mix_group(groups, model, self.mix_lr) if self.mix_lr is not None else groups

    def eval_fields(self, model):
        mix = mix_weights(model)
        return {"mix": mix} if mix is not None else {}

    def summary_fields(self, model):
        return {"mix": mix_weights(model)}


class FreezeEmbeddingsHook(TrainHook):
    """``train.freeze_embeddings``: the word-embedding matrix keeps its pretrained values (no gradient, no AdamW
    state; the masks never cover it). On all-MiniLM-L6-v2 it is 11.7M of the 22.7M parameters, most of AdamW's
    step. Position and token-type embeddings, LayerNorms and every encoder matrix still train."""

    def param_groups(self, groups, model, cfg):
        weight = model.get_input_embeddings().weight
        output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if output is not None and output.weight is weight:
            raise InputError(
                "train.freeze_embeddings: this model's word embeddings are tied to its output layer; "
                "freezing them would freeze that layer too"
            )
        weight.requires_grad_(False)
        out = [{**g, "params": [p for p in g["params"] if p is not weight]} for g in groups]
        return [g for g in out if g["params"]]

    def summary_fields(self, model):
        return {"frozen_embeddings": int(model.get_input_embeddings().weight.numel())}


class DistillHook(TrainHook):
    """Knowledge distillation (:class:`~bermo_prune.distill.Distiller`): batches carry example indices (the
    teacher-logit cache's keys), the loss becomes Sanh et al.'s mix of the teacher's term and the task loss, and
    the cache is checkpointed. The divergence tracker still watches the task loss."""

    state_key = "distill"
    batch_keys = (INDEX_KEY,)

    def __init__(self, distiller: Distiller) -> None:
        self.distiller = distiller
        self._term: torch.Tensor | None = None

    def wrap_data(self, dataset, collate):
        return IndexedSplit(dataset), IndexedCollate(collate)

    def setup(self, accelerator) -> None:
        self.distiller.teacher.to(accelerator.device)

    def loss(self, loss, task_loss, out, batch, extras):
        mixed, self._term = self.distiller.loss(out.logits, task_loss, batch, extras[INDEX_KEY])
        return mixed if loss is task_loss else mixed + (loss - task_loss)

    def log_fields(self) -> dict:
        return {"distill_loss": float(self._term)} if self._term is not None else {}

    def state_dict(self):
        return self.distiller.state_dict()

    def load_state_dict(self, state) -> None:
        self.distiller.load_state_dict(state)
