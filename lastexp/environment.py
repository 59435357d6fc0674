"""Which machine a command runs on: the ``env`` config group (local, kaggle, slurm).

The training plan's trainer picks its environment file the same way: an explicit choice wins,
then ``/kaggle`` on the file system means Kaggle, otherwise local. lastexp adds SLURM: a command
running inside an allocation, or one that sends its jobs to the cluster. No torch, no Hydra.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

ENVS = ("local", "kaggle", "slurm")
KAGGLE_ROOT = Path("/kaggle")


def detect_env(argv: Sequence[str], environ: Mapping[str, str],
               kaggle_root: Path = KAGGLE_ROOT) -> str:
    """The ``env`` option for a command line that names none."""
    if environ.get("SLURM_JOB_ID") or any(
        a.lstrip("+") == "hydra/launcher=submitit_slurm" for a in argv
    ):
        return "slurm"
    if kaggle_root.exists():
        return "kaggle"
    return "local"


def with_env(argv: list[str], environ: Mapping[str, str] | None = None,
             kaggle_root: Path = KAGGLE_ROOT) -> list[str]:
    """``argv`` plus ``env=<detected>`` unless it chooses an environment itself."""
    if any(a.lstrip("+~").startswith("env=") for a in argv):
        return argv
    if any(a in ("--help", "-h", "--hydra-help", "--info") for a in argv):
        return argv
    env = detect_env(argv, os.environ if environ is None else environ, kaggle_root)
    # beside the other overrides: argparse takes the overrides as one run of positionals
    first = next((i for i, a in enumerate(argv)
                  if ("=" in a or a.startswith("~")) and not a.startswith("-")), len(argv))
    return [*argv[:first], f"env={env}", *argv[first:]]


def slurm_workers(environ: Mapping[str, str] | None = None) -> int:
    """Loader workers for a SLURM job: the CPUs it holds (``SLURM_CPUS_PER_TASK``) but the one
    the trainer runs on; 0 outside a job that states its CPUs."""
    env = os.environ if environ is None else environ
    try:
        cpus = int(env.get("SLURM_CPUS_PER_TASK", "0"))
    except ValueError:
        return 0
    return max(cpus - 1, 0)


def default_threads(loader_workers: int = 0, environ: Mapping[str, str] | None = None,
                    cpus: int | None = None) -> int:
    """``training.num_threads`` unless set: torch's intra-op threads for this process. Inside a
    SLURM job, the CPUs it was given (``SLURM_CPUS_PER_TASK``); elsewhere the CPUs this process
    may run on (its affinity mask, which also reflects a container's or taskset's limit) minus
    one per DataLoader worker; at least 1. torch's own default, every core of the machine,
    oversubscribes a machine whose cores are shared."""
    env = os.environ if environ is None else environ
    slurm = env.get("SLURM_CPUS_PER_TASK", "")
    if env.get("SLURM_JOB_ID") and slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    return max(cpus - max(int(loader_workers), 0), 1)
