"""Static INT8 + ONNX export of a real (tiny) run directory, and its options."""

from __future__ import annotations

import hashlib
import shutil
import sys

import numpy as np
import pytest
import torch

import lastexp.export.int8 as export_mod  # where the INT8 writer looks up onnx_top1
from lastexp.errors import ConfigError
from lastexp.export import (
    FORMATS,
    RUN_KEYS,
    ExportError,
    ExportInputs,
    ExportOptions,
    Format,
    export_onnx,
    export_run,
    int8_weight_bytes,
    main,
    parse_options,
    quantize_onnx_int8,
    save_lean,
)
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


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """export_run with the default options, the INT8 evaluation spied on."""
    calls = []
    real = export_mod.onnx_top1

    def spy(path, batches):
        batches = list(batches)
        top1 = real(path, batches)
        calls.append((path, sum(len(y) for _, y in batches), top1))
        return top1

    mp = pytest.MonkeyPatch()
    mp.setattr(export_mod, "onnx_top1", spy)
    mp.chdir(tmp_path_factory.mktemp("cwd"))  # paths.data=data resolves via the launch dir
    try:
        added = export_run(run_dir, ExportOptions(max_drop=100.0))
    finally:
        mp.undo()
    return added, calls


def test_export_run_writes_artifacts_and_metrics(run_dir, exported):
    added, _ = exported
    out = run_dir / "export"
    assert (out / "model.onnx").is_file() and (out / "model_int8.onnx").is_file()
    assert added["int8_bytes"] == (out / "model_int8.onnx").stat().st_size
    assert added["fp32_bytes"] == (out / "model.onnx").stat().st_size
    assert added["int8_bytes"] < added["fp32_bytes"]  # (tiny widths: graph, adjacencies weigh)
    assert 0 < added["int8_weight_bytes"] < added["int8_bytes"]
    assert added["onnx_max_abs_diff"] < 1e-4
    assert added["onnx_opset"] == 13 and added["onnx_exporter"] == "torchscript"
    assert added["int8_quantized"].get("QLinearConv", 0) > 0  # the convolutions are int8 now
    assert added["int8_quantized"].get("QGemm", 0) + added["int8_quantized"].get(
        "QLinearMatMul", 0) >= 1  # and the classifier
    assert "Conv (float)" not in added["int8_quantized"]
    assert added["int8_within_limit"] == (added["int8_drop"] < 100.0)
    assert added["int8_drop"] == pytest.approx(added["fp32_top1_export"] - added["int8_top1"])
    metrics = read_json(run_dir / "metrics.json")
    for key in ("int8_bytes", "int8_top1", "onnx_max_abs_diff", "fp32_top1_export",
                "onnx_opset", "int8_weight_bytes", "int8_within_limit"):
        assert metrics[key] == added[key]
    assert metrics["status"] == "completed"
    # both exported graphs take any batch size
    import onnxruntime as ort

    for f in ("model.onnx", "model_int8.onnx"):
        sess = ort.InferenceSession(str(out / f), providers=["CPUExecutionProvider"])
        x = torch.randn(5, 3, 16, 25, 1).numpy()
        assert sess.run(None, {"x": x})[0].shape == (5, metrics["num_classes"])


def test_int8_top1_comes_from_running_the_int8_file(run_dir, exported):
    added, calls = exported
    (path, seen, top1), = calls
    # measured in the folder that then replaced export/ as a whole (an export is atomic)
    assert path.name == "model_int8.onnx" and path.parent.parent == run_dir
    assert added["int8_path"] == str(run_dir / "export" / "model_int8.onnx")
    assert seen == read_json(run_dir / "metrics.json")["n_test"]  # the whole test split
    assert added["int8_top1"] == top1


def test_drop_over_max_drop_exits_nonzero_and_records_it(run_dir, exported, monkeypatch, capsys,
                                                         tmp_path):
    added, _ = exported
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(export_mod, "onnx_top1",
                        lambda path, batches: added["fp32_top1_export"] - 2.5)
    code = main([str(run_dir), "export.max_drop=1.0", "export.calibration=8"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and code != 2
    assert err.count("\n") == 0
    assert "2.50 points" in err and "export.max_drop=1" in err
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["int8_within_limit"] is False and metrics["int8_drop"] == pytest.approx(2.5)
    assert metrics["calibration_samples"] <= 8


def test_tflite_without_the_converter_is_one_line(run_dir, monkeypatch, capsys):
    for module in ("litert_torch", "ai_edge_torch"):
        monkeypatch.setitem(sys.modules, module, None)  # import -> ImportError
    before = (run_dir / "metrics.json").read_bytes()
    assert main([str(run_dir), "export.tflite=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "litert-torch" in err and "lastexp[tflite]" in err
    assert (run_dir / "metrics.json").read_bytes() == before  # nothing else touched


@pytest.mark.parametrize(("arg", "named"), [
    ("export.calibraton=5", "export.calibraton"),
    ("calibration=5", "calibration"),
    ("export.opset=abc", "export.opset"),
    ("export.opset=11", "export.opset"),
    ("export.max_drop=-1", "export.max_drop"),
    ("export.tflite=maybe", "export.tflite"),
    ("export.calibration=0", "export.calibration"),
])
def test_bad_option_is_refused_naming_the_key(arg, named, tmp_path, capsys):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        parse_options([arg])
    assert main([str(tmp_path), arg]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and named in err and "Traceback" not in err


def test_options_parse_typed():
    o = parse_options(["export.calibration=200", "export.max_drop=0.5", "export.opset=17",
                       "export.tflite=true"])
    assert (o.calibration, o.max_drop, o.opset, o.tflite) == (200, 0.5, 17, True)
    assert parse_options([]) == ExportOptions(calibration=1000, max_drop=1.0, opset=13)


def test_cli_error_is_one_line_exit_2(tmp_path):
    proc = run_cli([str(tmp_path / "missing"), "export.opset=13"], cwd=tmp_path,
                   module="lastexp.export", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
    proc = run_cli([str(tmp_path), "export.opsett=13"], cwd=tmp_path, module="lastexp.export",
                   timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "export.opsett" in proc.stderr and "Traceback" not in proc.stderr


def test_unsupported_operator_is_named(tmp_path):
    class Eig(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eigh(x @ x.transpose(-1, -2))[0]

    with pytest.raises(ExportError, match=r"'eig'.*linalg_eigh"):
        export_onnx(Eig(), torch.randn(2, 3, 3), tmp_path / "m.onnx", name="eig")


def test_operator_the_opset_cannot_express_is_named(tmp_path):
    class Spectrum(torch.nn.Module):  # the FFT gate's op: ONNX has DFT from opset 17 on
        def forward(self, x):
            return torch.fft.rfft(x, dim=-1).abs()

    with pytest.raises(ExportError, match=r"opset 13 cannot express operator aten::fft_rfft"):
        export_onnx(Spectrum(), torch.randn(2, 8), tmp_path / "m.onnx", opset=13, name="fft")


@pytest.mark.parametrize(("name", "limit"), [("last_lite_nano", 0.35), ("last_lite_small", 0.30)])
def test_int8_file_size_at_real_widths(name, limit, tmp_path):
    """The real default widths (60 classes), random init: the size does not depend on values.
    The INT8 file is <= 30% (small) / 35% (nano) of the fp32 ONNX file, both lean; its int8
    weights are about one byte per parameter; the lean graph computes exactly what the
    exporter's graph computes (shift index tables stored narrow, names shortened)."""
    import onnxruntime as ort

    from lastexp.models import build_model, count_params

    torch.manual_seed(0)
    model = build_model(name, num_classes=60).eval()
    raw, fp32, int8 = tmp_path / "raw.onnx", tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export_onnx(model, torch.randn(2, 3, 64, 25, 1), raw, opset=13, name=name)
    save_lean(raw, fp32)
    calib = [np.random.default_rng(0).standard_normal((4, 3, 64, 25, 1), dtype=np.float32)]
    quantize_onnx_int8(raw, int8, calib)
    ratio = int8.stat().st_size / fp32.stat().st_size
    assert ratio <= limit, f"{name}: int8 {int8.stat().st_size} B / fp32 {fp32.stat().st_size}"
    per_param = int8_weight_bytes(int8) / count_params(model)
    assert 0.85 <= per_param <= 1.0
    x = torch.randn(3, 3, 64, 25, 1).numpy()
    runs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"x": x})
            for p in (raw, fp32)]
    assert np.array_equal(runs[0][0], runs[1][0])


@pytest.mark.parametrize("flags", [{}, {"body_region_shift": True}])
def test_tflite_form_of_the_shift_is_bit_identical(flags):
    from lastexp.export.tflite import _FlatShift, tflite_friendly
    from lastexp.models import build_model

    model = build_model("last_lite_nano", num_classes=60, **flags).eval()
    x = torch.randn(3, 3, 16, 25, 1)
    twin = tflite_friendly(model, x[:2])
    assert sum(isinstance(m, _FlatShift) for m in twin.modules()) == 4
    with torch.no_grad():
        assert torch.equal(model(x), twin(x))


def _exported_bytes(run) -> dict[str, object]:
    """What an export leaves that must not vary: both ONNX files' sha256, and export.json and
    metrics.json less the seconds it took."""
    out = {f: hashlib.sha256((run / "export" / f).read_bytes()).hexdigest()
           for f in ("model.onnx", "model_int8.onnx")}
    for name, path in (("export.json", run / "export" / "export.json"),
                       ("metrics.json", run / "metrics.json")):
        data = read_json(path)
        data.pop("export_seconds")
        out[name] = {k: v.replace(str(run), "RUN") if isinstance(v, str) else v
                     for k, v in data.items()}
    return out


def test_two_exports_of_one_run_are_byte_identical(run_dir, tmp_path, monkeypatch):
    """The same finished run exported twice (two copies of it): the same files, byte for byte,
    and the same keys in export.json and metrics.json (``export_seconds`` aside)."""
    monkeypatch.chdir(tmp_path)  # paths.data=data resolves via the launch dir
    seen = []
    for copy in ("a", "b"):
        run = tmp_path / copy / run_dir.name
        shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("export"))
        export_run(run, ExportOptions(max_drop=100.0, calibration=16))
        seen.append(_exported_bytes(run))
    assert seen[0] == seen[1]
    assert seen[0]["export.json"]["calibration_samples"] == 16


def test_the_default_table_declares_the_keys_an_export_writes(exported):
    added, _ = exported
    assert [f.name for f in FORMATS] == ["onnx", "int8", "tflite"]  # the order they are written
    declared = {k for f in FORMATS if f.name != "tflite" for k in f.keys}
    assert set(added) == declared | set(RUN_KEYS)


def test_a_new_format_is_one_table_row(run_dir, exported, tmp_path, monkeypatch):
    """A format reading what an earlier one wrote, walked by export_run from its row alone;
    formats left out of the table write nothing and their keys of an earlier export go."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / run_dir.name
    shutil.copytree(run_dir, run)
    assert "int8_bytes" in read_json(run / "metrics.json")  # the module's export was there

    def write_sizes(inputs: ExportInputs) -> dict[str, object]:
        (inputs.staged / "sizes.txt").write_text(str(inputs.files["onnx"].stat().st_size))
        return {"sizes_onnx_bytes": inputs.files["onnx"].stat().st_size}

    onnx_row = next(f for f in FORMATS if f.name == "onnx")
    table = (onnx_row, Format("sizes", write_sizes, ("sizes_onnx_bytes",), needs=("onnx",)))
    added = export_run(run, ExportOptions(calibration=8), formats=table)
    assert sorted(p.name for p in (run / "export").iterdir()) == [
        "export.json", "model.onnx", "sizes.txt"]
    assert added["sizes_onnx_bytes"] == (run / "export" / "model.onnx").stat().st_size
    metrics = read_json(run / "metrics.json")
    assert metrics["sizes_onnx_bytes"] == added["sizes_onnx_bytes"]
    assert not any(k.startswith("int8_") for k in metrics)  # no INT8 file: no INT8 keys


def test_a_format_before_the_one_it_needs_is_refused(run_dir):
    int8_row = next(f for f in FORMATS if f.name == "int8")
    with pytest.raises(ExportError, match="int8 export needs the onnx export"):
        export_run(run_dir, ExportOptions(), formats=(int8_row,))
