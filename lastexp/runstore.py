"""Finding runs in the run store by what they are (ablation, dataset, stream, seed).

Used by runs that depend on other runs (distillation teachers, ensemble members) and by the
planner. Reads only metrics.json files, never torch, so planning stays fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunRecord:
    run_dir: Path
    metrics: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", "unknown"))


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


def iter_runs(root: str | os.PathLike) -> Iterator[RunRecord]:
    """Every directory below ``root`` holding a readable metrics.json (corrupt ones skipped)."""
    stack = [Path(root)]
    while stack:
        here = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue
        names = {e.name for e in entries}
        if "metrics.json" in names:
            try:
                with open(here / "metrics.json") as f:
                    metrics = json.load(f)
            except (OSError, ValueError):
                metrics = None
            if isinstance(metrics, dict):  # a JSON list or number is no run's: skipped too
                yield RunRecord(here, metrics)
            continue  # a run directory holds no runs below it
        stack.extend(Path(e.path) for e in entries
                     if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))


def find_runs(root: str | os.PathLike, **match: Any) -> list[RunRecord]:
    """Runs whose metrics.json equals ``match`` on every given key, newest first."""
    found = [r for r in iter_runs(root)
             if all(r.metrics.get(k) == v for k, v in match.items())]
    found.sort(key=lambda r: str(r.metrics.get("finished_at") or ""), reverse=True)
    return found


def find_completed(root: str | os.PathLike, *, ablation: str, dataset: str, stream: str,
                   seed: int, **extra: Any) -> RunRecord | None:
    runs = find_runs(root, ablation=ablation, dataset=dataset, stream=stream, seed=seed, **extra)
    done = [r for r in runs if r.status == "completed"]
    return done[0] if done else None


def produce_args(*, ablation: str, dataset: str, stream: str, seed: int,
                 extra: list[str] | None = None) -> list[str]:
    """The command-line overrides that produce a missing dependency."""
    return [f"+ablation={ablation}", f"dataset={dataset}", f"stream={stream}", f"seed={seed}",
            *(extra or [])]


def produce_command(**run: Any) -> str:
    """The exact command that produces a missing dependency (see :func:`produce_args`)."""
    return "python -m lastexp " + " ".join(produce_args(**run))
