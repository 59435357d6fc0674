"""A run's key: the config that makes two runs the same run, its hash, and the run directory
name and W&B group derived from it.

:func:`identity` is the resolved config minus :data:`VOLATILE_KEYS` (where things live, how a
run is watched or resumed) and :data:`ADDED_KEYS` at their default; :func:`run_key` hashes it.
Stored runs are found by these names, so every change here renames runs: the tests pin keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

# Keys that do not change what a run computes: where things live, how it is watched,
# how it is resumed. Two configs that differ only here are the same run.
VOLATILE_KEYS = (
    "hydra",
    "env",
    "paths",
    "logger",
    "fresh",
    "run_name",
    "run_dependencies",
    "training.max_hours",
    "training.save_interval",
    "training.num_workers",
    "training.device",
    "training.compile",
    "training.compile_mode",
    "training.channels_last",
    "training.num_threads",
    "search",  # a search's trials are ordinary runs: the same config is the same run
)


# Keys added after runs were stored: at this value they are left out of the identity, so a new
# option never renames the runs trained before it existed.
ADDED_KEYS: dict[str, Any] = {"distill.teacher_streams": [], "dataset.val_subjects": None,
                             "dataset.val_fraction": None}


def launch_world_size(environ: Mapping[str, str] | None = None) -> int:
    """How many processes train this run, as :func:`lastexp.train.distributed.init_distributed`
    will find them: torchrun's ``WORLD_SIZE``, else the task count of a SLURM job step that
    submitit starts one process per task of; 1 for a single process."""
    env = os.environ if environ is None else environ
    for key in ("WORLD_SIZE", "SLURM_NTASKS"):
        try:
            n = int(env.get(key, "1"))
        except ValueError:
            continue
        if n > 1:
            return n
    return 1


def identity(cfg: Any, world_size: int | None = None) -> dict:
    """The resolved config minus volatile keys (and added keys at their default): what makes
    two runs the same run. ``world_size`` (default: :func:`launch_world_size`, this process's)
    joins it as a top-level key only when it is not 1, so a single-process run's identity (and run
    directory) does not depend on whether the world size is recorded, and a torchrun run with two
    processes is another run than a single-process one."""
    raw = OmegaConf.to_container(cfg, resolve=False) if not isinstance(cfg, dict) else dict(cfg)
    raw.pop("hydra", None)  # holds enums and the run directory itself
    raw = strip_volatile(json.loads(json.dumps(raw)))  # deep copy of plain containers
    ident = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    world = launch_world_size() if world_size is None else int(world_size)
    if world != 1:
        ident["world_size"] = world
    return ident


def strip_volatile(raw: dict) -> dict:
    """``raw`` (plain containers, changed in place) minus :data:`VOLATILE_KEYS` and the
    :data:`ADDED_KEYS` at their default: :func:`identity` before interpolations are resolved
    (of a config without interpolations, its identity)."""
    for key in VOLATILE_KEYS:
        node, *rest = key.split(".")
        if not rest:
            raw.pop(node, None)
        elif isinstance(raw.get(node), dict):
            raw[node].pop(rest[0], None)
    for key, default in ADDED_KEYS.items():
        node, leaf = key.split(".")
        if isinstance(raw.get(node), dict) and raw[node].get(leaf, default) == default:
            raw[node].pop(leaf, None)
    # training.causal_scope acts in causal batches only: a run without them (causal_prob 0, every
    # run before the key existed but B12 and L9) keeps its identity whatever the scope
    training = raw.get("training")
    if isinstance(training, dict) and not training.get("causal_prob"):
        training.pop("causal_scope", None)
    return raw


def run_key(cfg: Any) -> str:
    """A short stable hash of :func:`identity`."""
    blob = json.dumps(identity(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def run_dir_name(cfg: Any) -> str:
    """Readable and unique: ``<ablation|model>_<stream>_<dataset>_s<seed>_<key>``."""
    sel = (lambda k: OmegaConf.select(cfg, k)) if not isinstance(cfg, dict) else (
        lambda k: _dict_select(cfg, k)
    )
    if sel("run_name"):
        return str(sel("run_name"))
    head = sel("ablation") or sel("model.name")
    parts = [head, sel("stream.name"), sel("dataset.name"), f"s{sel('seed')}", run_key(cfg)]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", "_".join(str(p) for p in parts))


def row_group(cfg: Any) -> str:
    """The seeds of one row and config, together: ``<ablation|model>_<stream>_<dataset>_<key>``,
    the key a short hash of :func:`identity` without the seed (the W&B group; whichever sweep
    ran a seed, it lands in the same group)."""
    sel = (lambda k: OmegaConf.select(cfg, k)) if not isinstance(cfg, dict) else (
        lambda k: _dict_select(cfg, k)
    )
    without_seed = {k: v for k, v in identity(cfg).items() if k != "seed"}
    blob = json.dumps(without_seed, sort_keys=True, separators=(",", ":"))
    parts = [sel("ablation") or sel("model.name"), sel("stream.name"), sel("dataset.name"),
             hashlib.sha1(blob.encode()).hexdigest()[:8]]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", "_".join(str(p) for p in parts))


def _dict_select(d: dict, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d
