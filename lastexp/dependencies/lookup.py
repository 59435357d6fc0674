"""Finding the runs a run reads, when it starts.

A dependency is found in the run store by what it is (ablation ID, dataset, stream, seed and
the debug preset); when it is absent the error names the exact command that produces it, and
with ``run_dependencies=true`` lastexp runs that command first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from lastexp.dependencies.requirements import is_path, shared_overrides
from lastexp.errors import ConfigError
from lastexp.runstore.dependency_key import RunIdentity, debug_of
from lastexp.runstore.walk import find_completed


def resolve(cfg: DictConfig, *, ref: str, stream: str, role: str) -> Path:
    """The run directory ``ref`` names: a path, or an ablation ID looked up in the store."""
    if is_path(ref):
        path = Path(ref)
        if not path.is_dir():
            raise ConfigError(f"{role} run directory {path} does not exist")
        return path
    need = RunIdentity(ref, str(cfg.dataset.name), stream, int(cfg.seed), debug_of(cfg))
    found = find_completed(cfg.paths.runs, need)
    if found is not None:
        return found.run_dir
    extra = shared_overrides()
    cmd = need.command(extra)
    if not cfg.run_dependencies:
        raise ConfigError(
            f"{role} {ref} ({cfg.dataset.name}, stream {stream}, seed {cfg.seed}) is not in the "
            f"run store {cfg.paths.runs}; produce it with: {cmd} (or pass run_dependencies=true)"
        )
    print(f"lastexp: running the missing {role} first: {cmd}", flush=True)
    done = subprocess.run([sys.executable, "-m", "lastexp", *need.args(extra)])
    found = find_completed(cfg.paths.runs, need)
    if done.returncode != 0 or found is None:
        raise ConfigError(f"the {role} run failed (exit {done.returncode}): {cmd}")
    return found.run_dir
