"""hydra-submitit-launcher's SLURM launcher, plus ``afterok`` dependencies between jobs.

The plugin submits a sweep as one job array. lastexp's sweeps hold jobs that read other runs
(L10-L12 their teachers, B14 its four members); started together, such a job would fail (or
hold a GPU while it waits). This launcher plans the sweep first (lastexp.dependencies.waves):
jobs are submitted in waves, each job with ``--dependency=afterok:<ids of the jobs it reads>``
and ``--kill-on-invalid-dep=yes`` (so SLURM cancels it when one of those fails), and a
dependency missing from the sweep and the run store is added as a job of its own with
``run_dependencies=true``. A sweep without dependencies is one wave: one job array, as the
plugin submits it. Jobs that fail end in SLURM's FAILED state (the plugin's jobs end COMPLETED
either way), which is what ``afterok`` reads, and every job's outcome is collected before the
sweep reports the first failure.

Job names say the row and seed (``lastexp-B3-s1``; the model's name for a run of no ablation row):
a job submitted alone is named so, and each task of a job array (whose tasks share the array's
name, ``lastexp``) renames itself so when it starts (``scontrol update``), so ``squeue`` and
``sacct`` show which run each job trains.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as PluginSlurmLauncher,
)
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
RENAME_TIMEOUT_S = 10.0


def job_name(prefix: str, overrides: Sequence[str],
             compose: Callable[[list[str]], DictConfig]) -> str:
    """``<prefix>-<ablation row or model>-s<seed>`` of a job, from its overrides (composed only
    when they do not say the row and the seed)."""
    given: dict[str, str] = {}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        given[key] = value
    row, seed = given.get("ablation") or given.get("model"), given.get("seed")
    if row is None or seed is None:
        cfg = compose(list(overrides))
        row = row or OmegaConf.select(cfg, "ablation") or OmegaConf.select(cfg, "model.name")
        seed = seed if seed is not None else OmegaConf.select(cfg, "seed")
    return f"{prefix}-{row}-s{seed}"


def rename_this_job(name: str, environ: dict[str, str] | None = None) -> bool:
    """Inside a SLURM array task: give the task its own name (best effort; the job runs the
    same either way). True when scontrol accepted it."""
    env = os.environ if environ is None else environ
    job = env.get("SLURM_JOB_ID")
    if not job or not env.get("SLURM_ARRAY_JOB_ID"):
        return False
    try:
        proc = subprocess.run(["scontrol", "update", f"JobId={job}", f"JobName={name}"],
                              capture_output=True, text=True, timeout=RENAME_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


class JobFailed(RuntimeError):
    """A job that failed on its node (the message is the job's own error)."""


def failure_message(job_id: str, text: str, log_file: str | os.PathLike | None) -> str:
    """What a failed SLURM job ended with, from submitit's error text: the job's own error
    (lastexp's one line, carried as ``JobFailed: ...``), or the state SLURM ended it in
    (``CANCELLED`` by ``scancel``, ``TIMEOUT``, ``NODE_FAIL``, ``OUT_OF_MEMORY``), naming the
    job and its log; one line."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    mine = [ln for ln in lines if "JobFailed: " in ln]
    state = re.search(r"state:\s*([A-Z_]+(?: by \d+)?)", str(text))
    if mine:
        what = f"failed: {mine[-1].split('JobFailed: ', 1)[1]}"
    elif state:
        what = (f"ended {state.group(1)} without a result (scancel, its time limit or its node "
                "stopped it)")
    else:
        what = f"failed: {lines[-1] if lines else 'no error text came back'}"
    log_part = f"; its log: {log_file}" if log_file else ""
    return f"SLURM job {job_id} {what}{log_part}"


def sweep_failure_line(messages: Sequence[str]) -> str:
    """The one line a sweep with failed SLURM jobs ends with (every job's outcome collected)."""
    head = "" if len(messages) == 1 else f"{len(messages)} SLURM jobs failed: "
    return (f"{head}{' | '.join(messages)}; completed jobs are kept: fix the cause and run the "
            "same command again")


class SlurmLauncher(PluginSlurmLauncher):
    def _name(self, overrides: Sequence[str]) -> str:
        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        return job_name(str(self.params.get("name") or "lastexp"), overrides,
                        lambda ov: loader.load_sweep_config(self.config, list(ov)))

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        # on the node: an array task takes its own name (args: the plugin's, overrides first)
        overrides = args[0] if args else kwargs.get("sweep_overrides", [])
        try:
            rename_this_job(self._name(overrides))
        except Exception:  # noqa: BLE001 -- a name is a convenience; the job runs regardless
            pass
        ret = super().__call__(*args, **kwargs)
        if ret.status == JobStatus.FAILED:  # fail the SLURM job too: afterok reads its state
            exc = ret._return_value
            raise JobFailed(f"{type(exc).__name__}: {exc}") from exc
        return ret

    def _executor(self) -> Any:
        # The plugin builds its executor inside launch(), which also waits for every job;
        # the same construction, kept apart so that jobs can be submitted wave by wave.
        import submitit

        init = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init["slurm_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in self.params.items()
            if k not in ("submitit_folder", "max_num_timeout")})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        from lastexp.dependencies.waves import plan_afterok, waves
        from lastexp.errors import ConfigError

        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        try:
            jobs = plan_afterok(job_overrides,
                                lambda ov: loader.load_sweep_config(self.config, list(ov)))
        except ConfigError as exc:  # before anything is submitted: one line, as lastexp's own
            print(f"lastexp: error: {exc}", file=sys.stderr)
            sys.exit(2)

        executor = self._executor()
        extra_params = dict(self.params.get("additional_parameters") or {})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")

        submitted: dict[int, Any] = {}
        for wave in waves(jobs):
            groups: dict[str, list[int]] = {}
            for i in wave:
                ids = ":".join(submitted[a].job_id for a in jobs[i].after)
                groups.setdefault(ids, []).append(i)
            for ids, members in groups.items():
                params = dict(extra_params)
                if ids:
                    params.update({"dependency": f"afterok:{ids}", "kill-on-invalid-dep": "yes"})
                # a lone job: its row and seed; an array: the preset's name, until each task
                # renames itself as it starts
                name = (self._name(jobs[members[0]].overrides) if len(members) == 1
                        else self.params.get("name"))
                executor.update_parameters(slurm_additional_parameters=params, name=name)
                args = [(jobs[i].overrides, "hydra.sweep.dir", initial_job_idx + i,
                         f"job_id_for_{initial_job_idx + i}", Singleton.get_state())
                        for i in members]
                for i, job in zip(members, executor.map_array(self, *zip(*args))):
                    submitted[i] = job
                    why = f" ({jobs[i].reason}, run_dependencies=true)" if jobs[i].extra else ""
                    after = f" after {ids.replace(':', ', ')}" if ids else ""
                    log.info(f"\t#{initial_job_idx + i} {job.job_id}{after} : "
                             f"{' '.join(filter_overrides(jobs[i].overrides))}{why}")

        # the sweep's own jobs, in order (an extra job's failure shows in its dependents)
        results = [self._result(jobs, i, submitted) for i in range(len(job_overrides))]
        failed = [str(r._return_value) for r in results if r.status == JobStatus.FAILED]
        if failed:  # one line, not the traceback Hydra makes of the first failed result
            print(f"lastexp: error: {sweep_failure_line(failed)}", file=sys.stderr)
            sys.exit(2)
        return results

    @staticmethod
    def _result(jobs: list, i: int, submitted: dict[int, Any]) -> JobReturn:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        job = submitted[i]
        try:
            return job.results()[0]
        except (FailedJobError, UncompletedJobError) as exc:
            ret = JobReturn(overrides=jobs[i].overrides, status=JobStatus.FAILED)
            if isinstance(exc, UncompletedJobError) and jobs[i].after:
                deps = ", ".join(f"{submitted[a].job_id} ({jobs[a].produces.describe()})"
                                 for a in jobs[i].after)
                ret._return_value = JobFailed(
                    f"SLURM job {job.job_id} did not run: a job it depends on failed: {deps}")
            else:  # the job's own error, or the state SLURM ended it in, and its log
                log_file = getattr(getattr(job, "paths", None), "stderr", None)
                ret._return_value = JobFailed(failure_message(job.job_id, str(exc), log_file))
            return ret
