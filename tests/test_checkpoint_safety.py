"""A crafted checkpoint never runs its code: every place lastexp opens a checkpoint reads it
with ``weights_only=True`` and refuses anything but tensors and plain containers on one line."""

import json
import os
from pathlib import Path

import pytest
import torch

from lastexp.errors import ConfigError
from lastexp.train.checkpoint import load_checkpoint
from tests.conftest import run_cli


class Payload:
    """Unpickling this runs ``os.system`` (what a hostile file would do)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 1, "evil": Payload(marker)}, path)
    return path


def completed_run(root: Path, marker: Path) -> Path:
    run = root / "runs" / "planted"
    plant(run / "checkpoints" / "best.pt", marker)
    plant(run / "checkpoints" / "last.pt", marker)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("model:\n  name: last_lite_nano\n")
    (run / "metrics.json").write_text(json.dumps({"status": "completed", "model":
                                                  "last_lite_nano", "best_top1": 50.0}))
    return run


def test_load_checkpoint_refuses_a_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError, match="is refused"):
        load_checkpoint(plant(tmp_path / "x.pt", marker))
    assert not marker.exists()


def one_line_refusal(r) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr
    return line


@pytest.mark.parametrize("where", ["init_from", "resume", "teacher", "export"])
def test_planted_checkpoint_executes_nothing(tmp_path, where):
    marker = tmp_path / "pwned"
    run = completed_run(tmp_path, marker)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    common = ["debug=tiny", "logger=none", f"paths.runs={tmp_path / 'runs'}",
              f"paths.data={tmp_path / 'data'}"]
    if where == "init_from":
        r = run_cli([*common, f"init_from={run / 'checkpoints' / 'best.pt'}"], tmp_path)
    elif where == "resume":
        plant(tmp_path / "runs" / "resumed" / "checkpoints" / "last.pt", marker)
        r = run_cli([*common, "run_name=resumed"], tmp_path)
    elif where == "teacher":
        r = run_cli([*common, "model=last_lite_nano", "distill=from_base",
                     f"distill.teacher={run}"], tmp_path)
    else:
        r = run_cli([str(run)], tmp_path, module="lastexp.export")
    line = one_line_refusal(r)
    assert "refused" in line and ".pt" in line
    assert not marker.exists()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
