"""W&B runs by row, read back from real wandb offline runs: the group is the row's config without
the seed (every seed of a row and config in one group, whichever sweep ran it), the tags are the
ablation ID, model, stream, dataset and debug preset, the job type says train / pretrain /
ensemble; a resumed run writes a second offline folder with the same run id, which
``wandb sync`` uploads as that one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wandb

from lastexp import build
from lastexp.run import tracking
from lastexp.runstore.key import identity, row_group, run_dir_name
from lastexp.train.tracking import job_type, wandb_tags
from tests.conftest import REPO, compose, run_cli
from tests.launch.test_sweep_slurm import _wandb_epochs, _wandb_records
from tests.resume.test_kill_resume import HARNESS


def run_record(path: Path):
    """The run record (id, group, tags, job type) of an offline ``run-<id>.wandb`` file."""
    (run,) = [r.run for r in _wandb_records(path) if r.WhichOneof("record_type") == "run"]
    return run


def steps(path: Path) -> list[int]:
    """The epochs a wandb offline run file logged (one record per epoch carries ``epoch``)."""
    return _wandb_epochs(path)


def group(*overrides: str) -> str:
    return row_group(compose(list(overrides)))


def test_group_is_the_row_config_without_the_seed():
    b3 = group("ablation=B3", "seed=1")
    assert b3.startswith("B3_joint_synthetic_")
    # every seed of the row, wherever it runs and however it is watched
    assert group("ablation=B3", "seed=2") == group("ablation=B3", "seed=3", "logger=none",
                                                   "paths.runs=/elsewhere") == b3
    assert run_dir_name(compose(["ablation=B3", "seed=1"])) != run_dir_name(
        compose(["ablation=B3", "seed=2"]))  # the runs are separate, their group is one
    # another config of the row is another group; so are other rows, streams and datasets
    others = {group("ablation=B3", "optimizer.lr=0.05"), group("ablation=B3", "debug=tiny"),
              group("ablation=B4"), group("ablation=B3", "stream=bone"),
              group("ablation=B3", "dataset=ntu60_xsub")}
    assert len(others) == 5 and b3 not in others
    assert group("model=last_e_nano").startswith("last_e_nano_joint_synthetic_")


def test_tags_and_job_type_of_a_row():
    cfg = compose(["ablation=B3", "debug=tiny", "logger.tags=[mine,B3]"], return_hydra=True)
    t = tracking(cfg)
    assert t["tags"] == ["B3", cfg.model.name, "joint", "synthetic", "debug=tiny", "mine"]
    assert t["job_type"] == "train" and t["group"] == row_group(cfg)
    assert tracking(compose(["ablation=L12"], return_hydra=True))["job_type"] == "pretrain"
    assert tracking(compose(["ablation=B14"], return_hydra=True))["job_type"] == "ensemble"
    assert wandb_tags(ablation=None, model="last_e_nano", stream="bone", dataset="synthetic",
                      debug=None, extra=[]) == ["last_e_nano", "bone", "synthetic"]
    assert job_type(ensemble=False, pretrain=False) == "train"


def test_offline_wandb_run_holds_group_tags_and_job_type(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose(["ablation=L12", "debug=tiny"], return_hydra=True)
    logger = build.wandb_logger(cfg.logger, log_dir=tmp_path, config=identity(cfg),
                                **tracking(cfg))
    logger.finish({"final_top1": 50.0})
    wandb.teardown()  # the service has written the whole file (a process's exit does this)
    (file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    run = run_record(file)
    assert run.run_group == row_group(cfg) and run.run_group.startswith("L12_joint_synthetic_")
    assert list(run.tags) == ["L12", cfg.model.name, "joint", "synthetic", "debug=tiny"]
    assert run.job_type == "pretrain"
    # logger.group, when given, wins
    cfg.logger.group = "my_group"
    build.wandb_logger(cfg.logger, log_dir=tmp_path / "g", config={}, **tracking(cfg)).finish({})
    wandb.teardown()
    (file,) = (tmp_path / "g").glob("wandb/offline-run-*/run-*.wandb")
    assert run_record(file).run_group == "my_group"


@pytest.mark.resume
def test_resumed_offline_run_is_one_wandb_run_in_two_folders(tmp_path, shared_data):
    """A run stopped in epoch 2 (SIGTERM, as scancel sends it) and resumed: two offline
    folders with one run id, group, tags and job type; each epoch logged once, by the attempt
    that trained it, so syncing both in start order gives the whole run. The other seed of the
    row shares the group."""
    args = ["debug=tiny", "model=last_e_nano", "logger=wandb", "training.epochs=2",
            f"paths.runs={tmp_path / 'runs'}", f"paths.data={shared_data}"]
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    seed2 = run_cli([*args, "seed=2"], tmp_path, env=env)  # also builds the data cache
    assert seed2.returncode == 0, seed2.stderr[-2000:]
    # the 9th atomic rename is metrics.json after epoch 1 (data summary, 3 Hydra files,
    # metrics, best.pt, last.pt, history.csv, metrics): SIGTERM right after it
    stopped = subprocess.run([sys.executable, str(HARNESS), *args], cwd=tmp_path, text=True,
                             capture_output=True, timeout=600,
                             env={**os.environ, "PYTHONPATH": str(REPO), **env,
                                  "LASTEXP_KILL": "signal:9:TERM"})
    assert "stopped" in stopped.stdout or "interrupted" in stopped.stdout, stopped.stdout
    resumed = run_cli(args, tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout, resumed.stdout
    (run_dir,) = [p for p in (tmp_path / "runs").glob("*_s1_*")]
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))  # in start order
    assert len(files) == 2
    records = [run_record(f) for f in files]
    cfg = compose(args[:4], return_hydra=True)
    assert {r.run_id for r in records} == {files[0].stem.removeprefix("run-")}
    for r in records:
        assert r.run_group == row_group(cfg) and r.job_type == "train"
        assert list(r.tags) == ["last_e_nano", "joint", "synthetic", "debug=tiny"]
    assert steps(files[0]) + steps(files[1]) == [1, 2]  # here [1] + [2]
    (other,) = (tmp_path / "runs").glob("*_s2_*/wandb/offline-run-*/run-*.wandb")
    assert run_record(other).run_group == records[0].run_group
    assert run_record(other).run_id != records[0].run_id


def test_an_ensemble_is_its_own_wandb_run_in_its_row_group(tmp_path):
    """B14 from four finished B7 runs (built by hand): the ensemble job logs one offline W&B run,
    job type ensemble, its top-1 in the summary."""
    labels, names = np.array([0, 1, 2, 0]), np.array([f"S001C001P001R001A00{i}" for i in range(4)])
    for i, stream in enumerate(("joint", "bone", "velocity", "bone_velocity")):
        run = tmp_path / "runs" / f"b7_{stream}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({
            "status": "completed", "ablation": "B7", "model": "last_e_base", "stream": stream,
            "dataset": "synthetic", "split": "xsub", "seed": 1, "debug": "tiny",
            "preprocessing": "t64_uniform", "final_top1": 50.0, "params": 1, "flops": 1}))
        scores = np.eye(3, dtype=np.float32)[(labels + (i % 2)) % 3]
        np.savez(run / "test_scores.npz", scores=scores, labels=labels, names=names)
    out = run_cli(["+ablation=B14", "debug=tiny", "logger=wandb", "paths.runs=runs"], tmp_path,
                  env={"WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stderr[-2000:]
    (file,) = (tmp_path / "runs").glob("B14_*/wandb/offline-run-*/run-*.wandb")
    run = run_record(file)
    assert run.job_type == "ensemble" and run.run_group.startswith("B14_joint_synthetic_")
    assert list(run.tags)[:1] == ["B14"] and "debug=tiny" in run.tags
