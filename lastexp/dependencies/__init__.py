"""Runs that read other runs (distillation teachers, ensemble members): one concept, three uses.

- :mod:`~lastexp.dependencies.requirements`: what a run reads (the one rule);
- :mod:`~lastexp.dependencies.lookup`: finding those runs in the run store when the run starts,
  or running the missing ones first (``run_dependencies=true``);
- :mod:`~lastexp.dependencies.waves`: ordering a sweep's jobs by them, for SLURM ``afterok``.

``python -m lastexp.plan`` shows them for every job of a sweep. No torch here: planning happens
on the login node.
"""

from lastexp.dependencies.lookup import resolve
from lastexp.dependencies.requirements import (
    distillation_on,
    is_path,
    requirements,
    shared_overrides,
    teacher_streams,
)
from lastexp.dependencies.waves import PlannedJob, plan_afterok, waves

__all__ = ["PlannedJob", "distillation_on", "is_path", "plan_afterok", "requirements",
           "resolve", "shared_overrides", "teacher_streams", "waves"]
