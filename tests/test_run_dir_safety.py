"""A mistake in a command never deletes or writes outside the run it names.

The commands are the ones that deleted data before: an invalid value with a run directory that
is the runs root, outside it, or the current directory.
"""

import hashlib
from pathlib import Path

import pytest

from lastexp.runstore import RunDir
from lastexp.runstore.guard import remove_added
from tests.conftest import run_cli


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "runs" / "done_run").mkdir(parents=True)
    (tmp_path / "runs" / "done_run" / "metrics.json").write_text('{"status": "completed"}')
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "notes.txt").write_text("keep me")
    (tmp_path / "train.py").write_text("print('my source')")
    return tmp_path


@pytest.mark.parametrize("args,says", [
    (["run_name=.", "optimizer.lr=-1"], "optimizer.lr"),  # the bad value is named first
    (["run_name=."], "is the runs root"),
    (["run_name=../victim", "optimizer.lr=-1"], "optimizer.lr"),
    (["run_name=../victim"], "outside"),
    (["run_name=../x", "fresh=true"], "outside"),
    (["hydra.run.dir=.", "optimizer.lr=-1"], "optimizer.lr"),
    (["hydra.run.dir=."], "outside"),
    (["hydra.run.dir=victim", "debug=tiny"], "outside"),
])
def test_run_dir_outside_the_store_is_refused(workdir, args, says):
    before = snapshot(workdir)
    r = run_cli([*args, "logger=none"], workdir)
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert says in line
    if says != "optimizer.lr":
        assert "paths.runs" in line and "run_name=" in line
    assert snapshot(workdir) == before
    assert not (workdir / "x").exists() and not (workdir / ".hydra").exists()


def test_cleanup_keeps_anything_the_command_did_not_write(tmp_path):
    mine = tmp_path / "fresh_run"
    (mine / ".hydra").mkdir(parents=True)
    for f in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (mine / ".hydra" / f).write_text("x")
    remove_added(RunDir(mine), set())  # all of it written by the failed command
    assert not mine.exists()
    theirs = tmp_path / "someone"
    (theirs / ".hydra").mkdir(parents=True)
    (theirs / ".hydra" / "config.yaml").write_text("x")
    (theirs / "data.csv").write_text("1,2")
    remove_added(RunDir(theirs), {".hydra", "data.csv"})  # both there before the command
    assert (theirs / "data.csv").read_text() == "1,2" and (theirs / ".hydra").is_dir()


def test_a_run_being_trained_is_locked(tmp_path):
    from lastexp.runstore import run_lock

    runs = tmp_path / "runs"
    run = runs / "busy"
    run.mkdir(parents=True)
    with run_lock(run, runs):
        r = run_cli(["debug=tiny", "logger=none", "run_name=busy", f"paths.runs={runs}",
                     f"paths.data={tmp_path / 'data'}"], tmp_path)
        assert r.returncode == 2
        line = r.stderr.strip()
        assert "\n" not in line and "being trained by another command" in line
        assert not (run / "metrics.json").exists() and not (run / "checkpoints").exists()
    with run_lock(run, runs):  # released when the holder leaves: it can be taken again
        pass


def test_skipped_command_leaves_the_run_byte_identical(tmp_path):
    args = ["debug=tiny", "logger=none", "training.epochs=1", f"paths.runs={tmp_path / 'runs'}",
            f"paths.data={tmp_path / 'data'}"]
    first = run_cli(args, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    (run,) = [p.parent for p in (tmp_path / "runs").rglob("metrics.json")]
    assert (run / ".hydra" / "config.yaml").is_file() and (run / ".hydra" / "hydra.yaml").is_file()
    before = snapshot(run)
    again = run_cli([*args, "training.num_workers=0"], tmp_path)  # a volatile key differs
    assert again.returncode == 0 and "already completed" in again.stdout
    assert snapshot(run) == before


def test_each_sweep_keeps_its_own_record(tmp_path, shared_data):
    """Hydra's multirun.yaml goes to <paths.runs>/.sweeps/<time>/ of the sweep that wrote it: a
    sweep, a failed sweep and a rerun leave the root's files (an older lastexp's multirun.yaml
    too) and the other sweeps' records byte-identical, and their jobs' run directories are
    where a single run's is, <paths.runs>/<name of the config>."""
    from omegaconf import OmegaConf

    runs = tmp_path / "runs"
    (runs / ".sweeps" / "older").mkdir(parents=True)
    (runs / ".sweeps" / "older" / "multirun.yaml").write_text("hydra: {sweep: older}\n")
    (runs / "multirun.yaml").write_text("hydra: {sweep: before .sweeps}\n")
    (runs / "notes.md").write_text("my notes")
    common = ["debug=tiny", "logger=none", "model=last_e_nano", f"paths.runs={runs}",
              f"paths.data={shared_data}"]
    records: list[Path] = []
    for extra, ok in ((["seed=1"], True), (["seed=1", "dataset.raw_dir=/nonexistent"], False),
                      (["seed=1"], True)):  # the third: the first again, its job skipped
        before = snapshot(runs)
        r = run_cli(["--multirun", *common, *extra], tmp_path)
        assert (r.returncode == 0) == ok, r.stderr[-2000:]
        after = snapshot(runs)
        # nothing there before is changed (a lock file is the run store's, rewritten by each
        # command that takes the lock)
        assert {k: after[k] for k in before if not k.startswith(".locks/")} == {
            k: v for k, v in before.items() if not k.startswith(".locks/")}
        new = sorted(set((runs / ".sweeps").iterdir()) - {runs / ".sweeps" / "older", *records})
        assert len(new) == 1, new  # a record of its own ...
        records.append(new[0])
        saved = OmegaConf.load(new[0] / "multirun.yaml")  # ... of this very sweep
        assert list(saved.hydra.overrides.task)[-len(extra):] == extra
        assert all(k.startswith((".sweeps/", ".locks/", "last_e_nano_joint_synthetic_s1_"))
                   for k in set(after) - set(before)), sorted(set(after) - set(before))
    (run,) = [p for p in runs.iterdir() if (p / "checkpoints").is_dir()]
    assert run.parent == runs
    single = run_cli(common + ["seed=1"], tmp_path)  # the run a single command names
    assert single.returncode == 0, single.stderr[-1000:]
    assert f"already completed, skipping: {run}" in single.stdout, single.stdout[-1000:]
