"""Every check ``python -m lastexp`` makes before Hydra starts, read from one composed config.

Hydra reports a config error in many lines, and its callbacks cannot stop a run before it
creates the run directory. So the command line is parsed once, its fixed overrides (a sweep's
values left out) are composed once with Hydra's own node, and every check reads that config:
the schema's checks and ``init_from`` (:func:`job_problem`), the run directory (inside
``paths.runs``, safe for the store), the runs root (a writable directory) and, for a SLURM
sweep, the cluster (:mod:`lastexp.launch.preflight`, with ``hydra.launcher``). A sweep's jobs
are each another config: up to :data:`MAX_SWEEP_CHECKS` of them are composed and checked too.
:func:`command_problem` returns the first problem's one line, or None.
"""

from __future__ import annotations

import copy
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from lastexp import app
from lastexp.app import CONF_DIR
from lastexp.cli import hydra_error_line
from lastexp.config import validate
from lastexp.errors import ConfigError
from lastexp.launch.preflight import slurm_problem
from lastexp.runstore.guard import (
    init_from_problem,
    run_dir_problem,
    run_dir_store_problem,
    runs_root_problem,
)

MULTIRUN_FLAGS = ("--multirun", "-m")
# Hydra's run mode, the default: a command that names it is checked as one that does not
RUN_FLAGS = ("--run", "-r")
# the overrides that can move a run directory away from <paths.runs>/<name of the config>
RUN_DIR_KEYS = ("run_name=", "hydra.run.", "hydra.sweep.")
MAX_SWEEP_CHECKS = 8  # a bigger grid: each value once (a compose is ~0.1-0.5 s); each job
# still validates its own combination


@dataclass(frozen=True)
class Command:
    """A command line's overrides, parsed once: its fixed ones (``hydra.*`` too) and its
    sweeps, and whether it is a ``--multirun``."""

    argv: list[str]
    multirun: bool
    fixed: list[str]
    sweeps: list[Override]

    @classmethod
    def parse(cls, argv: list[str]) -> Command:
        """Raises Hydra's error for an override it cannot parse."""
        args = [a for a in argv if a not in (*MULTIRUN_FLAGS, *RUN_FLAGS)]
        parsed = OverridesParser.create().parse_overrides(args)
        return cls(argv=argv, multirun=any(a in MULTIRUN_FLAGS for a in argv),
                   fixed=[o.input_line for o in parsed if not o.is_sweep_override()],
                   sweeps=[o for o in parsed if o.is_sweep_override()])

    @property
    def job_fixed(self) -> list[str]:
        """The fixed overrides of the job's own config (Hydra's node left to Hydra)."""
        return [o for o in self.fixed if not o.startswith("hydra")]

    def swept(self, key: str) -> bool:
        return any(o.get_key_element().lstrip("+~") == key for o in self.sweeps)


def command_problem(argv: list[str]) -> str | None:
    """Every check made before Hydra starts, in order: the first problem's one line."""
    problem = single_ablation_problem(argv)
    if problem or any(a.startswith("-") and a not in (*MULTIRUN_FLAGS, *RUN_FLAGS)
                      for a in argv):
        return problem  # --cfg, --help, --config-dir ...: Hydra's business
    try:
        command = Command.parse(argv)
        cfg = composed(command)
    except (HydraException, OmegaConfBaseException) as exc:
        return hydra_error_line(exc)
    job = job_config(cfg)
    return ((sweep_problem(command.sweeps, command.job_fixed) if command.sweeps
             else job_problem(job))
            or run_dir_placement_problem(cfg, command)
            or (None if command.swept("paths.runs") else writable_runs_root_problem(job))
            or slurm_problem(argv, launcher=OmegaConf.select(cfg, "hydra.launcher")))


def single_ablation_problem(argv: list[str]) -> str | None:
    for arg in argv:
        if arg.startswith("ablation="):
            value = arg.split("=", 1)[1]
            if value.startswith("["):
                return (f"{arg}: one run takes one ablation; to run several, sweep them: "
                        f"--multirun ablation={value.strip('[]')}")
    return None


def compose_config(overrides: list[str], *, with_hydra: bool) -> DictConfig:
    app.register()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=with_hydra)


def composed(command: Command) -> DictConfig:
    """The command's config with Hydra's node, composed once from its fixed overrides. When a
    ``hydra.*`` override is what fails, the job's own config is composed instead (without
    Hydra's node: the checks that read it are left out) and Hydra reports its own error; an
    error in the job's config is raised, to be reported in one line."""
    try:
        return compose_config(command.fixed, with_hydra=True)
    except (HydraException, OmegaConfBaseException):
        if command.job_fixed == command.fixed:
            raise
    return compose_config(command.job_fixed, with_hydra=False)


def job_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` without Hydra's node: the config the job gets (as Hydra makes it)."""
    job = copy.deepcopy(cfg)
    with read_write(job), open_dict(job):
        job.pop("hydra", None)
    return job


def job_problem(job: DictConfig) -> str | None:
    """An impossible value, refused before Hydra creates a run directory."""
    try:
        validate(job)
        return init_from_problem(job)
    except ConfigError as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 -- a value only the job can resolve: it validates itself
        return None


def sweep_problem(sweeps: list[Override], fixed: list[str]) -> str | None:
    """Compose and validate the jobs of a ``--multirun`` sweep (its choice and range values;
    intervals and globs are left to each job): the first impossible job is refused in one
    line naming its overrides."""
    jobs = sweep_jobs(sweeps)
    if not jobs:
        return None
    for job in jobs:
        try:
            cfg = compose_config([*fixed, *job], with_hydra=False)
            validate(cfg)
            problem = init_from_problem(cfg)
        except ConfigError as exc:
            return f"{exc} (in the sweep job {' '.join(job)}); fix or drop that value"
        except (HydraException, OmegaConfBaseException) as exc:
            return f"{hydra_error_line(exc)} (in the sweep job {' '.join(job)})"
        except Exception:  # noqa: BLE001,S112 -- a value only the job can resolve
            continue
        if problem:
            return f"{problem} (in the sweep job {' '.join(job)})"
    return None


def sweep_jobs(sweeps: list[Override]) -> list[list[str]]:
    """The sweep jobs to check, each as its swept overrides: every job of a grid of at most
    :data:`MAX_SWEEP_CHECKS`, else each value of each swept key with the other swept keys at
    their first value. Hydra's own keys are left to Hydra."""
    axes = []
    for o in sweeps:
        if o.get_key_element().lstrip("+~").startswith("hydra"):
            continue
        try:
            axes.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        except HydraException:  # interval(...) for a search, glob(...): each job checks itself
            continue
    if not axes:
        return []
    if len(list(itertools.islice(itertools.product(*axes), MAX_SWEEP_CHECKS + 1))) \
            <= MAX_SWEEP_CHECKS:
        return [list(j) for j in itertools.product(*axes)]
    firsts = [a[0] for a in axes]
    return [firsts[:i] + [v] + firsts[i + 1:] for i, a in enumerate(axes) for v in a]


def run_dir_placement_problem(cfg: DictConfig, command: Command) -> str | None:
    """Refuse, before Hydra creates anything, a run directory outside ``paths.runs`` or equal
    to it (``run_name=..``, ``run_name=/abs``, ``hydra.run.dir=.``), and one the store cannot
    hold safely (an empty or ``/`` runs root, an internal folder, inside another run, a link
    or a file where a folder belongs: runstore.guard.run_dir_store_problem)."""
    try:
        runs = OmegaConf.select(cfg, "paths.runs")
        if command.multirun:
            # as Hydra joins them (the subdir climbs out of the sweep's record folder)
            run_dir = Path(os.path.normpath(os.path.join(str(cfg.hydra.sweep.dir),
                                                         str(cfg.hydra.sweep.subdir))))
        else:
            run_dir = Path(cfg.hydra.run.dir)
    except Exception:  # noqa: BLE001 -- a value only a sweep job can resolve: it checks itself
        return None
    moved = any(a.lstrip("+~").startswith(RUN_DIR_KEYS) for a in command.argv)
    # the default <paths.runs>/<name of the config> always lies inside; a sweep's jobs each
    # check their own directory (runstore.guard, in run_job)
    return ((runs_root_problem(runs) or (run_dir_problem(run_dir, runs) if moved else None))
            or (None if command.multirun else run_dir_store_problem(run_dir, runs)))


def writable_runs_root_problem(job: DictConfig) -> str | None:
    """The runs root named by ``paths.runs`` must be a writable directory (created here when
    it is missing), before Hydra creates a run directory in it."""
    try:
        runs = str(OmegaConf.select(job, "paths.runs"))
    except Exception:  # noqa: BLE001 -- a value only the job can resolve: it checks itself
        return None
    problem = runs_root_problem(runs)  # an empty one would put Hydra's run directory at /
    if problem:
        return problem
    root = Path(runs)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (f"paths.runs={runs}: cannot create the runs directory ({exc.strerror}); "
                "choose a writable paths.runs")
    if not os.access(root, os.W_OK | os.X_OK):
        return (f"paths.runs={runs}: the runs directory is not writable; "
                "choose a writable paths.runs")
    return None
