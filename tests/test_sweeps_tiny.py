"""Every row of the paper's three ablation sweeps trains to completion under ``debug=tiny``,
through the CLI, as a researcher checks a sweep before sending it to the cluster."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from lastexp import catalog
from lastexp.runstore import is_completed
from tests.conftest import run_cli

SWEEPS = tuple(catalog.TABLES)  # sweeps/<table>.yaml lists its table's catalog rows
ROWS = set(catalog.ids())


@pytest.mark.slow
def test_every_row_of_the_paper_sweeps_finishes_under_debug_tiny(tmp_path, shared_data):
    common = ["debug=tiny", "logger=none", "run_dependencies=true",
              f"paths.runs={tmp_path / 'runs'}", f"paths.data={shared_data}"]
    for sweep in SWEEPS:
        out = run_cli(["--multirun", f"+sweep={sweep}", *common], tmp_path, timeout=1800)
        assert out.returncode == 0, f"+sweep={sweep}: {out.stderr[-3000:]}"
    done, other = set(), []
    for path in (tmp_path / "runs").rglob("metrics.json"):
        m = json.loads(path.read_text())
        if is_completed(m) and m.get("ablation"):
            done.add(m["ablation"])
        if m.get("ablation") == "B13":
            check_selection_rules(path.parent, m)
        elif not is_completed(m):
            other.append((path.parent.name, m.get("status"), m.get("error")))
    assert not other, other
    assert done == ROWS, sorted(ROWS - done)


def check_selection_rules(run_dir, m: dict) -> None:
    """SPEC §5: best_top1 is the best epoch of the trained weights (and best.pt holds that
    epoch), final_top1 the weights the schedule ends with, swa_top1 the averaged model."""
    with open(run_dir / "history.csv") as f:
        val = [float(r["val_top1"]) for r in csv.DictReader(f)]
    assert m["best_top1"] == pytest.approx(max(val), abs=1e-3)  # history keeps 4 decimals
    assert m["best_epoch"] == val.index(max(val)) + 1
    assert m["final_top1"] == pytest.approx(val[-1], abs=1e-3)
    assert "swa_top1" in m and "best_is_swa" not in m
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["best_epoch"] == m["best_epoch"]
    assert (run_dir / "checkpoints" / "swa.pt").is_file()
