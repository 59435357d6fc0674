"""The figures' painting: every queued PNG is written whether one process paints them or two,
and a helper process that fails leaves no figure missing."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lastexp.results import plots


def mark(figures: object, path: Path, parent: int, fail_in_helper: bool = False) -> None:
    """A paint job that writes the id of the process that painted it."""
    if fail_in_helper and os.getpid() != parent:
        raise RuntimeError("helper fails")
    time.sleep(0.05)  # long enough for the helper to take its share
    path.write_text(str(os.getpid()))


def jobs(folder: Path, n: int, fail_in_helper: bool = False) -> list[plots.Job]:
    return [(mark, (folder / f"{i}.txt", os.getpid(), fail_in_helper)) for i in range(n)]


def painters(folder: Path) -> set[int]:
    return {int(p.read_text()) for p in folder.iterdir()}


def test_every_job_is_painted_by_one_or_two_processes(tmp_path: Path):
    (tmp_path / "one").mkdir()
    plots.render(None, jobs(tmp_path / "one", 3), split_from=4)  # below the split: here
    assert len(list((tmp_path / "one").iterdir())) == 3
    assert painters(tmp_path / "one") == {os.getpid()}
    (tmp_path / "two").mkdir()
    plots.render(None, jobs(tmp_path / "two", 9), split_from=4)
    assert len(list((tmp_path / "two").iterdir())) == 9
    if plots._cpus() >= 2 and hasattr(os, "fork"):
        assert len(painters(tmp_path / "two")) == 2  # the helper took some


def test_a_failed_helper_leaves_no_figure_missing(tmp_path: Path):
    plots.render(None, jobs(tmp_path, 9, fail_in_helper=True), split_from=4)
    assert len(list(tmp_path.iterdir())) == 9
    assert painters(tmp_path) == {os.getpid()}
