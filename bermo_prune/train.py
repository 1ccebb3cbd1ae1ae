"""The training loop: fine-tune a classifier on a task, evaluating as it goes.

Built on Accelerate (device placement, mixed precision where available, DDP under ``accelerate launch``). AdamW
with linear warmup and decay; length-bucketed, dynamically padded batches; evaluation every ``eval_every`` steps
and at the end. Metrics go to a JSONL log when an output directory is given.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .bermo import mix_weights
from .data import BucketBatchSampler, Collator, EncodedSplit, TaskData, compute_metrics
from .engine import Pruning, decay_groups

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Fine-tuning hyperparameters. Field names are the recipe's ``train:`` keys."""

    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 3e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_length: int = 128
    bucket_factor: int = 50
    eval_every: int = 0
    seed: int = 42
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"
    progress: bool = True


def total_steps(cfg: TrainConfig, num_train: int) -> int:
    """Optimizer steps of a run: ``max_steps`` or ``epochs`` worth of batches."""
    if cfg.max_steps:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * math.ceil(num_train / cfg.batch_size)))


@torch.no_grad()
def evaluate(model, loader, task, accelerator: Accelerator | None = None) -> dict[str, float]:
    """The task's metrics of ``model`` on ``loader``, plus the mean loss and the share of the majority prediction."""
    was_training = model.training
    model.eval()
    preds, golds, losses = [], [], []
    for batch in loader:
        out = model(**batch)
        logits = out.logits
        if accelerator is not None:
            logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
        else:
            labels = batch["labels"]
        losses.append(float(out.loss))
        if task.is_regression:
            preds.append(logits.squeeze(-1).float().cpu().numpy())
        else:
            preds.append(logits.argmax(-1).cpu().numpy())
        golds.append(labels.cpu().numpy())
    model.train(was_training)
    p, g = np.concatenate(preds), np.concatenate(golds)
    metrics = compute_metrics(task, p, g)
    metrics["loss"] = float(np.mean(losses))
    if not task.is_regression:
        metrics["majority_prediction_share"] = float(np.bincount(p.astype(int)).max() / len(p))
    return metrics


def make_optimizer(groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """AdamW, fused when every parameter sits on a device with a fused kernel (4x faster on CPU than foreach)."""
    devices = {p.device.type for g in groups for p in g["params"]}
    fused = devices <= {"cpu", "cuda", "mps", "xpu"}
    return torch.optim.AdamW(groups, lr=lr, fused=fused or None)


def fine_tune(
    model,
    tokenizer,
    data: TaskData,
    cfg: TrainConfig,
    output_dir: str | Path | None = None,
    handle: Pruning | None = None,
    score_lr: float | None = None,
) -> dict:
    """Fine-tune ``model`` on ``data``, pruning it through ``handle`` (from :func:`~bermo_prune.engine.prune`).

    With a handle, the method's penalty joins the loss, scores train at ``score_lr``, masks follow the schedule,
    and the summary reports the remaining weights. The masks stay attached: ``handle.harden()`` bakes them in.
    """
    torch.manual_seed(cfg.seed)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    task = data.task
    train_set = EncodedSplit(data.train, tokenizer, cfg.max_length)
    dev_set = EncodedSplit(data.dev, tokenizer, cfg.max_length)
    collate = Collator(tokenizer.pad_token_id, regression=task.is_regression)
    sampler = BucketBatchSampler(
        train_set.lengths, cfg.batch_size, bucket_factor=cfg.bucket_factor, seed=cfg.seed
    )
    eval_sampler = BucketBatchSampler(dev_set.lengths, cfg.eval_batch_size, shuffle=False)
    train_loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=collate)
    dev_loader = torch.utils.data.DataLoader(dev_set, batch_sampler=eval_sampler, collate_fn=collate)

    steps = total_steps(cfg, len(train_set))
    if handle is not None:
        groups = handle.param_groups(cfg.lr, score_lr, cfg.weight_decay)
    else:
        groups = [g for g in decay_groups(model.parameters(), cfg.lr, cfg.weight_decay) if g["params"]]
    optimizer = make_optimizer(groups, cfg.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    model, optimizer, dev_loader = accelerator.prepare(model, optimizer, dev_loader)

    log_file = None
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        log_file = open(Path(output_dir) / "metrics.jsonl", "w", encoding="utf-8")

    def log(record: dict) -> None:
        if log_file is not None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()

    start = time.perf_counter()
    history: list[dict] = []
    best: dict | None = None
    step, epoch = 0, 0
    model.train()
    bar = tqdm(total=steps, disable=not cfg.progress, desc="fine-tune", dynamic_ncols=True, mininterval=1.0)
    try:
        while step < steps:
            sampler.set_epoch(epoch)
            for batch in train_loader:
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                task_loss = model(**batch).loss
                penalty = handle.penalty() if handle is not None else None
                loss = task_loss if penalty is None else task_loss + penalty
                accelerator.backward(loss)
                if cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if handle is not None:
                    handle.step()
                step += 1
                bar.update(1)
                if step % 10 == 0 or step == steps:
                    loss_value = float(task_loss.detach())
                    bar.set_postfix(loss=f"{loss_value:.3f}")
                    record = {"step": step, "loss": loss_value, "lr": scheduler.get_last_lr()[0]}
                    if handle is not None:
                        record[handle.pruner.schedule_key] = handle.value
                        record["penalty"] = float(penalty.detach())
                    log(record)
                if (cfg.eval_every and step % cfg.eval_every == 0) or step == steps:
                    if handle is not None and step == steps:
                        handle.update_masks()  # the final masks are the ones evaluated, hardened and reported
                    metrics = evaluate(model, dev_loader, task, accelerator)
                    record = {"step": step, "eval": metrics}
                    if handle is not None:
                        record["remaining"] = handle.sparsity()["remaining"]
                    mix = mix_weights(accelerator.unwrap_model(model))
                    if mix is not None:
                        record["mix"] = mix
                    log(record)
                    history.append(record)
                    if best is None or metrics[task.main_metric] > best["eval"][task.main_metric]:
                        best = record
                if step >= steps:
                    break
            epoch += 1
    finally:
        bar.close()
        if log_file is not None:
            log_file.close()
    final = history[-1]
    sparsity = handle.sparsity() if handle is not None else None
    return {
        "method": getattr(handle.pruner, "name", None) if handle is not None else None,
        "sparsity": sparsity,
        "task": task.name,
        "main_metric": task.main_metric,
        "steps": step,
        "epochs": epoch,
        "final": final["eval"],
        "best": {"step": best["step"], **best["eval"]},
        "mix": mix_weights(accelerator.unwrap_model(model)),
        "wall_time_s": time.perf_counter() - start,
        "config": asdict(cfg),
        "history": history,
    }
