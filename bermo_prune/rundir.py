"""The run directory: its file names, the checks before anything is written, the lock, checkpoints, the finish.

    RUN_DIR/.lock                       while a process writes the run: flock-ed by it, names its pid
    RUN_DIR/recipe.yaml                 the resolved recipe
    RUN_DIR/tokenizer/                  the tokenizer the run used
    RUN_DIR/metrics.jsonl               the training log
    RUN_DIR/checkpoint/state.pt         the latest checkpoint while the run is unfinished
    RUN_DIR/checkpoint/state.prev.pt    the one before it (used when the latest is unreadable)
    RUN_DIR/model/                      the final model and its tokenizer
    RUN_DIR/summary.json                the result (its presence marks a finished run)

``run`` and ``pretrain`` both go through here. The lock is an advisory ``flock`` on ``.lock``: the kernel drops it
when its process dies, however it dies, so a lock left by a killed run is free and the next run takes it over;
another live process holding it makes a second run, resume or sweep cell on the directory fail with exit 2 and a
line naming the holder's pid. (flock works on local file systems; on NFS it depends on the server.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from .dist import process_state
from .errors import InputError
from .fields import key

logger = logging.getLogger(__name__)

RECIPE = "recipe.yaml"
SUMMARY = "summary.json"
LOCK = ".lock"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pt"
PREVIOUS_FILE = "state.prev.pt"


@dataclass
class CheckpointConfig:
    """A recipe's ``checkpoint`` section (``run`` and ``pretrain``): write ``checkpoint/state.pt`` every ``every``
    optimizer steps (0: none but the one a stopping signal writes)."""

    every: int = key(0, min=0)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def find_model(path: str | os.PathLike, what: str | None = None) -> tuple[Path, Path | None]:
    """``(model directory, run directory or None)`` for a run directory, a model directory inside a run
    (``model/``, ``compact/``) or a standalone model directory: the one resolver of ``eval``, ``predict``,
    ``compact``, ``probe`` and ``distill.teacher``. ``what`` names the option or key the path came from in errors."""
    p = Path(path)
    where = f"{what}: {path}" if what else str(path)
    if not p.exists():
        raise InputError(f"{where}: no such run or model directory")
    if not p.is_dir():
        raise InputError(f"{where}: not a directory (expected a run directory or a model directory)")
    if (p / "model" / "config.json").is_file():
        return p / "model", p
    if (p / "config.json").is_file():
        return p, p.parent if (p.parent / RECIPE).is_file() else None
    if (p / RECIPE).is_file():
        raise InputError(f"{where}: the run has no model/ yet (it has not finished: resume it or let it end)")
    raise InputError(f"{where}: not a run directory (with model/) or a model directory (with config.json)")


def _contents(out: Path) -> list[Path]:
    """What the directory holds, the lock file aside."""
    return [p for p in out.iterdir() if p.name != LOCK]


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for name in sorted(set(a) | set(b)):
        path = f"{prefix}{name}"
        va, vb = a.get(name), b.get(name)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, path + ".")
        elif va != vb:
            out.append(path)
    return out


def has_checkpoint(out: Path) -> bool:
    d = Path(out) / CHECKPOINT_DIR
    return (d / CHECKPOINT_FILE).is_file() or (d / PREVIOUS_FILE).is_file()


def check_run_dir(out: Path, resume: bool, overwrite: bool, current: dict, parse_saved) -> str:
    """``fresh``, ``resume`` or ``finished`` for a run directory; raises InputError on a conflict (nothing is touched).

    ``current`` is the resolved recipe of this call and ``parse_saved(raw, source)`` resolves the directory's
    ``recipe.yaml`` the same way, so a resume with other settings is refused. ``--overwrite`` replaces only a
    run directory (one with a ``recipe.yaml``) or an empty one: never a directory of other files.
    """
    if not out.exists():
        if resume:
            raise InputError(f"{out}: --resume given, but there is no run to resume there")
        return "fresh"
    if not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    contents = _contents(out)
    if not contents:
        if resume:
            raise InputError(f"{out}: --resume given, but the directory is empty")
        return "fresh"
    if overwrite:
        if not (out / RECIPE).is_file():
            raise InputError(
                f"{out}: --overwrite refused: not a bermo-prune run directory (no {RECIPE}); it holds "
                f"{len(contents)} other entr{'y' if len(contents) == 1 else 'ies'}"
            )
        return "fresh"
    if not resume:
        raise InputError(
            f"{out}: already holds a run; pass --resume to continue it, --overwrite to replace it, "
            "or choose another --output-dir"
        )
    saved = out / RECIPE
    if not saved.is_file():
        raise InputError(f"{out}: not a bermo-prune run directory (no {RECIPE}); cannot resume")
    ours = dict(current)
    theirs = parse_saved(yaml.safe_load(saved.read_text(encoding="utf-8")), str(saved))
    ours.pop("output_dir", None), theirs.pop("output_dir", None)
    diff = _differences(ours, theirs)
    if diff:
        raise InputError(
            f"{out}: --resume with a recipe that differs from the run's {RECIPE} in {', '.join(diff)}; "
            "resume with the same recipe and overrides"
        )
    if (out / SUMMARY).is_file():
        return "finished"
    if not has_checkpoint(out):
        raise InputError(
            f"{out}: the run has no checkpoint yet (set checkpoint.every); start it again instead"
        )
    return "resume"


class RunLock:
    """An exclusive advisory lock on ``RUN_DIR/.lock`` for the life of a run (see the module docstring).

    ``acquire`` creates the directory if needed and writes the holder's pid and host into the file; ``release``
    removes the file. A process killed without releasing leaves the file, unlocked: the next run takes it over.
    """

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl  # here: POSIX only, and only a writing run needs it

        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.out}: cannot create the run directory ({exc.strerror})") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise InputError(f"{self.out}: cannot write the run directory ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
                os.close(fd)
                raise InputError(
                    f"{self.out}: in use by another bermo-prune process ({holder}); wait for it to end or stop it"
                ) from None
            try:  # the holder we waited on may have removed the file: lock the one that is there now
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding it) and unlock."""
        if self._fd is not None:
            import fcntl  # here: POSIX only (see acquire)

            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def prepare_fresh(out: Path) -> None:
    """Empty a run directory for a fresh start (``--overwrite``), keeping the held lock file."""
    for p in _contents(out):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def save_checkpoint(out: Path, state: dict) -> None:
    """Write ``state`` as the latest checkpoint and keep the one before it: temporary file, fsync, then the
    latest becomes ``state.prev.pt`` and the new file ``state.pt`` (a crash between the renames leaves the
    previous one, which :func:`load_checkpoint` falls back to)."""
    d = Path(out) / CHECKPOINT_DIR
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    if (d / CHECKPOINT_FILE).is_file():
        os.replace(d / CHECKPOINT_FILE, d / PREVIOUS_FILE)
    os.replace(tmp, d / CHECKPOINT_FILE)


def load_checkpoint(out: Path) -> dict:
    """The newest readable checkpoint of a run (``weights_only`` loading: tensors and plain containers only).

    An unreadable newest file (truncated by a crash or a full disk) is reported in one warning line and the
    previous one is used; InputError (exit 2) when neither can be read.
    """
    d = Path(out) / CHECKPOINT_DIR
    problems = []
    for name in (CHECKPOINT_FILE, PREVIOUS_FILE):
        path = d / name
        if not path.is_file():
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or "position" not in state:
                raise ValueError("not a bermo-prune training checkpoint")
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            problems.append(f"{path}: unreadable ({type(exc).__name__}{': ' + first[:160] if first else ''})")
            continue
        if problems:
            logger.warning(
                "%s; resuming from %s (step %d) instead", problems[0], path, state["position"]["step"]
            )
        return state
    if not problems:
        raise InputError(f"{out}: no checkpoint to resume from ({CHECKPOINT_DIR}/{CHECKPOINT_FILE})")
    raise InputError(f"{out}: no usable checkpoint: " + "; ".join(problems))


def finish_run_dir(
    out: Path, model, tokenizer, summary: dict, writer: bool = True, card: str | None = None
) -> None:
    """The end of a run: ``model/`` (weights, tokenizer and the model card ``card`` as ``README.md``),
    ``summary.json`` (atomically), checkpoints removed.

    ``writer`` is False on all but the main process of a data-parallel run.
    """
    if not writer:
        return
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    if card is not None:
        atomic_write(out / "model" / "README.md", card)
    atomic_write(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)


class RunDirectory:
    """One run directory's lifecycle, the same for ``run`` and ``pretrain`` (a sweep's cells are runs)::

        rd = RunDirectory(out, resume, overwrite, resolved, parse_saved, source)  # judged; nothing written
        if rd.state == "finished":
            return rd.summary()
        ...  # read every input: a bad one leaves the directory untouched
        with rd.started(tokenizer) as state:  # locked, judged again, a fresh one prepared, processes in step
            if state == "finished":  # another process finished it meanwhile
                return rd.summary()
            ...  # train; finish_run_dir

    ``resolved`` is the recipe as plain data (``recipe.yaml`` writes it under a ``# resolved from SOURCE`` line);
    ``parse_saved(raw, source)`` turns a saved ``recipe.yaml`` into the same form, to compare on resume. Every
    process judges the directory; only the main one locks and writes it.
    """

    def __init__(
        self, out: Path, resume: bool, overwrite: bool, resolved: dict, parse_saved, source: str
    ) -> None:
        self.out, self.resume, self.overwrite = Path(out), resume, overwrite
        self.resolved, self.parse_saved, self.source = resolved, parse_saved, source
        self.state = self._judge()
        process_state().wait_for_everyone()  # every process has judged the directory before any writes to it

    def _judge(self) -> str:
        return check_run_dir(self.out, self.resume, self.overwrite, self.resolved, self.parse_saved)

    def summary(self) -> dict:
        """The finished run's ``summary.json``."""
        return json.loads((self.out / SUMMARY).read_text(encoding="utf-8"))

    @contextlib.contextmanager
    def started(self, tokenizer):
        """Hold the lock while the run trains; yields the state (``fresh``, ``resume``, or ``finished`` when another
        process finished the run while this one was loading). A fresh directory gets ``recipe.yaml`` and
        ``tokenizer/`` before training starts."""
        main = process_state().is_main_process
        with RunLock(self.out) if main else contextlib.nullcontext():
            again = self._judge() if main else self.state
            if again == "finished":
                yield again
                return
            if again != self.state:
                raise InputError(
                    f"{self.out}: changed by another process while this run was starting; run it again"
                )
            if self.state == "fresh" and main:
                prepare_fresh(self.out)
                text = yaml.safe_dump(self.resolved, sort_keys=False)
                atomic_write(self.out / RECIPE, f"# resolved from {self.source}\n" + text)
                tokenizer.save_pretrained(self.out / "tokenizer")
            process_state().wait_for_everyone()  # the other processes start once the directory is ready
            yield self.state
