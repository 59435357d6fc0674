"""`python -m lastexp [overrides]` (or the `lastexp` console script): compose the config with
Hydra and run one training job."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lastexp import app
from lastexp.aliases import normalize_overrides
from lastexp.cli import hydra_error_line
from lastexp.config import validate
from lastexp.environment import with_env
from lastexp.errors import ConfigError
from lastexp.launch.preflight import slurm_problem
from lastexp.logs import capture_prints, submitit_log_line, to_file
from lastexp.optuna_study import trial_guard, trial_value
from lastexp.runstore.guard import (
    init_from_problem,
    run_dir_problem,
    run_dir_store_problem,
    runs_root_problem,
)

CONF_DIR = str(app.CONF_DIR)

app.register()
# Hydra's shell completion (the script, and the shell's queries with COMP_LINE): Hydra's alone
COMPLETION_FLAGS = ("--shell-completion", "-sc")


def preflight(argv: list[str]) -> str | None:
    """Checks that must happen before Hydra creates a run directory (its callbacks cannot
    abort a run): the runs root named by ``paths.runs`` must be a writable directory."""
    if any(a in ("--cfg", "-c", "--help", "-h", "--info", "--hydra-help") for a in argv):
        return None
    runs = env_runs_root(argv)
    for arg in argv:
        if arg.startswith("paths.runs="):
            runs = arg.split("=", 1)[1]
    if "," in runs:  # a sweep over runs roots: each job checks its own
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


def env_runs_root(argv: list[str]) -> str:
    """The runs root the chosen ``env`` option gives when the command names none."""
    env = next((a.split("=", 1)[1] for a in argv if a.lstrip("+~").startswith("env=")), "local")
    path = Path(CONF_DIR) / "env" / f"{env}.yaml"
    if "," in env or not path.is_file():
        return "runs"  # a sweep over environments, or an unknown one Hydra reports
    return str(OmegaConf.load(path).paths.runs)


def check_single_ablation(argv: list[str]) -> str | None:
    for arg in argv:
        if arg.startswith("ablation="):
            value = arg.split("=", 1)[1]
            if value.startswith("["):
                return (f"{arg}: one run takes one ablation; to run several, sweep them: "
                        f"--multirun ablation={value.strip('[]')}")
    return None


def precompose(argv: list[str]) -> str | None:
    """Compose once with the command line's fixed overrides, so that an unknown option, a
    typo'd key or a wrong type is reported as one line before any work (Hydra's own report
    of the same error spans many lines). Sweeps and hydra.* overrides are left to Hydra."""
    if any(a.startswith("-") and a not in ("--multirun", "-m") for a in argv):
        return None  # --cfg, --help, --config-dir ...: Hydra's business
    args = [a for a in argv if a not in ("--multirun", "-m")]
    try:
        parsed = OverridesParser.create().parse_overrides(args)
        fixed = [o.input_line for o in parsed
                 if not o.is_sweep_override() and not o.get_key_element().startswith("hydra")]
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=fixed)
    except (HydraException, OmegaConfBaseException) as exc:
        return hydra_error_line(exc)
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if sweeps:  # an impossible value anywhere in a sweep is refused before any job runs
        return check_sweep_values(sweeps, fixed)
    try:  # an impossible value is refused before Hydra creates a run directory
        validate(cfg)
        return init_from_problem(cfg)
    except ConfigError as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 -- a value only the job can resolve: it validates itself
        return None


MAX_SWEEP_CHECKS = 8  # a bigger grid: each value once (a compose is ~0.1-0.5 s); each job
# still validates its own combination


def check_sweep_values(sweeps: list, fixed: list[str]) -> str | None:
    """Compose and validate the jobs of a ``--multirun`` sweep (its choice and range values;
    intervals and globs are left to each job): the first impossible job is refused in one
    line naming its overrides."""
    axes = []
    for o in sweeps:
        if o.get_key_element().lstrip("+~").startswith("hydra"):
            continue
        try:
            axes.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        except HydraException:  # interval(...) for a search, glob(...): each job checks itself
            continue
    if not axes:
        return None
    if len(list(itertools.islice(itertools.product(*axes), MAX_SWEEP_CHECKS + 1))) \
            <= MAX_SWEEP_CHECKS:
        jobs = [list(j) for j in itertools.product(*axes)]
    else:  # each value of each swept key, the other swept keys at their first value
        firsts = [a[0] for a in axes]
        jobs = [firsts[:i] + [v] + firsts[i + 1:] for i, a in enumerate(axes) for v in a]
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        for job in jobs:
            try:
                cfg = compose("config", overrides=[*fixed, *job])
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


# the overrides that can move a run directory away from <paths.runs>/<name of the config>
RUN_DIR_KEYS = ("run_name=", "hydra.run.", "hydra.sweep.")


def check_run_dir(argv: list[str]) -> str | None:
    """Refuse, before Hydra creates anything, a run directory outside ``paths.runs`` or equal
    to it (``run_name=..``, ``run_name=/abs``, ``hydra.run.dir=.``), and one the store cannot
    hold safely (an empty or ``/`` runs root, an internal folder, inside another run, a link
    or a file where a folder belongs: runstore.guard.run_dir_store_problem)."""
    if any(a.startswith("-") and a not in ("--multirun", "-m") for a in argv):
        return None
    multirun = any(a in ("--multirun", "-m") for a in argv)
    args = [a for a in argv if a not in ("--multirun", "-m")]
    try:
        parsed = OverridesParser.create().parse_overrides(args)
        fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=fixed, return_hydra_config=True)
        runs = OmegaConf.select(cfg, "paths.runs")
        if multirun:
            # as Hydra joins them (the subdir climbs out of the sweep's record folder)
            run_dir = Path(os.path.normpath(os.path.join(str(cfg.hydra.sweep.dir),
                                                         str(cfg.hydra.sweep.subdir))))
        else:
            run_dir = Path(cfg.hydra.run.dir)
    except Exception:  # noqa: BLE001 -- a value only a sweep job can resolve: it checks itself
        return None
    moved = any(a.lstrip("+~").startswith(RUN_DIR_KEYS) for a in argv)
    # the default <paths.runs>/<name of the config> always lies inside; a sweep's jobs each
    # check their own directory (runstore.guard, in run_job)
    return ((runs_root_problem(runs) or (run_dir_problem(run_dir, runs) if moved else None))
            or (None if multirun else run_dir_store_problem(run_dir, runs)))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    # deferred: lastexp.run imports torch (~1.6 s; its torch is the one set here); a command
    # refused before Hydra starts, or python -m lastexp --cfg job, never pays for it
    from lastexp.run import run_job, torch

    with capture_prints():  # what the run prints reaches <run>/lastexp.log too
        to_file(f"lastexp {' '.join(HydraConfig.get().overrides.task)}")  # this job's overrides
        line = submitit_log_line()
        if line:  # the run names the SLURM (or local submitit) job's own output files
            to_file(line)
        threads = int(cfg.training.num_threads)
        # the number, not the resolver, in the run's .hydra/config.yaml: a reader of the run
        # needs no lastexp resolver, and the file says what the run used
        cfg.training.num_threads = threads
        torch.set_num_threads(threads)  # before any work: data, model, training
        to_file(f"torch threads: {threads} (training.num_threads)")
        with trial_guard():  # a search trial that fails ends the search in one line
            return trial_value(run_job(cfg))  # under the Optuna sweeper: the best val top-1


def command_problem(argv: list[str]) -> str | None:
    """Every check made before Hydra starts, in order: the first problem's one line."""
    return (check_single_ablation(argv) or precompose(argv) or check_run_dir(argv)
            or preflight(argv) or slurm_problem(argv))


def cli() -> None:
    """``lastexp [overrides]`` and ``python -m lastexp [overrides]``: the checks, then Hydra."""
    if any(a in COMPLETION_FLAGS for a in sys.argv[1:]):
        main()
        return
    sys.argv[1:] = with_env(normalize_overrides(sys.argv[1:]))
    problem = command_problem(sys.argv[1:])
    if problem:
        print(f"lastexp: error: {problem}", file=sys.stderr)
        sys.exit(2)
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: the run's state is on disk (metrics say interrupted)
        print("lastexp: interrupted (SIGINT); run the same command again to resume",
              file=sys.stderr)
        sys.exit(130)
    failed = getattr(sys.modules.get("lastexp.run"), "SWEEP_FAILURES", [])
    if failed:  # each reported in one line as it failed; the completed jobs are kept
        print(f"lastexp: error: {len(failed)} sweep job(s) failed (above); fix them and run the "
              "same command again: completed jobs are skipped", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
