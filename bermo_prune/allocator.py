"""Keep large freed blocks in the process instead of returning them to the OS at every step (glibc).

torch's CPU allocator takes every tensor from ``malloc`` and gives it back at once. glibc serves blocks above its
mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps them on ``free``, so a tensor that size is
page-faulted and zero-filled by the kernel every time it is made. A training step makes several each time: the
word-embedding gradient (11.7M floats on all-MiniLM-L6-v2), and with weight-level pruning the flat score, mask,
gate and penalty vectors (one value per weight: 10.6M on that encoder, 12.6M on the 4-layer hidden-512 BERT of
``benchmarks/overhead.py``). :func:`retain_freed_memory` sets glibc's ``M_MMAP_MAX`` to 0 (every block from the
heap) and ``M_TRIM_THRESHOLD`` to 2 GiB (freed heap memory is kept for reuse), so the second step onwards reuses
memory that is already mapped. The results are unchanged (only where the bytes live changes); the cost is that
the process keeps its peak memory until it exits. ``benchmarks/step_profile.py --malloc both`` measures it.

The :class:`~bermo_prune.train.Trainer` calls it once per process (``run``, ``pretrain`` and every sweep cell);
a custom loop around :func:`~bermo_prune.engine.prune` may call it itself. ``BERMO_PRUNE_MALLOC=system`` in the
environment leaves malloc as it is. It does nothing on a C library other than glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: the environment variable that opts out (value ``system``)
ENV = "BERMO_PRUNE_MALLOC"

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Tell glibc's malloc to serve large blocks from its heap and keep freed memory; True where it took effect.

    Idempotent and cheap; False (and nothing changed) with ``BERMO_PRUNE_MALLOC=system``, or off glibc.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "").strip().lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; set the trim threshold first so no freed heap is handed back in between.
    _applied = bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1)) and bool(mallopt(M_MMAP_MAX, 0))
    return _applied
