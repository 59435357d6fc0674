"""A full disk under what Hydra and its sweepers write themselves -- a sweep's
``multirun.yaml``, the Optuna sweeper's ``optimization_results.yaml`` and its study's sqlite
file (``<paths.runs>/search/<study>.db``) -- ends the command as the one line
``lastexp: error: no space left on the device for <file> (...)`` and exit 2, like a full disk
under lastexp's own files.

Hydra runs a command inside ``hydra._internal.utils.run_and_report``, which reports any
exception of its own code, a sweeper or a launcher in several lines and exits 1; it offers no
hook for an application's own report (its callbacks see a job's result, not a sweeper's
error). :func:`full_disk_in_one_line` wraps that one function while the command runs: a full
disk is reported here, anything else goes to Hydra's report as before. Nothing of a run is
lost: Hydra writes its records into the sweep's own new folder, and sqlite commits a study's
transaction whole or not at all, so the trials the study finished stay in it.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra._internal import utils as hydra_utils

from lastexp.io import DiskFullError, is_disk_full


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the DB-API error a SQLAlchemy error wraps."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)  # sqlalchemy.exc.DBAPIError: the driver's error
        todo += [e.__cause__, e.__context__, orig if isinstance(orig, BaseException) else None]


def is_sqlite_full(exc: BaseException) -> bool:
    """sqlite's ``SQLITE_FULL`` ("database or disk is full"): the database file or its journal
    could not grow."""
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL"
        or "database or disk is full" in str(exc))


def _locals(exc: BaseException) -> Iterator[Any]:
    """The local values of the frames ``exc`` passed through, innermost frame first."""
    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    for frame in reversed(frames):
        yield from frame.f_locals.values()


def _written_file(exc: BaseException) -> Path | None:
    """The file a frame of ``exc`` had open for writing (Hydra and OmegaConf write their YAML
    with ``open()``; the error of a write does not name its file)."""
    for value in _locals(exc):
        name = getattr(value, "name", None) if isinstance(value, io.IOBase) else None
        if isinstance(name, str) and not name.startswith("<") and \
                any(m in str(getattr(value, "mode", "")) for m in "wax+"):  # not <stdout>
            return Path(name)
    return None


def _sqlite_file(exc: BaseException) -> Path | None:
    """The sqlite database of the SQLAlchemy connection a frame of ``exc`` was using."""
    for value in _locals(exc):
        url = getattr(getattr(value, "engine", None), "url", None)
        if str(getattr(url, "drivername", "")).startswith("sqlite") and \
                getattr(url, "database", None):
            return Path(url.database)
    return None


def disk_full_error(exc: BaseException) -> DiskFullError | None:
    """A full disk anywhere in ``exc``'s chain -- an ENOSPC (or EDQUOT) ``OSError``, or sqlite's
    ``SQLITE_FULL`` as SQLAlchemy and Optuna raise it -- as :class:`DiskFullError` naming the
    file being written; None for any other error."""
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, DiskFullError):
            return e
    for e in chain:
        if is_disk_full(e):
            name = getattr(e, "filename", None)
            path = Path(name) if name else next(
                (p for p in map(_written_file, chain) if p is not None), None)
            return DiskFullError(path or "a file", None)
        if is_sqlite_full(e):
            path = next((p for p in map(_sqlite_file, chain) if p is not None), None)
            return DiskFullError(path or "the study's sqlite database", None)
    return None


def _reporting(run_and_report: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run_and_report_full_disk(func: Any) -> Any:
        def guarded() -> Any:
            try:
                return func()
            except Exception as exc:
                full = disk_full_error(exc)
                if full is None:
                    raise
                print(f"lastexp: error: {full}", file=sys.stderr, flush=True)
                sys.exit(2)  # a SystemExit: Hydra's report (of Exception) lets it pass

        return run_and_report(guarded)

    return run_and_report_full_disk


@contextlib.contextmanager
def full_disk_in_one_line() -> Iterator[None]:
    """Within the block, a full disk under Hydra's own files or a sweeper's study (any error
    :func:`disk_full_error` recognises) is the one line and exit 2 instead of Hydra's report."""
    real = hydra_utils.run_and_report
    hydra_utils.run_and_report = _reporting(real)
    try:
        yield
    finally:
        hydra_utils.run_and_report = real
