"""The ``env`` group: chosen as the training plan's trainer chooses its environment file (an
explicit choice, else /kaggle on the file system means Kaggle, else local), plus SLURM."""

from __future__ import annotations

from omegaconf import OmegaConf

from lastexp.environment import detect_env, slurm_workers, with_env
from lastexp.runstore.key import run_key
from tests.conftest import compose, run_cli


def test_detection_follows_the_plan_and_adds_slurm(tmp_path):
    no_kaggle, kaggle = tmp_path / "absent", tmp_path / "kaggle"
    kaggle.mkdir()
    assert detect_env([], {}, no_kaggle) == "local"
    assert detect_env([], {}, kaggle) == "kaggle"
    assert detect_env([], {"SLURM_JOB_ID": "17"}, no_kaggle) == "slurm"
    assert detect_env(["--multirun", "hydra/launcher=submitit_slurm"], {}, no_kaggle) == "slurm"
    # an explicit choice wins over detection (the plan's --env flag)
    assert with_env(["env=local"], {"SLURM_JOB_ID": "1"}, kaggle) == ["env=local"]
    assert with_env(["seed=2"], {}, kaggle) == ["env=kaggle", "seed=2"]
    # after a flag with a value (--cfg job) the overrides must stay one run of positionals
    assert with_env(["seed=2", "--cfg", "job"], {}, no_kaggle) == ["env=local", "seed=2",
                                                                   "--cfg", "job"]
    assert with_env(["--cfg", "job"], {}, no_kaggle) == ["--cfg", "job", "env=local"]


def test_each_env_sets_paths_and_loader_workers(monkeypatch):
    kaggle = compose(["env=kaggle"])
    # the plan's Kaggle command: --workers 2; Kaggle's inputs are read-only
    assert kaggle.training.num_workers == 2
    assert kaggle.paths.runs.startswith("/kaggle/working")
    local = compose([])
    assert local.env == "local" and local.paths.runs == "runs"
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    assert compose(["env=slurm"]).training.num_workers == 7  # one CPU left to the trainer
    assert slurm_workers({}) == 0 and slurm_workers({"SLURM_CPUS_PER_TASK": "x"}) == 0
    # a command-line value still wins over the environment's
    assert compose(["env=kaggle", "training.num_workers=0"]).training.num_workers == 0


def test_env_is_not_part_of_the_run_identity():
    assert run_key(compose(["env=kaggle"])) == run_key(compose(["env=local"]))


def test_the_cli_picks_slurm_inside_an_allocation(tmp_path):
    out = run_cli(["--cfg", "job"], tmp_path, env={"SLURM_JOB_ID": "42",
                                                   "SLURM_CPUS_PER_TASK": "4"})
    assert out.returncode == 0, out.stderr
    cfg = OmegaConf.create(out.stdout)
    assert cfg.env == "slurm"
    plain = OmegaConf.create(run_cli(["--cfg", "job"], tmp_path).stdout)
    assert plain.env == "local"
