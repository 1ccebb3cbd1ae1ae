"""This process's place in a data-parallel run, without importing the training loop (the CLI asks it early)."""

from __future__ import annotations

import torch
from accelerate import PartialState


def process_state() -> PartialState:
    """This process's place in a data-parallel run (Accelerate's shared state). On a machine without CUDA it must
    be created with ``cpu=True``: otherwise Accelerate sets up no process group under ``torchrun`` or ``accelerate
    launch``, and every process trains alone (and writes the same run directory)."""
    return PartialState(cpu=not torch.cuda.is_available())
