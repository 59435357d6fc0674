"""The run store package: one walker, one identity, one metrics schema, and no other module
building a run directory's paths."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from lastexp.runstore import (
    RunDir,
    RunIdentity,
    find_completed,
    iter_runs,
    newest_per_seed,
    read_metrics,
    run_dirs,
    schema_problem,
)
from lastexp.runstore.finished import RunError, model_checkpoint, open_finished
from lastexp.runstore.layout import (
    CHECKPOINT_DIR,
    DATA_SUMMARY_FILE,
    EXPORT_DIR,
    HISTORY_FILE,
    HYDRA_DIR,
    HYDRA_LOG,
    METRICS_FILE,
    SCORES_FILE,
)
from lastexp.runstore.metrics import foreign_kind

PACKAGE = Path(__file__).resolve().parents[2] / "lastexp"


def _run(root: Path, rel: str, **metrics) -> Path:
    path = root / rel
    path.mkdir(parents=True, exist_ok=True)
    (path / METRICS_FILE).write_text(json.dumps(metrics))
    return path


def test_walker_finds_nested_runs_and_skips_what_holds_none(tmp_path):
    _run(tmp_path, "a", status="completed")
    _run(tmp_path, "sweep/b/c", status="failed")
    _run(tmp_path, ".locks/x", status="completed")  # hidden: never a run
    _run(tmp_path, "checkpoints/y", status="completed")  # a run's own folder name
    _run(tmp_path / "a", "nested", status="completed")  # below a run: not searched
    (tmp_path / "sweep" / "multirun.yaml").write_text("x: 1\n")
    found = [p.relative_to(tmp_path).as_posix() for p in run_dirs(tmp_path)]
    assert found == ["a", "sweep/b/c"]


def test_walker_follows_a_symlink_once_and_survives_a_cycle(tmp_path):
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    _run(elsewhere, "r1", status="completed")
    store.mkdir()
    os.symlink(elsewhere, store / "linked")
    os.symlink(store, store / "loop")  # a link back up the tree
    found = [p.relative_to(store).as_posix() for p in run_dirs(store)]
    assert found == ["linked/r1"]


def test_identity_matches_the_debug_preset_too(tmp_path):
    _run(tmp_path, "full", status="completed", ablation="B7", dataset="d", stream="joint",
         seed=1, debug=None, finished_at="2026-01-02")
    _run(tmp_path, "tiny", status="completed", ablation="B7", dataset="d", stream="joint",
         seed=1, debug="tiny", finished_at="2026-01-03")
    _run(tmp_path, "tiny_failed", status="failed", ablation="B7", dataset="d",
         stream="joint", seed=1, debug="tiny", finished_at="2026-01-04")
    full = find_completed(tmp_path, RunIdentity("B7", "d", "joint", 1))
    tiny = find_completed(tmp_path, RunIdentity("B7", "d", "joint", 1, "tiny"))
    assert full.run_dir.name == "full" and tiny.run_dir.name == "tiny"
    assert find_completed(tmp_path, RunIdentity("B7", "d", "bone", 1)) is None


def test_a_dependency_reads_the_run_the_tables_keep(tmp_path):
    # Two completed runs of one seed, finished in the same second: the newer start wins, and on
    # a full tie the later path; a teacher lookup and the tables' de-duplication pick the same.
    common = dict(status="completed", ablation="B7", model="last_base", dataset="d",
                  stream="joint", preprocessing="t64_uniform", seed=1, best_top1=80.0,
                  finished_at="2026-01-02T10:00:00")
    _run(tmp_path, "b_early", started_at="2026-01-01T08:00:00", **common)
    _run(tmp_path, "a_late", started_at="2026-01-01T09:00:00", **common)
    _run(tmp_path, "z_same", started_at="2026-01-01T07:00:00", **common)
    dep = find_completed(tmp_path, RunIdentity("B7", "d", "joint", 1))
    assert dep.run_dir.name == "a_late"
    kept, dups = newest_per_seed(iter_runs(tmp_path), lambda r: r.metrics, lambda r: r.run_dir)
    assert [r.run_dir.name for r in kept] == ["a_late"]
    assert [r.run_dir.name for r in dups[0][1]] == ["z_same", "b_early"]
    tie = dict(common, started_at="2026-01-01T09:00:00")
    _run(tmp_path, "c_tie", **tie)
    assert find_completed(tmp_path, RunIdentity("B7", "d", "joint", 1)).run_dir.name == "c_tie"


def test_identity_command_carries_the_debug_preset_once():
    ident = RunIdentity("B7", "ntu60", "bone", 2, "tiny")
    assert ident.command() == ("python -m lastexp +ablation=B7 dataset=ntu60 stream=bone "
                               "seed=2 debug=tiny")
    assert ident.args(["debug=tiny", "paths.runs=r"]).count("debug=tiny") == 1


@pytest.mark.parametrize("text, problem", [
    ('{"status": "completed"', "corrupt or truncated metrics.json"),
    ("[1, 2]", "metrics.json is not a JSON object"),
    ("\xff\xfe", None),
])
def test_read_metrics_reports_unusable_files(tmp_path, text, problem):
    path = tmp_path / METRICS_FILE
    path.write_bytes(text.encode("latin-1"))
    got = read_metrics(path)
    assert isinstance(got, str)
    if problem:
        assert got.startswith(problem)
    assert read_metrics(tmp_path / "absent.json").startswith("unreadable metrics.json")


def test_schema_problems_and_foreign_files(tmp_path):
    assert schema_problem({"status": "completed", "best_top1": 71.5}) is None
    assert "no valid status" in schema_problem({"status": "done"})
    assert "best_top1=inf" in schema_problem({"status": "completed", "best_top1": float("inf")})
    assert schema_problem({"status": "failed", "best_top1": float("nan")}) is None
    # a top-1 is a percentage: 150 or -3 is a corrupt file, never the best of a table
    assert "best_top1=150" in schema_problem({"status": "completed", "best_top1": 150})
    assert "swa_top1=-3.0" in schema_problem({"status": "completed", "swa_top1": -3.0})
    assert schema_problem({"status": "completed", "best_top1": 100, "final_top1": 0}) is None
    (tmp_path / "m.json").write_text("[1]")
    assert foreign_kind(tmp_path / "m.json") == "list"
    (tmp_path / "n.json").write_text("{}")
    assert foreign_kind(tmp_path / "n.json") is None


def test_open_finished_refuses_with_one_line(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        open_finished(tmp_path / "nope", role="teacher")
    _run(tmp_path, "running", status="running")
    with pytest.raises(RunError, match="not 'completed'"):
        open_finished(tmp_path / "running", role="teacher")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / METRICS_FILE).write_text("[]")
    with pytest.raises(RunError, match="holds a JSON list"):
        open_finished(tmp_path / "foreign")
    done = open_finished(_run(tmp_path, "done", status="completed"))
    with pytest.raises(RunError, match="no checkpoints/best.pt"):
        model_checkpoint(done)
    (done.paths.checkpoints).mkdir()
    done.paths.last.write_bytes(b"x")
    assert model_checkpoint(done) == done.paths.last
    done.paths.best.write_bytes(b"x")
    assert model_checkpoint(done) == done.paths.best
    assert [r.run_dir.name for r in iter_runs(tmp_path)] == ["done", "running"]


def test_run_dir_layout_is_the_readme_one(tmp_path):
    run = RunDir(tmp_path)  # README "Runs and results"
    assert run.metrics.name == "metrics.json" and run.history.name == "history.csv"
    assert run.last.relative_to(tmp_path).as_posix() == "checkpoints/last.pt"
    assert run.best.relative_to(tmp_path).as_posix() == "checkpoints/best.pt"
    assert run.swa.relative_to(tmp_path).as_posix() == "checkpoints/swa.pt"
    assert run.scores.name == "test_scores.npz"
    assert run.hydra_config.relative_to(tmp_path).as_posix() == ".hydra/config.yaml"


RUN_FILES = {METRICS_FILE, HISTORY_FILE, SCORES_FILE, CHECKPOINT_DIR, "best.pt", "last.pt",
             "swa.pt", "encoder.pt", ".hydra"}


def _path_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants used to build a path: ``x / "metrics.json"`` or
    ``os.path.join(..., "metrics.json")``."""
    found = []
    for node in ast.walk(tree):
        parts: list[ast.AST] = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts = [node.right]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == "join":
            parts = list(node.args[1:])
        for part in parts:
            if isinstance(part, ast.Constant) and isinstance(part.value, str) and \
                    part.value.split("/")[0] in RUN_FILES:
                found.append((part.lineno, part.value))
    return found


def test_only_the_run_store_builds_run_directory_paths():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "runstore" in path.relative_to(PACKAGE).parts:
            continue
        for line, literal in _path_literals(ast.parse(path.read_text())):
            offenders.append(f"{path.relative_to(PACKAGE)}:{line} {literal!r}")
    assert offenders == [], "build run-directory paths with lastexp.runstore.RunDir"


def _run_file_names() -> set[str]:
    """Every file name of a run directory, as the run store spells them."""
    run = RunDir(Path("run"))
    return {METRICS_FILE, HISTORY_FILE, SCORES_FILE, DATA_SUMMARY_FILE, HYDRA_LOG,
            run.last.name, run.best.name, run.swa.name, run.encoder.name,
            run.pretrain_last.name, run.hydra_config.name, run.hydra_overrides.name}


def _names_a_run_file(text: str, names: set[str]) -> bool:
    """``text`` spells a run file's name, or a path into a run's folders (``checkpoints/...``,
    ``export/...``, ``.hydra/...``); a bare ``export`` is the command's name, not a path."""
    if any(name in text for name in names - {"config.yaml", "overrides.yaml"}):
        return True
    folders = (CHECKPOINT_DIR, EXPORT_DIR, HYDRA_DIR)
    return text in (CHECKPOINT_DIR, HYDRA_DIR) or text.startswith(tuple(f"{f}/" for f in folders))


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}


def test_only_the_run_store_spells_run_file_names():
    """Not in a path, a message or a help text either (documentation aside): the other
    modules take the names from lastexp.runstore.layout, so a renamed file is one edit."""
    names = _run_file_names()
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "runstore" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        offenders += [f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}"
                      for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and isinstance(node.value, str)
                      and id(node) not in docs and _names_a_run_file(node.value, names)]
    assert offenders == [], "take run-directory file names from lastexp.runstore.layout"


def test_the_run_file_check_sees_what_it_should():
    names = _run_file_names()
    for text in ("metrics.json", "no test_scores.npz here", "checkpoints/last.pt", "best.pt",
                 ".hydra", ".hydra/config.yaml", "export/model.onnx", "history.csv"):
        assert _names_a_run_file(text, names), text
    for text in ("export", "config.yaml", "status", "checkpoint"):
        assert not _names_a_run_file(text, names), text

