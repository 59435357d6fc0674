"""A non-editable install works like a tool (marker ``install``, ~5 minutes; CI runs it apart).

The wheel is built from this clone and installed with ``pip install torch==2.13.0 <wheel>`` into a
fresh virtual environment (``python -m venv``, nothing shared with the clone's environment); then,
from a directory that is not the clone, every command of the README is run the way a user runs
it: the ``lastexp`` console script, ``python -m lastexp``, a ``--multirun +sweep=demo``,
``--help``, ``lastexp.plan``, ``lastexp.results``, ``lastexp.export`` and ``lastexp.preprocess``.
The build leaves nothing untracked in the clone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.install

TORCH = "torch==2.13.0"  # the CPU wheel on this machine's disk (README, the two commands)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _untracked() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv holding torch and the wheel of this clone (with the export extra)."""
    root = tmp_path_factory.mktemp("install")
    before = _untracked()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"),
          str(REPO)], root, env)
    assert _untracked() == before, "the build left files in the clone"
    (wheel,) = (root / "dist").glob("lastexp-*.whl")
    _run([sys.executable, "-m", "venv", str(root / "venv")], root, env)
    _run([str(root / "venv/bin/python"), "-m", "pip", "install", "-q", TORCH,
          f"{wheel}[export]"], root, env, timeout=1500)
    return root / "venv"


@pytest.fixture(scope="module")
def user(venv, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A working directory away from the clone, and the environment of a user of the venv."""
    work = tmp_path_factory.mktemp("elsewhere")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", WANDB_MODE="offline", WANDB_SILENT="true",
               OMP_NUM_THREADS="1")
    return work, env


def test_the_package_is_imported_from_the_venv(venv, user):
    work, env = user
    where = _run(["python", "-c", "import lastexp, lastexp.app as a; print(lastexp.__file__); "
                  "print(a.CONF_DIR)"], work, env).split()
    site = str(venv / "lib")
    assert where[0].startswith(site) and where[1].startswith(site), where
    assert (Path(where[1]) / "config.yaml").is_file()
    assert (Path(where[1]) / "sweep" / "demo.yaml").is_file()  # sweeps/ ships as conf/sweep
    assert not Path(where[1]).is_symlink()  # a real copy, not the clone's link


def test_every_command_works_from_another_directory(user):
    work, env = user
    data, runs = str(work / "data"), str(work / "runs")
    tiny = ["debug=tiny", "logger=none", f"paths.data={data}", f"paths.runs={runs}"]
    help_text = _run(["lastexp", "--help"], work, env)
    assert help_text.startswith("lastexp: ") and len(help_text.splitlines()) < 60
    assert _run(["python", "-m", "lastexp", "--help"], work, env) == help_text
    out = _run(["lastexp", *tiny], work, env)
    assert "lastexp: completed" in out
    out = _run(["python", "-m", "lastexp", *tiny, "seed=2"], work, env)
    assert "lastexp: completed" in out
    _run(["lastexp", "--multirun", "+sweep=demo", *tiny], work, env)
    done = [json.loads(p.read_text()) for p in Path(runs).glob("*/metrics.json")]
    assert sorted((m["ablation"], m["seed"]) for m in done if m["ablation"]) == [
        ("L0", 1), ("L0", 2), ("L5", 1), ("L5", 2)]
    assert all(m["status"] == "completed" for m in done)
    assert all((p.parent / "lastexp.log").stat().st_size > 0
               for p in Path(runs).glob("*/metrics.json"))
    plan = _run(["python", "-m", "lastexp.plan", "+sweep=demo", *tiny], work, env)
    assert "jobs: 4 completed (of 4)" in plan, plan
    _run(["python", "-m", "lastexp.results", "--runs", runs, "--out", str(work / "results")],
         work, env)
    assert (work / "results" / "lite.md").is_file()
    (run,) = [p.parent for p in Path(runs).glob("L0_*_s1_*/metrics.json")]
    _run(["python", "-m", "lastexp.export", str(run), "export.calibration=8",
          "export.max_drop=100"], work, env)
    assert "int8_top1" in json.loads((run / "metrics.json").read_text())
    out = _run(["python", "-m", "lastexp.preprocess", "dataset=synthetic", "debug=tiny",
                f"paths.data={data}"], work, env)
    assert "train 48" in out and "classes" in out, out
    _run(["lastexp", "--shell-completion", "install=bash"], work, env)
    assert not list(work.glob("outputs")) and not list(work.glob("multirun"))
