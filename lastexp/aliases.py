"""Command-line aliases: the overrides a user types, rewritten to the keys Hydra composes.

The training plan's commands (``--set training.lr=...``, ``data.dataset.stream=...``), the
README's ``+ablation=<ID>``, bracket-less flag lists and ``logger=[wandb,tensorboard]`` all name
keys or values that live elsewhere in the schema; :func:`normalize_overrides` rewrites them
before Hydra sees them.
"""

from __future__ import annotations

# The training plan's own commands (``--set training.lr=...``, ``data.dataset.stream=...``)
# name keys that live elsewhere here: each is accepted as an alias of its key.
KEY_ALIASES = {
    "training.lr": "optimizer.lr",
    "training.momentum": "optimizer.momentum",
    "training.nesterov": "optimizer.nesterov",
    "training.weight_decay": "optimizer.weight_decay",
    "training.warmup_epochs": "scheduler.warmup_epochs",
    "training.warmup_start_lr": "scheduler.warmup_start_lr",
    "training.min_lr": "scheduler.min_lr",
    "training.restart_period": "scheduler.restart_period",
    "training.restart_mult": "scheduler.restart_mult",
    "data.dataset.stream": "stream",
}
# List-valued keys the notes write without brackets (``model.use_st_att=false,false,true``);
# in Hydra a bare comma would mean a sweep, which a list of flags can never be.
LIST_KEYS = ("model.use_st_att",)


# What users of other Hydra templates write for "no logger": ``logger=null`` and ``~logger``
# (which would otherwise fail, or fall back to the schema's W&B); both mean ``logger=none``.
NO_LOGGER = ("logger=null", "logger=none", "logger=~", "~logger")


def _normalize(arg: str) -> str:
    if arg.split("=", 1)[0] == "~logger" or arg.lower() in NO_LOGGER:
        return "logger=none"
    plus = arg[: len(arg) - len(arg.lstrip("+"))]
    body = arg[len(plus):]
    key, sep, value = body.partition("=")
    if not sep:
        return arg
    if key in ("ablation", "sweep"):  # see normalize_overrides
        return body
    if key in ("logger", "logger.name") and value.startswith("["):  # logger=[wandb,tensorboard]
        names = sorted({v.strip() for v in value.strip("[]").split(",") if v.strip()})
        if names == ["tensorboard", "wandb"]:
            return f"{plus}{key}=wandb_tensorboard"
        if len(names) == 1:
            return f"{plus}{key}={names[0]}"
    if key in KEY_ALIASES:
        return f"{plus}{KEY_ALIASES[key]}={value}"
    if key in LIST_KEYS and "," in value and not value.lstrip().startswith("["):
        return f"{plus}{key}=[{value}]"
    return arg


def normalize_overrides(argv: list[str]) -> list[str]:
    """Overrides as Hydra composes them: the README's ``+ablation=<ID>`` for the ``ablation`` group,
    the notes' key names (:data:`KEY_ALIASES`), bracket-less lists (:data:`LIST_KEYS`),
    ``logger=[wandb,tensorboard]`` (the ``wandb_tensorboard`` option) and ``logger=null`` /
    ``~logger`` (:data:`NO_LOGGER`: no logger).

    The ablation group sits in the defaults list *before* ``debug`` so that ``debug=tiny`` can
    shrink any ablation; Hydra would refuse to append (``+``) a group that is already listed,
    so the ``+`` is dropped here. ``ablation=<ID>`` works too. The same holds for ``+sweep=``
    (after the ablation row, before ``debug``).
    """
    return [_normalize(a) for a in argv]
