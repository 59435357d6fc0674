"""What the Hydra app registers before it composes a config: the structured schema, which
conf/config.yaml lists first in its defaults, and the resolvers the YAML files call.

Every entry point that composes (``python -m lastexp``, ``lastexp.plan``, ``lastexp.preprocess``
and the tests) calls :func:`register` once; registering twice is harmless."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from lastexp.config import Config
from lastexp.environment import slurm_workers
from lastexp.optuna_study import study_name, study_storage
from lastexp.runstore.key import run_dir_name


def _run_dir(*, _root_: DictConfig) -> str:
    return run_dir_name(_root_)


RESOLVERS = {  # none cached: each call reads the config (or environment) it is given now
    "lastexp_slurm_workers": slurm_workers,  # env/slurm: DataLoader workers per task
    "lastexp_run_dir": _run_dir,  # hydra.run.dir: <paths.runs>/<name of the config>
    "lastexp_study": study_name,  # hydra/sweeper=optuna +search=<name>: the study
    "lastexp_study_db": study_storage,  # ... and its sqlite storage below paths.runs
}


def register() -> None:
    """Store the schema as ``lastexp_schema`` and register every resolver not yet known."""
    ConfigStore.instance().store(name="lastexp_schema", node=Config)
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function, use_cache=False)
