"""The data package's config at the boundary: its public entry points (load_data, load_arrays,
synthetic.ensure_corpus) take the config dataclasses or what callers hold instead, an OmegaConf
node (a run's cfg.dataset) or a plain dict (a checkpoint's config). Each is converted once,
here; everything below reads attributes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from lastexp.config import DatasetConfig, PreprocessingConfig, SyntheticConfig

_C = TypeVar("_C")


def _convert(cls: type[_C], node: _C | Mapping[str, Any]) -> _C:
    """``node`` as a ``cls``: itself if it is one, else its entries that are fields of ``cls``
    (interpolations resolved; keys it lacks keep their defaults, keys ``cls`` lacks are
    dropped: a checkpoint's config may predate or outlive a field)."""
    if isinstance(node, cls):
        return node
    entries = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in entries.items() if k in names})


def synthetic_config(node: SyntheticConfig | Mapping[str, Any]) -> SyntheticConfig:
    """``dataset.synthetic`` as a :class:`SyntheticConfig`."""
    return _convert(SyntheticConfig, node)


def preprocessing_config(node: PreprocessingConfig | Mapping[str, Any]) -> PreprocessingConfig:
    """``preprocessing`` as a :class:`PreprocessingConfig`."""
    return _convert(PreprocessingConfig, node)


def dataset_config(node: DatasetConfig | Mapping[str, Any]) -> DatasetConfig:
    """``dataset`` as a :class:`DatasetConfig`, its ``synthetic`` a :class:`SyntheticConfig`."""
    ds = _convert(DatasetConfig, node)
    if isinstance(ds.synthetic, SyntheticConfig):
        return ds
    return replace(ds, synthetic=synthetic_config(ds.synthetic or {}))
