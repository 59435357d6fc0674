"""The model names the training plan's commands use, and the model each stands for: the one
alias table.

``model=<alias>`` is a config option because :func:`lastexp.app.register` stores one for each
alias here (the canonical model's config, and its distillation-student column when it has one);
``build_model(<alias>)`` works because the model registry (:mod:`lastexp.models`) reads this
table too. A new alias is one line here. No torch, no Hydra: importing it is free.
"""

from __future__ import annotations

MODEL_ALIASES: dict[str, str] = {
    "nano_e_v3": "last_e_nano",
    "small_e_v3": "last_e_small",
    "base_e_v3": "last_e_base",
    "large_e_v3": "last_e_large",
    "shiftfuse_nano": "last_lite_nano",
    "shiftfuse_small": "last_lite_small",
    "base": "last_v2_base",
}
