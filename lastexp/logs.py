"""``<run>/lastexp.log``: everything a run logs and prints, in its run directory.

Hydra's job logging (``hydra.job_logging`` in conf/config.yaml) gives the root logger a file
handler per job; lastexp's is :class:`RunLogHandler`, which

- writes nothing until the job trains the run (it has written the run's ``.hydra/config.yaml``):
  a command that skips a completed run, or is refused, leaves the run directory byte-identical,
  and what it printed before training starts (data, resume) is written then, in order;
- writes on rank 0 only under DDP (``RANK``).

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
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import submitit

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
        if self.held is not None and not self._release():
            self.held.append(record)
            return
        super().emit(record)

    def flush(self) -> None:
        if self.rank0 and self.held is not None:
            self._release()
        super().flush()

    def close(self) -> None:
        self.flush()  # a run that trained writes what it held; one that did not, nothing
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
    with its traceback (Hydra prints it on the console)."""
    handlers = run_handlers()
    if not handlers:
        yield handlers
        return
    out, err = sys.stdout, sys.stderr
    sys.stdout = _Tee(out, handlers, logging.INFO)  # type: ignore[assignment]
    sys.stderr = _Tee(err, handlers, logging.WARNING)  # type: ignore[assignment]
    try:
        yield handlers
    except BaseException as exc:
        if not isinstance(exc, SystemExit) or exc.code not in (0, None):
            text = "".join(traceback.format_exception(exc)).rstrip()
            record = logging.LogRecord(PRINT_LOGGER, logging.ERROR, "", 0, text, None, None)
            for handler in handlers:
                handler.handle(record)
        raise
    finally:
        sys.stdout, sys.stderr = out, err
        for handler in handlers:
            handler.flush()


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
