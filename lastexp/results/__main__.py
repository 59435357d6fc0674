"""``python -m lastexp.results``: aggregate every run below ``--runs`` into tables in ``--out``."""

from __future__ import annotations

import os
import sys

from lastexp.cli import ArgumentParser
from lastexp.results.report import table_part, write_tables
from lastexp.results.search import SEARCH_MD, write_search
from lastexp.results.store import load_store

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
    if not os.path.isdir(args.runs):
        print(f"warning: runs folder {args.runs!r} does not exist; writing empty tables",
              file=sys.stderr)  # fmt: skip
    df, problems = load_store(args.runs)
    files = write_tables(df, args.out, problems, include_debug=args.include_debug,
                         confusion_all=args.confusion == "all")
    files.update(write_search(args.runs, args.out))  # search.md when the store has searches
    if not args.quiet:
        for name in PRINTED:
            print(table_part(files[name]))
        if SEARCH_MD in files:
            print(table_part(files[SEARCH_MD]))
    n_done = int((df["status"] == "completed").sum()) if len(df) else 0
    print(
        f"{len(df)} runs read below {args.runs} ({n_done} completed, "
        f"{len(df) - n_done} not completed, {len(problems)} unreadable); "
        f"wrote {len(files)} files to {args.out}: {', '.join(sorted(files))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
