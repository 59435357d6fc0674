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

The package: :mod:`~lastexp.export.options` (the ``export.*`` schema and parser),
:mod:`~lastexp.export.cli` (the command), one module per format (:mod:`~lastexp.export.onnx`,
:mod:`~lastexp.export.int8`, :mod:`~lastexp.export.tflite`), :mod:`~lastexp.export.formats`
(the table of formats, in the order they are written: name, writer, metrics keys, whether the
options enable it, which formats' files it reads) and :mod:`~lastexp.export.run` (one run:
its model, its data, the walk over the table, the staged folder and metrics.json). A new
format is one module with a writer ``(ExportInputs) -> keys`` plus one row in ``FORMATS``.
"""

from lastexp.export.base import DropOverLimit, ExportError, ExportInputs, Format
from lastexp.export.cli import main
from lastexp.export.formats import FORMATS, RUN_KEYS
from lastexp.export.int8 import int8_weight_bytes, quantize_onnx_int8, quantized_ops
from lastexp.export.onnx import (
    DYNAMO_MIN_OPSET,
    export_onnx,
    lean_onnx,
    onnx_max_abs_diff,
    onnx_top1,
    save_lean,
)
from lastexp.export.options import MAX_OPSET, MIN_OPSET, ExportOptions, parse_options
from lastexp.export.run import calibration_batches, export_run
from lastexp.export.tflite import export_tflite, tflite_friendly

__all__ = [
    "DYNAMO_MIN_OPSET", "FORMATS", "MAX_OPSET", "MIN_OPSET", "RUN_KEYS", "DropOverLimit",
    "ExportError", "ExportInputs", "ExportOptions", "Format", "calibration_batches",
    "export_onnx", "export_run", "export_tflite", "int8_weight_bytes", "lean_onnx", "main",
    "onnx_max_abs_diff", "onnx_top1", "parse_options", "quantize_onnx_int8", "quantized_ops",
    "save_lean", "tflite_friendly",
]
