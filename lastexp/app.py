"""What the Hydra app registers before it composes a config: the structured schema, which
conf/config.yaml lists first in its defaults, and the resolvers the YAML files call.

Every entry point that composes (``python -m lastexp``, ``lastexp.plan``, ``lastexp.preprocess``
and the tests) calls :func:`register` once; registering twice is harmless."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from lastexp import catalog
from lastexp.config import CHOICES, Config, run_dir_name
from lastexp.environment import slurm_workers
from lastexp.model_names import MODEL_ALIASES
from lastexp.search import study_name, study_storage


def _run_dir(*, _root_: DictConfig) -> str:
    return run_dir_name(_root_)


RESOLVERS = {  # none cached: each call reads the config (or environment) it is given now
    "lastexp_slurm_workers": slurm_workers,  # env/slurm: DataLoader workers per task
    "lastexp_run_dir": _run_dir,  # hydra.run.dir: <paths.runs>/<name of the config>
    "lastexp_study": study_name,  # hydra/sweeper=optuna +search=<name>: the study
    "lastexp_study_db": study_storage,  # ... and its sqlite storage below paths.runs
    "lastexp_ablations": catalog.sweep_ids,  # sweeps/<table>.yaml: the catalog's IDs of a table
}


def store_model_aliases(cs: ConfigStore) -> None:
    """Each alias of :data:`lastexp.model_names.MODEL_ALIASES` as a ``model=`` option: its
    model's config (``conf/model/<model>.yaml``), and for ``distill=<name>`` its model's student
    column (``conf/distill_student/<name>_<model>.yaml``, where there is one), which
    conf/config.yaml looks up by the option given (``<name>_<alias>``)."""
    for alias, model in MODEL_ALIASES.items():
        cs.store(group="model", name=alias, node={"defaults": [model, "_self_"]})
        for distill in CHOICES["distill.name"]:
            if distill == "none":  # no distillation, no student column
                continue
            column = {"optional /distill_student@_global_": f"{distill}_{model}"}
            cs.store(group="distill_student", name=f"{distill}_{alias}", package="_global_",
                     node={"defaults": [column, "_self_"]})


def register() -> None:
    """Store the schema as ``lastexp_schema`` and the model aliases' options, and register every
    resolver not yet known."""
    ConfigStore.instance().store(name="lastexp_schema", node=Config)
    store_model_aliases(ConfigStore.instance())
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function, use_cache=False)
