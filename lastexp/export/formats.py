"""The table of export formats, in the order :func:`~lastexp.export.run.export_run` writes
them. A new format is one module (its writer, returning its metrics keys) plus one row here.
"""

from __future__ import annotations

from lastexp.export.base import Format
from lastexp.export.int8 import INT8_KEYS, int8_gate, write_int8
from lastexp.export.onnx import ONNX_KEYS, write_onnx
from lastexp.export.tflite import TFLITE_KEYS, _litert, write_tflite

FORMATS: tuple[Format, ...] = (
    Format("onnx", write_onnx, ONNX_KEYS),
    Format("int8", write_int8, INT8_KEYS, needs=("onnx",), gate=int8_gate),
    # a TFLite failure keeps the ONNX results: written, with tflite_error, then the error
    Format("tflite", write_tflite, TFLITE_KEYS, enabled=lambda opts: opts.tflite,
           check=_litert, kept=True),
)

# what the export itself adds, whatever the formats: the PyTorch top-1 the INT8 drop is
# measured from, the checkpoint exported and the seconds it took
RUN_KEYS = ("fp32_top1_export", "export_checkpoint", "export_seconds")
