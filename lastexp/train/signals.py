"""Preemption: SIGTERM / SIGUSR2 (SLURM's warning before it kills or requeues a job) stop the
training loop after the current optimizer step, with a mid-epoch checkpoint."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field


@dataclass
class StopFlag:
    """Set by SIGTERM / SIGUSR2 (SLURM preemption): the loop stops at the next step."""

    requested: bool = False
    signum: int | None = None
    previous: dict = field(default_factory=dict)

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGUSR2):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):  # not the main thread
                pass

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        # Only note it: the loop stops after the current optimizer step and saves a
        # mid-epoch checkpoint; then hand_over() gives the signal to whoever had it before.
        self.requested = True
        self.signum = signum

    def hand_over(self) -> None:
        """Call the handler we displaced (submitit's: checkpoint and requeue the job)."""
        if self.signum is None:
            return
        prev = self.previous.get(self.signum)
        self.restore()
        if callable(prev):
            prev(self.signum, None)
        elif prev == signal.SIG_DFL:  # nobody else listens: die of the signal, as asked
            os.kill(os.getpid(), self.signum)

    def release(self, run_name: str) -> None:
        """At the end of a run: hand a caught signal over (under submitit: checkpoint and
        requeue); still here after that, nobody requeued the job, which must not end as a
        success."""
        if self.requested:
            self.hand_over()
            self.restore()
            raise RuntimeError(f"{run_name}: interrupted by {signal.Signals(self.signum).name}"
                               "; checkpoint saved, rerun the same command to resume")
        self.restore()
