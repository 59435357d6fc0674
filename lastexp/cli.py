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
