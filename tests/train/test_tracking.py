"""Real wandb in offline mode: one wandb run per job, its id stable across restarts."""

from __future__ import annotations

import csv

import pytest

from lastexp.train.tracking import wandb_mode, write_history
from tests.conftest import run_cli


@pytest.mark.slow
def test_wandb_offline_one_run_per_job(tmp_path, shared_data):
    args = ["--multirun", "debug=tiny", "model=last_e_nano", "logger=wandb",
            "stream=joint,velocity", f"paths.runs={tmp_path / 'runs'}",
            f"paths.data={shared_data}"]
    out = run_cli(args, tmp_path, env={"WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stderr[-2000:]
    files = sorted((tmp_path / "runs").rglob("run-*.wandb"))
    assert len(files) == 2
    run_dirs = {f.parents[2] for f in files}
    assert len(run_dirs) == 2  # each job logged into its own run directory
    ids = {f.stem for f in files}
    assert len(ids) == 2


def test_wandb_mode_auto(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "online"
    assert wandb_mode("offline") == "offline"


def test_history_rewritten_whole(tmp_path):
    path = tmp_path / "history.csv"
    write_history(path, [{"epoch": 1, "lr": 0.1, "train_loss": 1.0, "train_top1": 10.0,
                          "val_loss": 2.0, "val_top1": 20.0, "seconds": 1.5, "extra": 1,
                          "grad_norm": 0.75, "global_step": 4}])
    rows = list(csv.DictReader(open(path)))
    assert rows == [{"epoch": "1", "lr": "0.1", "train_loss": "1", "train_top1": "10",
                     "val_loss": "2", "val_top1": "20", "seconds": "1.5", "grad_norm": "0.75"}]
