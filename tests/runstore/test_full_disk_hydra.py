"""A full disk under what Hydra and its sweepers write themselves: a sweep's multirun.yaml
(OmegaConf's ``open()``) and an Optuna study's sqlite file (sqlite's ``SQLITE_FULL``). Each
ends the command as one line naming that file, exit 2, no traceback; the study keeps the
trials it finished. Anything else still reaches Hydra's own report. (The write primitive of
that one file fails as a full disk does: tests/runstore/full_disk.py.)"""

from __future__ import annotations

import errno
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hydra._internal import utils as hydra_utils
from sqlalchemy import create_engine, text
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from lastexp.hydra_errors import disk_full_error, full_disk_in_one_line
from lastexp.io import DiskFullError
from tests.conftest import compose
from tests.runstore.full_disk import full_sqlite_commit, no_space, run_full, sqlite_full
from tests.runstore.full_disk import one_line as disk_full_line

NOISE = ("Traceback", "Error executing job", "HYDRA_FULL_ERROR", "sqlalche.me")


def injected(tmp_path: Path, writer: str, args: list[str]) -> subprocess.CompletedProcess:
    """``python -m lastexp args`` on a disk that is full, from the start, under ``writer``."""
    return run_full(tmp_path, writer, "-", args, timeout=300)


def one_line(r: subprocess.CompletedProcess) -> str:
    """Bad input's shape: exit 2, one line on stderr, no traceback, no Hydra report."""
    return disk_full_line(r, NOISE)


def test_a_full_disk_under_multirun_yaml_is_one_line_naming_it(tmp_path):
    runs = tmp_path / "runs"
    (runs / "kept").mkdir(parents=True)  # a run of the store: left as it was
    (runs / "kept" / "metrics.json").write_text('{"status": "completed"}')
    r = injected(tmp_path, "multirun", ["--multirun", "debug=tiny", "model=last_e_nano",
                                        "seed=1,2", f"paths.runs={runs}"])
    line = one_line(r)
    (record,) = (runs / ".sweeps").iterdir()  # this sweep's own record folder
    assert f"for {record / 'multirun.yaml'} (" in line, line
    # no job ran: nothing but the sweep's record and the run that was there
    assert sorted(p.name for p in runs.iterdir()) == [".sweeps", "kept"]
    assert (runs / "kept" / "metrics.json").read_text() == '{"status": "completed"}'


def test_a_full_disk_under_the_study_is_one_line_and_its_trials_stay(tmp_path):
    optuna = pytest.importorskip("optuna")
    runs = tmp_path / "runs"
    args = ["--multirun", "+search=lr_dropout", "dataset.val_fraction=0.1", "debug=tiny",
            "model=last_e_nano", f"paths.runs={runs}", f"paths.data={tmp_path / 'data'}"]
    sweeper = compose(args[1:], return_hydra=True).hydra.sweeper
    name, storage = str(sweeper.study_name), str(sweeper.storage)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for _ in range(2):  # two trials the search finished before the disk filled
        trial = study.ask()  # on the preset's grid, as the sweeper asks
        trial.suggest_categorical("optimizer.lr", [0.0001, 0.0003, 0.0005])
        trial.suggest_categorical("model.dropout", [0.2, 0.3, 0.4])
        study.tell(trial, 50.0)
    db = runs / "search" / f"{name}.db"
    line = one_line(injected(tmp_path, "study", args))
    assert f"for {db} (" in line, line
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    kept = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert [(t.state.name, t.value) for t in kept] == [("COMPLETE", 50.0)] * 2
    assert not any(p.name != "search" for p in runs.iterdir() if not p.name.startswith("."))


def test_a_sqlite_full_commit_names_the_database(tmp_path, monkeypatch):
    """SQLAlchemy wraps sqlite's SQLITE_FULL (and Optuna may wrap that again): the error is
    found through the chain, and the file through the connection that failed."""
    db = tmp_path / "search" / "s.db"
    db.parent.mkdir()
    monkeypatch.setattr(SQLiteDialect_pysqlite, "do_commit", full_sqlite_commit(
        SQLiteDialect_pysqlite.do_commit, lambda p: p == str(db), lambda: True))
    engine = create_engine(f"sqlite:///{db}")
    with pytest.raises(Exception) as raised:
        with engine.begin() as con:
            con.execute(text("CREATE TABLE t (x)"))
    try:  # as Optuna's storage re-raises it
        raise RuntimeError("An exception is raised during the commit.") from raised.value
    except RuntimeError as wrapped:
        full = disk_full_error(wrapped)
    assert isinstance(full, DiskFullError) and full.path == db
    assert str(full).startswith(f"no space left on the device for {db} (")
    assert sqlite_full().sqlite_errorname == "SQLITE_FULL"  # the error sqlite itself gives


def test_an_unnamed_enospc_names_the_file_being_written(tmp_path):
    path = tmp_path / "optimization_results.yaml"
    with pytest.raises(OSError) as raised:
        with open(path, "w", encoding="utf-8") as file:
            file.write("x")
            raise no_space()  # a write's ENOSPC names no file
    assert raised.value.filename is None
    full = disk_full_error(raised.value)
    assert isinstance(full, DiskFullError) and full.path == path
    assert disk_full_error(OSError(errno.EACCES, "denied")) is None
    assert disk_full_error(sqlite3.OperationalError("database is locked")) is None


def test_only_a_full_disk_leaves_hydras_report(capsys):
    def fail(exc: Exception):
        def func():
            raise exc
        return func

    with full_disk_in_one_line(), pytest.raises(SystemExit) as ended:
        hydra_utils.run_and_report(fail(no_space()))
    assert ended.value.code == 2
    assert capsys.readouterr().err.startswith("lastexp: error: no space left on the device for ")
    with full_disk_in_one_line(), pytest.raises(SystemExit) as ended:  # Hydra's, as before
        hydra_utils.run_and_report(fail(ValueError("a bug")))
    assert ended.value.code == 1 and "a bug" in capsys.readouterr().err
    assert hydra_utils.run_and_report.__module__ == "hydra._internal.utils"  # restored
