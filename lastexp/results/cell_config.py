"""Which runs share a table cell: the run identity of :func:`lastexp.runstore.key.identity`
(the config minus volatile keys) without the seed, read from each run's
``.hydra/config.yaml``, plus what metrics.json adds to it (the debug preset, the world size,
the selection protocol).

Runs of one seed of a sweep differ only in their ``seed:`` line, so a config's identity is
computed once per distinct text with that line removed: 10,000 runs of a few dozen configs
parse a few dozen YAML files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from lastexp.runstore.key import VOLATILE_KEYS, identity, strip_volatile
from lastexp.runstore.layout import RunDir

_SEED_LINE = re.compile(r"^seed:[^\n]*(\n|$)", re.MULTILINE)
_OVERRIDE_KEY = re.compile(r"^- ['\"]?[+~]*([A-Za-z0-9_.@/-]+)=", re.MULTILINE)
# Command-line keys that choose the catalog's row, not another recipe: which ablation, dataset,
# stream, model and preprocessing (rows already split by them), the seed, and volatile keys.
_CATALOG_OVERRIDES = {"ablation", "sweep", "dataset", "stream", "model", "preprocessing", "seed"}
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ConfigId:
    """A run's identity without the seed: ``key`` a short hash (``""`` when the run has no
    readable ``.hydra/config.yaml``) and ``items`` its flattened ``dotted.key -> JSON value``."""

    key: str
    items: tuple[tuple[str, str], ...] = ()


UNKNOWN = ConfigId("")


def _flatten(node: object, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict) and node:
        out: list[tuple[str, str]] = []
        for k in sorted(node, key=str):
            out += _flatten(node[k], f"{prefix}{k}.")
        return out
    return [(prefix[:-1], json.dumps(node, sort_keys=True, separators=(",", ":")))]


def _identity_of_text(text: str) -> ConfigId | None:
    """The seedless identity of one config text (its ``seed:`` line already removed)."""
    try:
        raw = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(raw, dict):
        return None
    try:
        # The run identity (lastexp.runstore.key.identity); OmegaConf (~13 ms a config) only where
        # an interpolation is left to resolve: a job's saved config normally holds none.
        ident = identity(raw) if "${" in text else strip_volatile(raw)
    except Exception:  # noqa: BLE001 -- an interpolation this version cannot resolve
        ident = strip_volatile(raw)
    ident.pop("seed", None)
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return ConfigId(hashlib.sha1(blob.encode()).hexdigest()[:10], tuple(_flatten(ident)))


def _catalog_overrides(text: str) -> bool:
    """Whether a run's overrides.yaml chose only the catalog row (and volatile keys)."""
    volatile = set(VOLATILE_KEYS)
    for key in _OVERRIDE_KEY.findall(text):
        head = key.split(".", 1)[0].split("/", 1)[0]
        if head in _CATALOG_OVERRIDES or head in volatile or key in volatile:
            continue
        return False
    return True


class ConfigReader:
    """Reads runs' seedless identities, each distinct config text parsed once."""

    def __init__(self) -> None:
        self._by_text: dict[str, ConfigId | None] = {}

    def read(self, run_path: str | os.PathLike[str]) -> ConfigId:
        path = Path(run_path)
        try:
            text = RunDir(path).hydra_config.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return UNKNOWN
        text = _SEED_LINE.sub("", text)
        if text not in self._by_text:
            self._by_text[text] = _identity_of_text(text)
        found = self._by_text[text]
        return UNKNOWN if found is None else found


def catalog_recipe(run_path: str | os.PathLike[str]) -> bool | None:
    """Whether a run's command line (``.hydra/overrides.yaml``) chose only its catalog row and
    volatile keys; None without the file. Read only where a row has several configs."""
    try:
        text = RunDir(Path(run_path)).hydra_overrides.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return _catalog_overrides(text)


def differing(a: ConfigId, b: ConfigId) -> list[str]:
    """``key=value`` of ``a`` for each flattened key where ``a`` differs from ``b``."""
    if not a.key or not b.key:
        return [] if a.key == b.key else ["config unknown" if not a.key else "config recorded"]
    mine, theirs = dict(a.items), dict(b.items)
    out = []
    for k in sorted(set(mine) | set(theirs)):
        if mine.get(k) != theirs.get(k):
            out.append(f"{k}={mine[k]}" if k in mine else f"{k} unset")
    return out
