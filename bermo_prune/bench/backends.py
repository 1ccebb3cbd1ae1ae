"""Where a sweep's runs execute: ``local`` worker processes (the default) or tasks on a Ray cluster.

A backend is a context manager with ``submit(fn, *args) -> concurrent.futures.Future``, ``stop()`` (a signal
reached the sweep: running runs checkpoint and stop, pending ones are cancelled), ``threads`` (torch threads per
run) and ``describe()`` (recorded in ``sweep.json``). The sweep's resume, results and failure recording are the
same whichever backend runs the cells.

Ray (``pip install 'bermo-prune[ray]'``): ``bermo-prune bench SPEC --backend ray`` starts a local Ray instance, or
joins a running cluster with ``--address`` (``auto`` or ``HOST:PORT``). Each run is one Ray task: one GPU per task
where the cluster has GPUs, otherwise ``threads`` CPUs (cluster CPUs // ``workers``), so at most ``workers`` runs
share the CPUs. Tasks run in the submitting directory, so the spec's relative paths must resolve there on every node
(a shared file system on a multi-node cluster).
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import signal
from concurrent.futures import Future, ProcessPoolExecutor

from ..allocator import retain_freed_memory
from ..errors import InputError
from ..signals import StopSignals

BACKENDS = ("local", "ray")

#: a local worker's stop signals, active for the worker's lifetime (a run's own StopSignals takes over while it
#: trains and hands back on exit): once a stop reached the worker, a cell it is handed afterwards does not start.
#: Without it such a cell would start after the stop, since a process pool hands out the next cell early.
_WORKER_STOP = StopSignals()


def _worker_init() -> None:
    _WORKER_STOP.__enter__()  # left at process exit
    retain_freed_memory()  # a process that only trains sweep cells (see allocator)


def request_stop() -> None:
    """Mark this worker as stopping (a run in it took the signal with its own handler)."""
    _WORKER_STOP.received = _WORKER_STOP.received or "a signal to a run"


def stop_requested() -> bool:
    return _WORKER_STOP.received is not None


def device_description() -> str:
    """The accelerator (or CPU) runs on this machine use."""
    import torch  # here for start-up time: validating a spec needs no torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu: {platform.machine()} {platform.processor() or ''}".rstrip() + f", {os.cpu_count()} cores"


class LocalBackend:
    """``workers`` spawned processes on this machine, ``cores // workers`` torch threads each."""

    name = "local"

    def __init__(self, workers: int):
        self.workers = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalBackend:
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
        )
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, fn, *args) -> Future:
        return self._pool.submit(fn, *args)

    def stop(self) -> None:
        """SIGTERM to every worker: each checkpoints its run at the next step and reports it interrupted."""
        for child in multiprocessing.active_children():
            if child.pid is not None:
                try:
                    os.kill(child.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def describe(self) -> str:
        return device_description()


def _call(cwd: str, fn, *args):
    """The Ray task: one sweep cell, run in the submitting directory."""
    os.chdir(cwd)
    retain_freed_memory()  # Ray's worker process trains sweep cells (see allocator)
    return fn(*args)


class RayBackend:
    """One Ray task per run (see the module docstring)."""

    name = "ray"

    def __init__(self, workers: int, address: str | None = None):
        self.workers = workers
        self.address = address
        self.threads = 1
        self._refs: list = []
        self._started = False

    def __enter__(self) -> RayBackend:
        try:
            import ray  # here: an optional extra
        except ImportError:
            raise InputError(
                "--backend ray: Ray is not installed; pip install 'bermo-prune[ray]' (or pip install ray)"
            ) from None
        self._ray = ray
        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    logging_level="ERROR",
                    log_to_driver=False,
                    runtime_env={"env_vars": {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0")}},
                )
            except ConnectionError as exc:
                raise InputError(f"--address {self.address}: cannot reach a Ray cluster ({exc})") from None
            self._started = True
        resources = ray.cluster_resources()
        self.cpus, self.gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        if self.gpus:
            self.threads = max(1, self.cpus // self.gpus)
            options = {"num_gpus": 1, "num_cpus": 1}
        else:
            self.threads = max(1, self.cpus // self.workers)
            options = {"num_cpus": self.threads}
        self._task = ray.remote(_call).options(max_retries=0, **options)
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self._ray.shutdown()

    def submit(self, fn, *args) -> Future:
        ref = self._task.remote(os.getcwd(), fn, *args)
        self._refs.append(ref)
        return ref.future()

    def stop(self) -> None:
        """Cancel every unfinished task (a running run stops where it is and resumes from its last periodic
        checkpoint in the next sitting)."""
        for ref in self._refs:
            try:
                self._ray.cancel(ref)
            except Exception:  # noqa: BLE001 - already finished
                pass

    def describe(self) -> str:
        where = self.address or "local instance"
        return f"ray ({where}): {self.cpus} CPUs, {self.gpus} GPUs; driver {device_description()}"


def make_backend(name: str, workers: int, address: str | None = None):
    if name == "local":
        if address:
            raise InputError("--address is for --backend ray")
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(workers, address)
    raise InputError(f"--backend {name}: unknown; use {' or '.join(BACKENDS)}")
