"""Worker processes for the data folder's file passes (corpus generation, parsing raw files).

numpy-free and torch-free: the workers of preprocessing import only what their job needs.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable, Iterable
from typing import Any


def pool_worker_init() -> None:
    """Forked workers inherit the parent's signal handlers; under submitit SIGTERM is ignored,
    so Pool's terminate() would hang the job and USR2 would run submitit's checkpoint inside a
    worker. Workers take the defaults back and leave preemption to the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def mp_context() -> str:
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def map_jobs(work: Callable[[Any], Any], jobs: Iterable[Any], workers: int, chunksize: int,
             progress: Callable[[int, int], None] | None = None) -> list[Any]:
    """``work(job)`` of every job, in order: in a pool of ``workers`` processes (``chunksize``
    jobs a task) when ``workers > 1``, else in this process. ``progress(done, total)`` is
    called as results come in."""
    jobs = list(jobs)
    results: list[Any] = []
    if workers > 1:
        with mp.get_context(mp_context()).Pool(workers, initializer=pool_worker_init) as pool:
            for r in pool.imap(work, jobs, chunksize=chunksize):
                results.append(r)
                if progress is not None:
                    progress(len(results), len(jobs))
        return results
    for job in jobs:
        results.append(work(job))
        if progress is not None:
            progress(len(results), len(jobs))
    return results
