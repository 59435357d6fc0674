"""lastexp's own errors, by whose fault they are.

Each is printed as one line (``lastexp: error: ...``) instead of a traceback. The class says
who has to act:

- :class:`UserError` / :class:`ConfigError`: the user's command (a key, a value, a path) -- exit 2;
- :class:`DataError`: the data on disk (a missing ``raw_dir``, a malformed ``.npz``) -- exit 2;
- :class:`RunStoreError`: the run store (a locked or foreign run directory, a cut scores file);
- :class:`NumericalError`: a run that diverged (too many non-finite steps): the run is marked
  failed and the command exits 2, naming the key to change.

They derive from :class:`ValueError`, as each did before it had a family, so that callers that
catch ``ValueError`` keep catching them. This module imports nothing of lastexp: every layer
(run store, data, models, training) raises these without depending on the config schema.
"""

from __future__ import annotations


class LastexpError(ValueError):
    """An error lastexp explains in one line (no traceback)."""


class UserError(LastexpError):
    """The user's command is at fault: printed as one line, exit code 2."""


class ConfigError(UserError):
    """A user-facing configuration or input error: printed as one line, exit code 2."""


class DataError(LastexpError):
    """A user-facing data problem (missing raw_dir, empty split...), naming the key to fix."""


class RunStoreError(LastexpError):
    """The run store is at fault: a run directory locked, foreign, unfinished or cut."""


class NumericalError(LastexpError):
    """A numerical failure: the run diverged (NaN or inf it could not skip past)."""
