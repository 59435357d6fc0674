"""The ``model`` group's schema and its check.

:class:`ModelConfig` holds the keys every model family reads; a family's own flags are the other
keys of its ``conf/model/<name>.yaml``. :func:`family_schemas` makes each model option's schema
from its YAML (a :class:`ModelConfig` subclass, one typed field per flag, its default the YAML's
value), which the app stores for ``conf/config.yaml``'s defaults to lay under the option; so a
family's ``model`` node holds only its own flags, and one another family reads is refused as any
unknown key is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, ClassVar, get_origin

from hydra.plugins.config_source import ConfigSource
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from lastexp.config.ranges import AT_LEAST_ONE, BELOW_ONE, UNIT, Range
from lastexp.errors import ConfigError


@dataclass
class ModelConfig:
    """The keys every family reads (its constructor's and ``SkeletonFlags``'); a family's
    schema (:func:`family_schema`) adds the flags its YAML lists."""

    RANGES: ClassVar[dict[str, Range]] = {  # the allowed values of this group's numbers
        "width_mult": Range(0, 8, low_open=True),
        "drop_path_rate": UNIT, "dropout": BELOW_ONE,
    }

    name: str = MISSING  # registry key in lastexp.models
    width_mult: float = 1.0  # debug=tiny narrows every stage, keeping every component on
    drop_path_rate: float = 0.0
    dropout: float = 0.0
    ib_head: bool = False  # InfoGCN's information-bottleneck head (every family has it)


# A family's integer flag counts the parts of a component (prototypes, heads, frequency bins):
# at least one. Its other flags are switches, or lists of them (one per stage).
COUNT = AT_LEAST_ONE
_SCALARS = (bool, int, float, str)


def _flag_type(value: Any) -> Any:
    """The type a flag's YAML value gives it: bool, int, float, str, or a list of one of these."""
    if isinstance(value, _SCALARS):
        return type(value)
    if isinstance(value, (list, ListConfig)) and value:
        kinds = {type(v) for v in value}
        if len(kinds) == 1 and kinds <= set(_SCALARS):
            return list[kinds.pop()]
    return None


def family_schema(name: str, node: Mapping[str, Any], *, module: str) -> type[ModelConfig]:
    """The schema of model ``name``'s node: :class:`ModelConfig` plus one field per other key
    of ``node`` (its YAML), typed and defaulted by its value; ``RANGES`` adds :data:`COUNT` for
    each integer flag. The class is named ``ModelConfig[<name>]`` and said to live in ``module``,
    which must give it back by that name (a config holding it is pickled by reference)."""
    shared = {f.name for f in fields(ModelConfig)}
    flags: list[tuple[str, Any, Any]] = []
    ranges = dict(ModelConfig.RANGES)
    for key, value in node.items():
        if key in shared or key == "defaults":
            continue
        kind = _flag_type(value)
        if kind is None:
            raise ConfigError(f"conf/model/{name}.yaml: model.{key}={value!r} is no model flag; "
                              "a flag is a bool, int, float or string, or a list of one of these")
        if kind is int:
            ranges[key] = COUNT
        default = (field(default_factory=list(value).copy) if get_origin(kind) is list
                   else field(default=value))
        flags.append((str(key), kind, default))
    qualname = f"{ModelConfig.__name__}[{name}]"
    schema = make_dataclass(qualname, flags, bases=(ModelConfig,), namespace={"RANGES": ranges})
    schema.__module__, schema.__qualname__ = module, qualname
    return schema


def model_node(path: Path) -> DictConfig:
    """The ``model`` node a ``conf/model`` option composes to: the options of its group its
    defaults list names first (a size of a family takes the family's flags from the family's
    YAML, another size), then its own keys (under ``model:`` in a file with the ``_global_``
    package, which sets other groups' keys too)."""
    text = path.read_text(encoding="utf-8")
    loaded = OmegaConf.create(text)
    node = OmegaConf.create()
    for entry in loaded.get("defaults") or []:
        sibling = path.parent / f"{str(entry).split('@')[0]}.yaml"
        if isinstance(entry, str) and sibling.is_file():
            node = OmegaConf.merge(node, model_node(sibling))
    # the package from the file's header, read as Hydra reads it
    if ConfigSource._get_header_dict(text)["package"] == "_global_":  # noqa: SLF001
        loaded = loaded.get("model") or OmegaConf.create()
    own = {k: v for k, v in loaded.items_ex(resolve=False) if k != "defaults"}
    return OmegaConf.merge(node, own)


def family_schemas(model_dir: Path, *, module: str) -> dict[str, type[ModelConfig]]:
    """The schema of every option of ``model_dir`` (conf/model) that names its model, by option
    name (:func:`family_schema`); an option that only renames another is left out."""
    schemas = {}
    for path in sorted(model_dir.glob("*.yaml")):
        node = model_node(path)
        if "name" in node:
            schemas[path.stem] = family_schema(path.stem, node, module=module)
    return schemas


def schema_of(node: DictConfig, static: type) -> type:
    """The dataclass a config node is checked against: its runtime type where that refines the
    static one (a family's :func:`family_schema` for ``model``), else the static type."""
    runtime = OmegaConf.get_type(node)
    if isinstance(runtime, type) and issubclass(runtime, static):
        return runtime
    return static


def check_model(m: DictConfig) -> None:
    """A family's list flag keeps its default's length (``use_st_att``: one flag per stage)."""
    for f in fields(schema_of(m, ModelConfig)):
        if f.default_factory is dataclasses.MISSING:
            continue
        default, value = f.default_factory(), m.get(f.name)
        if isinstance(value, ListConfig) and len(value) != len(default):
            shown = ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in default)
            raise ConfigError(f"model.{f.name} must list {len(default)} values, as its "
                              f"default [{shown}] does")
