"""INT8 + ONNX export of a real (tiny) run directory."""

from __future__ import annotations

import pytest
import torch

from lastexp.export import ExportError, export_onnx, export_run
from lastexp.io import read_json
from tests.conftest import run_cli

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One finished debug=tiny LAST-E nano run (~15 s on 2 cores)."""
    work = tmp_path_factory.mktemp("export")
    proc = run_cli(["debug=tiny", "model=last_e_nano", "logger=none", "paths.runs=runs",
                    "paths.data=data"], cwd=work, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = [p for p in (work / "runs").iterdir() if (p / "metrics.json").exists()]
    return run


def test_export_run_writes_artifacts_and_metrics(run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths.data=data is resolved against the run's launch dir
    added = export_run(run_dir)
    out = run_dir / "export"
    assert (out / "model.onnx").is_file() and (out / "model_int8.pt").is_file()
    assert added["int8_bytes"] == (out / "model_int8.pt").stat().st_size
    assert added["onnx_max_abs_diff"] < 1e-4
    assert added["onnx_opset"] >= 13
    assert added["int8_quantized"].get("Linear", 0) >= 1  # the classifier
    assert added["int8_quantized"].get("Conv2d (float)", 0) > 0  # honest: convs stay float
    assert added["int8_within_limit"] == (added["int8_drop"] < 1.0)
    metrics = read_json(run_dir / "metrics.json")
    for key in ("int8_bytes", "int8_top1", "onnx_max_abs_diff", "fp32_top1_export"):
        assert metrics[key] == added[key]
    assert metrics["status"] == "completed"
    # the exported graph takes any batch size
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 16, 25, 1).numpy()
    assert sess.run(None, {sess.get_inputs()[0].name: x})[0].shape == (5, metrics["num_classes"])


def test_cli_error_is_one_line_exit_2(tmp_path):
    proc = run_cli([str(tmp_path / "missing")], cwd=tmp_path, module="lastexp.export",
                   timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr


def test_unsupported_operator_is_named(tmp_path):
    class Eig(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eigh(x @ x.transpose(-1, -2))[0]

    with pytest.raises(ExportError, match=r"'eig'.*linalg_eigh"):
        export_onnx(Eig(), torch.randn(2, 3, 3), tmp_path / "m.onnx", name="eig")
