"""A tiny run whose disk fills after its first epoch, under each writer that is not one of
lastexp's atomic files: the run's lastexp.log, TensorBoard's event file (its writer thread)
and W&B's folder. Each ends the command with one line naming that file (exit 2), nothing
else on stderr (no traceback, no "--- Logging error ---"), and the last good checkpoint as it
was; the same command, with space again, resumes it. (The write primitive of that one file
raises ENOSPC: tests/runstore/full_disk.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.runstore.full_disk import one_line as disk_full_line
from tests.runstore.full_disk import run_full

pytestmark = pytest.mark.resume

ARGS = ["debug=tiny", "training.epochs=2", "model=last_e_nano"]


WANDB_OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
NOISE = ("Traceback", "Logging error", "Exception in thread", "Error executing job")


def full_disk_run(tmp_path: Path, writer: str, logger: str, data: Path):
    run = tmp_path / "runs" / f"full_{writer}"
    args = [*ARGS, f"logger={logger}", f"run_name={run.name}", f"paths.data={data}"]
    r = run_full(tmp_path, writer, str(run / "checkpoints" / "last.pt"), args, env=WANDB_OFFLINE)
    return r, run, args


def one_line(r) -> str:
    return disk_full_line(r, NOISE)


@pytest.mark.parametrize("writer,logger", [("log", "none"), ("tensorboard", "tensorboard")])
def test_a_full_disk_under_a_writer_stops_the_run_in_one_line(tmp_path, shared_data, writer,
                                                              logger):
    r, run, args = full_disk_run(tmp_path, writer, logger, shared_data)
    line = one_line(r)
    named = run / "lastexp.log" if writer == "log" else run / "tensorboard"
    assert f"for {named}" in line, line
    if writer == "log":
        assert "(needs " in line and " bytes, " in line  # the record it could not write
    # the checkpoint of the first epoch, as it was when the disk filled
    assert (run / "checkpoints" / "last.pt").read_bytes() == \
        (tmp_path / "last.pt.at-fill").read_bytes()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed"  # why: below; the checkpoint resumes it
    assert "DiskFullError: no space left" in metrics["error"]
    again = run_cli(args, tmp_path, env={"OMP_NUM_THREADS": "1"})  # space again: resumed
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming {run.name} after epoch 1" in again.stdout
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"


def test_a_full_disk_under_wandb_is_one_line_naming_its_folder(tmp_path, shared_data):
    """W&B's service writes from its own process and drops what it cannot write; its Python
    side's debug.log fails when the run finishes: one line naming the run's W&B folder,
    the run itself complete (its own files were written)."""
    r, run, _ = full_disk_run(tmp_path, "wandb", "wandb", shared_data)
    line = one_line(r)
    (folder,) = (run / "wandb").glob("offline-run-*")
    assert f"for {folder} (" in line, line
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert (tmp_path / "last.pt.at-fill").is_file()


def test_a_full_disk_under_a_resumed_runs_hydra_files_leaves_it_resumable(tmp_path,
                                                                          shared_data):
    """A run stopped after its first epoch is resumed on a full disk: the first file the
    resume writes, its .hydra/config.yaml (written atomically by lastexp, as Hydra's
    output_subdir would), fails; one line naming it, and the run's checkpoint and .hydra files
    as they were; with space again it resumes."""
    r, run, args = full_disk_run(tmp_path, "log", "none", shared_data)
    one_line(r)  # stopped after epoch 1 (the test above)
    kept = {p: p.read_bytes() for p in [*(run / "checkpoints").iterdir(),
                                        *(run / ".hydra").iterdir()]}
    full = run_full(tmp_path, "hydra", "-", args)
    line = one_line(full)
    assert f"for {run / '.hydra' / 'config.yaml'} (needs " in line, line
    assert {p: p.read_bytes() for p in kept} == kept
    assert not [p for p in (run / ".hydra").iterdir() if p not in kept]  # no temporary left
    again = run_cli(args, tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming {run.name} after epoch 1" in again.stdout
