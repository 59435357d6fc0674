"""Hyper-parameter searches: ``python -m lastexp --multirun hydra/sweeper=optuna +search=<name>``.

Each trial is an ordinary run in the store (its directory named from its config, like any
multirun job), so a trial whose parameters ran before is skipped and reports the stored value.
The study lives beside the runs, in ``<paths.runs>/search/<study>.db`` (sqlite); its name is the
preset's prefix plus the run-name parts and a hash of the config minus the searched keys, so
relaunching the same search continues the same study, and a search over another model, dataset,
seed or epoch budget gets a study of its own. The value a trial reports is the run's best
validation top-1 (``best_top1`` of metrics.json).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lastexp.config import identity
from lastexp.runstore import RunDir, read_metrics

SEARCH_DIR = "search"  # below paths.runs: the studies' sqlite files
OBJECTIVE = "best_top1"


def _pop(tree: dict, key: str) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        tree = tree.get(part)
        if not isinstance(tree, dict):
            return
    tree.pop(leaf, None)


def study_name(prefix: str, *, _root_: DictConfig) -> str:
    """``<prefix>_<ablation|model>_<stream>_<dataset>_s<seed>_<hash>``: the hash is taken from
    the run identity without the keys the sweeper searches (``hydra.sweeper.params``)."""
    params = OmegaConf.select(_root_, "hydra.sweeper.params")
    searched = list(params.keys()) if params is not None else []
    ident = identity(_root_)
    for key in searched:
        _pop(ident, str(key))
    key = hashlib.sha1(json.dumps(ident, sort_keys=True, separators=(",", ":")).encode())
    head = OmegaConf.select(_root_, "ablation") or OmegaConf.select(_root_, "model.name")
    parts = [prefix, head, *(OmegaConf.select(_root_, k) for k in ("stream.name", "dataset.name")),
             f"s{OmegaConf.select(_root_, 'seed')}", key.hexdigest()[:8]]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", "_".join(str(p) for p in parts))


def study_storage(runs: str, name: str) -> str:
    """The sqlite URL of study ``name`` below the runs root (the folder is created here: optuna
    does not create it)."""
    folder = Path(runs) / SEARCH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / f'{name}.db').as_posix()}"


def trial_value(value: Any) -> Any:
    """What the Hydra task returns: under the Optuna sweeper the run's best validation top-1
    (also for a run skipped as already completed), otherwise ``value`` unchanged."""
    if not HydraConfig.initialized():
        return value
    hc = HydraConfig.get()
    if "optuna" not in str(OmegaConf.select(hc, "sweeper._target_") or "").lower():
        return value
    metrics = read_metrics(RunDir(Path(hc.runtime.output_dir)).metrics)
    best = metrics.get(OBJECTIVE) if isinstance(metrics, dict) else None
    return value if best is None else float(best)
