"""The ablation tables of the training plan §9 (``base``, ``lite``, ``preprocessing``: md, csv,
tex) and ``other`` for every run outside the catalog."""

from __future__ import annotations

from lastexp import catalog
from lastexp.results.aggregate import (
    INCOMPLETE,
    Row,
    Runs,
    delta,
    fill_row,
    table_rows_cache,
    variant_of,
    variant_sort_key,
)
from lastexp.results.notes import maskclr_verdict, notes, notes_md, selection_note, teacher_note
from lastexp.results.render import (
    DASH,
    bold_best,
    fmt_delta,
    fmt_num,
    render_csv,
    render_md,
    render_tex,
)

NO_RUNS = "(no runs)"


def ablation_table(runs: Runs, table: str) -> dict[str, str]:
    """``{table}.md``, ``.csv`` and ``.tex`` for one of the catalog's tables."""
    meta = catalog.TABLES[table]
    rows = table_rows_cache(runs, table)
    ids = set(catalog.ids(table))
    mine = [r for r in runs.all if r["ablation"] in ids]
    datasets = runs.datasets(mine) or runs.datasets() or [NO_RUNS]
    header = ["#", "Experiment", "Δ vs"]
    for ds in datasets:
        header += [ds, "Δ"]
    header += ["GPU h", "Budget h"]
    md_rows, means, csv_rows = [], [], []
    for row in rows:
        has_base = row.ablation.baseline is not None
        cells = [row.label if row.first_of_id else "", row.display_title,
                 (row.ablation.baseline or "") if row.first_of_id else ""]  # fmt: skip
        row_means = []
        for ds in datasets:
            cell, d = row.cell(ds), delta(row, ds)
            cells += [cell.text(), fmt_delta(d, has_base)]
            row_means.append(cell.mean)
            csv_rows.append([
                row.label, row.title, row.ablation.baseline or "", *row.key, ds, cell.n,
                fmt_num(cell.mean), fmt_num(cell.std),
                *(cell.incomplete.get(s, 0) for s in INCOMPLETE),
                fmt_num(d[0] if d else None), fmt_num(d[1] if d else None, "{:.4g}"),
                " ".join(fmt_num(s, "{:.0f}") for s in cell.seeds),
                fmt_num(row.gpu_seconds / 3600, "{:.2f}"),
                fmt_num(row.ablation.gpu_hours, "{:g}"),
            ])  # fmt: skip
        cells += [f"{row.gpu_seconds / 3600:.1f}",
                  f"{row.ablation.gpu_hours:g}" if row.first_of_id else ""]  # fmt: skip
        md_rows.append(cells)
        means.append(row_means)
    bold_best(md_rows, means, [3 + 2 * j for j in range(len(datasets))])
    used = sum(r.gpu_seconds for r in rows) / 3600
    budget_line = (
        f"GPU hours: {used:.1f} used of the plan's ~{meta.budget_hours:g} h budget "
        f"(its rows sum to {catalog.rows_budget(table):g} h)."
    )
    extra = [
        "Cells: top-1 (%) on the test split, mean ± sample std over seeds of the "
        "completed runs (n); Δ is the mean difference to the row named in “Δ vs” on the same "
        "dataset (of its rows, the one sharing the most of model, stream and preprocessing; "
        "among equals the joint stream, so B14 is compared with B7 on joint), with Welch's "
        "t-test p when both sides have n ≥ 2; best per column in bold; "
        "— means no completed run. GPU h counts every run of the row (failed ones too).",
        selection_note(table),
        budget_line,
    ]
    if table == "lite":
        extra.append(maskclr_verdict(runs))
        extra.append(teacher_note(mine))
    title = f"{meta.title} (the training plan §{meta.section})"
    figures = "".join(f"\n![{cap}]({name})\n" for cap, name in runs.figures.get(table, []))
    md = f"# {title}\n\n" + render_md(header, md_rows) + figures
    md += notes_md(notes(runs, mine, extra))
    csv_header = ["id", "title", "baseline", "model", "stream", "preprocessing", "dataset", "n",
                  "mean_top1", "std_top1", "n_failed", "n_interrupted", "n_running", "delta",
                  "p_value", "seeds", "gpu_hours_used", "gpu_hours_budget"]  # fmt: skip
    return {
        f"{table}.md": md,
        f"{table}.csv": render_csv(csv_header, csv_rows),
        f"{table}.tex": render_tex(header, md_rows, f"{title}. {budget_line}", table),
    }


def other_table(runs: Runs) -> dict[str, str]:
    """``other.md``/``.csv``: every run outside the catalog, so nothing is lost."""
    mine = [r for r in runs.all if r["ablation"] not in catalog.ABLATIONS]
    done = [r for r in runs.completed if r["ablation"] not in catalog.ABLATIONS]

    def key(r: dict) -> tuple[str, str, str, str]:
        return (r["ablation"], *variant_of(r))

    keys = sorted({key(r) for r in mine}, key=lambda k: (k[0], *variant_sort_key(k[1:])))
    datasets = runs.datasets(mine) or [NO_RUNS]
    header = ["Ablation", "Model", "Stream", "Preprocessing", *datasets, "GPU h"]
    md_rows, means, csv_rows = [], [], []
    for k in keys:
        label = f"{k[0]} (unknown)" if k[0] else DASH
        row = Row(label=label, title="", key=k[1:], shown=())
        fill_row(row, [r for r in mine if key(r) == k], [r for r in done if key(r) == k])
        md_rows.append([label, *(v or "?" for v in k[1:]), *(row.cell(d).text() for d in datasets),
                        f"{row.gpu_seconds / 3600:.1f}"])  # fmt: skip
        means.append([row.cell(d).mean for d in datasets])
        for d in datasets:
            c = row.cell(d)
            csv_rows.append([k[0], *k[1:], d, c.n, fmt_num(c.mean), fmt_num(c.std),
                             *(c.incomplete.get(s, 0) for s in INCOMPLETE),
                             fmt_num(row.gpu_seconds / 3600, "{:.2f}")])  # fmt: skip
    bold_best(md_rows, means, [4 + j for j in range(len(datasets))])
    extra = [
        "Runs with no ablation ID (—) or an ID outside the training plan §9, keyed by model, "
        "stream and preprocessing; cells as in base.md."
    ]
    body = render_md(header, md_rows) if md_rows else "No runs outside the ablation tables.\n"
    md = "# Other runs\n\n" + body + notes_md(notes(runs, mine, extra))
    csv_header = [
        "ablation",
        "model",
        "stream",
        "preprocessing",
        "dataset",
        "n",
        "mean_top1",
        "std_top1",
        "n_failed",
        "n_interrupted",
        "n_running",
        "gpu_hours_used",
    ]
    return {"other.md": md, "other.csv": render_csv(csv_header, csv_rows)}
