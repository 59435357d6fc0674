"""A full disk under the writers that are not lastexp's atomic files: the run's lastexp.log
(a logging handler), TensorBoard's event file (written by its own thread) and W&B's folder.
Each is one DiskFullError naming its file -- the one line the command ends with -- and none
prints logging's "--- Logging error ---" or a thread's traceback. (Whole runs whose disk
fills under each writer: tests/resume/test_full_disk_runs.py.)"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from lastexp.io import DiskFullError
from lastexp.logs import RunLogHandler, capture_prints
from tests.runstore.full_disk import full_event_write, full_log_open


@pytest.fixture
def run_log(tmp_path, monkeypatch):
    """A run's log handler on a disk that fills when ``full["now"]`` is set; the run trains
    (its .hydra/config.yaml written after the handler was made), so records are written."""
    full = {"now": False}
    monkeypatch.setattr(RunLogHandler, "_open", full_log_open(
        RunLogHandler._open, lambda p: p.endswith("lastexp.log"), lambda: full["now"]))
    handler = RunLogHandler(str(tmp_path / "lastexp.log"))
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("{}")
    yield handler, full
    handler.close()


def record(text: str) -> logging.LogRecord:
    return logging.LogRecord("print", logging.INFO, "", 0, text, None, None)


def test_a_full_disk_under_lastexp_log_is_one_error_naming_it(run_log, capsys):
    handler, full = run_log
    handler.stops_run = True  # as while the job runs (capture_prints)
    handler.handle(record("epoch 1 done"))
    full["now"] = True
    with pytest.raises(DiskFullError) as err:
        handler.handle(record("epoch 2 done"))
    line = str(err.value)
    assert "\n" not in line and f"{handler.baseFilename} (needs 13 bytes" in line, line
    assert "free some space" in line
    handler.handle(record("the error line itself"))  # dropped, raised once only
    full["now"] = False  # space again: the file is left alone all the same
    handler.handle(record("later"))
    handler.close()
    assert Path(handler.baseFilename).read_text() == "epoch 1 done\n"
    assert capsys.readouterr().err == ""  # no "--- Logging error ---"


def test_another_threads_full_disk_is_raised_by_the_main_threads_next_line(run_log, capsys):
    handler, full = run_log
    handler.stops_run = True
    full["now"] = True
    worker = threading.Thread(target=handler.handle, args=(record("from a thread"),))
    worker.start()
    worker.join()
    assert handler.full is not None and not handler.reported
    with pytest.raises(DiskFullError, match="lastexp.log"):
        handler.handle(record("main"))
    assert capsys.readouterr().err == ""


def test_outside_the_job_a_full_log_raises_nothing(run_log, capsys):
    """Between jobs (Hydra's own logging) nothing is raised: the disk-full is kept for the
    job to report."""
    handler, full = run_log
    full["now"] = True
    handler.handle(record("[HYDRA] launching"))
    assert handler.unreported() is not None and handler.unreported() is None
    assert capsys.readouterr().err == ""


def test_a_full_disk_no_line_raised_ends_the_block_in_one_line(run_log, capsys, monkeypatch):
    """The block itself ends well, but a record of another thread could not be written:
    capture_prints ends with the one line and exit 2; other handlers' errors stay quiet to
    the end of the process (W&B's threads log until it exits)."""
    monkeypatch.setattr(logging, "raiseExceptions", True)  # undone after the test
    handler, full = run_log
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with pytest.raises(SystemExit) as stop, capture_prints():
            assert logging.raiseExceptions is False
            print("epoch 1 done")
            full["now"] = True
            worker = threading.Thread(target=logging.getLogger("x").warning, args=("t",))
            worker.start()
            worker.join()
    finally:
        root.removeHandler(handler)
    assert stop.value.code == 2 and logging.raiseExceptions is False
    err = capsys.readouterr().err
    assert err.startswith("lastexp: error: no space left on the device for ") and \
        err.count("\n") == 1 and "lastexp.log" in err, err


def test_a_full_disk_under_tensorboard_names_the_event_file(tmp_path, capfd, monkeypatch):
    from tensorboard.compat.tensorflow_stub.io.gfile import LocalFileSystem

    from lastexp.train.tracking import TensorBoardLogger

    # Python's own hook, which prints a dead thread's traceback (pytest's would hide it)
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    full = {"now": False}
    monkeypatch.setattr(LocalFileSystem, "_write",
                        full_event_write(LocalFileSystem._write, lambda: full["now"]))
    logger = TensorBoardLogger(tmp_path / "tb", history=[])
    row = {"epoch": 1, "lr": 0.1, "train_loss": 1.0}
    logger.log_epoch(row)
    (event,) = (tmp_path / "tb").glob("events.out.tfevents.*")
    written = event.read_bytes()
    full["now"] = True
    with pytest.raises(DiskFullError) as err:
        logger.log_epoch(dict(row, epoch=2))
    assert f"no space left on the device for {event} (needs more space" in str(err.value)
    with pytest.raises(DiskFullError, match="events.out.tfevents"):
        logger.finish({})
    assert event.read_bytes() == written
    out = capfd.readouterr()
    assert "Traceback" not in out.err and "Exception in thread" not in out.err, out.err


def test_other_thread_errors_still_reach_the_previous_hook(monkeypatch):
    from lastexp.train.tracking import QuietWriterThreads

    seen = []
    monkeypatch.setattr(threading, "excepthook", seen.append)
    QuietWriterThreads.install()
    QuietWriterThreads.install()  # once
    assert isinstance(threading.excepthook, QuietWriterThreads)
    assert threading.excepthook.previous == seen.append
    worker = threading.Thread(target=lambda: (_ for _ in ()).throw(OSError(28, "full")))
    worker.start()
    worker.join()
    assert len(seen) == 1  # not TensorBoard's writer: its hook still hears of it


def test_a_full_disk_under_wandb_names_its_folder(tmp_path, capfd, monkeypatch):
    """W&B's Python side writes its debug.log through a logging handler: on a full disk its
    records are dropped (no "--- Logging error ---") and finishing the run, which closes that
    file, is one DiskFullError naming the run's W&B folder."""
    import wandb

    from lastexp.train.tracking import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setattr(logging, "raiseExceptions", False)  # as capture_prints sets it
    full = {"now": False}
    monkeypatch.setattr(logging.FileHandler, "_open", full_log_open(
        logging.FileHandler._open, lambda p: f"{os.sep}wandb{os.sep}" in p,
        lambda: full["now"]))
    run_dir = tmp_path / "run"
    logger = WandbLogger(run_dir, project="p", entity=None, group=None, tags=[],
                         mode="offline", config={})
    assert logger.folder.parent == run_dir / "wandb"
    assert logger.folder.name.startswith("offline-run-")
    full["now"] = True
    logger.log_epoch({"epoch": 1, "lr": 0.1, "global_step": 3})
    try:
        with pytest.raises(DiskFullError) as err:
            logger.finish({"final_top1": 1.0})
    finally:
        full["now"] = False
        wandb.teardown()
    assert f"no space left on the device for {logger.folder} (" in str(err.value)
    out = capfd.readouterr()
    assert "Logging error" not in out.err and "Traceback" not in out.err, out.err
