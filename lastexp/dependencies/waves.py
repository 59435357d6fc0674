"""Order a sweep's jobs by what they read from each other, for SLURM ``afterok`` submission.

A job that reads another run (an L11 student its B7 teacher, B14 its four B7 members) must not
start before that run has finished: on SLURM it is submitted with ``--dependency=afterok:<ids>``
of the jobs that produce it, instead of starting and blocking a GPU while it waits. A
dependency is looked for, in order: in this sweep (an edge to that job), in the run store
(nothing to wait for), and with ``run_dependencies=true`` as an extra job added to the
submission; otherwise the sweep stops before submitting anything and names the command that
produces it. No torch here: planning happens on the login node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from omegaconf import DictConfig

from lastexp.aliases import normalize_overrides
from lastexp.dependencies.requirements import is_path, requirements, shared_overrides
from lastexp.errors import ConfigError
from lastexp.runstore.dependency_key import RunIdentity, debug_of, identity_of
from lastexp.runstore.walk import find_completed


@dataclass
class PlannedJob:
    overrides: list[str]
    produces: RunIdentity | None
    after: list[int] = field(default_factory=list)  # indices of the jobs it waits for
    extra: bool = False  # added to produce a missing dependency
    reason: str = ""  # for an extra job: who needs it


def plan_afterok(job_overrides: Sequence[Sequence[str]],
         compose: Callable[[list[str]], DictConfig]) -> list[PlannedJob]:
    """The sweep's jobs (first, in order) and any extra ones, each with the indices of the jobs
    it must wait for. ``compose`` turns a job's overrides into its config. Raises ConfigError
    (before anything is submitted) for a dependency that nothing provides, and for a cycle."""
    jobs = [PlannedJob(list(o), None) for o in job_overrides]
    configs: list[DictConfig] = []
    producer: dict[RunIdentity, int] = {}
    for i, job in enumerate(jobs):
        cfg = compose(job.overrides)
        configs.append(cfg)
        job.produces = identity_of(cfg)
        if job.produces is not None:
            producer.setdefault(job.produces, i)
    i = 0
    while i < len(jobs):  # extra jobs are appended, and planned in turn
        job, cfg = jobs[i], configs[i]
        for role, ref, stream in requirements(cfg):
            if is_path(ref):
                continue  # a run directory given by path: the job checks it itself
            need = RunIdentity(ref, str(cfg.dataset.name), stream, int(cfg.seed), debug_of(cfg))
            if need in producer:
                if producer[need] != i:
                    job.after.append(producer[need])
                continue
            if find_completed(cfg.paths.runs, need) is not None:
                continue
            extra = shared_overrides(job.overrides)
            if not cfg.run_dependencies:
                raise ConfigError(
                    f"{role} {need.describe()} of job {' '.join(job.overrides) or '(defaults)'} "
                    f"is neither in this sweep nor in the run store {cfg.paths.runs}; produce it "
                    f"with: {need.command(extra)} (or pass "
                    "run_dependencies=true to submit it first)")
            overrides = normalize_overrides(need.args(extra))
            dep_cfg = compose(overrides)
            got = identity_of(dep_cfg)
            if got != need:
                raise ConfigError(f"{' '.join(overrides)} does not produce {need.describe()} "
                                  f"(it makes {got.describe() if got else 'no ablation run'})")
            producer[need] = len(jobs)
            job.after.append(len(jobs))
            who = job.produces.describe() if job.produces else f"job #{i}"
            jobs.append(PlannedJob(overrides, need, extra=True, reason=f"{role} of {who}"))
            configs.append(dep_cfg)
        job.after = sorted(set(job.after))
        i += 1
    waves(jobs)  # raises on a cycle
    return jobs


def waves(jobs: list[PlannedJob]) -> list[list[int]]:
    """Jobs grouped so that every job comes after all the jobs it waits for."""
    level: dict[int, int] = {}

    def depth(i: int, path: tuple[int, ...] = ()) -> int:
        if i in path:
            names = [jobs[k].produces.describe() if jobs[k].produces else str(k)
                     for k in (*path, i)]
            raise ConfigError("the sweep's jobs depend on each other in a cycle: "
                              + " -> ".join(names))
        if i not in level:
            level[i] = 1 + max((depth(a, (*path, i)) for a in jobs[i].after), default=-1)
        return level[i]

    for i in range(len(jobs)):
        depth(i)
    out: list[list[int]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for i in range(len(jobs)):
        out[level[i]].append(i)
    return out
