"""Prune inside a plain ``transformers.Trainer``: :class:`PruningCallback`.

    from transformers import Trainer
    from bermo_prune import Cubic, Scheduler, get_pruner
    from bermo_prune.integrations.transformers import PruningCallback

    pruning = PruningCallback(Scheduler(get_pruner("movement"), Cubic(1.0, 0.1, total=1000)), score_lr=1e-2)
    # or: PruningCallback.from_recipe("recipes/sst2_movement.yaml")   (its pruning: section)
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[pruning])
    trainer.train()          # the model comes back hardened: a standard checkpoint for save_model()

What the callback does, at the Trainer's own events (the same steps as the project's loop,
:class:`bermo_prune.train.Trainer` with its :class:`~bermo_prune.hooks.PruningHook` and
:class:`~bermo_prune.hooks.MixHook`; tested equal, masks and losses, for movement and L0):

* ``on_train_begin``: attaches the masks (:func:`~bermo_prune.engine.prune`; a recipe's schedule is built for the
  Trainer's ``max_steps`` here), puts the pruning scores into an AdamW group of their own at ``score_lr`` (and,
  with ``mix_lr``, BERMo's mix into one at ``mix_lr``) on the Trainer's optimizer, each following its learning-rate
  schedule, and registers a forward hook on the model that adds the method's penalty (soft movement, L0) to the
  model's training loss: a callback cannot add a loss term, the model's output can carry one.
* ``on_optimizer_step`` (after ``optimizer.step()``, before the Trainer zeroes the gradients, which target control's
  multipliers still need): advances the schedule and recomputes the masks when due.
* ``on_step_end`` at the last step: the final masks (the ones evaluated, hardened and reported).
* ``on_log``: adds ``remaining`` (share of the encoder's prunable weights kept), the schedule value, the penalty
  and, for BERMo, the mix (``mix/layer_J``, ``mix/gamma``) to the training logs and ``state.log_history``.
  Callbacks see them in order, so a reporting callback (TensorBoard, W&B) gets them when it comes after this one:
  ``Trainer(..., report_to="none", callbacks=[pruning, TensorBoardCallback()])``.
* ``on_train_end``: hardens the masks into the weights (``harden=False`` keeps them); ``final_sparsity`` keeps
  the remaining weights overall, per layer and per matrix.

Limits: the penalty joins the loss the model returns, so a Trainer that computes the loss itself
(``compute_loss_func``, label smoothing) must add ``callback.handle.penalty()`` to it. Checkpoints the Trainer
writes mid-training hold the masked model, not the schedule's step: resuming from them is not supported. Under DDP,
call :meth:`PruningCallback.attach` on the model before creating the Trainer, so that DDP sees the scores.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..bermo import mix_weights
from ..engine import Pruning, prune
from ..errors import RecipeError
from ..pruners.config import PruningConfig
from ..recipe import Recipe, load_recipe, parse_recipe, schedule_problems
from ..schedule import Scheduler

logger = logging.getLogger(__name__)

__all__ = ["PruningCallback"]


class PruningCallback(TrainerCallback):
    """Prune the model of a ``transformers.Trainer`` during training (see the module docstring).

    Args:
        scheduler: the pruner and its schedule (:class:`~bermo_prune.schedule.Scheduler`); or give ``pruning``.
        pruning: a recipe's ``pruning:`` section (:class:`~bermo_prune.pruners.config.PruningConfig`, what
            :meth:`from_recipe` passes, or its mapping, validated as ``bermo-prune run`` would): its schedule is
            built for the Trainer's number of steps at train begin.
        score_lr: learning rate of the pruning scores (default: the section's ``score_lr``, else the method's).
        mix_lr: BERMo's mix in its own group at this rate (the project's ``train.mix_lr``); None leaves it in the
            Trainer's groups.
        targets: module-name patterns to prune instead of the family's matrices.
        harden: bake the masks in at the end of training (default True).
    """

    def __init__(
        self,
        scheduler: Scheduler | None = None,
        *,
        pruning: PruningConfig | dict | None = None,
        score_lr: float | None = None,
        mix_lr: float | None = None,
        targets: list[str] | None = None,
        harden: bool = True,
    ) -> None:
        if (scheduler is None) == (pruning is None):
            raise ValueError(
                "PruningCallback: give a Scheduler or a recipe's pruning section (one of the two)"
            )
        if isinstance(pruning, dict):  # a section's mapping, validated as a recipe's
            pruning = parse_recipe({"task": "synthetic", "pruning": pruning}, "<pruning section>").pruning
        self.scheduler = scheduler
        self.pruning = pruning
        self.score_lr = score_lr if score_lr is not None or pruning is None else pruning.score_lr
        self.mix_lr = mix_lr
        self.targets = targets if targets is not None or pruning is None else pruning.targets
        self.harden = harden
        self.handle: Pruning | None = None
        self.final_sparsity: dict | None = None
        self.last_task_loss: torch.Tensor | None = None
        self.last_penalty: torch.Tensor | None = None
        self._forward_hook = None
        self._warned = False

    @classmethod
    def from_recipe(cls, recipe, **kwargs) -> PruningCallback:
        """The callback of a recipe's ``pruning:`` section: ``recipe`` is a recipe file, a
        :class:`~bermo_prune.recipe.Recipe`, a whole recipe mapping or just the section's mapping. It is validated
        as ``bermo-prune run`` validates it (RecipeError naming every problem); its schedule's step counts and
        fractions are resolved against the Trainer's ``max_steps`` when training begins."""
        if isinstance(recipe, str | Path):
            section = load_recipe(recipe).pruning
        elif isinstance(recipe, Recipe):
            section = recipe.pruning
        elif isinstance(recipe, dict):
            whole = recipe if "pruning" in recipe else {"task": "synthetic", "pruning": recipe}
            section = parse_recipe({"task": "synthetic", **whole}, "<pruning section>").pruning
        else:
            raise TypeError(f"from_recipe: a path, Recipe or mapping, not {type(recipe).__name__}")
        if section.method == "none":
            raise RecipeError("<pruning section>", ["pruning.method: 'none' prunes nothing; name a method"])
        return cls(pruning=section, **kwargs)

    # ---- set-up --------------------------------------------------------------------------------------------
    def attach(self, model: torch.nn.Module, max_steps: int | None = None) -> Pruning:
        """Attach the masks to ``model`` now (``on_train_begin`` does it when this was not called)."""
        if self.handle is not None:
            raise ValueError("PruningCallback: masks are already attached; use a new callback for a new run")
        scheduler = self.scheduler
        if scheduler is None:
            if max_steps is None:
                raise ValueError("attach: a recipe's schedule needs the run's max_steps")
            problems: list[str] = []
            schedule_problems(self.pruning, max_steps, problems)
            if problems:
                raise RecipeError("<pruning section>", problems)
            scheduler = self.pruning.build_scheduler(max_steps)
            self.scheduler = scheduler
        self.handle = prune(model, scheduler, **({"targets": self.targets} if self.targets else {}))
        return self.handle

    def on_train_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        if self.handle is None:
            self.attach(model, state.max_steps)
        handle = self.handle
        scores, multipliers = handle.state.scores, handle.state.multipliers
        own = [p for p in (scores, multipliers) if p is not None]
        if scores is not None:
            lr = self.score_lr if self.score_lr is not None else handle.pruner.default_score_lr
            _own_group(optimizer, lr_scheduler, own, [scores], lr, "pruning_scores")
        elif own:
            _own_group(optimizer, lr_scheduler, own, [], 0.0, "")
        if self.mix_lr is not None:
            mix = [p for n, p in model.named_parameters() if "scalar_mix." in n and p.requires_grad]
            if mix:
                _own_group(optimizer, lr_scheduler, mix, mix, self.mix_lr, "scalar_mix")
        # After the engine's own forward hook (registered by prune), as the project's loop adds the penalty after
        # the forward.
        self._forward_hook = model.register_forward_hook(self._add_penalty)

    def _add_penalty(self, module, args, output):
        if not module.training:
            return output
        loss = getattr(output, "loss", None)
        if loss is None:
            if not self._warned:
                logger.warning(
                    "PruningCallback: the model returned no loss (the Trainer computes it: compute_loss_func or "
                    "label smoothing); add callback.handle.penalty() to that loss yourself"
                )
                self._warned = True
            return output
        penalty = self.handle.penalty()
        self.last_task_loss, self.last_penalty = loss.detach(), penalty.detach()
        output["loss"] = loss + penalty
        return output

    # ---- each step -----------------------------------------------------------------------------------------
    def on_optimizer_step(self, args, state, control, **kwargs):
        self.handle.step()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == state.max_steps:
            self.handle.update_masks()  # the final masks are the ones evaluated, hardened and reported

    def log_fields(self, model: torch.nn.Module | None = None) -> dict[str, float]:
        """What ``on_log`` adds: remaining weights, the schedule value, the penalty, BERMo's mix."""
        fields: dict[str, float] = {}
        h = self.handle
        if h is not None and not h._hardened:
            # the schedule value; for top-k methods its key is "remaining", which the next line replaces
            fields[h.pruner.schedule_key] = float(h.value)
            fields["remaining"] = h.remaining()
            if self.last_penalty is not None:
                fields["penalty"] = float(self.last_penalty)
            if h.scheduler.started():
                fields.update(h.pruner.log_fields(h.layout, h.state, h.value))
        mix = mix_weights(model) if model is not None else None
        if mix is not None:
            fields.update({f"mix/layer_{j}": float(w) for j, w in enumerate(mix["layer_weights"])})
            fields["mix/gamma"] = float(mix["gamma"])
        return fields

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        fields = self.log_fields(model)
        logs.update(fields)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(fields)

    # ---- the end -------------------------------------------------------------------------------------------
    def on_train_end(self, args, state, control, **kwargs):
        if self._forward_hook is not None:
            self._forward_hook.remove()
            self._forward_hook = None
        self.final_sparsity = self.handle.sparsity()
        if self.harden:
            self.handle.harden()


def _own_group(optimizer, lr_scheduler, take: list, params: list, lr: float, name: str) -> None:
    """Take ``take`` out of the optimizer's groups and add ``params`` as a group of its own at ``lr`` (no weight
    decay), registered with the learning-rate schedule so it follows the same warmup and decay."""
    if optimizer is None:
        raise ValueError("PruningCallback: the Trainer has no optimizer at train begin")
    ids = {id(p) for p in take}
    for group in optimizer.param_groups:
        group["params"] = [p for p in group["params"] if id(p) not in ids]
    if not params:
        return
    group = {"params": params, "lr": lr, "weight_decay": 0.0, "name": name}
    if lr_scheduler is None:
        optimizer.add_param_group(group)
        return
    lambdas, base = getattr(lr_scheduler, "lr_lambdas", None), getattr(lr_scheduler, "base_lrs", None)
    if lambdas is None or base is None:
        raise ValueError(
            f"PruningCallback: the learning-rate schedule {type(lr_scheduler).__name__} is not a LambdaLR (the "
            "Trainer's own schedules are); give the scores their group yourself"
        )
    factor = lambdas[0](lr_scheduler.last_epoch)
    optimizer.add_param_group({**group, "lr": lr * factor, "initial_lr": lr})
    lambdas.append(lambdas[0])
    base.append(lr)
    if hasattr(lr_scheduler, "_last_lr"):
        lr_scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
