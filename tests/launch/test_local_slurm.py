"""End-to-end checks of the local SLURM cluster and of submitit on it (marker: slurm).

Run alone with ``pytest -m slurm tests/launch``; the session fixture installs Debian's
SLURM packages when missing (root), starts the cluster and stops it at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

# The jobs unpickle the functions below in a fresh interpreter where this test module is
# not importable (pytest put tests/launch on sys.path only here): pickle them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _cmd(*args: str, timeout: float = 30) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def _sacct_state(job_id: str, timeout: float = 30) -> str:
    """Final state of the job as sacct reports it (waits for the accounting record)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        out = _cmd("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State")
        state = out.strip().splitlines()[0] if out.strip() else ""
        if state and state not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING"):
            return state
        time.sleep(1)
    return state


def _executor(folder: Path, **init_kwargs) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder, **init_kwargs)
    assert executor.cluster == "slurm"
    executor.update_parameters(timeout_min=5, slurm_partition="debug", cpus_per_task=1,
                               mem_gb=1)
    return executor


def add(a: int, b: int) -> tuple[int, str]:
    return a + b, os.environ.get("SLURM_JOB_ID", "")


def fail(message: str) -> None:
    raise ValueError(message)


def die() -> None:
    os._exit(3)  # dies without writing a result: only sacct can tell submitit


class Resumable(submitit.helpers.Checkpointable):
    """First run: waits to be preempted; checkpoint() saves state; second run reads it."""

    def __call__(self, workdir: str) -> str:
        work = Path(workdir)
        state = work / "state.txt"
        if state.exists():
            return f"resumed:{state.read_text()}"
        (work / "started").write_text(os.environ.get("SLURM_JOB_ID", ""))
        time.sleep(240)
        return "not preempted"

    def checkpoint(self, workdir: str):
        Path(workdir, "state.txt").write_text(f"saved-by-{os.environ.get('SLURM_JOB_ID')}")
        return super().checkpoint(workdir)


def test_sinfo_node_idle():
    out = _cmd("sinfo", "-h", "-N", "-o", "%N %P %t")
    assert re.search(r"^localhost\s+debug\*?\s+idle$", out, re.M), out


def test_sbatch_wrap_completes(tmp_path):
    out = _cmd("sbatch", "--parsable", "--wait", f"--output={tmp_path}/out.txt",
               "--wrap", "echo hello-slurm", timeout=120)
    job_id = out.strip().split(";")[0]
    assert job_id.isdigit()
    assert (tmp_path / "out.txt").read_text().strip() == "hello-slurm"
    assert _sacct_state(job_id) == "COMPLETED"


def test_submitit_returns_result(tmp_path):
    job = _executor(tmp_path).submit(add, 2, 3)
    assert re.fullmatch(r"\d+", job.job_id), job.job_id
    total, env_job_id = job.result()
    assert total == 5
    assert env_job_id == job.job_id


def test_submitit_surfaces_exception(tmp_path):
    t0 = time.monotonic()
    job = _executor(tmp_path).submit(fail, "boom-from-slurm")
    with pytest.raises(submitit.core.utils.FailedJobError, match="boom-from-slurm"):
        job.result()
    assert time.monotonic() - t0 < 60


def test_submitit_sees_job_dead_without_result(tmp_path):
    """Needs accounting: submitit learns the job's end only from sacct."""
    t0 = time.monotonic()
    job = _executor(tmp_path).submit(die)
    with pytest.raises(submitit.core.utils.UncompletedJobError):
        job.result()
    assert time.monotonic() - t0 < 60
    assert job.state == "FAILED"


def test_submitit_checkpoint_requeue(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    # timeout_min <= 10: submitit counts any signal as a timeout, so requeuing needs
    # slurm_max_num_timeout > 0.
    job = _executor(tmp_path / "submitit", slurm_max_num_timeout=3).submit(Resumable(),
                                                                           str(work))
    deadline = time.monotonic() + 60
    while not (work / "started").exists():
        assert time.monotonic() < deadline, "job did not start"
        assert not job.done(), job.stderr()
        time.sleep(0.5)
    time.sleep(1)  # the signal handler is installed before the function runs; be safe
    _cmd("scancel", "--signal=USR2", job.job_id)
    t0 = time.monotonic()
    result = job.result()
    assert result == f"resumed:saved-by-{job.job_id}", job.stderr()
    print(f"\n[slurm] requeued run finished {time.monotonic() - t0:.1f} s after USR2")
    assert "REQUEUE" in _cmd("sacct", "-n", "-P", "-D", "-X", "-j", job.job_id, "-o", "State")


APP = """\
import os, pathlib, hydra

@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    pathlib.Path(f"out-{cfg.x}.txt").write_text(os.environ["SLURM_JOB_ID"])

if __name__ == "__main__":
    main()
"""


def test_hydra_launcher_preset_submits(tmp_path):
    """conf/hydra/launcher/submitit_slurm.yaml drives a real (tiny) Hydra sweep."""
    import shutil

    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "conf" / "hydra").mkdir(parents=True)
    shutil.copytree(repo / "conf" / "hydra" / "launcher", tmp_path / "conf/hydra/launcher")
    (tmp_path / "conf" / "config.yaml").write_text("x: 0\n")
    (tmp_path / "app.py").write_text(APP)
    proc = subprocess.run(
        [sys.executable, "app.py", "--multirun", "hydra/launcher=submitit_slurm",
         "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
         "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=5", "x=1,2",
         f"hydra.sweep.dir={tmp_path}/multirun", "hydra.job.chdir=true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outs = sorted((tmp_path / "multirun").glob("*/out-*.txt"))
    assert [p.name for p in outs] == ["out-1.txt", "out-2.txt"], proc.stdout + proc.stderr
    assert all(p.read_text().strip().replace("_", "").isdigit() for p in outs)
