"""INT8 post-training quantization and ONNX export of a finished run (seed 001 §5).

    python -m lastexp.export RUN_DIR

Rebuilds the model from ``checkpoints/best.pt`` (else ``last.pt``), evaluates it in fp32 and
after ``torch.ao.quantization.quantize_dynamic(model, {Linear, Conv2d}, qint8)`` on the run's
test split, exports ONNX (dynamic batch axis) and checks onnxruntime against PyTorch. Writes
``<run_dir>/export/{model.onnx, model_int8.pt, export.json}`` and adds ``int8_bytes``,
``int8_top1``, ``int8_drop``, ``int8_within_limit``, ``onnx_max_abs_diff``,
``fp32_top1_export`` to the run's metrics.json.

Honest note: PyTorch's dynamic quantization has int8 kernels for Linear (and RNNs) only; Conv2d
layers are left in float32. ``int8_quantized`` in the metrics lists what was converted, and
``int8_bytes`` is the size of the saved quantized state dict, so for a conv network it stays
close to the fp32 size. Static PTQ with calibration is what would shrink the convolutions.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lastexp.config import ConfigError
from lastexp.train.checkpoint import load_checkpoint

INT8_DROP_LIMIT = 1.0  # seed 001 §5: accuracy drop of INT8 must stay below 1 point
ONNX_OPSET = 18  # the dynamo exporter's native opset; the TorchScript fallback uses 17
ONNX_OPSET_TORCHSCRIPT = 17


class ExportError(RuntimeError):
    """An export that cannot be done; the message names the run, model or operator."""


# --------------------------------------------------------------------------- pieces


def quantize_int8(model: nn.Module) -> tuple[nn.Module, dict[str, int]]:
    """Dynamic INT8 quantization of a copy of ``model``; returns it and, per layer kind, how
    many layers were converted (``Linear``) or left float (``Conv2d (float)``)."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear, nn.Conv2d},
                             dtype=torch.qint8)
    kinds: Counter[str] = Counter()
    for m in q.modules():
        if "quantized.dynamic" in type(m).__module__:
            kinds[type(m).__name__] += 1
        elif isinstance(m, nn.Conv2d):
            kinds["Conv2d (float)"] += 1
    return q, dict(kinds)


def state_dict_bytes(model: nn.Module, path: Path | None = None) -> int:
    """Bytes of ``torch.save(model.state_dict())`` (written to ``path`` when given)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
        return path.stat().st_size
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def _unsupported_op(exc: BaseException) -> str | None:
    text = f"{exc}\n{exc.__cause__ or ''}"
    found = re.findall(r"aten[:.]{1,2}[A-Za-z_][\w.]*", text)
    return found[0] if found else None


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, *, exporter: str = "auto",
    name: str = "model",
) -> dict[str, Any]:
    """Export ``model`` with a dynamic batch axis; input ``x`` (N, C, T, V, M) -> ``logits``.

    ``exporter``: ``dynamo`` (torch.export, opset 18), ``torchscript`` (legacy, opset 17) or
    ``auto`` (dynamo, then torchscript). Failure -> ExportError naming the model and, when the
    exporter says so, the unsupported operator.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    order = {"auto": ["dynamo", "torchscript"], "dynamo": ["dynamo"],
             "torchscript": ["torchscript"]}.get(exporter)
    if order is None:
        raise ValueError(f"exporter={exporter!r} is not one of auto, dynamo, torchscript")
    errors: list[tuple[str, BaseException]] = []
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    for kind in order:
        try:
            onnx_log.setLevel(logging.ERROR)  # "torchvision is not installed" chatter
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                if kind == "dynamo":
                    torch.onnx.export(
                        model, (example,), str(path), dynamo=True, opset_version=ONNX_OPSET,
                        input_names=["x"], output_names=["logits"],
                        dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False,
                        external_data=False,
                    )
                    opset = ONNX_OPSET
                else:
                    torch.onnx.export(
                        model, (example,), str(path), dynamo=False,
                        opset_version=ONNX_OPSET_TORCHSCRIPT, input_names=["x"],
                        output_names=["logits"],
                        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                    )
                    opset = ONNX_OPSET_TORCHSCRIPT
            return {"onnx_exporter": kind, "onnx_opset": opset}
        except Exception as exc:  # noqa: BLE001 - every exporter failure becomes one message
            errors.append((kind, exc))
        finally:
            onnx_log.setLevel(level)
    op = next((o for o in (_unsupported_op(e) for _, e in errors) if o), None)
    first = str(errors[0][1]).strip().splitlines()
    detail = first[0][:200] if first else errors[0][1].__class__.__name__
    what = f"unsupported operator {op}" if op else detail
    raise ExportError(f"ONNX export of model {name!r} failed ({', '.join(k for k, _ in errors)}"
                      f" exporter): {what}")


def onnx_max_abs_diff(model: nn.Module, path: Path, x: torch.Tensor) -> float:
    """Largest |onnxruntime - PyTorch| over the logits of batch ``x``."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError("onnxruntime is not installed; pip install onnxruntime") from exc
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        ref = model.cpu().eval()(x).float().numpy()
    return float(abs(out - ref).max())


# --------------------------------------------------------------------------- the run


def _data_root(run_dir: Path, hydra_cfg: Any) -> Path:
    """``paths.data`` of the run; a relative path is relative to the run's launch directory."""
    from omegaconf import OmegaConf

    root = Path(str(OmegaConf.select(hydra_cfg, "paths.data", default="data")))
    if root.is_absolute():
        return root
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():
        cwd = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.cwd", default=None)
        if cwd and (Path(cwd) / root).exists():
            return Path(cwd) / root
    return root


def export_run(
    run_dir: str | Path,
    *,
    exporter: str = "auto",
    batch_size: int = 64,
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """Export one finished run; returns the keys added to its metrics.json."""
    from omegaconf import OmegaConf

    from lastexp.data import load_data
    from lastexp.data.streams import to_stream
    from lastexp.io import read_json, write_json
    from lastexp.teachers import checkpoint_path, model_from_checkpoint
    from lastexp.train.loop import evaluate

    t0 = time.time()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"run directory {run_dir} does not exist")
    metrics_path = run_dir / "metrics.json"
    try:
        metrics = read_json(metrics_path)
    except (OSError, ValueError):
        raise ExportError(f"{run_dir} has no readable metrics.json") from None
    if metrics.get("status") != "completed":
        raise ExportError(f"{run_dir} has status {metrics.get('status')!r}; export needs a "
                          "completed run")
    ckpt = checkpoint_path(run_dir)
    if ckpt is None:
        raise ExportError(f"{run_dir} has no checkpoints/best.pt or checkpoints/last.pt")
    hydra_cfg_path = run_dir / ".hydra" / "config.yaml"
    if not hydra_cfg_path.is_file():
        raise ExportError(f"{run_dir} has no .hydra/config.yaml (not a lastexp run directory)")
    try:
        state = load_checkpoint(ckpt)
    except ConfigError as exc:
        raise ExportError(str(exc)) from None
    try:
        model = model_from_checkpoint(state).eval()
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ExportError(f"{ckpt}: cannot rebuild the model ({exc})") from None
    name = state.get("model_name", "?")
    cfg = state.get("config") or {}
    hydra_cfg = OmegaConf.load(hydra_cfg_path)
    root = Path(data_root) if data_root is not None else _data_root(run_dir, hydra_cfg)
    data = load_data(cfg["dataset"], cfg["preprocessing"], str(root), seed=int(cfg["seed"]))
    stream = (cfg.get("stream") or {}).get("name") or state.get("stream", "joint")
    loader = torch.utils.data.DataLoader(data.test, batch_size=batch_size, shuffle=False)
    cpu = torch.device("cpu")

    def tf(x: torch.Tensor) -> torch.Tensor:
        return to_stream(x, stream)

    fp32_top1 = evaluate(model, loader, device=cpu, transform=tf)["val_top1"]
    qmodel, kinds = quantize_int8(model)
    int8_top1 = evaluate(qmodel, loader, device=cpu, transform=tf)["val_top1"]
    out_dir = run_dir / "export"
    int8_bytes = state_dict_bytes(qmodel, out_dir / "model_int8.pt")
    fp32_bytes = state_dict_bytes(model)

    x, _ = next(iter(loader))
    x = tf(x)
    example = x[: min(2, len(x))]
    onnx_path = out_dir / "model.onnx"
    how = export_onnx(model, example, onnx_path, exporter=exporter, name=name)
    check = x[: min(len(x), 8)]  # another batch size than the example: the axis is dynamic
    diff = onnx_max_abs_diff(model, onnx_path, check)

    drop = fp32_top1 - int8_top1
    added = {
        "fp32_top1_export": fp32_top1,
        "int8_top1": int8_top1,
        "int8_drop": drop,
        "int8_within_limit": bool(drop < INT8_DROP_LIMIT),
        "int8_bytes": int8_bytes,
        "fp32_bytes": fp32_bytes,
        "int8_quantized": kinds,
        "onnx_max_abs_diff": diff,
        "onnx_path": str(onnx_path),
        **how,
        "export_checkpoint": ckpt.name,
        "export_seconds": time.time() - t0,
    }
    write_json(out_dir / "export.json", added)
    write_json(metrics_path, {**read_json(metrics_path), **added})
    return added


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m lastexp.export",
        description="INT8 (dynamic PTQ) and ONNX export of a finished run into RUN_DIR/export/.",
    )
    parser.add_argument("run_dir")
    parser.add_argument("--exporter", default="auto", choices=["auto", "dynamo", "torchscript"])
    parser.add_argument("--data-root", default=None, help="override the run's paths.data")
    args = parser.parse_args(argv)
    try:
        r = export_run(args.run_dir, exporter=args.exporter, data_root=args.data_root)
    except Exception as exc:  # noqa: BLE001 - the CLI's contract is one line and exit 2
        msg = str(exc).strip().splitlines()
        print(f"lastexp.export: error: {msg[0] if msg else exc.__class__.__name__}",
              file=sys.stderr)
        return 2
    flag = "ok" if r["int8_within_limit"] else "OVER the 1-point limit"
    print(f"exported {args.run_dir}: fp32 {r['fp32_top1_export']:.2f}% int8 "
          f"{r['int8_top1']:.2f}% (drop {r['int8_drop']:.2f}, {flag}), int8 "
          f"{r['int8_bytes']} B (fp32 {r['fp32_bytes']} B), onnx opset {r['onnx_opset']} "
          f"max|diff| {r['onnx_max_abs_diff']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
