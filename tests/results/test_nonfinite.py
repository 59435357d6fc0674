"""A completed run whose metrics.json holds a non-finite top-1 (``Infinity``, ``NaN``) is no
result: it is reported as a problem and skipped, never bolded as a column's best."""

from __future__ import annotations

from pathlib import Path

from lastexp.results import build_report, load_store
from lastexp.results.render import bold_best
from tests.conftest import run_cli
from tests.results.test_results import table_line, write_run


def test_bold_best_ignores_non_finite_means():
    rows = [["a", "x"], ["b", "y"], ["c", "z"]]
    bold_best(rows, [[float("inf")], [91.0], [float("nan")]], [1])
    assert [r[1] for r in rows] == ["x", "**y**", "z"]


def test_an_infinite_best_top1_is_a_problem_not_the_best(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root, "b0_ok", ablation="B0", seed=0, best=90.0)
    write_run(root, "b0_inf", ablation="B0", seed=1, best=float("inf"))
    df, problems = load_store(root, warn=False)
    assert list(df["run_dir"]) == ["b0_ok"]
    assert [(p.run_dir, "best_top1=inf" in p.message) for p in problems] == [("b0_inf", True)]
    md = build_report(df, problems, "x")["base.md"]
    assert "inf" not in " ".join(table_line(md, "B0")) and "`b0_inf`: metrics.json holds" in md


def test_results_cli_reports_it_in_one_line(tmp_path: Path):
    write_run(tmp_path / "runs", "b0_inf", ablation="B0", seed=1, best=float("inf"))
    r = run_cli(["--runs", "runs", "--out", "out", "--quiet"], tmp_path, module="lastexp.results")
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert warnings == ["warning: skipping b0_inf: metrics.json holds best_top1=inf, not a top-1 "
                        "in [0, 100]"]
