"""Keep large freed blocks in a training process instead of returning them to the OS at every step (glibc, CPU).

torch's CPU allocator takes every tensor from ``malloc`` and gives it back at once. glibc serves blocks above its
mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps them on ``free``, so a tensor that size is
page-faulted and zero-filled by the kernel every time it is made. A training step makes several each time: the
word-embedding gradient (11.7M floats on all-MiniLM-L6-v2), and with weight-level pruning the flat score, mask,
gate and penalty vectors (one value per weight: 10.6M on that encoder, 12.6M on the 4-layer hidden-512 BERT of
``benchmarks/overhead.py``). :func:`retain_freed_memory` sets glibc's ``M_MMAP_MAX`` to 0 (blocks from the heap)
and ``M_TRIM_THRESHOLD`` to 2 GiB (freed heap memory is kept for reuse), so the second step onwards reuses memory
that is already mapped. Results are unchanged (only where the bytes live changes: ``tests/test_allocator.py``).

The cost: the change is for the whole process and cannot be undone; the process keeps about its peak memory until
it exits, and freed holes inside the heap are not returned (mixed sizes can raise the peak a little:
``benchmarks/step_profile.py --malloc both`` prints the peak resident memory under each setting next to the step
times). Threads other than the main one allocate from their own arenas, which still map blocks above 64 MiB
afresh. So it is applied only where a process exists to train: ``bermo-prune run`` and ``pretrain``, and each sweep
worker (local or Ray); not by the library's classes, so a notebook or service that imports bermo-prune keeps its
malloc. A custom loop may call it itself. ``BERMO_PRUNE_MALLOC=system`` in the environment leaves malloc as it is.
It does nothing off glibc (musl, macOS, Windows) or where CUDA is available (the large tensors live on the GPU).
"""

from __future__ import annotations

import ctypes
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

    Idempotent and cheap; False (and nothing changed) with ``BERMO_PRUNE_MALLOC=system``, off glibc, or where CUDA
    is available.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "").strip().lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    import torch  # here: the module is imported by the CLI before it knows whether a command trains

    if torch.cuda.is_available():
        return False
    try:
        mallopt = ctypes.CDLL(
            None
        ).mallopt  # the process's own symbols: glibc's malloc, as the check above says
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; set the trim threshold first so no freed heap is handed back in between.
    _applied = bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1)) and bool(mallopt(M_MMAP_MAX, 0))
    return _applied
