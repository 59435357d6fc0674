"""Every output file of ``python -m lastexp.results``: the ablation tables of the training plan §9,
the paper tables of §10 and ``other``, as ``{file name: text}``, and writing them.

Everything is a pure function of the loaded runs (plus a provenance string), so the same store
always yields the same bytes: rows follow the catalog, floats use fixed formats, and the only
dates printed are the runs' own. Welch's t-test is SciPy's (``ttest_ind(equal_var=False)``);
the results command needs no torch.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import pandas as pd

from lastexp import catalog
from lastexp.io import write_files
from lastexp.results import plots
from lastexp.results.ablations import ablation_table, other_table
from lastexp.results.aggregate import prepare
from lastexp.results.notes import git_provenance
from lastexp.results.paper import paper_tables
from lastexp.results.store import Problem


def build_report(
    df: pd.DataFrame,
    problems: list[Problem] = (),
    provenance: str = "",
    figures_dir: str | os.PathLike[str] | None = None,
    include_debug: bool = False,
    confusion_all: bool = False,
) -> dict[str, str]:
    """Every output file's text, keyed by file name; a pure function of its arguments.

    With ``figures_dir`` (and matplotlib installed) PNG figures are drawn there, while the
    tables are built, and linked from the ablation tables. ``include_debug`` puts
    debug-preset runs into the ablation and paper tables (as variant lines);
    ``confusion_all`` draws a confusion matrix for every row, not only each table's full
    model.
    """
    runs = prepare(df, problems, provenance, include_debug=include_debug)
    figures = (plots.painted(runs, list(catalog.TABLES), figures_dir, confusion_all)
               if figures_dir is not None and plots.available() else nullcontext({}))
    files: dict[str, str] = {}
    with figures as drawn:  # the PNGs are painted while the tables are built
        runs.figures.update(drawn)
        for table in catalog.TABLES:
            files.update(ablation_table(runs, table))
        files.update(paper_tables(runs))
        files.update(other_table(runs))
    return files


def write_tables(
    df: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    problems: list[Problem] = (),
    provenance: str | None = None,
    plots: bool = True,
    include_debug: bool = False,
    confusion_all: bool = False,
) -> dict[str, str]:
    """Write :func:`build_report`'s files into ``out_dir``; returns them (PNGs not included).

    ``provenance`` defaults to :func:`~lastexp.results.notes.git_provenance` of the working
    directory; ``plots`` draws the optional figures when matplotlib is installed;
    ``include_debug`` and ``confusion_all`` as in :func:`build_report`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prov = git_provenance() if provenance is None else provenance
    files = build_report(df, problems, prov, figures_dir=out if plots else None,
                         include_debug=include_debug, confusion_all=confusion_all)
    write_files(out, files)  # never through a link; a full disk is one line
    return files


def table_part(md: str) -> str:
    """The heading and table of a generated ``.md`` (what the CLI prints), without notes."""
    return md.split("\n**Notes**", 1)[0].rstrip("\n") + "\n"
