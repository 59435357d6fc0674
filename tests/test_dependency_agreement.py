"""`python -m lastexp.plan`, the SLURM launcher's afterok planning and the run itself agree on
which stored runs satisfy a dependency: the debug preset is part of a run's identity, so a
teacher trained under debug=tiny serves debug=tiny students only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lastexp.dependencies.waves import plan_afterok
from lastexp.errors import ConfigError
from lastexp.plan import build_plan
from lastexp.runstore import RunIdentity, find_completed
from tests.conftest import compose


def store_teacher(root: Path, debug: str | None) -> None:
    run = root / f"B7_joint_synthetic_s1_{debug or 'full'}"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(
        {"ablation": "B7", "dataset": "synthetic", "stream": "joint", "seed": 1,
         "debug": debug, "status": "completed"}))


def launcher_satisfied(args: list[str]) -> bool:
    """The SLURM launcher's view: the job plans with nothing to wait for, or it is refused
    before submitting because its teacher is missing."""
    try:
        (job,) = plan_afterok([args], lambda o: compose(list(o), return_hydra=True))
    except ConfigError as exc:
        assert "teacher B7 (synthetic, stream joint, seed 1)" in str(exc)
        return False
    return job.after == [] and not job.extra


@pytest.mark.parametrize("teacher_debug, student_debug, satisfied", [
    ("tiny", "tiny", True), ("tiny", None, False), (None, None, True), (None, "tiny", False),
])
def test_plan_launcher_and_run_agree_on_the_debug_preset(tmp_path, teacher_debug,
                                                         student_debug, satisfied):
    root = tmp_path / "runs"
    store_teacher(root, teacher_debug)
    args = ["ablation=L11", f"paths.runs={root}", "logger=none"]
    args += [f"debug={student_debug}"] if student_debug else []
    (job,) = build_plan(args)
    (need,) = job.needs
    assert (need.run_dir is not None) == satisfied  # python -m lastexp.plan
    if not satisfied and student_debug:
        assert f"debug={student_debug}" in need.command
    assert launcher_satisfied(args) == satisfied  # hydra/launcher=submitit_slurm
    # the run's own lookup (dependencies.lookup.resolve), with the debug choice its job was
    # composed with
    found = find_completed(root, RunIdentity("B7", "synthetic", "joint", 1, student_debug))
    assert (found is not None) == satisfied
