"""What every export format shares: its errors, the inputs its writer gets, and its entry in
the table of formats (:mod:`lastexp.export.formats`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lastexp.export.options import ExportOptions


class ExportError(RuntimeError):
    """An export that cannot be done; the message names the run, model or operator."""


class DropOverLimit(ExportError):
    """A format's model lost more than its limit allows (``export.max_drop`` for INT8); raised
    after the metrics are written."""


@dataclass
class ExportInputs:
    """What a format's writer reads: the rebuilt model and the run's data (measured once,
    before any format), the options, and the files earlier formats wrote.

    ``staged`` is the folder being written, which replaces ``final`` (the run's ``export/``)
    as a whole once every format is done; ``scratch`` is a temporary folder, gone after the
    export; ``files`` maps the names earlier writers gave their files (``onnx``,
    ``onnx_raw``, ...) to their paths.
    """

    model: nn.Module
    example: torch.Tensor  # the traced batch: the first <= 2 test samples
    test: list[tuple[torch.Tensor, torch.Tensor]]  # the test split, in the model's stream
    calibration: list[np.ndarray]  # ``export.calibration`` training samples, in batches
    fp32_top1: float  # the PyTorch model's top-1 (%) on ``test``
    opts: ExportOptions
    exporter: str  # ``auto``, ``dynamo`` or ``torchscript`` (--exporter)
    name: str  # the model's name, for messages
    staged: Path
    final: Path
    scratch: Path
    files: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Format:
    """One row of the table of formats :func:`~lastexp.export.run.export_run` walks.

    ``write`` writes the format's files into ``inputs.staged`` (from what the formats in
    ``needs`` wrote before it) and returns exactly the metrics keys in ``keys``; ``enabled``
    says whether the options ask for it; ``check`` (optional) refuses, before any work, what
    the format would fail on (a converter not installed); ``gate`` (optional) returns the
    message of a :class:`DropOverLimit` raised once the metrics are written. With ``kept``,
    a failure of this format is recorded as ``<name>_error`` and raised after the metrics:
    what the formats before it wrote stays valid.
    """

    name: str
    write: Callable[[ExportInputs], dict[str, Any]]
    keys: tuple[str, ...]
    enabled: Callable[[ExportOptions], bool] = lambda opts: True
    needs: tuple[str, ...] = ()
    check: Callable[[], object] | None = None
    gate: Callable[[dict[str, Any], ExportOptions, Path], str | None] | None = None
    kept: bool = False

    @property
    def error_key(self) -> str:
        return f"{self.name}_error"
