"""Hyper-parameter searches: ``python -m lastexp --multirun hydra/sweeper=optuna +search=<name>``.

Each trial is an ordinary run in the store (its directory named from its config, like any
multirun job), so a trial whose parameters ran before is skipped and reports the stored value.
The study lives beside the runs, in ``<paths.runs>/search/<study>.db`` (sqlite); its name is the
preset's prefix plus the run-name parts and a hash of the config minus the searched keys, so
relaunching the same search continues the same study, and a search over another model, dataset,
seed or epoch budget gets a study of its own. The value a trial reports is the run's best
validation top-1 (``best_val_top1`` of metrics.json) on the validation split carved from training
(``dataset.val_subjects`` / ``dataset.val_fraction``); a search without one is refused unless
``search.on_test=true``, and then reports the best test top-1 (``best_top1``). Beside each
study's ``<study>.db`` a ``<study>.json`` says which (``selection``: ``validation`` or ``test``,
``objective``: the metrics.json key maximised), for the search table.

A trial that ends the command -- refused for a bad value or bad data, diverged, out of disk
space, locked by another command -- ends the search in one line (``lastexp: error: search
trial N (params): ...``, exit 2), as Optuna's own ``optimize`` stops at a failed trial: the
trial is told failed in its study first (:func:`trial_guard`), so the study keeps every
trial it finished, and the same command, once the cause is fixed, continues it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from lastexp.errors import LastexpError
from lastexp.io import read_json, write_json
from lastexp.runstore import RunDir, read_metrics
from lastexp.runstore.key import identity

SEARCH_DIR = "search"  # below paths.runs: the studies' sqlite files
OBJECTIVE = "best_top1"  # a search on the test split (search.on_test=true)
VAL_OBJECTIVE = "best_val_top1"  # a search on a validation split (the default)


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
    """The sqlite URL of study ``name`` below the runs root, made ready for the sweeper: the
    folder is created here (optuna does not create it), and Optuna's own records ("A new study
    created ...") go to the command's log like Hydra's, not to stderr, which holds a failed
    search's one line only."""
    folder = Path(runs) / SEARCH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    optuna_logs_to_hydra()
    return f"sqlite:///{(folder / f'{name}.db').as_posix()}"


def optuna_logs_to_hydra() -> None:
    """Optuna's logger hands its records to the root logger (Hydra's console and log file)
    instead of its own stderr handler (Optuna's documented switches)."""
    # deferred: optuna takes ~2.6 s to import; only a search, whose sweeper loads it, gets here
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def objective(metrics: dict[str, Any]) -> str:
    """The metrics.json key a trial reports: the best validation top-1 of a run that selected
    on a validation split, else (a search with ``search.on_test=true``) the best test top-1."""
    return VAL_OBJECTIVE if metrics.get("selection") == "validation" else OBJECTIVE


def protocol_path(storage: str) -> Path | None:
    """``<study>.json`` beside the study's sqlite file (None for another kind of storage)."""
    prefix = "sqlite:///"
    return Path(storage[len(prefix):]).with_suffix(".json") if storage.startswith(prefix) \
        else None


def record_protocol(path: Path, study: str, metrics: dict[str, Any]) -> None:
    """Write which split the study tunes on, once (atomically; unchanged files are left)."""
    record = {"study": study, "selection": metrics.get("selection") or "test",
              "objective": objective(metrics)}
    try:
        if read_json(path) == record:
            return
    except (OSError, ValueError):
        pass
    write_json(path, record)


def optuna_job() -> DictConfig | None:
    """The Hydra config of a job the Optuna sweeper launched (a search trial), else None."""
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    sweeper = str(OmegaConf.select(hc, "sweeper._target_") or "").lower()
    return hc if "optuna" in sweeper and hc.mode == RunMode.MULTIRUN else None


def trial_value(value: Any) -> Any:
    """What the Hydra task returns: under the Optuna sweeper the run's best validation top-1
    (:func:`objective`; also for a run skipped as already completed), otherwise ``value``
    unchanged. The study's protocol file is written beside it (:func:`record_protocol`)."""
    hc = optuna_job()
    if hc is None:
        return value
    metrics = read_metrics(RunDir(Path(hc.runtime.output_dir)).metrics)
    if not isinstance(metrics, dict):
        return value
    path = protocol_path(str(OmegaConf.select(hc, "sweeper.storage") or ""))
    if path is not None and int(os.environ.get("RANK", "0")) == 0:
        record_protocol(path, str(OmegaConf.select(hc, "sweeper.study_name")), metrics)
    best = metrics.get(objective(metrics))
    return value if best is None else float(best)


@contextlib.contextmanager
def trial_guard() -> Iterator[None]:
    """Around a search trial's job: one that ends the command (a lastexp error -- a bad value,
    bad data, a diverged run -- or an exit after its one line: a full disk, a locked run)
    is told failed in the study and ends the search with one line and exit 2, instead of
    the sweeper's traceback; a Ctrl-C fails it too, then ends the command as it does.
    Outside an Optuna search, and for a trial that completes or fails for a bug (its
    traceback is the report), nothing changes."""
    hc = optuna_job()
    if hc is None:
        yield
        return
    try:
        yield
    except LastexpError as exc:
        trial = fail_trial(hc)
        print(f"lastexp: error: search trial {trial}: {exc}; {RESUME}", file=sys.stderr,
              flush=True)
        sys.exit(2)
    except SystemExit as exc:
        if exc.code not in (0, None):  # its one line is printed (a full disk, a locked run)
            fail_trial(hc)
        raise
    except KeyboardInterrupt:  # Ctrl-C: as Optuna's optimize, the trial failed, not running
        fail_trial(hc)
        raise


RESUME = ("the search stopped there, its finished trials kept in the study: fix that, then "
          "run the same command again to continue it")


def fail_trial(hc: DictConfig) -> str:
    """Tell the study that this job's trial failed; ``N (key=value ...)`` naming it. The
    trial is the newest one still running whose parameters are this job's overrides (the
    sweeper asked for it just before it launched the job)."""
    # deferred: optuna takes ~2.6 s to import; only a search trial that fails needs it (the
    # sweeper, in this process or the launching one, has it loaded)
    import optuna

    overrides = set(hc.overrides.task)
    try:
        study = optuna.load_study(study_name=str(OmegaConf.select(hc, "sweeper.study_name")),
                                  storage=str(OmegaConf.select(hc, "sweeper.storage")))
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for trial in sorted(running, key=lambda t: -t.number):
            params = [f"{k}={v}" for k, v in trial.params.items()]
            if set(params) <= overrides:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                return f"{trial.number} ({' '.join(params)})"
    except Exception:  # noqa: BLE001 -- a study that cannot be updated (locked, full disk):
        pass  # the trial stays "running" there; the job's own line is the report
    return f"({' '.join(hc.overrides.task)})"
