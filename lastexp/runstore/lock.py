"""The lock a command holds on a run directory while it trains it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class RunLockedError(ValueError):
    """Another command is training the same run directory."""


LOCK_DIR = ".locks"  # below the runs root, so that the run directories themselves stay as
# their commands left them


@contextlib.contextmanager
def run_lock(run_dir: Path, runs_root: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` while it is trained; a second command on the same
    run refuses at once (one line) instead of training it twice. The lock is an ``flock`` on
    ``<runs root>/.locks/<name>.lock``: the kernel drops it when the process dies, so a killed
    run never leaves a stale lock (a lock file outlives it, harmlessly)."""
    path = lock_path(run_dir, runs_root)
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # discard_lock removed an empty .locks meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunLockedError(
                f"run directory {run_dir} is being trained by another command (pid {holder}); "
                "wait for it to finish, or choose another run (seed=, run_name=)"
            ) from None
        if _same_file(fd, path):
            break
        os.close(fd)  # locked a file that discard_lock removed meanwhile: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def lock_path(run_dir: Path, runs_root: str | os.PathLike) -> Path:
    rel = Path(run_dir).resolve().relative_to(Path(runs_root).resolve())
    return Path(runs_root) / LOCK_DIR / (str(rel).replace(os.sep, "__") + ".lock")


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def discard_lock(run_dir: Path, runs_root: str | os.PathLike) -> None:
    """Remove the lock file of ``run_dir`` (and an empty ``.locks``), for a command that was
    refused and leaves the runs root as it found it; a lock another command holds stays."""
    path = lock_path(run_dir, runs_root)
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(fd, path):
            path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()
    except OSError:  # held by another command
        pass
    finally:
        os.close(fd)
