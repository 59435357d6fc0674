"""The file system side of the run store: atomic writes follow the umask, a full disk is one
line with the target intact, folders are swapped in as wholes, lock files are never followed
through a link, and a failed SLURM job is one line naming the job and its log."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from submitit.core.utils import FailedJobError, UncompletedJobError

from hydra_plugins.lastexp_launcher.slurm_launcher import (
    SlurmLauncher,
    failure_message,
    sweep_failure_line,
)
from lastexp import io
from lastexp.runstore.guard import out_dir_problem, run_dir_store_problem
from lastexp.runstore.lock import LockFileError, run_lock


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    io.write_json(tmp_path / "m.json", {"a": 1})
    io.atomic_write(tmp_path / "b.bin", lambda f: f.write(b"xy"), mode="wb")
    with open(tmp_path / "plain", "w"):  # what open() gives a new file: the reference
        pass
    for name in ("m.json", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode
        assert (tmp_path / name).stat().st_mode == (tmp_path / "plain").stat().st_mode


def _full_disk(monkeypatch, after: int = 0):
    """os.write raises ENOSPC once ``after`` bytes went through (as a full disk does)."""
    real, seen = os.write, {"n": 0}

    def write(fd, data):
        if seen["n"] + len(data) > after:
            raise OSError(errno.ENOSPC, "No space left on device")
        seen["n"] += len(data)
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def test_full_disk_is_one_line_and_the_old_file_stays(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "last.pt"
    io.atomic_write(target, lambda f: f.write(b"good epoch 1"), mode="wb")
    _full_disk(monkeypatch, after=4)
    with pytest.raises(io.DiskFullError) as err:
        io.atomic_write(target, lambda f: f.write(b"x" * 5000), mode="wb")
    line = str(err.value)
    assert "\n" not in line and str(target) in line and "needs 5,000 bytes" in line, line
    assert " free)" in line and "free some space" in line
    assert target.read_bytes() == b"good epoch 1"
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.pt"]  # no temp left
    assert io.is_disk_full(err.value) and isinstance(err.value, OSError)


def test_full_disk_inside_a_staged_folder_leaves_the_old_folder(tmp_path, monkeypatch):
    out = tmp_path / "results"
    with io.staged_folder(out) as f:
        io.write_files(f, {"a.md": "old a", "b.md": "old b"})
    _full_disk(monkeypatch, after=3)
    with pytest.raises(io.DiskFullError) as err, io.staged_folder(out) as f:
        io.write_files(f, {"a.md": "new a", "b.md": "new b"})
    assert str(err.value).startswith(f"no space left on the device for {out / 'a.md'} (needs "
                                     "10 bytes")  # the file as the user knows it
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.md": "old a", "b.md": "old b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_staged_folder_swaps_as_a_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user's")
    (out / "a.md").write_text("old")
    with io.staged_folder(out, keep_others=True) as f:
        assert not (f / "a.md").exists() or (f / "a.md").read_text() == "old"
        (f / "a.md").unlink(missing_ok=True)
        io.write_files(f, {"a.md": "new"})
        assert (out / "a.md").read_text() == "old"  # nothing visible before the swap
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.md": "new", "mine.txt": "user's"}
    with pytest.raises(RuntimeError), io.staged_folder(out) as f:
        io.write_files(f, {"a.md": "newer"})
        raise RuntimeError("killed")
    assert (out / "a.md").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_leftovers_of_a_killed_swap_are_removed_or_put_back(tmp_path):
    out = tmp_path / "out"
    half = tmp_path / f"{io.staging_prefix(out)}1234"
    half.mkdir()
    (half / "a.md").write_text("")  # a 0-byte file of a killed run
    old = tmp_path / f"{io.staging_prefix(out)}abcd.old"  # killed between the two renames
    old.mkdir()
    (old / "a.md").write_text("complete old")
    (tmp_path / ".other.tmp-1").mkdir()  # not this folder's: stays
    assert io.remove_staged_leftovers(out) == [half.name]
    assert (out / "a.md").read_text() == "complete old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-1", "out"]


def test_write_files_never_follows_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.md").symlink_to(victim)
    with pytest.raises(OSError):
        io.write_files(tmp_path / "out", {"a.md": "table"})
    assert victim.read_text() == "precious"


def test_a_planted_lock_link_is_refused_and_its_target_untouched(tmp_path):
    runs = tmp_path / "runs"
    (runs / ".locks").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (runs / ".locks" / "newrun.lock").symlink_to(victim)
    with pytest.raises(LockFileError, match="newrun.lock is a link; remove it"):
        with run_lock(runs / "newrun", runs):
            pass
    assert victim.read_text() == "precious"
    problem = run_dir_store_problem(runs / "newrun", runs)
    assert problem and "newrun.lock is a link" in problem


def test_a_lock_folder_that_is_a_link_is_refused(tmp_path):
    runs, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    runs.mkdir()
    elsewhere.mkdir()
    (runs / ".locks").symlink_to(elsewhere)
    with pytest.raises(LockFileError, match=r"\.locks is a link"):
        with run_lock(runs / "r", runs):
            pass
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(("make", "words"), [
    (lambda r: (r / "done" / "metrics.json").write_text("{}"), "inside the run"),
    (lambda r: (r / "done" / "checkpoints").mkdir(parents=True), "inside the run"),
])
def test_a_run_inside_another_run_is_refused(tmp_path, make, words):
    runs = tmp_path / "runs"
    (runs / "done").mkdir(parents=True)
    make(runs)
    assert words in run_dir_store_problem(runs / "done" / "inner", runs)


def test_out_dir_problems(tmp_path):
    runs = tmp_path / "runs"
    (runs / "a").mkdir(parents=True)
    (runs / "a" / "metrics.json").write_text("{}")
    assert "is empty" in out_dir_problem("", "--out")
    assert "root of the file system" in out_dir_problem("/", "--out")
    assert "runs folder itself" in out_dir_problem(runs, "--out", runs_root=runs)
    assert "holds run directories" in out_dir_problem(runs, "--out")
    assert "is a run directory" in out_dir_problem(runs / "a", "--out")
    assert out_dir_problem(runs / "a", "--out", may_be_a_run=True) is None
    assert "inside the run" in out_dir_problem(runs / "a" / "x", "--out")
    assert "keeps for itself" in out_dir_problem(runs / ".sweeps" / "x", "--out")
    assert "keeps for itself" in out_dir_problem(runs / "search", "--out")
    assert out_dir_problem(tmp_path / "search", "--out") is None  # no runs root beside it
    assert out_dir_problem(tmp_path / "results", "--out", runs_root=runs) is None


CANCELLED = ("Job 4242_0 (task: 0) with path /sub/4242_0_0_result.pkl\nhas not produced any "
             "output (state: CANCELLED by 0)\nError stream produced:\n----\nslurmstepd: error: "
             "*** JOB 4243 ON node CANCELLED AT 2026-01-01T00:00:00 ***\n")
FAILED = ("Job (task=0) failed during processing with trace:\n----\nTraceback (most recent "
          "call last):\n  File ...\nhydra_plugins.lastexp_launcher.slurm_launcher.JobFailed: "
          "ConfigError: dataset.raw_dir='/x' is not a folder; point dataset.raw_dir at ...\n")


def test_slurm_failure_messages_name_the_job_its_state_and_its_log():
    line = failure_message("4242_0", CANCELLED, "/sub/4242_0_0_log.err")
    assert line == ("SLURM job 4242_0 ended CANCELLED by 0 without a result (scancel, its time "
                    "limit or its node stopped it); its log: /sub/4242_0_0_log.err")
    line = failure_message("7", FAILED, "/sub/7_0_log.err")
    assert line == ("SLURM job 7 failed: ConfigError: dataset.raw_dir='/x' is not a folder; "
                    "point dataset.raw_dir at ...; its log: /sub/7_0_log.err")
    one = sweep_failure_line(["SLURM job 7 failed: x; its log: l"])
    assert one.startswith("SLURM job 7 failed: x; its log: l; completed jobs are kept")
    two = sweep_failure_line(["a", "b"])
    assert two.startswith("2 SLURM jobs failed: a | b;") and "\n" not in two


class _Job:
    def __init__(self, exc: BaseException) -> None:
        self.job_id, self.exc = "4242_0", exc
        self.paths = type("P", (), {"stderr": Path("/sub/4242_0_0_log.err")})()

    def results(self):
        raise self.exc


@pytest.mark.parametrize(("exc", "words"), [
    (UncompletedJobError(CANCELLED), "ended CANCELLED by 0 without a result"),
    (FailedJobError(FAILED), "failed: ConfigError: dataset.raw_dir='/x'"),
])
def test_a_failed_job_becomes_its_line(exc, words):
    job = type("J", (), {"overrides": ["seed=1"], "after": [], "extra": False})()
    ret = SlurmLauncher._result([job], 0, {0: _Job(exc)})
    msg = str(ret._return_value)
    assert msg.startswith("SLURM job 4242_0 ") and words in msg, msg
    assert msg.endswith("its log: /sub/4242_0_0_log.err") and "\n" not in msg
