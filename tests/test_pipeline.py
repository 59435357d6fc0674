"""Runs that depend on runs (teachers, ensemble members), sweeps that skip finished work, and
the planner — end to end through the CLI on the tiny synthetic corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli

BASE = ["debug=tiny", "logger=none"]


def args(root: Path, data: Path, *extra: str) -> list[str]:
    return [*BASE, f"paths.runs={root / 'runs'}", f"paths.data={data}", *extra]


def metrics(root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (root / "runs").rglob("metrics.json")}


@pytest.fixture(scope="module")
def store(tmp_path_factory, shared_data):
    """A run store holding a finished tiny B7 (joint): the teacher for L11."""
    root = tmp_path_factory.mktemp("store")
    out = run_cli(args(root, shared_data, "+ablation=B7"), root)
    assert out.returncode == 0, out.stderr[-2000:]
    return root


def test_l11_without_teacher_names_the_command(tmp_path, shared_data):
    out = run_cli(args(tmp_path, shared_data, "+ablation=L11", "seed=3"), tmp_path)
    assert out.returncode == 2
    line = out.stderr.strip()
    assert "python -m lastexp +ablation=B7 dataset=synthetic stream=joint seed=3" in line
    assert len(line.splitlines()) == 1
    assert not list((tmp_path / "runs").rglob("metrics.json"))


def test_l11_distils_from_b7_in_the_store(store, shared_data):
    teacher = next(p for p in (store / "runs").rglob("checkpoints/best.pt") if "B7_" in str(p))
    before = teacher.read_bytes()
    out = run_cli(args(store, shared_data, "+ablation=L11"), store)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "distilling from" in out.stdout
    m = next(v for k, v in metrics(store).items() if k.startswith("L11_"))
    assert m["status"] == "completed" and m["teacher"].endswith(teacher.parents[1].name)
    assert m["model"] == "last_lite_small"
    assert teacher.read_bytes() == before  # the teacher is only read


def test_teacher_must_be_finished_and_of_the_right_architecture(store, shared_data, tmp_path):
    b7 = next(p for p in (store / "runs").iterdir() if p.name.startswith("B7_"))
    fake = tmp_path / "fake_teacher"
    shutil.copytree(b7, fake)
    m = json.loads((fake / "metrics.json").read_text())
    (fake / "metrics.json").write_text(json.dumps({**m, "status": "running"}))
    out = run_cli(args(tmp_path, shared_data, "+ablation=L11", f"distill.teacher={fake}"),
                  tmp_path)
    assert out.returncode == 2 and "not 'completed'" in out.stderr

    (fake / "metrics.json").write_text(json.dumps(m))
    lite = run_cli(args(tmp_path, shared_data, "+ablation=L0"), tmp_path)
    assert lite.returncode == 0, lite.stderr[-2000:]
    l0 = next((tmp_path / "runs").rglob("L0_*/checkpoints/best.pt"))
    for name in ("best.pt", "last.pt"):
        shutil.copy(l0, fake / "checkpoints" / name)  # weights of another architecture
    bad = run_cli(args(tmp_path, shared_data, "+ablation=L11", f"distill.teacher={fake}"),
                  tmp_path)
    assert bad.returncode == 2 and "teacher" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_b14_ensemble_runs_its_members_first(tmp_path, shared_data):
    out = run_cli(args(tmp_path, shared_data, "+ablation=B14", "run_dependencies=true"),
                  tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = metrics(tmp_path)
    members = {k: v for k, v in runs.items() if k.startswith("B7_")}
    assert sorted(v["stream"] for v in members.values()) == sorted(
        ["joint", "bone", "velocity", "bone_velocity"])
    ens = next(v for k, v in runs.items() if k.startswith("B14_"))
    assert ens["status"] == "completed" and ens["ablation"] == "B14"
    assert ens["weights"] == [0.6, 0.6, 0.4, 0.4] and len(ens["members"]) == 4
    assert 0 <= ens["final_top1"] <= 100
    # Running it again trains nothing and recombines nothing.
    again = run_cli(args(tmp_path, shared_data, "+ablation=B14"), tmp_path)
    assert "already completed" in again.stdout


@pytest.mark.slow
def test_l12_pretrains_then_distils(store, shared_data):
    out = run_cli(args(store, shared_data, "+ablation=L12"), store)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MaskCLR pretraining" in out.stdout and "distilling from" in out.stdout
    m = next(v for k, v in metrics(store).items() if k.startswith("L12_"))
    assert m["pretrain_epochs"] == 1 and m["status"] == "completed"
    assert next((store / "runs").rglob("L12_*/checkpoints/encoder.pt")).exists()


@pytest.mark.slow
def test_sweep_twice_trains_nothing_then_only_the_deleted_run(tmp_path, shared_data):
    sweep = ["--multirun", *args(tmp_path, shared_data, "model=last_e_nano",
                                 "stream=joint,bone,velocity,bone_velocity")]
    first = run_cli(sweep, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("lastexp: completed") == 4
    second = run_cli(sweep, tmp_path)
    assert second.returncode == 0
    assert second.stdout.count("already completed") == 4 and "epoch   1/" not in second.stdout
    victim = next((tmp_path / "runs").glob("last_e_nano_bone_*/metrics.json"))
    victim.unlink()
    third = run_cli(sweep, tmp_path)
    assert third.stdout.count("already completed") == 3
    assert third.stdout.count("lastexp: completed") == 1 and victim.exists()


def test_sweep_over_unknown_key_fails_before_any_job(tmp_path, shared_data):
    out = run_cli(["--multirun", *args(tmp_path, shared_data, "training.epohs=1,2")], tmp_path)
    assert out.returncode != 0 and "epohs" in out.stderr
    assert not list(tmp_path.rglob("metrics.json"))


def test_plan_lists_jobs_status_and_dependencies(store, shared_data):
    out = run_cli([*args(store, shared_data), "+sweep=lite", "seed=1,2"], store,
                  module="lastexp.plan")
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "(of 26)" in text  # 13 rows x 2 seeds
    assert "teacher B7/joint: ok" in text  # seed 1 has its teacher in the store
    assert "python -m lastexp +ablation=B7 dataset=synthetic stream=joint seed=2" in text
    assert "python -m lastexp +ablation=P0 dataset=synthetic stream=joint seed=1" in text
    assert "46 h budget" in text


def test_plan_of_the_base_sweep_with_three_seeds(tmp_path):
    out = run_cli(["+sweep=base", "seed=1,2,3", f"paths.runs={tmp_path / 'runs'}"], tmp_path,
                  module="lastexp.plan")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(of 45)" in out.stdout and "217 h budget" in out.stdout


def test_plan_rejects_unknown_key(tmp_path):
    out = run_cli(["+sweep=base", "training.epohs=3"], tmp_path, module="lastexp.plan")
    assert out.returncode == 2 and "epohs" in out.stderr
