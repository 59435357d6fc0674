"""Runs ``python -m lastexp ARGS`` and SIGKILLs it at a chosen point, as a cluster's OOM killer
or a pre-empted node would: no handler runs, nothing is flushed.

``LASTEXP_KILL=replace:N:before`` kills at the N-th ``os.replace`` (the rename that ends every
atomic write), before it happens (a temporary file is left) or ``after`` it;
``LASTEXP_KILL=evaluate:N`` at the start of the N-th evaluation (the last ones are the final
phase: final weights, the SWA model, then best.pt unless the last epoch is the best);
``LASTEXP_KILL=update_bn:1`` halfway through SWA's BN recomputation.
``LASTEXP_KILL=signal:N:TERM`` (or ``USR2``, ``INT``) does not kill: right after the N-th
rename it sends that signal to the process, as ``scancel``, SLURM's pre-emption warning or a
Ctrl-C would, and lets lastexp's own handling end the run.
``LASTEXP_KILL=count`` kills nothing and prints how many of each it saw; with
``LASTEXP_KILL_LOG=FILE`` every rename's target file name is appended to FILE, one a line (a
trial finds the renames of a phase, e.g. MaskCLR pretraining's ``pretrain_last.pt``).
"""

from __future__ import annotations

import atexit
import os
import runpy
import signal
import sys


def main() -> None:
    spec = os.environ.get("LASTEXP_KILL", "count")
    what, _, rest = spec.partition(":")
    n_str, _, when = rest.partition(":")
    target = int(n_str) if n_str else 0
    seen = {"replace": 0, "evaluate": 0, "update_bn": 0}

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    real_replace = os.replace

    log = os.environ.get("LASTEXP_KILL_LOG")

    def replace(src, dst, *args, **kwargs):
        seen["replace"] += 1
        if log:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"{os.path.basename(os.fspath(dst))}\n")
        hit = what in ("replace", "signal") and seen["replace"] == target
        if hit and what == "replace" and when == "before":
            die()
        real_replace(src, dst, *args, **kwargs)
        if hit and what == "signal":
            os.kill(os.getpid(), getattr(signal, f"SIG{when}"))
        elif hit:
            die()

    os.replace = replace

    import torch.optim.swa_utils as swa_utils

    import lastexp.train.loop as loop
    import lastexp.train.swa as swa

    real_eval = loop.evaluate

    def evaluate(*args, **kwargs):
        seen["evaluate"] += 1
        if what == "evaluate" and seen["evaluate"] == target:
            die()
        return real_eval(*args, **kwargs)

    loop.evaluate = evaluate
    real_update_bn = swa_utils.update_bn

    def update_bn(loader, model, device=None):
        seen["update_bn"] += 1
        if what == "update_bn" and seen["update_bn"] == target:
            batches = list(loader)
            real_update_bn(batches[: max(1, len(batches) // 2)], model, device)
            die()
        return real_update_bn(loader, model, device)

    swa_utils.update_bn = update_bn
    swa.update_bn = update_bn
    if what == "count":
        atexit.register(lambda: print(f"KILL-COUNTS {seen['replace']} {seen['evaluate']} "
                                      f"{seen['update_bn']}", flush=True))
    sys.argv = ["lastexp", *sys.argv[1:]]
    runpy.run_module("lastexp", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
