"""Preprocessing is atomic as a whole (the run store issue): ``python -m lastexp.preprocess``
SIGKILLed anywhere in the synthetic corpus's generation or the cache's build, then run again,
leaves no temporary folder (``raw.tmp-*``, ``.tmp-*``) and the same cache, byte for byte, as a
build that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.resume

HARNESS = Path(__file__).with_name("preprocess_kill_harness.py")
ARGS = ["dataset.synthetic.samples_per_class=8", "dataset.synthetic.min_frames=20",
        "dataset.synthetic.max_frames=60"]
KILLS = ["write:3", "write:60", "corpus:1", "save:1", "save:4", "save:6", "summary:1"]


def files(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (lock files aside) and its bytes; the cache folder's name and
    summary.json's raw_dir and cache_key hold the data root's path, so they are left out."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.endswith(".lock"):
            continue
        rel = p.relative_to(root).parts
        if rel[0] == "cache":
            rel = ("cache", rel[1].rsplit("-", 1)[0], *rel[2:])
        content = p.read_bytes()
        if p.name == "summary.json":
            summary = json.loads(content)
            summary.pop("raw_dir"), summary.pop("cache_key")
            content = json.dumps(summary, sort_keys=True).encode()
        out["/".join(rel)] = content
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("uninterrupted")
    r = run_cli([*ARGS, f"paths.data={root / 'data'}"], root, module="lastexp.preprocess")
    assert r.returncode == 0, r.stderr
    return files(root / "data")


@pytest.mark.parametrize("kill", KILLS)
def test_a_killed_preprocess_is_rebuilt_whole(tmp_path, reference, kill):
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LASTEXP_KILL": kill}
    killed = subprocess.run([sys.executable, str(HARNESS), *ARGS, f"paths.data={data}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert killed.returncode == -signal.SIGKILL, (kill, killed.stderr[-1500:])
    left = [p.name for p in data.rglob("*") if ".tmp-" in p.name]
    assert left, f"{kill}: the kill left nothing to clean (it came too late)"
    again = run_cli([*ARGS, f"paths.data={data}"], tmp_path, module="lastexp.preprocess")
    assert again.returncode == 0, again.stderr
    assert not [p for p in data.rglob("*") if ".tmp-" in p.name]
    got = files(data)
    assert got.keys() == reference.keys()
    assert [k for k in got if got[k] != reference[k]] == []
