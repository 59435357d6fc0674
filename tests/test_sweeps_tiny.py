"""Every row of the paper's three ablation sweeps trains to completion under ``debug=tiny``,
through the CLI, as a researcher checks a sweep before sending it to the cluster."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CONF, run_cli

ROWS = {p.stem for p in (CONF / "ablation").glob("*.yaml")}


@pytest.mark.slow
def test_every_row_of_the_paper_sweeps_finishes_under_debug_tiny(tmp_path, shared_data):
    common = ["debug=tiny", "logger=none", "run_dependencies=true",
              f"paths.runs={tmp_path / 'runs'}", f"paths.data={shared_data}"]
    for sweep in ("base", "lite", "preprocessing"):
        out = run_cli(["--multirun", f"+sweep={sweep}", *common], tmp_path, timeout=1800)
        assert out.returncode == 0, f"+sweep={sweep}: {out.stderr[-3000:]}"
    done, other = set(), []
    for path in (tmp_path / "runs").rglob("metrics.json"):
        m = json.loads(path.read_text())
        if m.get("status") == "completed" and m.get("ablation"):
            done.add(m["ablation"])
        elif m.get("status") != "completed":
            other.append((path.parent.name, m.get("status"), m.get("error")))
    assert not other, other
    assert done == ROWS, sorted(ROWS - done)
