"""`python -m lastexp.preprocess dataset=<name> [preprocessing=<name>] [dataset.raw_dir=DIR |
dataset.npz=FILE] [dataset.missing_list=FILE] [paths.data=DIR] [--export-npz FILE [--force]]`:
build the preprocessed cache of a dataset and print a summary.

`--export-npz FILE` also writes the cached arrays in CTR-GCN's npz layout (x_train / x_test
float32 (N, T, 150) with both body slots, one-hot y_train / y_test, train_names / test_names),
in the reference's sample order, to move data to other toolboxes. Both body slots are always
written: with a one-body preprocessing the two-body cache of the same preprocessing is used.
T is the stored frames: 64 for t64_uniform, 120 for t120_uniform, every frame (padded to the
longest clip) for t300_crop64 or preprocessing.temporal_jitter=true. An existing FILE is
never replaced without `--force`.

The config is composed from conf/ with Hydra's compose API (the same overrides as a run), so no
run directory or log file is written: only the cache (with its summary.json) under
``<paths.data>/cache/``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from lastexp import app
from lastexp.aliases import normalize_overrides
from lastexp.cli import hydra_error_line
from lastexp.config import validate
from lastexp.data import DataError, dataset_config, load_arrays, preprocessing_config
from lastexp.data.npz import write_ctrgcn_npz
from lastexp.data.validation import split_validation
from lastexp.errors import ConfigError


def compose(overrides: list[str]):
    app.register()
    with initialize_config_dir(str(app.CONF_DIR), version_base="1.3"):
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
    val = summary.get("validation")
    if val:  # dataset.val_subjects / val_fraction: carved when a run loads the data
        rule = (f"subjects {', '.join(map(str, val['subjects']))}" if val["rule"] == "subjects"
                else f"fraction {val['fraction']:g} per class")
        lines.append(f"  validation {val['n_val']} of the train samples ({rule}); "
                     f"train {val['n_train']} left")
    state = "reused" if summary.get("cached") else "built"
    lines.append(f"  cache {state}: {summary.get('cache')} (summary.json inside)")
    return "\n".join(lines)


def split_export_arg(argv: list[str]) -> tuple[list[str], Path | None]:
    """Take ``--export-npz FILE`` (or ``--export-npz=FILE``) out of the overrides."""
    rest, export = [], None
    it = iter(argv)
    for a in it:
        if a == "--export-npz":
            export = next(it, None)
            if not export:
                raise ValueError("--export-npz needs a file name: --export-npz NTU60_CS.npz")
        elif a.startswith("--export-npz="):
            export = a.split("=", 1)[1]
        else:
            rest.append(a)
    return rest, (Path(export) if export else None)


def export_target_problem(export: Path, force: bool) -> str | None:
    """Why ``--export-npz`` cannot write ``export`` (None: it can): a folder, a missing
    parent, or an existing file (or link) without ``--force``."""
    if export.is_dir() or not export.parent.is_dir():
        return f"--export-npz {str(export)!r} must name a file in an existing folder"
    if os.path.lexists(export) and not force:
        return (f"--export-npz {str(export)!r} exists; pass --force to replace it, or name a "
                "new file")
    return None


MISSING_LIST_NOTE = (
    "note: dataset.missing_list is not set, so the captures NTU lists as having missing "
    "skeletons (known bad) are read like the others; to leave them out pass "
    "dataset.missing_list=FILE, NTU's list (NTU_RGBD_samples_with_missing_skeletons.txt, "
    "NTU_RGBD120_samples_with_missing_skeletons.txt for NTU-120)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    force = "--force" in argv
    argv = [a for a in argv if a != "--force"]
    try:
        argv, export = split_export_arg(argv)
    except ValueError as exc:
        print(f"lastexp.preprocess: error: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = compose(argv)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        print(f"lastexp.preprocess: error: {hydra_error_line(exc)}", file=sys.stderr)
        return 2
    try:  # the values a run refuses (preprocessing.max_frames=-1 ...), refused here too
        validate(cfg)
    except ConfigError as exc:
        print(f"lastexp.preprocess: error: {exc}", file=sys.stderr)
        return 2
    dataset, prep = dataset_config(cfg.dataset), preprocessing_config(cfg.preprocessing)
    if export is not None:
        problem = export_target_problem(export, force)
        if problem:
            print(f"lastexp.preprocess: error: {problem}", file=sys.stderr)
            return 2
        if int(prep.num_person) < 2:
            prep = replace(prep, num_person=2)
    if (dataset.benchmark in ("ntu60", "ntu120") and dataset.raw_dir and not dataset.npz
            and not dataset.missing_list):
        print(MISSING_LIST_NOTE, flush=True)
    progress = Progress(f"{dataset.name}/{prep.name}")
    start = time.perf_counter()
    try:
        train, test, summary = load_arrays(dataset, prep, cfg.paths.data,
                                           progress=progress, workers=os.cpu_count())
        carved = split_validation(train, test.names, subjects=dataset.val_subjects,
                                  fraction=dataset.val_fraction)[2]
    except DataError as exc:
        progress.close()
        print(f"lastexp.preprocess: error: {exc}", file=sys.stderr)
        return 2
    progress.close()
    print(format_summary(dict(summary, validation=carved) if carved else summary))
    if export is not None:
        problem = export_target_problem(export, force)  # (created while the cache was built?)
        if problem:
            print(f"lastexp.preprocess: error: {problem}", file=sys.stderr)
            return 2
        try:
            write_ctrgcn_npz(export, train, test, int(summary["num_classes"]),
                             split=str(dataset.split))
        except OSError as exc:
            print(f"lastexp.preprocess: error: --export-npz {str(export)!r} cannot be written "
                  f"({exc.strerror or exc})", file=sys.stderr)
            return 2
        print(f"  exported {len(train)} train / {len(test)} test samples to {export}")
    print(f"  took {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
