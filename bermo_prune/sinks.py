"""Where the training loop's records go besides ``metrics.jsonl``: logging sinks, chosen by ``train.log_to``.

A sink is a :class:`~bermo_prune.hooks.TrainHook` that reads every record the loop writes to ``metrics.jsonl``
(:meth:`~bermo_prune.hooks.TrainHook.on_record`: step logs, evaluations, divergence events, rollbacks) and closes
at the end (:meth:`~bermo_prune.hooks.TrainHook.close`). It reads the records' structure, not the features that
filled them, so a new logged field reaches every sink without a change here. Sinks are registered by name in
:data:`SINKS`; the loop adds those of ``train.log_to`` to its hooks when it has a run directory, and only the main
process of a data-parallel run writes.

``tensorboard`` (``pip install 'bermo-prune[tensorboard]'``, installed by ``make install``): an event file in
``RUN_DIR/tensorboard/`` through ``torch.utils.tensorboard``. Tags: ``train/<field>`` for every number of a step
log (``loss``, ``lr``, ``remaining``, ``threshold`` / ``lambda``, ``penalty``, ``distill_loss``),
``eval/<metric>`` and ``eval/remaining`` for evaluations, ``mix/layer_J`` and ``mix/gamma`` for BERMo's mix at
each evaluation, ``divergence/<kind>`` (1 at the event's step) with a text entry under ``divergence`` naming the
detail and the action, and ``divergence/rollback_to`` for a rollback. A resumed run appends to the same directory
(TensorBoard shows the steps logged again after the checkpoint twice).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import InputError
from .hooks import TrainHook

TENSORBOARD_DIR = "tensorboard"


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class TensorBoardSink(TrainHook):
    """Writes the run's records as TensorBoard scalars (see the module docstring)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self.writer = None

    def setup(self, accelerator) -> None:
        if accelerator.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))

    def on_record(self, record: dict) -> None:
        w = self.writer
        if w is None:
            return
        step = record["step"]
        if "loss" in record:
            for name, value in record.items():
                if name != "step" and _number(value):
                    w.add_scalar(f"train/{name}", value, step)
        if "eval" in record:
            for name, value in record["eval"].items():
                if _number(value):
                    w.add_scalar(f"eval/{name}", value, step)
            if _number(record.get("remaining")):
                w.add_scalar("eval/remaining", record["remaining"], step)
            mix = record.get("mix")
            if mix:
                for j, weight in enumerate(mix["layer_weights"]):
                    w.add_scalar(f"mix/layer_{j}", weight, step)
                w.add_scalar("mix/gamma", mix["gamma"], step)
        if "event" in record:
            event = record["event"]
            w.add_scalar(f"divergence/{event['kind']}", 1.0, step)
            w.add_text(
                "divergence", f"step {step}: {event['kind']} ({event['detail']}) -> {event['action']}", step
            )
        if "rollback_to" in record:
            w.add_scalar("divergence/rollback_to", record["rollback_to"], step)
        w.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


#: ``train.log_to`` names -> (sink class, the import it needs, how to install it)
SINKS: dict[str, tuple[type[TrainHook], str, str]] = {
    "tensorboard": (TensorBoardSink, "tensorboard", "pip install 'bermo-prune[tensorboard]'"),
}


def available_sinks() -> tuple[str, ...]:
    return tuple(SINKS)


def check_sinks(names: list[str] | None) -> None:
    """InputError when a sink's package is not installed (called before a run writes anything)."""
    for name in names or []:
        _, module, install = SINKS[name]
        if importlib.util.find_spec(module) is None:
            raise InputError(f"train.log_to: {name} needs the {module!r} package; {install}")


def log_sinks(names: list[str] | None, run_dir: str | Path | None) -> list[TrainHook]:
    """The sinks of ``train.log_to`` for a run writing to ``run_dir`` (none without a run directory)."""
    if not names or run_dir is None:
        return []
    check_sinks(names)
    return [SINKS[name][0](run_dir) for name in dict.fromkeys(names)]
