"""TFLite (``export.tflite=true``): ``model.tflite`` and INT8 ``model_int8.tflite`` through
Google's LiteRT PyTorch converter (``pip install 'lastexp[tflite]'``), both run in the LiteRT
interpreter on the test split. The joint shift is rewritten first into a form the converter
takes (:func:`tflite_friendly`, bit-identical)."""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lastexp.export.base import ExportError, ExportInputs
from lastexp.export.onnx import _unsupported_op
from lastexp.models.components import RandomJointShift

TFLITE_KEYS = ("tflite_bytes", "tflite_top1", "tflite_max_abs_diff", "tflite_int8_bytes",
               "tflite_int8_top1", "tflite_int8_max_abs_diff")

def _litert() -> Any:
    for module in ("litert_torch", "ai_edge_torch"):
        try:
            return __import__(module)
        except ImportError:
            continue
        except Exception as exc:  # noqa: BLE001 - a broken install is one line too
            raise ExportError(f"export.tflite=true: {module} cannot be imported "
                              f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})"
                              ) from None
    raise ExportError("export.tflite=true needs Google's LiteRT PyTorch converter, which is not "
                      "installed: pip install 'lastexp[tflite]' (litert-torch)")


def _to_tflite(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float input -> the tensor's dtype (quantized with its scale and zero point if integer)."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
    return x.astype(dtype)


def _from_tflite(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(y.dtype, np.integer):
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def _tflite_top1(path: Path, batch: int, batches: Iterable, model: nn.Module) -> tuple[float,
                                                                                        float]:
    """Top-1 (%) of a .tflite file run in the LiteRT interpreter over ``(x, y)`` batches, and
    its largest |logit - PyTorch logit|. The file has a fixed batch: the last one is padded."""
    try:
        # deferred: optional (pip install 'lastexp[tflite]'), only with export.tflite=true
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ExportError("export.tflite=true: the LiteRT interpreter (ai-edge-litert) is not "
                          "installed") from None
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    correct = seen = 0
    diff = 0.0
    for x, y in batches:
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            n = len(xb)
            pad = torch.cat([xb, xb[:1].expand(batch - n, *xb.shape[1:])]) if n < batch else xb
            interp.set_tensor(inp["index"], _to_tflite(pad.numpy(), inp))
            interp.invoke()
            logits = _from_tflite(interp.get_tensor(out["index"])[:n], out)
            with torch.no_grad():
                ref = model(xb).float().numpy()
            diff = max(diff, float(abs(logits - ref).max()))
            correct += int((logits.argmax(1) == y[i:i + batch].numpy()).sum())
            seen += n
    return 100.0 * correct / max(seen, 1), diff


class _FlatShift(nn.Module):
    """A joint shift (RandomJointShift / BodyRegionShift) as one index_select over the flattened
    (C*V) axis: the same copy of the same elements, so bit-identical, but it lowers to a plain
    TFLite GATHER where the converter refuses torch.gather's broadcast index ("'tfl.select_v2'
    op operands don't have broadcast-compatible shapes")."""

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__()
        c, v = index.shape
        flat = (torch.arange(c, device=index.device)[:, None] * v + index).reshape(-1)
        self.register_buffer("flat", flat, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape  # (N, C, T, V)
        xf = x.permute(0, 2, 1, 3).reshape(n, t, c * v)
        return xf.index_select(2, self.flat).reshape(n, t, c, v).permute(0, 2, 1, 3)


def tflite_friendly(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of ``model`` with every joint shift replaced by :class:`_FlatShift`, checked to
    give bit-identical logits on ``example``."""
    twin = copy.deepcopy(model).cpu().eval()
    for module in list(twin.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, RandomJointShift):
                setattr(module, child_name, _FlatShift(child.index))
    with torch.no_grad():
        if not torch.equal(model.cpu().eval()(example), twin(example)):
            raise ExportError("the TFLite form of the joint shift is not bit-identical")
    return twin


def export_tflite(model: nn.Module, example: torch.Tensor, out_dir: Path,
                  calibration: list[np.ndarray], test_batches: list, name: str) -> dict[str, Any]:
    """``model.tflite`` (fp32) and ``model_int8.tflite`` (PT2E static INT8, per channel,
    calibrated on the same batches as the ONNX model) through LiteRT's PyTorch converter;
    both run on the test split in the LiteRT interpreter."""
    lt = _litert()
    model = tflite_friendly(model, example)
    fp32_path, int8_path = out_dir / "model.tflite", out_dir / "model_int8.tflite"
    batch = int(example.shape[0])
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            lt.convert(model, (example,)).export(str(fp32_path))
        except Exception as exc:  # noqa: BLE001
            op = _unsupported_op(exc)
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
            raise ExportError(f"TFLite conversion of model {name!r} failed: "
                              f"{f'unsupported operator {op}' if op else first}") from None
        try:
            quantizer = _quantizer(lt)
            qmodel = _pt2e_int8(quantizer, model, example, calibration)
            qc = __import__(f"{lt.__name__}.quantize.quant_config", fromlist=["QuantConfig"])
            # the quantizer that annotated the graph, so the converter stores int8 weights
            lt.convert(qmodel, (example,),
                       quant_config=qc.QuantConfig(pt2e_quantizer=quantizer)).export(
                str(int8_path))
        except ExportError:
            raise
        except Exception as exc:  # noqa: BLE001
            op = _unsupported_op(exc)
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
            raise ExportError(f"TFLite INT8 conversion of model {name!r} failed: "
                              f"{f'unsupported operator {op}' if op else first}") from None
    results = []
    for what, path in (("", fp32_path), (" INT8", int8_path)):
        try:
            results.append(_tflite_top1(path, batch, test_batches, model))
        except ExportError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. an int8 SOFTMAX scale LiteRT refuses
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
            raise ExportError(f"the TFLite{what} model of {name!r} does not run in the LiteRT "
                              f"interpreter: {first}") from None
    (fp32_top1, fp32_diff), (int8_top1, int8_diff) = results
    return {"tflite_bytes": fp32_path.stat().st_size, "tflite_top1": fp32_top1,
            "tflite_max_abs_diff": fp32_diff, "tflite_int8_bytes": int8_path.stat().st_size,
            "tflite_int8_top1": int8_top1, "tflite_int8_max_abs_diff": int8_diff}


def _quantizer(lt: Any) -> Any:
    q = __import__(f"{lt.__name__}.quantize.pt2e_quantizer", fromlist=["PT2EQuantizer"])
    return q.PT2EQuantizer().set_global(
        q.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))


def _pt2e_int8(quantizer: Any, model: nn.Module, example: torch.Tensor,
               calibration: list[np.ndarray]) -> nn.Module:
    try:
        # deferred: torchao (optional) or torch's own copy, only for the TFLite INT8 model
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:  # deferred likewise: torch's own copy, when torchao is absent
        from torch.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e
    batch = int(example.shape[0])
    gm = torch.export.export(model, (example,)).module()
    gm = prepare_pt2e(gm, quantizer)
    # the quantizer annotates every mul, also integer index arithmetic (arange * stride in the
    # gates); an observer on an int64 tensor fails ("histogram_cpu" not implemented for
    # 'Long') and such a tensor has nothing to quantize: those observers are taken out
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or "activation_post_process" not in str(node.target):
            continue
        src = node.args[0] if node.args else None
        val = getattr(src, "meta", {}).get("val") if src is not None else None
        if val is None and getattr(src, "op", None) == "get_attr":  # a constant (no meta)
            val = gm
            for part in str(src.target).split("."):
                val = getattr(val, part, None)
        if isinstance(val, torch.Tensor) and not val.dtype.is_floating_point:
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    with torch.no_grad():
        for x in calibration:
            for i in range(0, len(x) - batch + 1, batch):
                gm(torch.from_numpy(x[i:i + batch]))
    return convert_pt2e(gm, fold_quantize=False)



def write_tflite(inputs: ExportInputs) -> dict[str, Any]:
    """Both TFLite files, calibrated on the same batches as the ONNX INT8 model."""
    return export_tflite(inputs.model, inputs.example, inputs.staged, inputs.calibration,
                         inputs.test, inputs.name)
