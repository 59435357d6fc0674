"""The lock a command holds on a run directory while it trains it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

# LOCK_DIR lies below the runs root, so that the run directories stay as their commands left them
from lastexp.errors import RunStoreError
from lastexp.runstore.layout import LOCK_DIR


class RunLockedError(RunStoreError):
    """Another command is training the same run directory."""


class LockFileError(RunLockedError):
    """The lock file (or ``.locks``) is not what this module made: a link, a folder, ...; the
    command touches nothing."""


@contextlib.contextmanager
def run_lock(run_dir: Path, runs_root: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` while it is trained; a second command on the same
    run refuses at once (one line) instead of training it twice. The lock is an ``flock`` on
    ``<runs root>/.locks/<name>.lock``: the kernel drops it when the process dies, so a killed
    run never leaves a stale lock (a lock file outlives it, harmlessly)."""
    path = lock_path(run_dir, runs_root)
    while True:
        problem = lock_problem(path)
        if problem:
            raise LockFileError(problem)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # never through a link: a planted one would have the PID written into its target
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except FileNotFoundError:  # discard_lock removed an empty .locks meanwhile
            continue
        except OSError as exc:  # a link planted meanwhile (ELOOP), a folder (EISDIR) ...
            raise LockFileError(lock_problem(path) or f"cannot open the lock file {path} "
                                f"({exc.strerror}); remove it, then run the command again"
                                ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LockFileError(f"the lock file {path} is not a regular file; remove it, then "
                                "run the command again")
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


def lock_problem(path: Path) -> str | None:
    """Why the lock file ``path`` (or its folder ``.locks``) cannot be used: a link, or not a
    file (folder); None when it is fine or absent. One line naming the path and the fix."""
    for p, kind, ok in ((path.parent, "folder", stat.S_ISDIR), (path, "file", stat.S_ISREG)):
        try:
            mode = os.lstat(p).st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"cannot read the lock {kind} {p} ({exc.strerror}); fix or remove it"
        if stat.S_ISLNK(mode) or not ok(mode):
            what = "a link" if stat.S_ISLNK(mode) else f"not a {kind}"
            return (f"the lock {kind} {p} is {what}; remove it (lastexp makes it itself), then "
                    "run the command again")
    return None


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
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
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
