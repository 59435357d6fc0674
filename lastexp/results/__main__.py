"""``python -m lastexp.results``: aggregate every run below ``--runs`` into tables in ``--out``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from lastexp.cli import ArgumentParser
from lastexp.io import (
    disk_full_line,
    folder_lock,
    is_disk_full,
    remove_staged_leftovers,
    staged_folder,
)
from lastexp.results.report import table_part, write_tables
from lastexp.results.search_table import SEARCH_MD, write_search
from lastexp.results.store import load_store
from lastexp.runstore.guard import out_dir_problem
from lastexp.runstore.metrics import is_completed

PRINTED = ("base.md", "lite.md", "preprocessing.md", "paper.md", "other.md")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m lastexp.results",
        description="Aggregate finished runs into the ablation tables (the training plan §9) "
        "and the paper tables (§10): .md, .csv and .tex files.",
    )
    parser.add_argument("--runs", default="runs", help="runs root to scan (default: runs)")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--quiet", action="store_true", help="print only the file list")
    parser.add_argument("--include-debug", action="store_true",
                        help="put debug-preset runs (debug=tiny, ...) into the ablation and paper "
                        "tables as variant lines (default: they are listed in other.md only)")
    parser.add_argument("--confusion", choices=["full", "all"], default="full",
                        help="confusion-matrix PNGs for each table's full-model row (B7, L5, P0; "
                        "default) or for every row with per-sample predictions (all)")
    args = parser.parse_args(argv)

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"lastexp.results: error: --out {args.out!r} is a file; name a folder for the "
              "tables (default: results)", file=sys.stderr)
        return 2
    if os.path.exists(args.runs) and not os.path.isdir(args.runs):
        print(f"lastexp.results: error: --runs {args.runs!r} is a file; name the runs folder "
              "(default: runs)", file=sys.stderr)
        return 2
    problem = out_dir_problem(args.out, "--out", runs_root=args.runs)
    if problem:
        print(f"lastexp.results: error: {problem}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.runs):
        print(f"warning: runs folder {args.runs!r} does not exist; writing empty tables",
              file=sys.stderr)  # fmt: skip
    df, problems = load_store(args.runs)

    def write(folder: Path) -> dict[str, str]:
        files = write_tables(df, folder, problems, include_debug=args.include_debug,
                             confusion_all=args.confusion == "all")
        files.update(write_search(args.runs, folder))  # search.md when the store has searches
        return files

    try:
        files = publish(Path(args.out), write)
    except OSError as exc:
        line = disk_full_line(exc) if is_disk_full(exc) else (
            f"cannot write the tables into {args.out} ({exc.strerror or exc}); choose a "
            "writable --out")
        print(f"lastexp.results: error: {line}", file=sys.stderr)
        return 2
    if not args.quiet:
        for name in PRINTED:
            print(table_part(files[name]))
        if SEARCH_MD in files:
            print(table_part(files[SEARCH_MD]))
    n_done = sum(map(is_completed, df.to_dict("records")))
    print(
        f"{len(df)} runs read below {args.runs} ({n_done} completed, "
        f"{len(df) - n_done} not completed, {len(problems)} unreadable); "
        f"wrote {len(files)} files to {args.out}: {', '.join(sorted(files))}"
    )
    return 0


def publish(out: Path, write: Callable[[Path], dict[str, str]]) -> dict[str, str]:
    """Run ``write`` into a temporary folder beside ``out`` and swap it in as a whole: a reader,
    or a kill, sees the old complete set of tables or the new one, never a mix or an empty
    file (files of ``out`` that this run does not write stay). Under a lock on the folder
    that holds ``out``; what a killed earlier run left there (``.<out>.tmp-*``) goes first."""
    dest = out.resolve() if out.is_symlink() else out  # a link the user named: its folder
    dest.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(dest.parent):
        remove_staged_leftovers(dest)
        with staged_folder(dest, keep_others=True) as folder:
            return write(folder)


if __name__ == "__main__":
    sys.exit(main())
