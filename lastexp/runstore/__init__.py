"""The run store: one package owns the run directory.

- :mod:`~lastexp.runstore.layout`: where each file of a run directory lives (:class:`RunDir`);
- :mod:`~lastexp.runstore.key`: what makes two configs the same run (:func:`identity`), its
  hash (:func:`run_key`), the run directory name and the W&B group derived from it;
- :mod:`~lastexp.runstore.dependency_key`: what identifies a run to the runs that read it
  (:class:`RunIdentity`: ablation, dataset, stream, seed, debug preset);
- :mod:`~lastexp.runstore.metrics`: the metrics.json schema, reading, atomic writing, and the
  completed / failed checks;
- :mod:`~lastexp.runstore.walk`: the one walker over the store, finding runs in it, and the
  one rule for the newest run and for duplicate seeds;
- :mod:`~lastexp.runstore.finished`: opening a finished run (teacher, ensemble member, export);
- :mod:`~lastexp.runstore.models`: rebuilding a finished run's model (imports torch);
- :mod:`~lastexp.runstore.scores`: test_scores.npz;
- :mod:`~lastexp.runstore.lock`: the lock held while a run is trained;
- :mod:`~lastexp.runstore.guard`: what a command may change in a run directory, and where a run
  directory may lie.

Everything else (``run``, ``ensemble``, ``export``, ``deps``, ``plan``, the launcher,
``results``) goes through these; nothing else spells a run directory's file names.
"""

from lastexp.runstore.dependency_key import RunIdentity, debug_of, identity_of
from lastexp.runstore.finished import RunError, model_checkpoint, open_finished
from lastexp.runstore.layout import RunDir
from lastexp.runstore.lock import RunLockedError, discard_lock, lock_path, run_lock
from lastexp.runstore.metrics import (
    COLUMNS,
    STATUSES,
    Metrics,
    is_completed,
    is_failed,
    read_metrics,
    schema_problem,
    timestamp,
    write_metrics,
)
from lastexp.runstore.walk import (
    RunRecord,
    find_completed,
    find_runs,
    iter_runs,
    newest_per_seed,
    recency,
    run_dirs,
    seed_slot,
    walk,
)

__all__ = [
    "COLUMNS", "STATUSES", "Metrics", "RunDir", "RunError", "RunIdentity",
    "RunLockedError", "RunRecord", "debug_of", "discard_lock", "find_completed", "find_runs",
    "identity_of", "is_completed", "is_failed", "iter_runs", "lock_path", "model_checkpoint",
    "newest_per_seed", "open_finished", "read_metrics", "recency", "run_dirs", "run_lock",
    "schema_problem", "seed_slot", "timestamp", "walk", "write_metrics",
]
