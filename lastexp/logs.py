"""``<run>/lastexp.log``: everything a run logs and prints, in its run directory.

Hydra's job logging (``hydra.job_logging`` in conf/config.yaml) gives the root logger a file
handler per job; lastexp's is :class:`RunLogHandler`, which

- writes nothing until the job trains the run (it has written the run's ``.hydra/config.yaml``):
  a command that skips a completed run, or is refused, leaves the run directory byte-identical,
  and what it printed before training starts (data, resume) is written then, in order;
- writes on rank 0 only under DDP (``RANK``);
- turns a full disk into :class:`~lastexp.io.DiskFullError` naming ``lastexp.log``, never
  logging's ``--- Logging error ---`` traceback: while the job runs (:func:`capture_prints`)
  the line that could not be written stops the run there (raised in the main thread; a
  record of another thread is dropped and the main thread's next line raises it), so the
  command ends with the one line and the checkpoint of the last finished epoch intact; the
  file is then left alone.

What the run prints (``print``, warnings, error lines) reaches the same file through
:func:`capture_prints`, which copies each complete line written to ``sys.stdout`` /
``sys.stderr`` into the file handlers (not to the console, which already shows it); a progress
bar's redraws (``\\r``) are left out, its last state kept. Under SLURM the first line names
submitit's stdout and stderr files of the job that trains the run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import submitit

from lastexp.io import DiskFullError, disk_full_line, is_disk_full
from lastexp.runstore.layout import HYDRA_LOG, RunDir

LOG_NAME = HYDRA_LOG
PRINT_LOGGER = "print"  # the logger name of a printed line in the file


class RunLogHandler(logging.FileHandler):
    """A file handler that holds records back until the run trains (see the module doc)."""

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = "utf-8",
                 delay: bool = True, errors: str | None = None) -> None:
        super().__init__(filename, mode, encoding, delay=True, errors=errors)
        self.created_ns = time.time_ns()
        self.rank0 = os.environ.get("RANK", "0") in ("", "0")
        self.marker = RunDir(Path(filename).parent).hydra_config
        self.held: list[logging.LogRecord] | None = []  # None once the run trains
        self.full: DiskFullError | None = None  # the disk filled: nothing more is written
        self.reported = False  # ... and the error was raised (or printed) once
        self.stops_run = False  # raise it in the main thread (set by capture_prints)

    def trains(self) -> bool:
        """This job wrote the run's ``.hydra/config.yaml`` (lastexp writes it when it trains).
        The margin covers the coarse file-system clock."""
        try:
            return self.marker.stat().st_mtime_ns >= self.created_ns - 50_000_000
        except OSError:
            return False

    def _release(self) -> bool:
        if self.held is None:
            return True
        if not self.trains():
            return False
        held, self.held = self.held, None
        for record in held:
            super().emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if not self.rank0:
            return
        if self.full is not None:  # the disk is full: dropped (raised once, see the doc)
            self._stop()
            return
        if self.held is not None and not self._release():
            self.held.append(record)
            return
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 -- logging's name
        """A write that failed: a full disk is recorded (and raised, :meth:`_stop`) instead of
        logging's traceback on stderr; any other error is logging's business."""
        exc = sys.exc_info()[1]
        if exc is None or not is_disk_full(exc):
            super().handleError(record)
            return
        if self.full is None:
            needed = len((self.format(record) + self.terminator).encode("utf-8"))
            self.full = DiskFullError(self.baseFilename, needed)
            self._drop_stream()
        self._stop()

    def _stop(self) -> None:
        """Raise the full disk once, in the main thread of a running job; elsewhere (another
        thread, Hydra's own logging between jobs) the record is dropped."""
        if (self.full is not None and self.stops_run and not self.reported
                and threading.current_thread() is threading.main_thread()):
            self.reported = True
            raise self.full

    def _drop_stream(self) -> None:
        """Close the file without writing what its buffer still holds (the disk is full)."""
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    def unreported(self) -> DiskFullError | None:
        """The full disk no main-thread line raised yet (it is reported from now on)."""
        if self.full is None or self.reported:
            return None
        self.reported = True
        return self.full

    def flush(self) -> None:
        if self.full is not None:
            return
        if self.rank0 and self.held is not None:
            self._release()
        super().flush()

    def settle(self) -> None:
        """Flush, a full disk recorded rather than raised (the file's own flush: emit's
        failures reach :meth:`handleError`)."""
        try:
            self.flush()
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            if self.full is None:
                self.full = DiskFullError(self.baseFilename, None)
            self._drop_stream()

    def close(self) -> None:
        self.settle()  # a run that trained writes what it held; one that did not, nothing
        if self.full is not None:
            self._drop_stream()
        super().close()


def run_handlers() -> list[RunLogHandler]:
    """The job's :class:`RunLogHandler` s (Hydra attaches them to the root logger)."""
    return [h for h in logging.getLogger().handlers if isinstance(h, RunLogHandler)]


def to_file(message: str, level: int = logging.INFO, name: str = "lastexp") -> None:
    """A line for ``lastexp.log`` only (facts of the run the console need not repeat)."""
    record = logging.LogRecord(name, level, "", 0, message, None, None)
    for handler in run_handlers():
        handler.handle(record)


class _Tee(io.TextIOBase):
    """A text stream that writes through to ``stream`` and hands each complete line to the run's
    log file handlers."""

    def __init__(self, stream: TextIO, handlers: list[RunLogHandler], level: int) -> None:
        self.stream, self.handlers, self.level = stream, handlers, level
        self.pending = ""

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            line = line.rsplit("\r", 1)[-1].rstrip()  # a redrawn bar: its last state
            if line:
                record = logging.LogRecord(PRINT_LOGGER, self.level, "", 0, line, None, None)
                for handler in self.handlers:
                    handler.handle(record)
        self.pending = self.pending.rsplit("\r", 1)[-1]  # bound a bar's redraws
        return written

    def flush(self) -> None:
        self.stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:  # progress bars ask: the answer is the real stream's
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def capture_prints() -> Iterator[list[RunLogHandler]]:
    """Within the block, what is printed to stdout / stderr also reaches ``lastexp.log`` (as
    ``print`` records, INFO / WARNING); an exception that ends the block is written there
    with its traceback (Hydra prints it on the console).

    A full disk under ``lastexp.log`` stops the block (:class:`RunLogHandler`); one that no
    line of the block raised (the last records, another thread's) ends it as the one line
    ``lastexp: error: no space left ...`` and exit 2. From the block on, for the rest of the
    process, another library's log file that cannot be written (W&B's ``debug.log`` on the
    same full disk, written by its threads until the process exits) drops its record instead
    of printing logging's ``--- Logging error ---`` traceback (``logging.raiseExceptions``,
    logging's switch for an application): the run's own next write reports the full disk."""
    handlers = run_handlers()
    if not handlers:
        yield handlers
        return
    out, err = sys.stdout, sys.stderr
    logging.raiseExceptions = False
    for handler in handlers:
        handler.stops_run = True
    sys.stdout = _Tee(out, handlers, logging.INFO)  # type: ignore[assignment]
    sys.stderr = _Tee(err, handlers, logging.WARNING)  # type: ignore[assignment]
    try:
        yield handlers
    except BaseException as exc:
        if not isinstance(exc, SystemExit) or exc.code not in (0, None):
            text = "".join(traceback.format_exception(exc)).rstrip()
            record = logging.LogRecord(PRINT_LOGGER, logging.ERROR, "", 0, text, None, None)
            for handler in handlers:
                with contextlib.suppress(DiskFullError):  # the error in hand goes on
                    handler.handle(record)
        raise
    finally:
        sys.stdout, sys.stderr = out, err
        for handler in handlers:
            handler.stops_run = False
            handler.settle()
    full = next((e for e in (h.unreported() for h in handlers) if e is not None), None)
    if full is not None:
        print(f"lastexp: error: {disk_full_line(full)}", file=sys.stderr, flush=True)
        sys.exit(2)


def submitit_log_line() -> str | None:
    """In a job that submitit started (hydra/launcher=submitit_slurm or submitit_local): the line
    naming that job's stdout and stderr files, which submitit keeps in the sweep's record
    (``<paths.runs>/.sweeps/<time>/.submitit/<job>/``); None elsewhere."""
    if not os.environ.get("SUBMITIT_FOLDER"):
        return None
    try:
        env = submitit.JobEnvironment()
        paths = env.paths
        return f"submitit job {env.job_id}: stdout {paths.stdout}, stderr {paths.stderr}"
    except Exception:  # noqa: BLE001 -- not a job submitit can describe: nothing to name
        return None
