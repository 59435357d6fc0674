"""Planning a sweep's afterok dependencies (no cluster: the SLURM side is test_sweep_slurm)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lastexp.dependencies.waves import PlannedJob, plan_afterok, waves
from lastexp.errors import ConfigError
from lastexp.runstore import RunIdentity
from tests.conftest import compose


def composer(calls: list):
    def run(overrides: list[str]):
        calls.append(list(overrides))
        return compose(list(overrides), return_hydra=True)
    return run


def base(tmp_path: Path) -> list[str]:
    return ["debug=tiny", f"paths.runs={tmp_path / 'runs'}", "logger=none"]


def test_in_sweep_dependency_waits_for_its_job(tmp_path):
    jobs = plan_afterok([["ablation=L11", *base(tmp_path)], ["ablation=B7", *base(tmp_path)],
                 ["ablation=L0", *base(tmp_path)]], composer([]))
    assert len(jobs) == 3 and not any(j.extra for j in jobs)
    assert jobs[0].after == [1] and jobs[1].after == [] and jobs[2].after == []
    assert jobs[1].produces == RunIdentity("B7", "synthetic", "joint", 1, "tiny")
    assert waves(jobs) == [[1, 2], [0]]


def test_missing_dependency_stops_before_submitting(tmp_path):
    with pytest.raises(ConfigError) as err:
        plan_afterok([["ablation=L11", "seed=3", *base(tmp_path)]], composer([]))
    msg = str(err.value)
    assert "teacher B7 (synthetic, stream joint, seed 3)" in msg
    assert ("python -m lastexp +ablation=B7 dataset=synthetic stream=joint seed=3 debug=tiny "
            f"paths.runs={tmp_path / 'runs'} logger=none") in msg
    assert "run_dependencies=true" in msg and "\n" not in msg


def test_run_dependencies_adds_the_producing_jobs(tmp_path):
    calls: list = []
    jobs = plan_afterok([["ablation=B14", "run_dependencies=true", *base(tmp_path)],
                 ["ablation=L10", "run_dependencies=true", "stream=bone", *base(tmp_path)]],
                composer(calls))
    extra = jobs[2:]
    assert [j.produces for j in extra] == [
        RunIdentity("B7", "synthetic", s, 1, "tiny") for s in ("joint", "bone", "velocity",
                                                         "bone_velocity")
    ] + [RunIdentity("P0", "synthetic", "bone", 1, "tiny")]
    assert all(j.extra for j in extra)
    assert extra[0].overrides == ["ablation=B7", "dataset=synthetic", "stream=joint", "seed=1",
                                  "debug=tiny", f"paths.runs={tmp_path / 'runs'}",
                                  "logger=none"]
    assert jobs[0].after == [2, 3, 4, 5] and jobs[1].after == [6]
    assert extra[0].reason == "ensemble member of B14 (synthetic, stream joint, seed 1)"
    assert waves(jobs) == [[2, 3, 4, 5, 6], [0, 1]]
    assert len(calls) == 7  # each job composed once


def test_a_dependency_shared_by_two_jobs_is_produced_once(tmp_path):
    jobs = plan_afterok([["ablation=L11", "run_dependencies=true", *base(tmp_path)],
                 ["ablation=L12", "run_dependencies=true", *base(tmp_path)]], composer([]))
    assert len(jobs) == 3 and jobs[2].produces.ablation == "B7"
    assert jobs[0].after == [2] and jobs[1].after == [2]


def test_completed_dependency_in_the_store_needs_no_job(tmp_path):
    run = tmp_path / "runs" / "B7_joint_synthetic_s1_abc"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(
        {"ablation": "B7", "dataset": "synthetic", "stream": "joint", "seed": 1,
         "debug": "tiny", "status": "completed"}))
    jobs = plan_afterok([["ablation=L11", *base(tmp_path)]], composer([]))
    assert len(jobs) == 1 and jobs[0].after == []
    # a run of another debug preset is another run
    with pytest.raises(ConfigError, match="teacher B7"):
        plan_afterok([["ablation=L11", f"paths.runs={tmp_path / 'runs'}"]], composer([]))


def test_teacher_given_as_a_path_is_left_to_the_job(tmp_path):
    jobs = plan_afterok([["ablation=L11", f"distill.teacher={tmp_path}", *base(tmp_path)]],
                composer([]))
    assert len(jobs) == 1 and jobs[0].after == []


def test_no_dependencies_plans_nothing(tmp_path):
    jobs = plan_afterok([["stream=joint", *base(tmp_path)], ["stream=bone", *base(tmp_path)]],
                composer([]))
    assert [j.after for j in jobs] == [[], []] and [j.produces for j in jobs] == [None, None]


def test_cycle_is_refused():
    a, b = RunIdentity("X", "d", "joint", 1, None), RunIdentity("Y", "d", "joint", 1, None)
    jobs = [PlannedJob(["ablation=X"], a, after=[1]), PlannedJob(["ablation=Y"], b, after=[0])]
    with pytest.raises(ConfigError, match="cycle: X .* -> Y .* -> X"):
        waves(jobs)


def test_a_four_stream_teacher_depends_on_all_four_runs(tmp_path):
    # the training plan §3A: the teacher is the LAST-Base four-stream ensemble; afterok (and
    # run_dependencies) must cover every member, not only the student's stream
    streams = "distill.teacher_streams=[joint,bone,velocity,bone_velocity]"
    jobs = plan_afterok([["ablation=L11", "run_dependencies=true", "stream=bone", streams,
                  *base(tmp_path)]], composer([]))
    assert [j.produces for j in jobs[1:]] == [
        RunIdentity("B7", "synthetic", s, 1, "tiny") for s in ("bone", "joint", "velocity",
                                                         "bone_velocity")
    ]
    assert jobs[0].after == [1, 2, 3, 4]
