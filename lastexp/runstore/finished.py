"""Opening a finished run for the commands that read one: a distillation teacher, an
ensemble member, an export. Each refusal is one line naming the directory and what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

from lastexp.errors import RunStoreError
from lastexp.runstore.layout import RunDir
from lastexp.runstore.metrics import foreign_kind, is_completed, read_metrics
from lastexp.runstore.walk import RunRecord


class RunError(RunStoreError):
    """A run directory that cannot serve what was asked of it; the message says why."""


def open_finished(path: str | os.PathLike[str], *, role: str = "run") -> RunRecord:
    """The completed run at ``path``; ``role`` ("teacher", "member", ...) starts the message of
    a refusal: absent directory, unreadable or foreign metrics.json, status not completed."""
    run = RunDir(Path(path))
    if not run.path.is_dir():
        raise RunError(f"{role} run directory {run.path} does not exist")
    kind = foreign_kind(run.metrics)
    if kind is not None:
        raise RunError(f"{run.metrics} holds a JSON {kind}, not a run's metrics; name the "
                       "directory of a finished run")
    metrics = read_metrics(run.metrics)
    if isinstance(metrics, str):
        raise RunError(f"{role} {run.path} has no readable metrics.json")
    if not is_completed(metrics):
        raise RunError(f"{role} {run.path} has status {metrics.get('status')!r}, not "
                       "'completed'; finish that run first")
    return RunRecord(run.path, metrics)


def model_checkpoint(run: RunRecord, *, role: str = "run") -> Path:
    """The checkpoint a finished run is used by (``best.pt``, else ``last.pt``)."""
    path = run.paths.model_checkpoint()
    if path is None:
        raise RunError(f"{role} {run.run_dir} has no checkpoints/best.pt or checkpoints/last.pt")
    return path


def finished_checkpoint(path: str | os.PathLike[str], *, role: str = "run"
                        ) -> tuple[RunRecord, Path]:
    """The completed run at ``path`` (:func:`open_finished`) and the checkpoint it is used by
    (:func:`model_checkpoint`): what a teacher and an export open before reading its model
    (:func:`lastexp.runstore.models.load_model`)."""
    run = open_finished(path, role=role)
    return run, model_checkpoint(run, role=role)
