"""Fixtures for the SLURM tests: a session-wide local single-node cluster."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tools import local_slurm


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slurm: needs the local SLURM cluster (tools/local_slurm.py)")


def _cannot_run() -> str | None:
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (it installs packages and runs daemons)"
    if local_slurm.missing_programs() and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is not available to install it"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """Start (or reuse) the local cluster, export SLURM_CONF, stop it at the end.

    State dir: $LASTEXP_SLURM_STATE_DIR or /tmp/lastexp-slurm. A cluster that was already
    running before the session is reused and left running.
    """
    reason = _cannot_run()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"SLURM tests must run in CI: {reason}")
        pytest.skip(reason)
    state_dir = os.environ.get("LASTEXP_SLURM_STATE_DIR", str(local_slurm.DEFAULT_STATE_DIR))
    was_running = local_slurm.is_running(state_dir)
    t0 = time.monotonic()
    env = local_slurm.start(state_dir)
    print(f"\n[slurm] cluster ready in {time.monotonic() - t0:.1f} s ({state_dir})")
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        if not was_running:
            local_slurm.stop(state_dir)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
