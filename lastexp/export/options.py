"""The ``export.*`` options of ``python -m lastexp.export``: their typed schema and the one
parser that refuses a typo'd key or a bad value in one line (the training plan §5)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lastexp.errors import ConfigError

# the newest opset torch's ONNX exporter writes (its own constant; 23 in torch 2.13)
MAX_OPSET = int(getattr(getattr(torch.onnx, "_constants", None), "ONNX_MAX_OPSET", 23))
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (the ``axis`` attribute) need 13


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

