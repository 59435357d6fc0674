"""The data package's user-facing error, in a module of its own so that every submodule can
raise it without importing the package."""

from __future__ import annotations


class DataError(ValueError):
    """A user-facing data problem (missing raw_dir, empty split...), naming the key to fix."""
