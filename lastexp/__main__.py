"""`python -m lastexp [overrides]` (or the `lastexp` console script): the command's checks
(:mod:`lastexp.command_checks`, one composed config), then Hydra runs one training job or a
sweep of them."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lastexp import app, sweep_failures
from lastexp.aliases import normalize_overrides
from lastexp.app import CONF_DIR
from lastexp.command_checks import command_problem
from lastexp.environment import with_env
from lastexp.hydra_errors import full_disk_in_one_line
from lastexp.logs import capture_prints, submitit_log_line, to_file
from lastexp.optuna_study import trial_guard, trial_value

app.register()
# Hydra's shell completion (the script, and the shell's queries with COMP_LINE): Hydra's alone
COMPLETION_FLAGS = ("--shell-completion", "-sc")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
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
        with full_disk_in_one_line():  # Hydra's own files, a sweeper's study: one line too
            main()
    except KeyboardInterrupt:  # Ctrl-C: the run's state is on disk (metrics say interrupted)
        print("lastexp: interrupted (SIGINT); run the same command again to resume",
              file=sys.stderr)
        sys.exit(130)
    failed = sweep_failures.closing_line()
    if failed:  # each reported in one line as it failed; the completed jobs are kept
        print(f"lastexp: error: {failed}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
