"""The jobs of an in-process sweep refused for a user error: :func:`lastexp.run.run_job` records
each in one line as it fails (the other jobs go on), and ``python -m lastexp`` reports them and
exits 2 once Hydra returns. No torch: the command imports it before anything trains."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

# one line per refused job of the sweep running in this process
FAILURES: list[str] = []


def in_process_sweep(hc: Any) -> bool:
    """A sweep whose jobs run in this process (Hydra's basic launcher) and whose sweeper reads
    no job's value (not Optuna): a refused job can then be reported in one line and counted,
    instead of raising into Hydra's traceback. A SLURM job must still fail, so that
    ``afterok`` dependants do not start."""
    launcher = str(OmegaConf.select(hc, "launcher._target_") or "")
    sweeper = str(OmegaConf.select(hc, "sweeper._target_") or "").lower()
    return launcher.endswith("BasicLauncher") and "optuna" not in sweeper


def record_failure(line: str) -> None:
    """A refused job's line, counted for the command's closing report."""
    FAILURES.append(line)


def closing_line() -> str | None:
    """The command's last line when jobs of its sweep were refused (each was reported in one
    line as it failed; the completed jobs are kept); None when none was."""
    if not FAILURES:
        return None
    return (f"{len(FAILURES)} sweep job(s) failed (above); fix them and run the same command "
            "again: completed jobs are skipped")
