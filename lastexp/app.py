"""What the Hydra app registers before it composes a config: the structured schema, which
conf/config.yaml lists first in its defaults, and the resolvers the YAML files call.

Every entry point that composes (``python -m lastexp``, ``lastexp.plan``, ``lastexp.preprocess``
and the tests) calls :func:`register` once; registering twice is harmless."""

from __future__ import annotations

import functools
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from lastexp import catalog
from lastexp.config import CHOICES, Config, ModelConfig
from lastexp.config.model import family_schemas
from lastexp.environment import default_threads, slurm_workers
from lastexp.model_names import MODEL_ALIASES
from lastexp.optuna_study import study_name, study_storage
from lastexp.runstore.key import run_dir_name

# The config root: conf/ of a clone, shipped in the wheel as lastexp/conf (lastexp/conf is a link
# to the top-level conf/ in a clone, so an editable install, PYTHONPATH and the tests compose the
# very files a non-editable install copies). Every entry point composes from here.
CONF_DIR = Path(__file__).resolve().parent / "conf"


def _run_dir(*, _root_: DictConfig) -> str:
    return run_dir_name(_root_)


# --help: the groups a user chooses from, in this order, each with its options; the groups the
# defaults list fills in by itself (distill_recipe, distill_student) and Hydra's own are left out
HELP_GROUPS = ("model", "stream", "optimizer", "scheduler", "distill", "preprocessing",
               "dataset", "logger", "env", "debug", "ablation", "sweep", "search")
APPENDED_GROUPS = ("ablation", "sweep", "search")  # written +group=option
HELP_KEYS = (
    ("seed=1", "the run's seed (seed=1,2,3 with --multirun: one run per seed)"),
    ("training.epochs=N", "also batch_size, amp, compile, swa_start, max_hours, num_threads"),
    ("optimizer.lr=X", "also weight_decay, momentum; scheduler.warmup_epochs, min_lr"),
    ("dataset.raw_dir=DIR", "NTU .skeleton files; dataset.npz=FILE for CTR-GCN's npz"),
    ("paths.runs=DIR", "the run store (runs/); paths.data=DIR the data and caches (data/)"),
    ("fresh=true", "start a finished or interrupted run over; init_from=CKPT fine-tunes"),
)
HELP_FLAGS = (
    ("--multirun, -m", "one job per value of a comma list (seed=1,2,3) or +sweep=<name>"),
    ("--cfg job [--resolve]", "print the composed config (every key) instead of running"),
    ("--info defaults", "where each part of the config comes from"),
    ("--shell-completion install=bash", "print a bash completion script (eval it)"),
    ("--hydra-help", "Hydra's own flags and groups (hydra/launcher=submitit_slurm ...)"),
)


def is_alias(path: Path) -> bool:
    """A group option that only renames another of its group: all it holds is a defaults list
    naming a sibling option (``model/base_e_v3`` -> ``last_e_base``), or the group's ``name``
    set to one (``stream/joint_velocity`` -> ``velocity``). An ablation row that builds on its
    baseline (``B1``: defaults ``B0`` plus its change) is no alias."""
    siblings = {p.stem for p in path.parent.glob("*.yaml")} - {path.stem}
    node = OmegaConf.load(path)
    own = set(node.keys()) - {"defaults"}
    defaults = [d for d in node.get("defaults", []) if isinstance(d, str)]
    if not own:
        return any(d in siblings for d in defaults)
    return own == {"name"} and node.get("name") in siblings


def _id_ranges(names: list[str]) -> str:
    """``B0 B1 ... B14 L0 ...`` as ``B0-B14, L0-L12``: ablation IDs by letter, as ranges."""
    by_letter: dict[str, list[int]] = {}
    for name in names:
        by_letter.setdefault(name[0], []).append(int(name[1:]))
    return ", ".join(f"{k}{min(v)}-{k}{max(v)}" if len(v) > 1 else f"{k}{v[0]}"
                     for k, v in by_letter.items())


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The options of a config group a user picks from (aliases left out), sorted."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml") if not is_alias(p))


def _wrap(head: str, text: str, width: int = 96) -> list[str]:
    lines, line = [], head
    for word in text.split(" "):
        if len(line) + len(word) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = " " * len(head)
        line += word + " "
    return [*lines, line.rstrip()]


def help_text(conf_dir: Path = CONF_DIR) -> str:
    """``lastexp --help``: usage, the user-facing groups with their options, the keys and flags
    used most (every key: ``--cfg job``)."""
    out = ["lastexp: train one run, a sweep or an ablation table of the LAST models (Hydra app).",
           "", "Usage: lastexp [--multirun] [group=option ...] [key=value ...]",
           "       (python -m lastexp is the same command)", "",
           "== Config groups (group=option; +ablation=, +sweep=, +search= are added) =="]
    for group in HELP_GROUPS:
        options = group_options(group, conf_dir)
        if not options:
            continue
        if group == "ablation":
            listed = _id_ranges(sorted(options, key=lambda o: (o[0], int(o[1:]))))
        else:
            listed = ", ".join(options)
        head = f"  {'+' if group in APPENDED_GROUPS else ''}{group}: "
        out += _wrap(f"{head:<18}", listed)
    out += ["", "== Keys (key=value; lists as key=[a,b]; a bare comma is a sweep) =="]
    out += [f"  {key:<22}{what}" for key, what in HELP_KEYS]
    out += ["", "== Flags =="]
    out += [f"  {flag:<34}{what}" for flag, what in HELP_FLAGS]
    out += ["", "Other commands (each with --help): python -m lastexp.results | lastexp.plan |",
            "  lastexp.preprocess | lastexp.export | lastexp.models | lastexp.runs | "
            "lastexp.ensemble"]
    return "\n".join(out) + "\n"


def _help() -> str:
    return help_text().replace("$", "$$")  # Hydra fills $NAMES into the template


RESOLVERS = {  # none cached: each call reads the config (or environment) it is given now
    "lastexp_slurm_workers": slurm_workers,  # env/slurm: DataLoader workers per task
    "lastexp_run_dir": _run_dir,  # hydra.run.dir: <paths.runs>/<name of the config>
    "lastexp_threads": default_threads,  # training.num_threads: the CPUs this process may use
    "lastexp_help": _help,  # hydra.help.template: lastexp --help
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


@functools.cache
def model_schemas() -> dict[str, type[ModelConfig]]:
    """The schema of every ``model=`` option's node, aliases too, by option name: its family's
    flags, as its conf/model YAML lists them (:func:`lastexp.config.model.family_schemas`)."""
    schemas = family_schemas(CONF_DIR / "model", module=__name__)
    return {**schemas, **{alias: schemas[name] for alias, name in MODEL_ALIASES.items()}}


def __getattr__(name: str) -> type[ModelConfig]:
    """``lastexp.app.ModelConfig[<option>]``: how a pickled config (a SLURM job's) names the
    schema of its model node, which :func:`model_schemas` makes."""
    for schema in model_schemas().values():
        if schema.__qualname__ == name:
            return schema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register() -> None:
    """Store the schema as ``lastexp_schema``, each model option's schema as
    ``model_schema_<option>`` (conf/config.yaml lays it under the option; a config of no group,
    which neither --help nor shell completion lists), the model aliases' options, and register
    every resolver not yet known."""
    ConfigStore.instance().store(name="lastexp_schema", node=Config)
    for option, schema in model_schemas().items():
        ConfigStore.instance().store(name=f"model_schema_{option}", node=schema)
    store_model_aliases(ConfigStore.instance())
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function, use_cache=False)
