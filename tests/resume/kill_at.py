"""Runs ``python -m MODULE ARGS`` and SIGKILLs it at a chosen call, as a cluster's OOM killer or
a pre-empted node would: no handler runs, nothing is flushed.

``LASTEXP_KILL_AT=module:function:N:when`` wraps ``module.function`` (``lastexp.io:swap_in``,
``os:write``, ...) and kills the process at its N-th call, ``before`` or ``after`` the call
ran. The wrapper is installed before the command's modules are imported, so that a name they
import from ``module`` is the wrapped one. ``LASTEXP_KILL_AT=count:module:function`` kills
nothing and prints how many calls it saw.
"""

from __future__ import annotations

import atexit
import importlib
import os
import runpy
import signal
import sys


def main() -> None:
    spec = os.environ["LASTEXP_KILL_AT"]
    counting = spec.startswith("count:")
    parts = spec.removeprefix("count:").split(":")
    mod_name, fn_name = parts[0], parts[1]
    target = 0 if counting else int(parts[2])
    when = "" if counting else parts[3]
    mod = importlib.import_module(mod_name)
    real = getattr(mod, fn_name)
    seen = [0]

    def wrapped(*args, **kwargs):
        seen[0] += 1
        if seen[0] == target and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        out = real(*args, **kwargs)
        if seen[0] == target and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(mod, fn_name, wrapped)
    if counting:
        atexit.register(lambda: print(f"KILL-COUNT {seen[0]}", flush=True))
    command, argv = sys.argv[1], sys.argv[2:]
    if command == "lastexp.export":  # its functions, patched above, live in its modules
        from lastexp.export import main as export_main

        sys.exit(export_main(argv))
    sys.argv = [command, *argv]
    runpy.run_module(command, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
