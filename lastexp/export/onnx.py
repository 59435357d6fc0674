"""ONNX: the fp32 graph with a dynamic batch axis (``model.onnx``), made lean, and checked
against PyTorch in onnxruntime (the training plan §5: opset 13)."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lastexp.export.base import ExportError, ExportInputs

DYNAMO_MIN_OPSET = 18  # the dynamo exporter's native opset
ONNX_KEYS = ("fp32_bytes", "onnx_max_abs_diff", "onnx_path", "onnx_exporter", "onnx_opset")


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



def write_onnx(inputs: ExportInputs) -> dict[str, Any]:
    """``model.onnx`` (lean) and, for the INT8 quantizer, the exporter's own file
    (``files["onnx_raw"]``: the quantizer's names may clash with the short ones)."""
    raw, path = inputs.scratch / "model.onnx", inputs.staged / "model.onnx"
    how = export_onnx(inputs.model, inputs.example, raw, opset=inputs.opts.opset,
                      exporter=inputs.exporter, name=inputs.name)
    save_lean(raw, path)
    x = inputs.test[0][0]
    check = x[: min(len(x), 8)]  # another batch size than the example: the axis is dynamic
    diff = onnx_max_abs_diff(inputs.model, path, check)
    inputs.files.update(onnx_raw=raw, onnx=path)
    return {"fp32_bytes": path.stat().st_size, "onnx_max_abs_diff": diff,
            "onnx_path": str(inputs.final / path.name), **how}
