"""A disk that fills up under one file: the write primitive of that file only raises ENOSPC,
as a full disk does, once it is armed. Used in-process by the unit tests and, through
``python -m tests.runstore.full_disk WRITER ARM_FILE [lastexp args]``, for a whole run whose
disk fills (for ``WRITER``) once ``ARM_FILE`` exists (the first epoch's ``last.pt``, whose
bytes at that moment are kept for the test to compare).

``WRITER``: ``log`` (the run's ``lastexp.log``, under lastexp's handler), ``tensorboard`` (the
event file, written by TensorBoard's writer thread) or ``wandb`` (W&B's ``debug.log`` in the
run's ``wandb/`` folder, written by W&B's own logging handler; the W&B service's own files
are written by another process, which fails silently on a full disk), ``multirun`` (Hydra's
``multirun.yaml``, which OmegaConf writes with ``io.open``), ``hydra`` (a run's
``.hydra/*.yaml``, which lastexp writes atomically with ``os.write``) or ``study`` (an Optuna
study's sqlite file below a ``search`` folder: see :func:`sqlite_full`). ``ARM_FILE`` ``-``:
the disk is full from the start.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import runpy
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullFile(io.FileIO):
    """A raw file whose writes fail with ENOSPC once ``armed()`` says so."""

    def __init__(self, path: str, mode: str, armed: Callable[[], bool]) -> None:
        super().__init__(path, mode)
        self.armed = armed

    def write(self, data) -> int:  # type: ignore[override]
        if self.armed():
            raise no_space()
        return super().write(data)


def full_text_file(path: str, mode: str, armed: Callable[[], bool], *, encoding: str | None,
                   errors: str | None = None) -> io.TextIOWrapper:
    """``open(path, mode)`` as text, on a disk that is full once ``armed()``."""
    raw = FullFile(path, mode.replace("t", ""), armed)
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding=encoding or "utf-8",
                            errors=errors)


def full_log_open(real: Callable, matches: Callable[[str], bool],
                  armed: Callable[[], bool]) -> Callable:
    """A ``logging.FileHandler._open`` (``real``) that opens each log file whose path
    ``matches`` on a disk that is full once ``armed()``."""

    def _open(self):
        if not matches(self.baseFilename):
            return real(self)
        return full_text_file(self.baseFilename, self.mode, armed, encoding=self.encoding,
                              errors=self.errors)

    return _open


def full_event_write(real: Callable, armed: Callable[[], bool]) -> Callable:
    """A ``LocalFileSystem._write`` (``real``, TensorBoard's, which its writer thread calls)
    for which the event files are on a full disk once ``armed()``."""

    def _write(self, filename, file_content, mode):
        if "events.out.tfevents." in str(filename) and armed():
            raise no_space()
        return real(self, filename, file_content, mode)

    return _write


def full_io_open(real: Callable, name: str, armed: Callable[[], bool]) -> Callable:
    """An ``io.open`` (``real``) for which files called ``name`` opened to write are on a disk
    that is full once ``armed()``."""

    def _open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file).name == name and "w" in mode:
            encoding = kwargs.get("encoding", args[1] if len(args) > 1 else None)
            return full_text_file(os.fspath(file), mode, armed, encoding=encoding)
        return real(file, mode, *args, **kwargs)

    return _open


def fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def full_os_write(real: Callable, matches: Callable[[str], bool],
                  armed: Callable[[], bool]) -> Callable:
    """An ``os.write`` (``real``) that fails with ENOSPC, once ``armed()``, for the open files
    whose path ``matches``."""

    def _write(fd, data):
        if armed() and matches(fd_path(fd)):
            raise no_space()
        return real(fd, data)

    return _write


def sqlite_full() -> sqlite3.OperationalError:
    """The error sqlite itself raises when a database cannot grow (``SQLITE_FULL``, "database
    or disk is full"), made by sqlite: an in-memory database held to one page."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("PRAGMA max_page_count = 1")
        db.execute("CREATE TABLE t (x)")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("sqlite grew past max_page_count")


def main_file(dbapi_connection: sqlite3.Connection) -> str:
    rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
    return next((str(file) for _, name, file in rows if name == "main"), "")


def full_sqlite_commit(real: Callable, matches: Callable[[str], bool],
                       armed: Callable[[], bool]) -> Callable:
    """SQLAlchemy's sqlite ``do_commit`` (``real``): a commit to a database whose file
    ``matches`` fails, once ``armed()``, with the error sqlite gives a full disk -- the
    transaction's pages and journal are written at commit -- and SQLAlchemy wraps it, and the
    caller rolls back, as on a full disk."""

    def do_commit(self, dbapi_connection):
        if armed() and matches(main_file(dbapi_connection)):
            raise sqlite_full()
        return real(self, dbapi_connection)

    return do_commit


def install(writer: str, armed: Callable[[], bool]) -> None:
    if writer == "log":
        from lastexp.logs import RunLogHandler

        RunLogHandler._open = full_log_open(RunLogHandler._open,
                                            lambda p: p.endswith("lastexp.log"), armed)
    elif writer == "tensorboard":
        from tensorboard.compat.tensorflow_stub.io.gfile import LocalFileSystem

        LocalFileSystem._write = full_event_write(LocalFileSystem._write, armed)
    elif writer == "wandb":
        logging.FileHandler._open = full_log_open(
            logging.FileHandler._open, lambda p: f"{os.sep}wandb{os.sep}" in p, armed)
    elif writer == "multirun":
        io.open = full_io_open(io.open, "multirun.yaml", armed)
    elif writer == "hydra":
        os.write = full_os_write(os.write, lambda p: f"{os.sep}.hydra{os.sep}." in p, armed)
    elif writer == "study":
        from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

        SQLiteDialect_pysqlite.do_commit = full_sqlite_commit(
            SQLiteDialect_pysqlite.do_commit,
            lambda p: Path(p).parent.name == "search" and p.endswith(".db"), armed)
    else:
        raise SystemExit(f"unknown writer {writer!r}")


REPO = Path(__file__).resolve().parents[2]


def run_full(cwd: Path, writer: str, arm_file: str, args: list[str], *, timeout: int = 600,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m lastexp args`` in ``cwd``, its disk filling under ``writer`` once
    ``arm_file`` exists (``-``: from the start); ``env`` adds to this process's environment."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                **(env or {}), "FULL_DISK_KEEP": str(cwd)}
    return subprocess.run([sys.executable, "-m", "tests.runstore.full_disk", writer, arm_file,
                           *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def one_line(r: subprocess.CompletedProcess, noise: tuple[str, ...]) -> str:
    """Bad input's shape for a full disk: exit 2, one line on stderr naming it, none of
    ``noise`` (tracebacks, reports) there; returns the line."""
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    for text in noise:
        assert text not in r.stderr, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr[-3000:]
    assert lines[0].startswith("lastexp: error: no space left on the device for "), lines[0]
    assert "free some space" in lines[0]
    return lines[0]


def main() -> None:
    """``WRITER ARM_FILE [lastexp args]``; ``ARM_FILE`` as it was when the disk filled is kept
    as ``ARM_FILE.at-fill`` beside the test's files (``FULL_DISK_KEEP``, a folder)."""
    writer, arm_file, args = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    keep = Path(os.environ["FULL_DISK_KEEP"]) / f"{arm_file.name}.at-fill"

    def armed() -> bool:
        if str(arm_file) == "-":
            return True
        if not arm_file.exists():
            return False
        if not keep.exists():  # the file is renamed into place whole: complete when seen
            keep.write_bytes(arm_file.read_bytes())
        return True

    install(writer, armed)
    sys.argv = ["lastexp", *args]
    runpy.run_module("lastexp", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
