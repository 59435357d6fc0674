"""A raw folder entry that is not a regular file (a FIFO named ``x.skeleton``) is skipped and
reported, never opened: opening a FIFO without a writer blocks forever."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from lastexp.config import SyntheticConfig
from lastexp.data.arrays import NOT_REGULAR
from lastexp.data.synthetic import ensure_corpus
from tests.conftest import run_cli


@pytest.mark.skipif(not hasattr(os, "mkfifo") or sys.platform == "win32", reason="needs mkfifo")
def test_a_fifo_in_the_raw_folder_is_skipped_not_opened(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(ensure_corpus(tmp_path / "gen", SyntheticConfig(
        samples_per_class=6, min_frames=12, max_frames=16)), raw)
    fifo = raw / "S001C001P001R001A001.skeleton"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    r = run_cli([f"dataset.raw_dir={raw}", f"paths.data={tmp_path / 'data'}"], tmp_path,
                module="lastexp.preprocess", timeout=120)  # a hang fails here, not forever
    assert r.returncode == 0, r.stderr[-1500:]
    assert "Traceback" not in r.stderr
    (summary,) = (tmp_path / "data" / "cache").glob("*/summary.json")
    skipped = json.loads(summary.read_text())["skipped"]
    assert skipped[fifo.name] == NOT_REGULAR
    assert f"{fifo.name}: {NOT_REGULAR}" in r.stdout
