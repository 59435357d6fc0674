"""The argument parser of lastexp's plain commands (ensemble, results, plan, export, models, the
local SLURM cluster): a mistake on the command line is one line, as every other lastexp error.

argparse's own report is the usage block and then the error (two or more lines); the usage is one
``--help`` away, so the line says where to find it instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are ``<command>: error: <message>; see <prog>
    --help`` on stderr, exit status 2 (argparse's), no usage block."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("python -m ")  # as the commands' other errors say it
        text = " ".join(message.split())  # argparse may wrap a long message
        print(f"{command}: error: {text}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)


def one_line(message: str) -> str:
    """Hydra's multi-line report as one line: the statements, and options as a list."""
    head, options = [], []
    for line in message.splitlines():
        if line.startswith("\t") and not line.strip().startswith("provider="):
            options.append(line.strip())
        elif line.strip() and not line.startswith((" ", "\t")) and not line.startswith(
            ("To append", "Set the environment", "Config search path", "Available options")
        ):
            head.append(line.strip())
    text = ": ".join(h.rstrip(".") for h in head)
    return f"{text}; available: {', '.join(options)}" if options else text


def hydra_error_line(exc: BaseException) -> str:
    """A Hydra or OmegaConf error, with its cause, as one line (its class name if empty)."""
    cause = f"\n{exc.__cause__}" if exc.__cause__ is not None else ""
    return one_line(f"{exc}{cause}") or exc.__class__.__name__
