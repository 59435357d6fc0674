"""`python -m lastexp.preprocess dataset=<name> [preprocessing=<name>] [dataset.raw_dir=DIR |
dataset.npz=FILE] [paths.data=DIR]`: build the preprocessed cache of a dataset and print a summary.

The config is composed from conf/ with Hydra's compose API (the same overrides as a run), so no
run directory or log file is written: only the cache (with its summary.json) under
``<paths.data>/cache/``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from lastexp.config import normalize_overrides, register_configs, register_resolvers

    register_configs()
    register_resolvers()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return hydra_compose("config", overrides=normalize_overrides(overrides))


class Progress:
    """A tqdm bar on a terminal; plain lines (every 10%) otherwise."""

    def __init__(self, label: str, stream=None):
        self.stream = stream or sys.stderr
        self.label = label
        self.bar = None
        self.shown = -1
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if self.stream.isatty():
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=self.label, unit="file", file=self.stream)
            self.bar.update(done - self.bar.n)
            return
        step = (10 * done) // max(total, 1)
        if step != self.shown or done == total:
            if step == self.shown:
                return
            self.shown = step
            rate = done / max(time.perf_counter() - self.start, 1e-9)
            print(f"{self.label}: {done}/{total} files ({rate:.0f} files/s)", file=self.stream,
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_summary(summary: dict) -> str:
    fr = summary.get("frames", {})
    lines = [
        f"dataset {summary.get('dataset')} / preprocessing {summary.get('preprocessing')} "
        f"({summary.get('source')})",
        f"  train {summary['n_train']}  test {summary['n_test']}  classes "
        f"{summary['num_classes']}  persons {summary.get('num_person')}",
        f"  frames min {fr.get('min')} mean {fr.get('mean')} max {fr.get('max')}; bodies per "
        f"file {summary.get('bodies')}",
    ]
    skipped = summary.get("skipped", {})
    lines.append(f"  skipped {len(skipped)} file(s)")
    for name, reason in list(skipped.items())[:10]:
        lines.append(f"    {name}: {reason}")
    if len(skipped) > 10:
        lines.append(f"    ... {len(skipped) - 10} more in summary.json")
    state = "reused" if summary.get("cached") else "built"
    lines.append(f"  cache {state}: {summary.get('cache')} (summary.json inside)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = compose(argv)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        print(f"lastexp.preprocess: error: {exc}", file=sys.stderr)
        return 2
    from lastexp.data import DataError, load_arrays

    progress = Progress(f"{cfg.dataset.name}/{cfg.preprocessing.name}")
    start = time.perf_counter()
    try:
        _train, _test, summary = load_arrays(cfg.dataset, cfg.preprocessing, cfg.paths.data,
                                             progress=progress, workers=os.cpu_count())
    except DataError as exc:
        progress.close()
        print(f"lastexp.preprocess: error: {exc}", file=sys.stderr)
        return 2
    progress.close()
    print(format_summary(summary))
    print(f"  took {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
