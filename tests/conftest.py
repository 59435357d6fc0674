"""Shared fixtures: compose configs the way the CLI does, with tiny overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from lastexp import app

REPO = Path(__file__).resolve().parent.parent
CONF = app.CONF_DIR  # the config root every entry point composes from


def compose(overrides: list[str] | None = None, *, return_hydra: bool = False):
    """Compose conf/config.yaml with the given overrides (no job is run)."""
    app.register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=overrides or [], return_hydra_config=return_hydra)


def run_cli(args: list[str], cwd: Path, *, module: str = "lastexp", timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args`` in ``cwd`` as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline",
                "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env=full_env,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory whose runs/ and data/ are private to the test."""
    return tmp_path


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> Path:
    """One data root shared by the end-to-end tests, so the tiny corpus is generated once."""
    return tmp_path_factory.mktemp("data")
