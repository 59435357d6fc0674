"""Runs ``python -m lastexp.preprocess ARGS`` and SIGKILLs it at a chosen point of the synthetic
corpus generation or of the cache build, as an OOM killer or a pre-empted node would: no
handler runs, nothing is flushed.

``LASTEXP_KILL=write:N`` kills at the N-th corpus file written; ``corpus:1`` once the corpus's
files are all written, before its folder is renamed into place; ``save:N`` at the N-th
``np.save`` of the cache build (after the memory-mapped x arrays, before the rename; 6 in
all: y, lengths and names of each side); ``summary:1`` as the cache's summary.json is written,
the last step before its rename.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

import lastexp.data as data
import lastexp.data.synthetic as synthetic
from lastexp.preprocess import main as preprocess


def main() -> int:
    what, _, n = os.environ["LASTEXP_KILL"].partition(":")
    target = int(n)
    seen = {"write": 0, "corpus": 0, "save": 0, "summary": 0}

    def count(kind: str) -> None:
        seen[kind] += 1
        if kind == what and seen[kind] == target:
            os.kill(os.getpid(), signal.SIGKILL)

    real_write, real_generate, real_save = (synthetic._write_one, synthetic.generate_corpus,
                                            np.save)
    real_dumps = data.json.dumps

    def write_one(args):
        count("write")
        return real_write(args)

    def generate(*args, **kwargs):
        paths = real_generate(*args, **kwargs)
        count("corpus")
        return paths

    def save(*args, **kwargs):
        count("save")
        return real_save(*args, **kwargs)

    def dumps(obj, *args, **kwargs):
        if kwargs.get("indent"):  # summary.json (the cache key's blob has no indent)
            count("summary")
        return real_dumps(obj, *args, **kwargs)

    synthetic._write_one = write_one
    synthetic.generate_corpus = generate
    np.save = save
    data.json = type("json", (), {"dumps": staticmethod(dumps), "loads": data.json.loads})
    return preprocess(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
