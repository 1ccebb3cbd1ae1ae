"""``bermo-prune run``: a validated recipe in, a run directory out.

    RUN_DIR/recipe.yaml       the resolved recipe (defaults filled in, overrides applied)
    RUN_DIR/tokenizer/        the tokenizer the run used
    RUN_DIR/metrics.jsonl     step, loss, lr, remaining weights, threshold/lambda, evaluations, BERMo mix, events
    RUN_DIR/checkpoint/       the latest two checkpoints while the run is unfinished (removed when it ends)
    RUN_DIR/model/            the hardened final model (safetensors) and its tokenizer
    RUN_DIR/summary.json      final and best metrics, remaining weights, wall time, steps to fractions of the
                              best metric, divergence events

Everything that can be wrong with the input (recipe, data, model path) is checked before the directory is made,
so a bad run writes nothing. The directory's rules (checks, lock, checkpoints, finish) live in
:mod:`bermo_prune.rundir`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import TaskData, load_task_data
from .dist import process_state
from .distill import Distiller, load_teacher
from .engine import Pruning, prune
from .errors import InputError, RecipeError
from .families import family_of
from .hooks import DistillHook, MixHook, PruningHook, TrainHook
from .jobs import classification_job
from .modelcard import run_card
from .models import build_model
from .recipe import Recipe, parse_recipe, schedule_problems
from .rundir import RECIPE, SUMMARY, RunDirectory, check_run_dir, finish_run_dir
from .sinks import check_sinks
from .tracking import DivergenceConfig
from .train import Trainer
from .train_config import DEFAULT_MIX_LR, TrainConfig, refuse_unusable_precision, section_hooks, total_steps

logger = logging.getLogger(__name__)

__all__ = [
    "RECIPE",
    "SUMMARY",
    "RunResult",
    "feature_hooks",
    "fine_tune",
    "format_result",
    "run_recipe",
    "finish_run_dir",
    "check_run_dir",
]

#: summary fields of the features a run may not have, None when it has not (pruning: method and sparsity; BERMo's
#: mix), and the field each follows in the summary
FEATURE_FIELDS = {"method": "main_metric", "sparsity": "method", "mix": "divergence"}


def feature_hooks(
    handle: Pruning | None = None,
    score_lr: float | None = None,
    distiller: Distiller | None = None,
    mix_lr: float | None = DEFAULT_MIX_LR,
) -> list[TrainHook]:
    """The feature hooks of a fine-tuning run, in the order their losses compose: distillation when a distiller is
    given (its loss is the mix of the task loss and the teacher's term), pruning when a handle is (its penalty is
    added to that), and always BERMo's mix (a no-op for a plain model)."""
    hooks: list[TrainHook] = []
    if distiller is not None:
        hooks.append(DistillHook(distiller))
    if handle is not None:
        hooks.append(PruningHook(handle, score_lr))
    hooks.append(MixHook(mix_lr))
    return hooks


def with_feature_fields(summary: dict) -> dict:
    """The Trainer's summary with :data:`FEATURE_FIELDS` in their places (None for a feature the run lacks)."""
    features = {k: summary.get(k) for k in FEATURE_FIELDS}
    out: dict = {}

    def emit(key, value) -> None:
        out[key] = value
        for name, after in FEATURE_FIELDS.items():
            if after == key:
                emit(name, features[name])

    for key, value in summary.items():
        if key not in FEATURE_FIELDS:
            emit(key, value)
    return out


def fine_tune(
    model,
    tokenizer,
    data: TaskData,
    cfg: TrainConfig,
    output_dir: str | Path | None = None,
    handle: Pruning | None = None,
    score_lr: float | None = None,
    divergence: DivergenceConfig | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    distiller: Distiller | None = None,
) -> dict:
    """Fine-tune ``model`` on ``data``, pruning it through ``handle`` (from :func:`~bermo_prune.engine.prune`).

    With a handle, the method's penalty joins the loss, scores train at ``score_lr``, masks follow the schedule,
    and the summary reports the remaining weights. The masks stay attached: ``handle.harden()`` bakes them in.
    With a ``distiller`` (:class:`~bermo_prune.distill.Distiller`) the loss mixes in the teacher's. BERMo's mix
    trains at ``cfg.mix_lr``. See :class:`~bermo_prune.train.Trainer` for checkpoints, resume and divergence.
    """
    job = classification_job(tokenizer, data, cfg)
    hooks = [*feature_hooks(handle, score_lr, distiller, cfg.mix_lr), *section_hooks(cfg, job, output_dir)]
    trainer = Trainer(
        model, job, cfg, hooks, output_dir, divergence=divergence, checkpoint_every=checkpoint_every
    )
    return with_feature_fields(trainer.run(resume=resume))


@dataclass
class RunResult:
    summary: dict
    output_dir: Path
    skipped: bool = False  # the directory already held a finished run (resume of a finished run)

    @property
    def diverged_and_stopped(self) -> bool:
        return bool(self.summary["divergence"]["stopped"])


def default_output_dir(recipe: Recipe) -> Path:
    if recipe.output_dir:
        return Path(recipe.output_dir)
    stem = Path(recipe.source).stem if recipe.source and not recipe.source.startswith("<") else "run"
    return Path("runs") / stem


def train_config(recipe: Recipe, progress: bool) -> TrainConfig:
    return dataclasses.replace(recipe.train, seed=recipe.seed, progress=progress)


def run_recipe(
    recipe: Recipe,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> RunResult:
    """Run a validated recipe to the end; see the module docstring for what the run directory holds."""
    out = Path(output_dir) if output_dir is not None else default_output_dir(recipe)
    parse_saved = lambda raw, src: parse_recipe(raw, src).to_dict()  # noqa: E731
    rundir = RunDirectory(out, resume, overwrite, recipe.to_dict(), parse_saved, recipe.source)
    if rundir.state == "finished":
        return RunResult(rundir.summary(), out, skipped=True)
    state = rundir.state

    # Everything that reads user input happens before the directory is touched.
    # fp16 where it would train in fp32
    refuse_unusable_precision(recipe.train.mixed_precision, recipe.source)
    data = load_task_data(recipe.task, recipe.data_source, seed=recipe.seed, **recipe.data.where())
    cfg = train_config(recipe, progress)
    check_sinks(cfg.log_to)  # a logging sink's package is missing: say so before anything is written
    steps = total_steps(cfg, len(data.train), process_state().num_processes)
    problems: list[str] = []
    if cfg.stop_after and cfg.stop_after > steps:
        problems.append(f"train.stop_after: step {cfg.stop_after} is after the run's end ({steps} steps)")
    if recipe.pruned:
        schedule_problems(recipe.pruning, steps, problems)
    if problems:
        raise RecipeError(recipe.source, problems)
    spec = recipe.model
    if state == "resume":
        spec = dataclasses.replace(spec, tokenizer=str(out / "tokenizer"))
    task = data.task
    torch.manual_seed(recipe.seed)
    model, tokenizer = build_model(
        spec,
        task.num_labels,
        [t for pair in data.train.texts for t in pair if t],
        problem_type="regression" if task.is_regression else "single_label_classification",
        label_names=task.label_names,
    )
    handle = None
    if recipe.pruned:
        try:
            scheduler = recipe.pruning.build_scheduler(steps)
            targets = recipe.pruning.targets
            handle = prune(model, scheduler, **({"targets": targets} if targets else {}))
        except ValueError as exc:
            raise InputError(f"{recipe.source}: pruning: {exc}") from None

    distiller = None
    if recipe.distill.teacher:
        problem_type = "regression" if task.is_regression else "single_label_classification"
        teacher = load_teacher(recipe.distill.teacher, task.num_labels, problem_type, tokenizer.get_vocab())
        distiller = Distiller(teacher, recipe.distill, len(data.train), task.num_labels)

    # From here on the run directory is written, under its lock (main process only).
    with rundir.started(tokenizer) as started:
        if started == "finished":  # another process finished it while this one was loading
            return RunResult(rundir.summary(), out, skipped=True)
        job = classification_job(tokenizer, data, cfg)
        hooks = [
            *feature_hooks(handle, recipe.pruning.score_lr, distiller, cfg.mix_lr),
            *section_hooks(cfg, job, out),
        ]
        trainer = Trainer(
            model,
            job,
            cfg,
            hooks,
            out,
            divergence=recipe.divergence,
            checkpoint_every=recipe.checkpoint.every,
        )
        summary = with_feature_fields(trainer.run(resume=state == "resume"))
        return _finish(recipe, out, trainer, handle, tokenizer, summary)


def _finish(recipe: Recipe, out: Path, trainer: Trainer, handle, tokenizer, summary: dict) -> RunResult:
    """Harden the masks, write the final model and summary, drop the checkpoints."""
    m = recipe.model
    final_model = trainer.accelerator.unwrap_model(trainer.model)
    if handle is not None:
        handle.harden()
    summary = {
        "run_dir": str(out),
        "recipe": recipe.source,
        "model": {"arch": m.arch, "family": family_of(final_model).name, "name": m.name},
        "seed": recipe.seed,
        "remaining": summary["sparsity"]["remaining"] if summary["sparsity"] else 1.0,
        **summary,
    }
    card = run_card(summary, (out / RECIPE).read_text(encoding="utf-8"), final_model.config)
    finish_run_dir(out, final_model, tokenizer, summary, trainer.accelerator.is_main_process, card)
    return RunResult(summary, out)


def format_result(result: RunResult) -> str:
    """The short table ``bermo-prune run`` prints at the end."""
    s = result.summary
    main = s["main_metric"]
    div = s["divergence"]
    if div["diverged"]:
        first = div["events"][0]
        diverged = f"yes: {first['kind']} at step {first['step']} ({len(div['events'])} event(s), policy {div['policy']}"
        diverged += ", run stopped)" if div["stopped"] else ")"
    else:
        diverged = "no"
    sp = s["sparsity"]
    if sp:
        remaining = (
            f"{sp['remaining']:.3f} of encoder linear weights ({sp['kept']:,} of {sp['total']:,} kept)"
        )
    else:
        remaining = "1.000 (no pruning)"
    method = s["method"] or "none"
    rows = [
        ("run", f"{s['run_dir']}{'  (already finished; not run again)' if result.skipped else ''}"),
        ("model / method", f"{s['model']['arch']} ({s['model'].get('family', 'bert')}) / {method}"),
        (f"dev {main}", f"{s['final'][main]:.4f} (best {s['best'][main]:.4f} at step {s['best']['step']})"),
        ("remaining weights", remaining),
        ("diverged", diverged),
        ("steps / wall time", f"{s['steps']} / {s['wall_time_s']:.0f} s"),
    ]
    if s.get("mix"):
        w = ", ".join(f"{x:.2f}" for x in s["mix"]["layer_weights"])
        rows.append(("BERMo layer weights", f"[{w}] gamma {s['mix']['gamma']:.2f}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
