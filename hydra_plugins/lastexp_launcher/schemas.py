"""The submitit plugin's launcher schemas under names of their own, so lastexp's presets extend
them through a defaults list instead of Hydra's deprecated automatic schema matching.

hydra-submitit-launcher stores its structured configs as ``hydra/launcher/submitit_slurm`` and
``submitit_local``; lastexp's presets (``conf/hydra/launcher/submitit_*.yaml``) keep those option
names, which the README and every command use. A config file and a ConfigStore node with the same
name make Hydra validate the file against the node and print "... is validated against
ConfigStore schema with the same name. This behavior is deprecated" at every launch and in
every job. Hydra's migration is a schema under another name that the file lists in its
defaults; the plugin cannot be renamed, so this search-path plugin (Hydra runs it after it
has imported every plugin, before it composes anything) moves the two nodes to
``submitit_slurm_schema`` / ``submitit_local_schema``, which the presets list first.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.plugins.search_path_plugin import SearchPathPlugin

GROUP = "hydra/launcher"
RENAMED = ("submitit_slurm", "submitit_local")


def rename_launcher_schemas(store: ConfigStore | None = None) -> None:
    """Move the plugin's ``hydra/launcher/<name>`` nodes to ``<name>_schema`` (idempotent)."""
    store = store or ConfigStore.instance()
    group = store.repo.get("hydra", {}).get("launcher", {})
    for name in RENAMED:
        node = group.pop(f"{name}.yaml", None)
        if node is not None:
            store.store(group=GROUP, name=f"{name}_schema", node=node.node,
                        provider=node.provider)


class LauncherSchemas(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        rename_launcher_schemas()
