"""`python -m lastexp.runs list|diff|rm`: what a store holds, what differs between two runs, and
removing runs without ever touching anything but a run below the runs root that no other command
holds. Stores are built by hand (fast); one real debug=tiny run checks the command end to end."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
import yaml

from lastexp import runs as runs_cli
from lastexp.runstore import lock_path, run_dirs, run_lock
from tests.conftest import run_cli


def write_run(root: Path, name: str, *, config: dict | None = None, **metrics) -> Path:
    """A run directory as a finished run leaves it (metrics.json, .hydra/config.yaml)."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    base = {"status": "completed", "ablation": "B0", "model": "last_base", "stream": "joint",
            "dataset": "synthetic", "preprocessing": "t64_uniform", "seed": 0, "epochs": 2,
            "debug": None, "best_top1": 90.0, "final_top1": 89.5}
    (run / "metrics.json").write_text(json.dumps({**base, **metrics}))
    cfg = config if config is not None else {
        "model": {"name": base["model"]}, "training": {"epochs": 2, "batch_size": 64},
        "optimizer": {"name": "sgd", "lr": 0.1}, "seed": metrics.get("seed", 0)}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_bytes(b"w" * 100)
    return run


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class Tty(io.StringIO):
    """A terminal's stdin that answers the question with ``text``."""

    def isatty(self) -> bool:
        return True


def cli(argv: list[str], capsys, stdin=None) -> tuple[int, str, str]:
    out = io.StringIO()
    rc = runs_cli.main(argv, stdin=stdin if stdin is not None else io.StringIO(""), stdout=out)
    err = capsys.readouterr().err
    return rc, out.getvalue(), err


def one_line_error(rc: int, err: str, *words: str) -> str:
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("lastexp.runs: error: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """runs/: B0 seeds 0 and 1 (2 epochs), B3 seed 0 (3 epochs, failed), a lite run, and a run
    whose metrics.json is truncated; the working directory is tmp_path."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    write_run(root, "b0_s0", seed=0)
    write_run(root, "b0_s1", seed=1, best_top1=91.0, final_top1=90.25)
    write_run(root, "sweep/0/b3_s0", ablation="B3", status="failed", best_top1=None,
              final_top1=None, error="ValueError: boom",
              config={"model": {"name": "last_base"}, "training": {"epochs": 3},
                      "optimizer": {"name": "adamw", "lr": 0.001}, "seed": 0})
    write_run(root, "lite", ablation=None, model="last_lite_small", debug="tiny",
              config={"model": {"name": "last_lite_small"}, "training": {"epochs": 2}})
    (root / "broken").mkdir()
    (root / "broken" / "metrics.json").write_text('{"status": "compl')
    (root / ".locks").mkdir()
    (root / ".sweeps" / "2025-01-01").mkdir(parents=True)
    return root


# --------------------------------------------------------------------------- list


def test_list_shows_every_run_with_status_row_seed_config_and_top1(store, capsys):
    rc, out, err = cli(["list"], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["status", "row", "seed", "model", "stream", "dataset",
                                "preprocessing", "epochs", "debug", "best", "top-1", "final",
                                "top-1", "path"]
    body = {ln.split()[-1]: ln.split() for ln in lines[2:-1]}
    assert set(body) == {"runs/b0_s0", "runs/b0_s1", "runs/sweep/0/b3_s0", "runs/lite",
                         "runs/broken"}
    assert body["runs/b0_s1"] == ["completed", "B0", "1", "last_base", "joint", "synthetic",
                                  "t64_uniform", "2", "-", "91.00", "90.25", "runs/b0_s1"]
    assert body["runs/sweep/0/b3_s0"][:3] == ["failed", "B3", "0"]
    assert body["runs/lite"][1] == "-" and body["runs/lite"][8] == "tiny"
    assert body["runs/broken"][0] == "unreadable"
    assert lines[-1] == "5 runs"


def test_list_json_is_a_list_of_objects_with_errors(store, capsys):
    rc, out, _ = cli(["list", "--json"], capsys)
    rows = {r["path"]: r for r in json.loads(out)}
    assert rc == 0 and len(rows) == 5
    assert rows["runs/b0_s0"] == {
        "status": "completed", "row": "B0", "seed": 0, "model": "last_base", "stream": "joint",
        "dataset": "synthetic", "preprocessing": "t64_uniform", "epochs": 2, "debug": None,
        "best_top1": 90.0, "final_top1": 89.5, "path": "runs/b0_s0"}
    assert rows["runs/sweep/0/b3_s0"]["error"] == "ValueError: boom"
    assert "corrupt or truncated metrics.json" in rows["runs/broken"]["error"]


@pytest.mark.parametrize("where,expected", [
    (["model=last_lite_small"], ["runs/lite"]),
    (["row=B0"], ["runs/b0_s0", "runs/b0_s1"]),
    (["ablation=B0", "seed=1"], ["runs/b0_s1"]),  # all must hold
    (["training.epochs=3"], ["runs/sweep/0/b3_s0"]),  # a dotted config key
    (["optimizer.lr=0.1"], ["runs/b0_s0", "runs/b0_s1"]),
    (["status=failed"], ["runs/sweep/0/b3_s0"]),
    (["ablation=null", "debug=tiny"], ["runs/lite"]),
    (["best_top1=91"], ["runs/b0_s1"]),  # 91 is 91.0
    (["model=last_lite_small", "training.epochs=3"], []),
])
def test_where_filters_on_metrics_and_dotted_config_keys(store, capsys, where, expected):
    argv = ["list", "--json"] + [x for w in where for x in ("--where", w)]
    rc, out, err = cli(argv, capsys)
    assert rc == 0, err
    assert sorted(r["path"] for r in json.loads(out)) == expected


@pytest.mark.parametrize("argv,words", [
    (["list", "--where", "trainig.epochs=2"], ["--where trainig.epochs", "no run has this key"]),
    (["list", "--where", "epochs"], ["--where 'epochs' is not key=value"]),
    (["list", "--runs", "nowhere"], ["--runs 'nowhere' does not exist"]),
])
def test_list_refuses_bad_input_in_one_line(store, capsys, argv, words):
    rc, out, err = cli(argv, capsys)
    one_line_error(rc, err, *words)
    assert out == ""


def test_an_empty_store_lists_no_runs(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert cli(["list", "--runs", str(tmp_path / "runs")], capsys)[:2] == (0, "no runs\n")
    assert cli(["list", "--json", "--runs", str(tmp_path / "runs")], capsys)[:2] == (0, "[]\n")


# --------------------------------------------------------------------------- diff


def test_diff_names_the_dotted_keys_that_differ(store, capsys):
    rc, out, err = cli(["diff", "runs/b0_s0", "sweep/0/b3_s0"], capsys)  # a path, a store name
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["key", "b0_s0", "b3_s0"]
    rows = [ln.split() for ln in lines[2:]]
    assert rows == [["optimizer.lr", "0.1", "0.001"], ["optimizer.name", "sgd", "adamw"],
                    ["training.batch_size", "64", "(absent)"], ["training.epochs", "2", "3"]]
    rc, out, _ = cli(["diff", "runs/b0_s0", "runs/sweep/0/b3_s0", "--json"], capsys)
    assert json.loads(out) == [
        {"key": "optimizer.lr", "a": 0.1, "b": 0.001},
        {"key": "optimizer.name", "a": "sgd", "b": "adamw"},
        {"key": "training.batch_size", "a": 64},
        {"key": "training.epochs", "a": 2, "b": 3}]


def test_diff_of_two_seeds_is_the_seed_and_of_a_run_with_itself_nothing(store, capsys):
    assert json.loads(cli(["diff", "runs/b0_s0", "runs/b0_s1", "--json"], capsys)[1]) == [
        {"key": "seed", "a": 0, "b": 1}]
    rc, out, _ = cli(["diff", "runs/b0_s0", "runs/b0_s0"], capsys)
    assert rc == 0 and out.startswith("no config keys differ")


def test_diff_refuses_a_missing_run_or_config(store, capsys):
    one_line_error(*cli(["diff", "runs/b0_s0", "runs/nope"], capsys)[::2],
                   "runs/nope: no such run directory")
    one_line_error(*cli(["diff", "runs/b0_s0", "runs/broken"], capsys)[::2],
                   "runs/broken has no readable .hydra/config.yaml")


def test_flatten_keeps_lists_and_empty_mappings_as_values():
    assert runs_cli.flatten({"a": {"b": [1, 2], "c": {}}, "d": None}) == {
        "a.b": [1, 2], "a.c": {}, "d": None}


# --------------------------------------------------------------------------- rm


def test_rm_yes_removes_the_runs_and_their_locks_only(store, capsys):
    with run_lock(store / "b0_s1", store):
        pass  # a lock file left by an earlier training command, as a run leaves it
    other_lock = lock_path(store / "lite", store)
    with run_lock(store / "lite", store):
        pass
    keep = {k: v for k, v in snapshot(store).items() if not k.startswith(("b0_s1", ".locks"))}
    size = sum(p.stat().st_size for p in (store / "b0_s1").rglob("*") if p.is_file())
    rc, out, err = cli(["rm", "runs/b0_s1", "runs/b0_s1/", "--yes"], capsys)
    assert rc == 0, err
    assert out.splitlines()[:2] == ["will remove:", "  runs/b0_s1  (completed, B0, seed 1; "
                                    f"3 files, {size} B)"]
    assert out.splitlines()[-1] == "removed runs/b0_s1"
    assert not (store / "b0_s1").exists() and other_lock.exists()
    assert not lock_path(store / "b0_s1", store).exists()
    assert {k: v for k, v in snapshot(store).items() if not k.startswith(".locks")} == keep
    assert [p.name for p in store.iterdir() if p.name.startswith(".removing")] == []
    assert store / "b0_s1" not in run_dirs(store)


def test_rm_asks_on_a_terminal_and_a_no_keeps_everything(store, capsys):
    before = snapshot(store)
    rc, out, _ = cli(["rm", "runs/b0_s0"], capsys, stdin=Tty("n\n"))
    assert rc == 1 and out.endswith("remove 1 run? [y/N] nothing removed\n")
    assert snapshot(store) == before  # no lock file left behind either
    rc, out, _ = cli(["rm", "runs/b0_s0", "runs/lite"], capsys, stdin=Tty("y\n"))
    assert rc == 0 and "remove 2 runs? [y/N] " in out
    assert not (store / "b0_s0").exists() and not (store / "lite").exists()


def test_rm_without_a_terminal_needs_yes(store, capsys):
    before = snapshot(store)
    rc, out, err = cli(["rm", "runs/b0_s0"], capsys, stdin=io.StringIO("y\n"))
    one_line_error(rc, err, "stdin is not a terminal", "--yes")
    assert out.startswith("will remove:\n  runs/b0_s0")  # what it would remove is shown
    assert snapshot(store) == before
    assert one_line_error(*cli(["rm", "runs/b0_s0"], capsys, stdin=None)[::2])


def test_rm_refuses_a_run_another_command_holds(store, capsys):
    before = snapshot(store)
    with run_lock(store / "b0_s0", store):  # a training command holds it
        rc, out, err = cli(["rm", "runs/lite", "runs/b0_s0", "--yes"], capsys)
        one_line_error(rc, err, "runs/b0_s0 is being trained by another command",
                       "nothing was removed")
    assert (store / "lite").is_dir() and (store / "b0_s0").is_dir()
    assert not lock_path(store / "lite", store).exists()  # its lock released and discarded
    assert {k: v for k, v in snapshot(store).items() if not k.startswith(".locks")} == before


@pytest.mark.parametrize("target,words", [
    ("runs", ["runs is the runs root itself"]),
    ("runs/", ["the runs root itself"]),
    ("runs/.", ["the runs root itself"]),
    (".", ["is outside --runs runs"]),
    ("runs/..", ["is outside --runs runs"]),
    ("runs/.locks", ["internal folder .locks"]),
    ("runs/.sweeps/2025-01-01", ["internal folder .sweeps"]),
    ("runs/sweep", ["runs/sweep is not a run directory"]),  # holds runs, is none
    ("runs/b0_s0/checkpoints", ["is not a run directory"]),
    ("runs/b0_s0/.hydra", ["internal folder .hydra"]),
    ("outside_run", ["outside_run is outside --runs runs"]),
    ("runs/link_out", ["is outside --runs runs (a symlink pointing there)"]),
    ("runs/nope", ["runs/nope: no such run directory"]),
])
def test_rm_refuses_anything_but_a_run_below_the_runs_root(store, capsys, target, words):
    write_run(store.parent, "outside_run")
    os.symlink(store.parent / "outside_run", store / "link_out")
    before = snapshot(store.parent)
    rc, out, err = cli(["rm", "runs/b0_s0", target, "--yes"], capsys)
    one_line_error(rc, err, *words)
    assert out == "" and snapshot(store.parent) == before  # the valid run stays too
    assert not (store / ".locks").exists() or list((store / ".locks").iterdir()) == []


def test_rm_through_a_link_inside_the_store_removes_the_run_and_the_link(store, capsys):
    os.symlink("b0_s0", store / "alias")
    rc, out, err = cli(["rm", "runs/alias", "--yes"], capsys)
    assert rc == 0, err
    assert not (store / "b0_s0").exists() and not os.path.lexists(store / "alias")


def test_rm_of_another_store_with_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / "elsewhere", "r1")
    rc, _, err = cli(["rm", "elsewhere/r1", "--yes"], capsys)  # default --runs runs is absent
    one_line_error(rc, err, "--runs 'runs' does not exist")
    assert (tmp_path / "elsewhere" / "r1").is_dir()
    rc, _, err = cli(["rm", "r1", "--runs", "elsewhere", "--yes"], capsys)
    assert rc == 0 and not (tmp_path / "elsewhere" / "r1").exists(), err


# --------------------------------------------------------------------------- a real run


def test_a_real_run_listed_diffed_and_removed_from_the_shell(tmp_path):
    args = ["debug=tiny", "logger=none", f"paths.data={tmp_path / 'data'}"]
    trained = run_cli(args, tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    (run,) = run_dirs(tmp_path / "runs")
    listed = run_cli(["list", "--json", "--where", "training.epochs=1"], tmp_path,
                     module="lastexp.runs")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    metrics = json.loads((run / "metrics.json").read_text())
    assert row["path"] == f"runs/{run.name}" and row["status"] == "completed"
    assert (row["model"], row["seed"], row["debug"], row["best_top1"]) == (
        metrics["model"], metrics["seed"], "tiny", metrics["best_top1"])
    copy = tmp_path / "runs" / "copy"
    copy.mkdir()
    (copy / ".hydra").mkdir()
    cfg = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    cfg["optimizer"]["lr"] = 0.05
    (copy / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    diff = run_cli(["diff", str(run), "runs/copy", "--json"], tmp_path, module="lastexp.runs")
    assert json.loads(diff.stdout) == [{"key": "optimizer.lr", "a": 0.1, "b": 0.05}]
    refused = run_cli(["rm", f"runs/{run.name}"], tmp_path, module="lastexp.runs")
    assert refused.returncode == 2 and run.is_dir()  # no terminal, no --yes
    gone = run_cli(["rm", f"runs/{run.name}", "--yes"], tmp_path, module="lastexp.runs")
    assert gone.returncode == 0 and not run.exists(), gone.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["copy"]
