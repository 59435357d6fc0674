"""One gate: ``python -m lastexp`` composes the config once for every check it makes before
Hydra starts; Hydra composes the job's config itself; the job composes nothing. Every
composition, the compose API's and Hydra's, goes through ConfigLoaderImpl.load_configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl

from lastexp.__main__ import cli
from lastexp.launch.preflight import requested_resources
from tests.conftest import REPO, compose


@pytest.fixture
def compositions(monkeypatch) -> list[str]:
    """The compositions made from here on, each by its run mode."""
    calls: list[str] = []
    load = ConfigLoaderImpl.load_configuration

    def counted(self, *args, **kwargs):
        calls.append(str(kwargs.get("run_mode")))
        return load(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    return calls


@pytest.mark.parametrize("args,words", [
    (["model.dropout=1.0"], "model.dropout"),  # the schema's checks
    (["run_name=.."], "outside paths.runs=runs"),  # the run directory
    (["paths.runs=train.py"], "paths.runs=train.py"),  # the runs root
], ids=["validate", "run dir", "runs root"])
def test_a_refused_command_composes_once(tmp_path, monkeypatch, capsys, compositions, args,
                                         words):
    (tmp_path / "train.py").write_text("print('my source')")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["lastexp", *args, "logger=none", "debug=tiny",
                                      "env=local"])
    with pytest.raises(SystemExit) as exit_:
        cli()
    assert exit_.value.code == 2
    assert words in capsys.readouterr().err
    assert compositions == ["RunMode.RUN"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.py"]


def test_a_sweep_composes_its_fixed_part_once_and_each_checked_job(tmp_path, monkeypatch,
                                                                    capsys, compositions):
    """Each checked sweep job is another config, composed and validated before any job runs;
    the fixed part is composed once for every other check (here the run directory's)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["lastexp", "--multirun", "seed=1,2", "run_name=..",
                                      "logger=none", "debug=tiny", "env=local"])
    with pytest.raises(SystemExit) as exit_:
        cli()
    assert exit_.value.code == 2
    assert "outside paths.runs=runs" in capsys.readouterr().err
    # the fixed part, then the jobs seed=1 and seed=2
    assert len(compositions) == 3


# Runs ``lastexp.__main__.cli()`` with the given command line and prints, as JSON, the exit
# status and where each composition happened: "checks" (lastexp's, before Hydra starts),
# "hydra.get_mode" and "hydra.run" (Hydra 1.3's own: its entry point composes once to read
# hydra.mode, then once for the job), "job" (inside run_job or fit). In a process of its own:
# Hydra's run configures logging and its global state for the whole process.
PROBE = """
import json, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.hydra import Hydra
import lastexp.__main__ as entry
import lastexp.run as run

phase, calls = ["elsewhere"], []
load = ConfigLoaderImpl.load_configuration

def counted(self, *args, **kwargs):
    calls.append(phase[-1])
    return load(self, *args, **kwargs)

def during(name, function):
    def wrapped(*args, **kwargs):
        phase.append(name)
        try:
            return function(*args, **kwargs)
        finally:
            phase.pop()
    return wrapped

ConfigLoaderImpl.load_configuration = counted
entry.command_problem = during("checks", entry.command_problem)
Hydra.get_mode = during("hydra.get_mode", Hydra.get_mode)
Hydra.run = during("hydra.run", Hydra.run)
run.run_job = during("job", run.run_job)
run.fit = during("job", run.fit)
sys.argv = ["lastexp", *sys.argv[1:]]
try:
    entry.cli()
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "calls": calls}))
"""


def test_a_run_composes_once_before_hydra_and_nothing_in_the_job(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "logger=none", "debug=tiny", "env=local"], cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip(), out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "calls": ["checks", "hydra.get_mode", "hydra.run"]}
    (metrics,) = (tmp_path / "runs").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["status"] == "completed"


def test_the_slurm_preflight_reads_the_composed_launcher():
    """The SLURM preflight takes a job's requests from the composed hydra.launcher node: the
    preset's values with the command line's overrides, as reading the two by hand gives."""
    overrides = ["hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=8"]
    launcher = compose(overrides, return_hydra=True).hydra.launcher
    assert requested_resources([], launcher) == requested_resources(overrides[1:]) == {
        "gpus_per_node": 8.0, "cpus_per_task": 8.0, "mem_gb": 48.0}  # the preset's 8 CPUs, 48 GB
