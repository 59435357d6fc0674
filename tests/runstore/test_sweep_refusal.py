"""A sweep job refused for a user error (here: a run directory whose metrics.json is no run's)
is one line naming the job, the file and the fix; the other jobs go on, the command exits 2,
nothing is changed and no lock is left (the run store's guard, issue: never lose data)."""

from __future__ import annotations

import hashlib

from tests.conftest import run_cli


def _snapshot(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_foreign_metrics_in_a_sweep_is_one_line_per_job(tmp_path):
    args = ["debug=tiny", "logger=none", f"paths.runs={tmp_path / 'runs'}",
            f"paths.data={tmp_path / 'data'}"]
    plan = run_cli([*args, "seed=1,2"], tmp_path, module="lastexp.plan")
    assert plan.returncode == 0, plan.stderr
    names = [line.split()[-1] for line in plan.stdout.splitlines() if "_s1_" in line
             or "_s2_" in line]
    assert len(names) == 2
    for name, text in zip(names, ("[1, 2]", "7")):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "metrics.json").write_text(text)
    before = _snapshot(tmp_path / "runs")
    out = run_cli(["--multirun", *args, "seed=1,2"], tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "HYDRA_FULL_ERROR" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 3, out.stderr
    assert "seed=1" in lines[0] and "holds a JSON list" in lines[0] and "move that file" in lines[0]
    assert "seed=2" in lines[1] and "holds a JSON int" in lines[1]
    assert lines[2].startswith("lastexp: error: 2 sweep job(s) failed")
    after = _snapshot(tmp_path / "runs")
    assert {k: v for k, v in after.items() if not k.startswith(".sweeps/")} == before
    assert not (tmp_path / "runs" / ".locks").exists()
