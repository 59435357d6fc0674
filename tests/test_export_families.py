"""INT8 and ONNX export of every model family, every component on (B7, L5)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("families")
    common = ["debug=tiny", "logger=none", f"paths.runs={root / 'runs'}",
              f"paths.data={shared_data}"]
    for extra in (["--multirun", "ablation=B7,L5"],
                  ["--multirun", "model=last_e_nano,last_v2_base"]):
        out = run_cli([*extra, *common], root)
        assert out.returncode == 0, out.stderr[-2000:]
    return sorted((root / "runs").glob("*_s1_*"))


@pytest.mark.slow
def test_every_family_exports(family_runs):
    models = set()
    for run in family_runs:
        out = run_cli([str(run)], run.parent, module="lastexp.export", timeout=900)
        assert out.returncode == 0, out.stderr[-2000:]
        m = json.loads((run / "metrics.json").read_text())
        assert m["int8_bytes"] > 0 and 0 <= m["int8_top1"] <= 100
        assert m["onnx_max_abs_diff"] < 1e-3
        assert (run / "export" / "model.onnx").exists()
        models.add(m["model"])
    assert models == {"last_base", "last_lite_small", "last_e_nano", "last_v2_base"}
