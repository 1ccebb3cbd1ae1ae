"""The training loop: train a model on a job, evaluating as it goes; every feature comes in as a hook.

Built on Accelerate (device placement, mixed precision where available, DDP under ``accelerate launch``). Fused
AdamW over the parameter groups the hooks shape, linear warmup and decay; length-bucketed, dynamically
padded batches; evaluation every ``eval_every`` steps and at the end; divergence tracking
(:mod:`bermo_prune.tracking`); atomic checkpoints every N steps with exact resume: model, optimizer, lr
schedule, each hook's state, RNG states, data position, metrics-log offset
(the last two are kept, see :mod:`bermo_prune.rundir`). SIGTERM or SIGINT during training writes a checkpoint at
the next step boundary and raises :class:`~bermo_prune.errors.RunInterrupted`; ``--resume`` continues exactly.

Length (about 420 lines): one loop's state (position, history, tracker, checkpoint contents, rollback, signal
stop, summary) is one object; what varies around it lives elsewhere: its settings in :mod:`.train_config`, features
in :mod:`.hooks`, optimizer groups in :mod:`.optim`, jobs and evaluation in :mod:`.jobs`, files in :mod:`.rundir`,
signals in :mod:`.signals`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .data import BucketBatchSampler
from .dist import process_state
from .errors import InputError, RunInterrupted
from .hooks import TrainHook
from .jobs import Job
from .optim import decay_groups, make_optimizer
from .rundir import CHECKPOINT_DIR, CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from .signals import StopSignals
from .tracking import DivergenceConfig, DivergenceTracker
from .train_config import TrainConfig, refuse_unusable_precision, total_steps


def environment(device: torch.device) -> dict:
    """Where a run finished: the device it trained on (the GPU's name on CUDA; the architecture and core count on
    a CPU), torch's thread count (it changes the order of sums on a CPU) and the library versions, so that rows
    trained on different machines can be told apart (their arithmetic differs, not their recipe). A run resumed
    on another machine records the last one."""
    import os
    import platform

    import accelerate
    import tokenizers
    import transformers

    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"{platform.machine()}, {os.cpu_count()} cores"
    return {
        "device": f"{device.type}: {name}",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        **({"cuda": torch.version.cuda} if cuda else {}),
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
    }


logger = logging.getLogger(__name__)


#: fractions of the best dev metric whose first reaching step the summary reports (convergence speed).
FRACTIONS = (0.9, 0.95, 0.99)


class _Rollback(Exception):
    """Raised inside the step loop to restart it from the restored checkpoint position."""


class Trainer:
    """One training run: ``Trainer(...).run()`` returns the summary dict.

    Args:
        model: what to train (its forward returns ``.loss`` given a batch with ``labels``).
        job: the data and the evaluation (:func:`~bermo_prune.jobs.classification_job`, or pretraining's job in
            :mod:`.pretrain`).
        cfg: the hyperparameters.
        hooks: every feature plugged into the loop, in order (:mod:`bermo_prune.hooks`), your own among them.
            The loop knows none of them; the runner composes a recipe's list (:func:`~bermo_prune.runner.fine_tune`
            shows how). ``cfg``'s feature keys (``mix_lr``, ``freeze_embeddings``, ``log_to``, ``early_eval``) act
            only through the hooks that read them: :func:`~bermo_prune.runner.feature_hooks` and
            :func:`~bermo_prune.train_config.section_hooks`.
        output_dir: where ``metrics.jsonl`` and ``checkpoint/state.pt`` go (None: nothing is written).
        divergence: detection thresholds and policy (default: record).
        checkpoint_every: write a checkpoint every N optimizer steps (0: never).
    """

    def __init__(
        self,
        model,
        job: Job,
        cfg: TrainConfig,
        hooks: list[TrainHook] | None = None,
        output_dir: str | Path | None = None,
        *,
        divergence: DivergenceConfig | None = None,
        checkpoint_every: int = 0,
    ) -> None:
        if isinstance(hooks, str | Path):
            raise TypeError(
                "Trainer: the 4th argument is the list of hooks; pass the run directory as output_dir"
            )
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.job = job
        self.hooks = list(hooks or [])
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.checkpoint_every = checkpoint_every if self.output_dir is not None else 0
        process_state()  # the shared state first, with the right device (see process_state)
        refuse_unusable_precision(cfg.mixed_precision)  # fp16 would silently be fp32 on the CPU
        self.accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
        acc = self.accelerator
        self.sampler = (
            BucketBatchSampler(  # under `accelerate launch` each process takes its share of batches
                job.train_lengths,
                cfg.batch_size,
                bucket_factor=cfg.bucket_factor,
                seed=cfg.seed,
                num_shards=acc.num_processes,
                shard=acc.process_index,
            )
        )
        eval_sampler = BucketBatchSampler(job.dev_lengths, cfg.eval_batch_size, shuffle=False)
        # Own generators: a DataLoader iterator otherwise draws its base seed from the global torch RNG at every
        # epoch, and a resumed run (which starts a fresh iterator mid-epoch) would drift from the original.
        train_set, collate = job.train_set, job.collate
        for hook in self.hooks:
            train_set, collate = hook.wrap_data(train_set, collate)
        self.train_loader = torch.utils.data.DataLoader(
            train_set, batch_sampler=self.sampler, collate_fn=collate, generator=torch.Generator()
        )
        dev_loader = torch.utils.data.DataLoader(
            job.dev_set, batch_sampler=eval_sampler, collate_fn=job.dev_collate, generator=torch.Generator()
        )
        self.steps = total_steps(cfg, len(train_set), acc.num_processes)
        # the step the run ends at: the schedules span self.steps, train.stop_after may end the run before
        self.end = min(self.steps, cfg.stop_after) if cfg.stop_after else self.steps
        groups = [g for g in decay_groups(model.parameters(), cfg.lr, cfg.weight_decay) if g["params"]]
        for hook in self.hooks:
            groups = hook.param_groups(groups, model, cfg)
        optimizer = make_optimizer(groups, cfg.lr)
        self.lr_schedule = get_linear_schedule_with_warmup(
            optimizer, int(cfg.warmup_ratio * self.steps), self.steps
        )
        self.model, self.optimizer, self.dev_loader = self.accelerator.prepare(model, optimizer, dev_loader)
        for hook in self.hooks:
            hook.setup(self.accelerator)
        self.tracker = DivergenceTracker(divergence or DivergenceConfig(), majority_rate=job.majority_rate)
        # progress
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.history: list[dict] = []
        self.best: dict | None = None
        self.lr_scale = 1.0
        self.elapsed_before = 0.0
        self.stopped = False
        self._log = None
        self._signals = StopSignals(second_is_hard=True)  # SIGTERM/SIGINT while run() is active

    # ---- logging ---------------------------------------------------------------------------------------------
    def _write(self, record: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        if self._log is not None:
            self._log.write(json.dumps(record) + "\n")
            self._log.flush()
        for hook in self.hooks:
            hook.on_record(record)

    # ---- checkpoints -----------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.output_dir / CHECKPOINT_DIR / CHECKPOINT_FILE if self.output_dir is not None else None

    def save_checkpoint(self) -> None:
        """Write everything a resume needs to ``checkpoint/state.pt`` (atomically; the previous one is kept)."""
        if not self.accelerator.is_main_process:
            return
        state = {
            "model": self.accelerator.unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
            **{h.state_key: h.state_dict() for h in self.hooks if h.state_key},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": random.getstate(),
            },
            "position": {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch},
            "tracker": self.tracker.state_dict(),
            "history": self.history,
            "best": self.best,
            "lr_scale": self.lr_scale,
            "metrics_offset": self._log.tell() if self._log is not None else 0,
            "elapsed_s": self.elapsed_before + (time.perf_counter() - self._start),
        }
        save_checkpoint(self.output_dir, state)

    def _load_checkpoint(self) -> dict:
        if self.output_dir is None:
            raise InputError("no run directory: no checkpoint to resume from")
        state = load_checkpoint(self.output_dir)
        self.accelerator.unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        for hook in self.hooks:
            if hook.state_key:
                hook.load_state_dict(state.get(hook.state_key))
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        random.setstate(_as_tuple(state["rng"]["python"]))
        pos = state["position"]
        self.step, self.epoch, self.batch_in_epoch = pos["step"], pos["epoch"], pos["batch_in_epoch"]
        self.history = state["history"]
        self.best = state["best"]
        return state

    def _resume(self) -> None:
        state = self._load_checkpoint()
        self.tracker.load_state_dict(state["tracker"])
        self.lr_scale = state["lr_scale"]
        self.elapsed_before = state["elapsed_s"]
        if self._log is not None:  # drop what the killed run logged after its checkpoint
            self._log.seek(state["metrics_offset"])
            self._log.truncate()
        logger.info("resumed at step %d", self.step)

    def _rollback(self) -> None:
        """Restore the last checkpoint, keep the event record, lower every learning rate."""
        failed_at = self.step
        state = self._load_checkpoint()
        factor = self.tracker.config.lr_factor
        self.lr_scale *= factor
        rescale = self.lr_scale / state["lr_scale"]
        self.lr_schedule.base_lrs = [b * rescale for b in self.lr_schedule.base_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] *= rescale
        self.tracker.after_rollback()
        self._write({"step": failed_at, "rollback_to": self.step, "lr_scale": self.lr_scale})
        logger.warning(
            "divergence at step %d: rolled back to step %d, lr x%g", failed_at, self.step, self.lr_scale
        )

    # ---- events ------------------------------------------------------------------------------------------------
    def _handle_event(self, event) -> None:
        """Apply the policy to an event; raises _Rollback to restart the step loop from a checkpoint."""
        action = self.tracker.action()
        self._write({"step": event.step, "event": {**event.to_dict(), "action": action}})
        logger.warning("divergence (%s) at step %d: %s -> %s", event.kind, event.step, event.detail, action)
        if action == "stop":
            self.stopped = True
        elif action == "rollback":
            self._rollback()
            raise _Rollback

    # ---- the loop -------------------------------------------------------------------------------------------------
    def _evaluate(self) -> None:
        record = self._eval_record()
        metrics = record["eval"]
        self._write(record)
        self.history.append(record)
        main = self.job.main_metric
        if self.best is None or metrics[main] > self.best["eval"][main]:
            self.best = record
        self._last_eval = f"{main}={metrics[main]:.3f}"
        event = self.tracker.observe_eval(self.step, metrics)
        if event is not None:
            self._handle_event(event)

    def _train_step(self, batch) -> None:
        cfg, model = self.cfg, self.model
        extras = {k: batch.pop(k) for h in self.hooks for k in h.batch_keys if k in batch}
        batch = {k: v.to(self.accelerator.device) for k, v in batch.items()}
        out = model(**batch)
        task_loss = loss = out.loss
        for hook in self.hooks:
            loss = hook.loss(loss, task_loss, out, batch, extras)
        loss_value = self._global_mean(task_loss)
        event = self.tracker.observe_loss(self.step + 1, loss_value)
        if event is not None:
            self._handle_event(event)
            if self.stopped:
                return
        self.accelerator.backward(loss)
        if cfg.max_grad_norm:
            self.accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.lr_schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        for hook in self.hooks:
            hook.after_step()
        self.step += 1
        self.batch_in_epoch += 1
        self._bar.update(1)
        self._on_step(loss_value)
        if self.step % cfg.log_every == 0 or self.step == self.end:
            record = {"step": self.step, "loss": loss_value, "lr": self.lr_schedule.get_last_lr()[0]}
            post = {"loss": f"{loss_value:.3f}"}
            for hook in self.hooks:
                record.update(hook.log_fields())
                post.update(hook.progress_fields(record))
            if self._last_eval:
                post["eval"] = self._last_eval
            self._bar.set_postfix(post, refresh=False)
            self._write(record)

    def run(self, resume: bool = False) -> dict:
        """Train to the end (or until divergence stops it) and return the summary."""
        cfg = self.cfg
        self._start = time.perf_counter()
        self._last_eval = ""
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.output_dir / "metrics.jsonl"
            self._log = open(log_path, "r+" if resume and log_path.exists() else "w", encoding="utf-8")
        if resume:
            self._resume()
        self._on_step(None)  # the hooks see the starting point (step 0, or the step resumed at)
        if not resume and self.checkpoint_every and self.tracker.config.policy == "rollback":
            self.save_checkpoint()  # step 0: a rollback before the first periodic checkpoint restarts here
        if self.cfg.eval_at_start and self.step == 0 and not self.history:
            self._evaluate()  # the untrained starting point (pretraining: about ln(vocab))
        self.model.train()
        self._bar = tqdm(
            total=self.end,
            initial=self.step,
            disable=not cfg.progress,
            desc=self.job.progress_label,
            dynamic_ncols=True,
            mininterval=1.0,
        )
        try:
            with self._signals:
                while self.step < self.end and not self.stopped:
                    try:
                        self._epoch_loop()
                    except _Rollback:
                        self._bar.n = self.step
                        continue
        finally:
            self._bar.close()
            for hook in self.hooks:
                hook.close()
            if self._log is not None:
                self._log.close()
                self._log = None
        return self._summary()

    def _epoch_loop(self) -> None:
        cfg = self.cfg
        self.sampler.set_epoch(self.epoch, skip=self.batch_in_epoch)
        for batch in self.train_loader:
            self._train_step(batch)
            if self.stopped:
                return
            if (cfg.eval_every and self.step % cfg.eval_every == 0) or self.step == self.end:
                self._evaluate()
                if self.stopped:
                    return
            if self.checkpoint_every and self.step % self.checkpoint_every == 0 and self.step < self.end:
                self.save_checkpoint()
            if self.step >= self.end:
                return
            if self._signal_received():
                self._interrupt()
        self.epoch += 1
        self.batch_in_epoch = 0

    def _on_step(self, loss: float | None) -> None:
        """The hooks' ``on_step`` seam; a record a hook returns is written like any other."""
        for hook in self.hooks:
            record = hook.on_step(self.step, loss, self.model)
            if record is not None:
                self._write(record)

    def _global_mean(self, value: torch.Tensor) -> float:
        """A per-process scalar averaged over the data-parallel processes (each holds an equal share of the global
        batch), so the log and the divergence tracker see the global batch's loss and every process takes the
        same divergence decision."""
        value = value.detach().float().reshape(1)
        if self.accelerator.num_processes > 1:
            value = self.accelerator.reduce(value.to(self.accelerator.device), reduction="mean")
        return float(value)

    # ---- signals ---------------------------------------------------------------------------------------------
    def _signal_received(self) -> bool:
        """Whether any process got a stop signal (all processes agree, so they stop at the same step)."""
        received = self._signals.received is not None
        if self.accelerator.num_processes > 1:
            flag = torch.tensor([float(received)], device=self.accelerator.device)
            received = bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)
        return received

    def _interrupt(self) -> None:
        """Checkpoint at this step boundary and stop the run."""
        if self.output_dir is not None:
            self.save_checkpoint()
        if self._log is not None:
            self._log.flush()
        name = self._signals.received or "a signal on another process"
        logger.warning("%s: checkpoint written at step %d, stopping", name, self.step)
        raise RunInterrupted(name, self.step, str(self.output_dir) if self.output_dir is not None else None)

    def _summary(self) -> dict:
        if not self.history or self.history[-1]["step"] != self.step:
            self._evaluate_quietly()
        final = self.history[-1]
        main = self.job.main_metric
        if not self.stopped:
            learned = self.job.learned_metric
            self.tracker.finish(self.step, self.best["eval"].get(learned) if learned else None)
        best_value = self.best["eval"][main]
        reach = {}
        for f in FRACTIONS:
            hit = next((r["step"] for r in self.history if r["eval"][main] >= f * best_value), None)
            reach[str(f)] = hit
        model = self.accelerator.unwrap_model(self.model)
        summary = {
            "task": self.job.name,
            "main_metric": main,
            "steps": self.step,
            "planned_steps": self.steps,
            "epochs": self.epoch,
            "final": final["eval"],
            "best": {"step": self.best["step"], **self.best["eval"]},
            "steps_to_fraction_of_best": reach,
            "divergence": {**self.tracker.summary(), "stopped": self.stopped},
            "wall_time_s": self.elapsed_before + (time.perf_counter() - self._start),
            "environment": environment(self.accelerator.device),
            "config": asdict(self.cfg),
            "history": self.history,
        }
        for hook in self.hooks:
            summary.update(hook.summary_fields(model))
        return summary

    def _eval_record(self) -> dict:
        for hook in self.hooks:
            hook.before_eval(self.step, self.steps)
        record = {"step": self.step, "eval": self.job.evaluate(self.model, self.dev_loader, self.accelerator)}
        model = self.accelerator.unwrap_model(self.model)
        for hook in self.hooks:
            record.update(hook.eval_fields(model))
        return record

    def _evaluate_quietly(self) -> None:
        """A final evaluation for a run stopped early (no divergence check: the run is over)."""
        record = self._eval_record()
        self.history.append(record)
        if self.best is None:
            self.best = record


def _as_tuple(value):
    """Python's RNG state comes back from the checkpoint with lists where ``random.setstate`` wants tuples."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value
