"""INT8: static post-training quantization of the ONNX graph (``model_int8.onnx``), calibrated
on training samples and measured by running the INT8 file itself (the training plan §5)."""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lastexp.export.base import ExportError, ExportInputs
from lastexp.export.onnx import onnx_top1, save_lean
from lastexp.export.options import ExportOptions
from lastexp.models import count_params

INT8_KEYS = ("int8_top1", "int8_drop", "int8_max_drop", "int8_within_limit", "int8_bytes",
             "int8_size_ratio", "int8_weight_bytes", "int8_weight_bytes_per_param",
             "int8_quantized", "int8_path", "calibration_samples", "int8_activations")



_WEIGHT_SLOT = {"QLinearConv": 3, "QGemm": 3, "QLinearMatMul": 3, "ConvInteger": 1,
                "MatMulInteger": 1, "DequantizeLinear": 0}


def int8_weight_bytes(path: Path) -> int:
    """Bytes of the int8 weight initializers of a quantized ONNX file: the tensors
    in the weight slot of QLinearConv / QGemm / QLinearMatMul (or of a DequantizeLinear)."""
    # deferred: optional (pip install 'lastexp[export]'), needed only to export
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    names = {n.input[_WEIGHT_SLOT[n.op_type]] for n in model.graph.node
             if n.op_type in _WEIGHT_SLOT and len(n.input) > _WEIGHT_SLOT[n.op_type]}
    int8 = [inits[n] for n in names
            if n in inits and inits[n].data_type in (TensorProto.INT8, TensorProto.UINT8)]
    return sum(math.prod(t.dims) for t in int8)  # one byte per element


def quantized_ops(path: Path) -> dict[str, int]:
    """Per op type, how many nodes run in int8 (``QLinearConv``, ``QGemm``, ...) and how many
    weight layers stayed float (``Conv (float)``, ``Gemm (float)``, ``MatMul (float)``)."""
    # deferred: optional (pip install 'lastexp[export]'), needed only to export
    import onnx

    kinds: Counter[str] = Counter()
    for n in onnx.load(str(path)).graph.node:
        if n.op_type.startswith("QLinear") or n.op_type in ("QGemm", "MatMulInteger",
                                                             "ConvInteger"):
            kinds[n.op_type] += 1
        elif n.op_type in ("Conv", "Gemm", "MatMul"):
            kinds[f"{n.op_type} (float)"] += 1
    return dict(kinds)


def quantize_onnx_int8(src: Path, dst: Path, calibration: Iterable[np.ndarray], *,
                       quant_format: str = "qoperator", activations: str = "int8") -> None:
    """Static INT8 quantization of the ONNX file ``src`` into ``dst`` (lean).

    onnxruntime.quantization, not torch.ao: it quantizes the ONNX graph that is shipped, so the
    file measured and run for int8_top1 is the deployed one, and it quantizes convolutions
    (QLinearConv) as well as Gemm/MatMul; torch's dynamic quantization has int8 kernels for
    Linear only and leaves every Conv2d float. Weights: int8, symmetric, per output channel;
    activations: int8 per tensor, MinMax ranges from the calibration batches. QOperator format
    (QLinearConv/QGemm): the same kernels onnxruntime fuses a QDQ graph into at load time, but
    the file holds no separate bias scales or bias zero points (the QDQ file is ~1.5x larger).
    """
    # deferred: optional (pip install 'lastexp[export]'), needed only to export
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, batches: Iterable[np.ndarray]) -> None:
            self.it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"x": x}

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), \
            _quiet_logging():
        warnings.simplefilter("ignore")
        pre = Path(tmp) / "pre.onnx"
        # shape inference + onnxruntime's basic graph optimizations (constant folding,
        # Conv+BN fusion), as the onnxruntime docs advise before static quantization
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001 - symbolic shape inference fails on some dynamo
            # graphs (B7's DFT at opset 18); ONNX's own shape inference is enough there
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        raw = Path(tmp) / "int8.onnx"
        quantize_static(
            str(pre), str(raw), Reader(calibration),
            quant_format=QuantFormat.QOperator if quant_format == "qoperator" else QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"], per_channel=True,
            activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
        save_lean(raw, dst)


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static's "Please use QuantFormat.QDQ" advice
    try:
        yield
    finally:
        root.setLevel(level)



def write_int8(inputs: ExportInputs) -> dict[str, Any]:
    """``model_int8.onnx`` from the ONNX exporter's file, run over the whole test split."""
    path = inputs.staged / "model_int8.onnx"
    try:  # from the exporter's file: the quantizer's own names may clash with short ones
        quantize_onnx_int8(inputs.files["onnx_raw"], path, inputs.calibration,
                           activations=inputs.opts.activations)
    except Exception as exc:  # noqa: BLE001 - one line naming the step
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise ExportError(f"INT8 quantization of model {inputs.name!r} failed: {first}") from None
    int8_top1 = onnx_top1(path, inputs.test)
    weight_bytes = int8_weight_bytes(path)
    params = count_params(inputs.model)
    int8_bytes, fp32_bytes = path.stat().st_size, inputs.files["onnx"].stat().st_size
    drop = inputs.fp32_top1 - int8_top1
    inputs.files["int8"] = path
    return {
        "int8_top1": int8_top1,
        "int8_drop": drop,
        "int8_max_drop": inputs.opts.max_drop,
        "int8_within_limit": bool(drop < inputs.opts.max_drop),
        "int8_bytes": int8_bytes,
        "int8_size_ratio": int8_bytes / fp32_bytes,
        "int8_weight_bytes": weight_bytes,
        "int8_weight_bytes_per_param": weight_bytes / max(params, 1),
        "int8_quantized": quantized_ops(path),
        "int8_path": str(inputs.final / path.name),
        "calibration_samples": sum(len(b) for b in inputs.calibration),
        "int8_activations": inputs.opts.activations,
    }


def int8_gate(added: dict[str, Any], opts: ExportOptions, metrics: Path) -> str | None:
    """The message of an INT8 drop that reaches ``export.max_drop``, else None."""
    if added["int8_within_limit"]:
        return None
    return (f"INT8 top-1 dropped {added['int8_drop']:.2f} points "
            f"({added['fp32_top1_export']:.2f}% -> {added['int8_top1']:.2f}%), reaching "
            f"export.max_drop={opts.max_drop:g}; metrics written to {metrics} with "
            "int8_within_limit: false")
