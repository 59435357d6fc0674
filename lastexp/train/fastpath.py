"""Speed settings of a run: autocast precision, torch.compile and the memory layout.

``training.amp`` picks the precision (``off | fp16 | bf16``; ``true`` keeps its older meaning,
fp16 on CUDA and off elsewhere): fp16 needs a GradScaler against underflowing gradients, bf16
has fp32's exponent range and needs none. ``training.compile`` and ``training.channels_last``
change how fast a step runs, not what it computes, so they stay out of the run identity
(``lastexp.runstore.key.VOLATILE_KEYS``). Compilation wraps the module that is *called*; the plain
module keeps the parameters, so state dicts (checkpoints, SWA, export) never carry
``_orig_mod.`` prefixes and load the same with compile on or off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    """The autocast dtype of a run (None: fp32) and whether gradients need loss scaling."""

    mode: str = "off"

    @property
    def dtype(self) -> torch.dtype | None:
        return _DTYPES.get(self.mode)

    @property
    def scaled(self) -> bool:
        return self.mode == "fp16"

    def scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(device.type) if self.scaled else None


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile's and DDP's wrappers (what owns ``ib_loss`` and
    the state dict)."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def to_channels_last(model: nn.Module) -> nn.Module:
    """4-D weights (the graph convolutions' 1x1 and temporal kernels) in NHWC layout, in place;
    convolutions then also return NHWC activations. Values are unchanged."""
    return model.to(memory_format=torch.channels_last)


def compiled(model: nn.Module, mode: str = "default") -> nn.Module:
    """``torch.compile(model)``: the returned wrapper shares ``model``'s parameters.

    Inductor normally draws dropout and DropPath masks from its own Philox generator, so a
    compiled run would train on other masks than an eager one with the same seed and could not
    resume an eager checkpoint on the same random stream. ``fallback_random`` makes compiled
    code draw them from torch's global generator exactly as eager does: compile then changes
    speed only (its cost is in ``benchmarks/models.py``'s compile column, which uses it too).
    """
    import torch._inductor.config as inductor_config  # deferred: Inductor loads in seconds

    inductor_config.fallback_random = True
    return torch.compile(model, mode=None if mode == "default" else mode)


__all__ = [
    "Precision",
    "compiled",
    "to_channels_last",
    "unwrap",
]
