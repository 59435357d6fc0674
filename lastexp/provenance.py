"""Which code produced a number: the git commit of a checkout (runs record the commit of
lastexp's own checkout; the results tables the commit of the directory they are written from).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _git(args: list[str], cwd: str | os.PathLike[str] | None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_commit(cwd: str | os.PathLike[str] | None = PACKAGE_ROOT) -> str | None:
    """The short commit of the checkout at ``cwd`` (default: lastexp's own); None outside
    a git checkout."""
    return _git(["rev-parse", "--short", "HEAD"], cwd) or None


def git_dirty(cwd: str | os.PathLike[str] | None = PACKAGE_ROOT) -> bool:
    """Whether tracked files of that checkout differ from its commit."""
    return bool(_git(["status", "--porcelain", "--untracked-files=no"], cwd))
