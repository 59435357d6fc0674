"""Static INT8 post-training quantization and ONNX (and TFLite) export of a finished run.

    python -m lastexp.export RUN_DIR [export.calibration=1000] [export.max_drop=1.0]
                                     [export.opset=13] [export.tflite=false]
                                     [export.activations=int8]

The options after the run directory are ``key=value`` overrides of the typed schema
:class:`ExportOptions`; a typo'd key or a bad value is refused in one line (exit code 2).

What it does (the training plan §5: post-training quantization calibrated on 1000 training
samples, accuracy drop below 1 point, ONNX at opset 13 with a dynamic batch axis):

1. Rebuilds the model from ``checkpoints/best.pt`` (else ``last.pt``) and evaluates it in
   PyTorch fp32 on the run's test split (``fp32_top1_export``).
2. Exports ONNX at ``export.opset`` (default 13), input ``x`` (N, C, T, V, M) -> ``logits``,
   batch axis dynamic, and checks onnxruntime against PyTorch (``onnx_max_abs_diff``). An
   operator the opset cannot express is named in a one-line error.
3. Quantizes that ONNX graph statically with onnxruntime's ``quantize_static``: Conv, MatMul
   and Gemm, weights int8 per output channel, activations 8-bit per tensor (int8, or uint8 with
   ``export.activations=uint8``: onnxruntime's fast x86 path), activation ranges calibrated
   (MinMax) on ``export.calibration`` training samples.
4. Runs the INT8 file itself in onnxruntime over the whole test split (``int8_top1``);
   ``int8_drop = fp32_top1_export - int8_top1``. A drop that reaches ``export.max_drop``
   (default 1.0) exits with code 1 and one line naming the drop and the limit; the metrics are
   written first, with ``int8_within_limit: false``.
5. With ``export.tflite=true`` also converts the model with Google's LiteRT PyTorch converter
   (``pip install 'lastexp[tflite]'``) to ``model.tflite`` and INT8 ``model_int8.tflite``, runs
   both with the LiteRT interpreter on the test split and compares them with PyTorch.

Both ONNX files are made lean the same way (no doc strings, metadata, value_info or node names,
short tensor names, the shift layers' int64 index tables stored as uint8 plus one Cast): the
sizes then measure weights, not exporter bookkeeping. Writes ``<run_dir>/export/{model.onnx,
model_int8.onnx, export.json}`` and adds to the run's metrics.json (atomically): ``int8_bytes``
(size of model_int8.onnx), ``fp32_bytes`` (size of model.onnx), ``int8_size_ratio``,
``int8_weight_bytes`` (its int8 weight initializers), ``int8_weight_bytes_per_param``,
``int8_top1``, ``int8_drop``, ``int8_within_limit``, ``int8_max_drop``, ``int8_quantized``,
``calibration_samples``, ``onnx_opset``, ``onnx_exporter``, ``onnx_max_abs_diff``,
``fp32_top1_export`` (and ``tflite_*`` keys with export.tflite=true).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from lastexp.cli import ArgumentParser
from lastexp.data import load_data
from lastexp.data.streams import to_stream
from lastexp.errors import ConfigError
from lastexp.io import (
    FolderBusyError,
    folder_lock,
    read_json,
    remove_staged_leftovers,
    staged_folder,
    write_json,
)
from lastexp.models import count_params
from lastexp.models.components import RandomJointShift
from lastexp.runstore import RunDir, RunError, model_checkpoint, open_finished
from lastexp.runstore.layout import EXPORT_DIR
from lastexp.runstore.models import model_from_checkpoint
from lastexp.train.checkpoint import load_checkpoint
from lastexp.train.loop import evaluate

# the newest opset torch's ONNX exporter writes (its own constant; 23 in torch 2.13)
MAX_OPSET = int(getattr(getattr(torch.onnx, "_constants", None), "ONNX_MAX_OPSET", 23))
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (the ``axis`` attribute) need 13
DYNAMO_MIN_OPSET = 18  # the dynamo exporter's native opset
CALIBRATION_BATCH = 32


class ExportError(RuntimeError):
    """An export that cannot be done; the message names the run, model or operator."""


class DropOverLimit(ExportError):
    """The INT8 model lost ``export.max_drop`` points or more (metrics already written)."""


# --------------------------------------------------------------------------- options


@dataclass
class ExportOptions:
    """``export.*`` options of ``python -m lastexp.export`` (the training plan §5)."""

    calibration: int = 1000  # training samples whose activation ranges calibrate the INT8 model
    max_drop: float = 1.0  # fp32 - int8 top-1 (points) at which the export fails
    opset: int = 13  # ONNX opset of both files
    tflite: bool = False  # also model.tflite + model_int8.tflite (needs lastexp[tflite])
    # int8 (the training plan's INT8, symmetric-range activations) or uint8: onnxruntime's x86
    # kernels are fast for uint8 activations x int8 weights, and int8 x int8 QLinearConv runs
    # slower than fp32 there (benchmarks/export.py measures both); the file size is the same
    activations: str = "int8"


@dataclass
class _ExportCli:
    export: ExportOptions = field(default_factory=ExportOptions)


def parse_options(overrides: Iterable[str] = ()) -> ExportOptions:
    """``["export.opset=17", ...]`` -> ExportOptions; a bad key or value -> ConfigError naming
    the key (one line)."""
    overrides = list(overrides)
    valid = ", ".join(f"export.{f.name}" for f in fields(ExportOptions))
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if "=" not in item:
            raise ConfigError(f"{item!r} is not key=value; the export options are {valid}")
        if not key.startswith("export."):
            raise ConfigError(f"{key} is not an export option (did you mean export.{key}?); "
                              f"the options are {valid}")
    schema = OmegaConf.structured(_ExportCli)
    try:
        merged = OmegaConf.merge(schema, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "export"
        if type(exc).__name__ in ("ConfigKeyError", "ConfigAttributeError"):
            raise ConfigError(f"{key} is not an export option; the options are {valid}") from None
        value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key), "?")
        kind = next((f.type for f in fields(ExportOptions) if f"export.{f.name}" == key), "?")
        raise ConfigError(f"{key}={value} is not a valid {kind}") from None
    opts: ExportOptions = OmegaConf.to_object(merged).export  # type: ignore[attr-defined]
    if opts.calibration < 1:
        raise ConfigError(f"export.calibration={opts.calibration} must be at least 1 sample")
    if not (math.isfinite(opts.max_drop) and opts.max_drop > 0):
        raise ConfigError(f"export.max_drop={opts.max_drop} must be a positive number of points")
    if opts.activations not in ("int8", "uint8"):
        raise ConfigError(f"export.activations={opts.activations} is not one of int8, uint8")
    if opts.opset < MIN_OPSET:
        raise ConfigError(f"export.opset={opts.opset} is below {MIN_OPSET}, the first opset with "
                          "per-channel INT8 (QuantizeLinear axis)")
    if opts.opset > MAX_OPSET:
        raise ConfigError(f"export.opset={opts.opset} is above {MAX_OPSET}, the newest opset "
                          f"torch's ONNX exporter writes; choose {MIN_OPSET}..{MAX_OPSET}")
    return opts


# --------------------------------------------------------------------------- ONNX export


def _unsupported_op(exc: BaseException) -> str | None:
    text = f"{exc}\n{exc.__cause__ or ''}"
    found = re.findall(r"aten[:.]{1,2}[A-Za-z_][\w.]*", text)
    return found[0] if found else None


def _file_opset(path: Path) -> int:
    # deferred: optional (pip install 'lastexp[export]'), needed only to export
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, *, opset: int = 13,
    exporter: str = "auto", name: str = "model",
) -> dict[str, Any]:
    """Export ``model`` with a dynamic batch axis; input ``x`` (N, C, T, V, M) -> ``logits``.

    ``exporter``: ``dynamo`` (torch.export), ``torchscript`` (legacy) or ``auto``. ``auto`` uses
    the TorchScript exporter below opset 18 and dynamo (then TorchScript) from 18 on: dynamo
    writes opset 18 natively, and asking it for 13 runs onnxscript's version converter, which
    has no down-conversion adapters for ops such as Pad ("No Adapter To Version $17 for Pad")
    and then silently keeps opset 18; the TorchScript exporter writes opset 13 directly.
    The opset written is read back from the file. Failure -> ExportError naming the model and,
    when the exporter says so, the operator the opset cannot express.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    if exporter == "auto":
        order = ["dynamo", "torchscript"] if opset >= DYNAMO_MIN_OPSET else ["torchscript"]
    elif exporter in ("dynamo", "torchscript"):
        order = [exporter]
    else:
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
                        model, (example,), str(path), dynamo=True, opset_version=opset,
                        input_names=["x"], output_names=["logits"],
                        dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False,
                        external_data=False,
                    )
                else:
                    torch.onnx.export(
                        model, (example,), str(path), dynamo=False, opset_version=opset,
                        input_names=["x"], output_names=["logits"],
                        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                    )
            written = _file_opset(path)
            if written != opset:
                raise ExportError(f"the {kind} exporter wrote opset {written}, not {opset}")
            return {"onnx_exporter": kind, "onnx_opset": written}
        except Exception as exc:  # noqa: BLE001 - every exporter failure becomes one message
            errors.append((kind, exc))
        finally:
            onnx_log.setLevel(level)
    op = next((o for o in (_unsupported_op(e) for _, e in errors) if o), None)
    first = str(errors[0][1]).strip().splitlines()
    detail = first[0][:200] if first else errors[0][1].__class__.__name__
    what = f"opset {opset} cannot express operator {op}" if op else detail
    raise ExportError(f"ONNX export of model {name!r} failed ({', '.join(k for k, _ in errors)}"
                      f" exporter): {what}")


def _short_names() -> Iterator[str]:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    i = 0
    while True:
        n, s = i, ""
        while True:
            n, r = divmod(n, 36)
            s = digits[r] + s
            if n == 0:
                break
        yield "t" + s
        i += 1


def lean_onnx(model: Any) -> Any:
    """Strip what an exporter or quantizer adds besides the computation, in place; returns the
    model. Numerically the graph is unchanged: doc strings, metadata_props, value_info and node
    names go, tensors get short names (graph input and output keep theirs), Constant nodes
    become initializers, and int64 tables whose values fit in 8 or 16 bits (the shift layers'
    gather indices) are stored narrow and Cast back to int64 by one node."""
    # deferred: optional (pip install 'lastexp[export]'), needed only to export
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    model.doc_string = ""
    g.doc_string = ""
    del model.metadata_props[:]
    del g.value_info[:]
    has_subgraphs = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                        for n in g.node for a in n.attribute)
    nodes = []
    for n in g.node:
        n.doc_string = ""
        n.name = ""
        if (n.op_type == "Constant" and n.domain in ("", "ai.onnx") and not has_subgraphs
                and len(n.attribute) == 1 and n.attribute[0].name == "value"):
            t = TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            g.initializer.append(t)
        else:
            nodes.append(n)
    casts = []
    for init in g.initializer:
        init.doc_string = ""
        if init.data_type != TensorProto.INT64 or math.prod(init.dims) < 64:
            continue
        a = numpy_helper.to_array(init)
        narrow = next((d for d in (np.uint8, np.int8, np.int16)
                       if a.min() >= np.iinfo(d).min and a.max() <= np.iinfo(d).max), None)
        if narrow is None:
            continue
        wide = init.name
        init.CopyFrom(numpy_helper.from_array(a.astype(narrow), wide + "_narrow"))
        casts.append(helper.make_node("Cast", [wide + "_narrow"], [wide], to=TensorProto.INT64))
    del g.node[:]
    g.node.extend(casts + nodes)
    if not has_subgraphs:
        keep = {v.name for v in g.input} | {v.name for v in g.output} | {""}
        fresh = _short_names()
        rename: dict[str, str] = {}

        def new(name: str) -> str:
            if name in keep:
                return name
            if name not in rename:
                rename[name] = next(fresh)
            return rename[name]

        for init in g.initializer:
            init.name = new(init.name)
        for n in g.node:
            n.input[:] = [new(i) for i in n.input]
            n.output[:] = [new(o) for o in n.output]
    return model


def save_lean(src: Path, dst: Path) -> None:
    # deferred: optional (pip install 'lastexp[export]'), needed only to export
    import onnx

    model = lean_onnx(onnx.load(str(src)))
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def _session(path: Path) -> Any:
    try:
        # deferred: optional (pip install 'lastexp[export]'), needed only to export
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError("onnxruntime is not installed; pip install 'lastexp[export]'") from exc
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_max_abs_diff(model: nn.Module, path: Path, x: torch.Tensor) -> float:
    """Largest |onnxruntime - PyTorch| over the logits of batch ``x``."""
    sess = _session(path)
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        ref = model.cpu().eval()(x).float().numpy()
    return float(abs(out - ref).max())


def onnx_top1(path: Path, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Top-1 (%) of the ONNX file ``path`` run in onnxruntime over ``(x, y)`` batches."""
    sess = _session(path)
    name = sess.get_inputs()[0].name
    correct = seen = 0
    for x, y in batches:
        logits = sess.run(None, {name: x.numpy().astype(np.float32)})[0]
        correct += int((logits.argmax(1) == y.numpy()).sum())
        seen += len(y)
    return 100.0 * correct / max(seen, 1)


# --------------------------------------------------------------------------- INT8


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


# --------------------------------------------------------------------------- TFLite


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


# --------------------------------------------------------------------------- the run


def _data_root(run: RunDir, hydra_cfg: Any) -> Path:
    """``paths.data`` of the run; a relative path is relative to the run's launch directory."""
    root = Path(str(OmegaConf.select(hydra_cfg, "paths.data", default="data")))
    if root.is_absolute():
        return root
    hydra_yaml = run.hydra / "hydra.yaml"
    if hydra_yaml.is_file():
        cwd = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.cwd", default=None)
        if cwd and (Path(cwd) / root).exists():
            return Path(cwd) / root
    return root


def calibration_batches(dataset: Any, samples: int, transform: Any, seed: int,
                        batch_size: int = CALIBRATION_BATCH) -> list[np.ndarray]:
    """``samples`` training samples (all when the split is smaller), drawn with ``seed``, in
    batches of ``batch_size``, as float32 arrays in the model's input stream."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=gen)[:samples].tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, order),
                                         batch_size=batch_size, shuffle=False)
    return [transform(x).numpy().astype(np.float32) for x, _ in loader]


def export_run(
    run_dir: str | Path,
    options: ExportOptions | None = None,
    *,
    exporter: str = "auto",
    batch_size: int = 64,
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """Export one finished run; returns the keys added to its metrics.json. Raises
    DropOverLimit (after writing the metrics) when the INT8 drop reaches ``max_drop``."""
    opts = options or ExportOptions()
    t0 = time.time()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"run directory {run_dir} does not exist")
    if opts.tflite:
        _litert()  # a missing converter is named before any work is done
    try:
        finished = open_finished(run_dir, role="export of")
        ckpt = model_checkpoint(finished, role="export of")
    except RunError as exc:
        raise ExportError(str(exc)) from None
    run = finished.paths
    for path, want in ((run.export, (None, "folder")), (run.checkpoints, ("folder",))):
        if _kind(path) not in want:  # a link would redirect the export, or the weights read
            raise ExportError(f"{path} is {'a link' if _kind(path) == 'link' else 'no folder'}"
                              "; a run keeps its own folder there: move it away, then export "
                              "again")
    if data_root is not None and not Path(data_root).is_dir():  # no corpus made there
        raise ExportError(f"--data-root {data_root} is not a folder; give the paths.data the "
                          "run was trained with (or leave --data-root out)")
    try:
        with folder_lock(run.path, wait=False, what="another export of this run"):
            remove_staged_leftovers(run.export)  # a killed export's half-written folder
            _sync_export_metrics(run)
            return _export_locked(run, ckpt, opts, t0, exporter=exporter,
                                  batch_size=batch_size, data_root=data_root)
    except FolderBusyError as exc:
        raise ExportError(str(exc)) from None


def _kind(path: Path) -> str | None:
    if path.is_symlink():
        return "link"
    return None if not path.exists() else "folder" if path.is_dir() else "file"


def _sync_export_metrics(run: RunDir) -> None:
    """An export killed between swapping its folder in and writing metrics.json left the run's
    metrics describing the files before: they take export.json's keys (what the folder
    holds), as the killed export would have written them."""
    try:
        added = read_json(run.export / "export.json")
        metrics = read_json(run.metrics)
    except (OSError, ValueError):
        return
    if isinstance(added, dict) and isinstance(metrics, dict) and \
            any(metrics.get(k) != v for k, v in added.items()):
        kept = {k: v for k, v in metrics.items() if not k.startswith("tflite_")}
        write_json(run.metrics, {**kept, **added})


def _export_locked(run: RunDir, ckpt: Path, opts: ExportOptions, t0: float, *,
                   exporter: str, batch_size: int, data_root: str | Path | None
                   ) -> dict[str, Any]:
    """export_run's work, under the run's lock: every file into a temporary folder, which
    replaces ``export/`` as a whole; then metrics.json."""
    run_dir = run.path
    metrics_path = run.metrics
    hydra_cfg_path = run.hydra_config
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
    root = Path(data_root) if data_root is not None else _data_root(run, hydra_cfg)
    data = load_data(cfg["dataset"], cfg["preprocessing"], str(root), seed=int(cfg["seed"]))
    stream = (cfg.get("stream") or {}).get("name") or state.get("stream", "joint")
    loader = torch.utils.data.DataLoader(data.test, batch_size=batch_size, shuffle=False)
    cpu = torch.device("cpu")

    def tf(x: torch.Tensor) -> torch.Tensor:
        return to_stream(x, stream)

    test = [(tf(x), y) for x, y in loader]
    fp32_top1 = evaluate(model, test, device=cpu, transform=lambda x: x)["val_top1"]

    out_dir = run.export
    with staged_folder(out_dir) as staged:  # a kill leaves the old export/ whole
        added, tflite_error = _write_export(
            staged, model, test, data, tf, cfg, opts, exporter=exporter, name=name,
            fp32_top1=fp32_top1)
        added["export_checkpoint"] = ckpt.name
        added["export_seconds"] = time.time() - t0
        write_json(staged / "export.json", added)
    # TFLite keys of an earlier export describe files this one did not write: they go (a kill
    # before this write: the next export takes export.json's keys, _sync_export_metrics)
    previous = {k: v for k, v in read_json(metrics_path).items() if not k.startswith("tflite_")}
    write_json(metrics_path, {**previous, **added})
    if tflite_error is not None:
        raise tflite_error
    drop = added["int8_drop"]
    if not added["int8_within_limit"]:
        raise DropOverLimit(f"INT8 top-1 dropped {drop:.2f} points ({fp32_top1:.2f}% -> "
                            f"{added['int8_top1']:.2f}%), reaching export.max_drop="
                            f"{opts.max_drop:g}; metrics written to {metrics_path} with "
                            "int8_within_limit: false")
    return added


def _write_export(staged: Path, model: nn.Module, test: list, data: Any, tf: Any, cfg: dict,
                  opts: ExportOptions, *, exporter: str, name: str, fp32_top1: float
                  ) -> tuple[dict[str, Any], ExportError | None]:
    """The export's files into ``staged`` and the keys describing them (paths as they will be
    once ``staged`` is ``export/``), with the TFLite error when only that step failed."""
    x = test[0][0]
    example = x[: min(2, len(x))]
    onnx_path, int8_path = staged / "model.onnx", staged / "model_int8.onnx"
    final = staged.parent / EXPORT_DIR
    calib = calibration_batches(data.train, opts.calibration, tf, int(cfg.get("seed", 0)))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        how = export_onnx(model, example, raw, opset=opts.opset, exporter=exporter, name=name)
        save_lean(raw, onnx_path)
        try:  # from the exporter's file: the quantizer's own names may clash with short ones
            quantize_onnx_int8(raw, int8_path, calib, activations=opts.activations)
        except Exception as exc:  # noqa: BLE001 - one line naming the step
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
            raise ExportError(f"INT8 quantization of model {name!r} failed: {first}") from None
    check = x[: min(len(x), 8)]  # another batch size than the example: the axis is dynamic
    diff = onnx_max_abs_diff(model, onnx_path, check)
    int8_top1 = onnx_top1(int8_path, test)
    weight_bytes = int8_weight_bytes(int8_path)
    params = count_params(model)
    int8_bytes, fp32_bytes = int8_path.stat().st_size, onnx_path.stat().st_size

    drop = fp32_top1 - int8_top1
    added: dict[str, Any] = {
        "fp32_top1_export": fp32_top1,
        "int8_top1": int8_top1,
        "int8_drop": drop,
        "int8_max_drop": opts.max_drop,
        "int8_within_limit": bool(drop < opts.max_drop),
        "int8_bytes": int8_bytes,
        "fp32_bytes": fp32_bytes,
        "int8_size_ratio": int8_bytes / fp32_bytes,
        "int8_weight_bytes": weight_bytes,
        "int8_weight_bytes_per_param": weight_bytes / max(params, 1),
        "int8_quantized": quantized_ops(int8_path),
        "int8_path": str(final / int8_path.name),
        "calibration_samples": sum(len(b) for b in calib),
        "int8_activations": opts.activations,
        "onnx_max_abs_diff": diff,
        "onnx_path": str(final / onnx_path.name),
        **how,
    }
    tflite_error = None
    if opts.tflite:
        try:
            added.update(export_tflite(model, example, staged, calib, test, name))
        except ExportError as exc:  # the ONNX results stay valid: written, then the error
            tflite_error = exc
            added["tflite_error"] = str(exc).replace(str(staged), str(final))
    return added, tflite_error


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m lastexp.export",
        description="Static INT8 (calibrated PTQ) and ONNX (and TFLite) export of a finished run "
                    "into RUN_DIR/export/. Options: "
                    + " ".join(f"export.{f.name}={f.default}" for f in fields(ExportOptions)),
    )
    parser.add_argument("run_dir")
    parser.add_argument("overrides", nargs="*", metavar="export.KEY=VALUE")
    parser.add_argument("--exporter", default="auto", choices=["auto", "dynamo", "torchscript"])
    parser.add_argument("--data-root", default=None, help="override the run's paths.data")
    args = parser.parse_args(argv)

    def fail(exc: BaseException, code: int) -> int:
        msg = str(exc).strip().splitlines()
        print(f"lastexp.export: error: {msg[0] if msg else exc.__class__.__name__}",
              file=sys.stderr)
        return code

    try:
        opts = parse_options(args.overrides)
    except ConfigError as exc:
        return fail(exc, 2)
    try:
        r = export_run(args.run_dir, opts, exporter=args.exporter, data_root=args.data_root)
    except DropOverLimit as exc:
        return fail(exc, 1)
    except Exception as exc:  # noqa: BLE001 - the CLI's contract is one line and exit 2
        return fail(exc, 2)
    tfl = (f", tflite {r['tflite_top1']:.2f}% int8 {r['tflite_int8_top1']:.2f}%"
           if "tflite_top1" in r else "")
    print(f"exported {args.run_dir}: fp32 {r['fp32_top1_export']:.2f}% int8 "
          f"{r['int8_top1']:.2f}% (drop {r['int8_drop']:.2f} < {opts.max_drop:g}), int8 onnx "
          f"{r['int8_bytes']} B = {r['int8_size_ratio']:.2f} x fp32 onnx {r['fp32_bytes']} B, "
          f"opset {r['onnx_opset']} max|diff| {r['onnx_max_abs_diff']:.2e}{tfl}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
