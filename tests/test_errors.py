"""The error family says whose fault an error is, and a diverged run is a numerical failure (not
a user's config mistake) that still ends failed with one line and exit code 2."""

from __future__ import annotations

import json

import pytest

from lastexp.data import DataError
from lastexp.errors import (
    ConfigError,
    LastexpError,
    NumericalError,
    RunStoreError,
    UserError,
)
from lastexp.runstore.finished import RunError
from lastexp.runstore.lock import LockFileError, RunLockedError
from lastexp.runstore.scores import ScoresError
from lastexp.train.loop import NonFiniteError
from tests.conftest import run_cli


@pytest.mark.parametrize("cls, family", [
    (ConfigError, UserError), (DataError, LastexpError), (RunError, RunStoreError),
    (RunLockedError, RunStoreError), (LockFileError, RunStoreError),
    (ScoresError, RunStoreError), (NonFiniteError, NumericalError),
])
def test_each_error_names_whose_fault_it_is(cls, family):
    assert issubclass(cls, family) and issubclass(cls, LastexpError)
    assert issubclass(cls, ValueError)  # callers that catch ValueError keep catching them


def test_a_diverged_run_is_no_config_mistake():
    assert not issubclass(NonFiniteError, UserError)
    assert not issubclass(DataError, UserError) and not issubclass(RunStoreError, UserError)


def test_a_diverged_run_ends_failed_with_one_line_and_exit_2(tmp_path):
    r = run_cli(["debug=tiny", "logger=none", "optimizer.lr=1e30", "scheduler.warmup_epochs=0",
                 "training.max_nonfinite_steps=1", "training.gradient_clip=0",
                 f"paths.data={tmp_path / 'data'}", "run_name=diverged"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-1500:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("lastexp: error:")]
    assert lines == ["lastexp: error: 1 non-finite losses in a row "
                     "(training.max_nonfinite_steps=1); lower optimizer.lr or check the data"]
    metrics = json.loads((tmp_path / "runs" / "diverged" / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert metrics["error"].startswith("NonFiniteError: 1 non-finite losses in a row")
