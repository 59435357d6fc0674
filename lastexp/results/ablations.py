"""The ablation tables of the training plan §9 (``base``, ``lite``, ``preprocessing``: md, csv,
tex) and ``other`` for every run outside the catalog."""

from __future__ import annotations

from lastexp import catalog
from lastexp.results.aggregate import (
    INCOMPLETE,
    Row,
    Runs,
    fill_row,
    short_variant,
    table_rows_cache,
    variant_of,
    variant_sort_key,
)
from lastexp.results.deltas import Delta, table_deltas
from lastexp.results.notes import (
    delta_notes,
    hours_header,
    hours_text,
    maskclr_verdict,
    notes,
    notes_md,
    protocol_note,
    selection_note,
    teacher_note,
)
from lastexp.results.perclass import per_class_csv
from lastexp.results.render import (
    DASH,
    MARKER,
    bold_best,
    fmt_delta,
    fmt_num,
    render_csv,
    render_md,
    render_tex,
)

NO_RUNS = "(no runs)"
CSV_HEADER = ["id", "title", "baseline", "model", "stream", "preprocessing", "variant", "dataset",
              "n", "mean_top1", "std_top1", "ci95_low", "ci95_high", "n_failed", "n_interrupted",
              "n_running", "delta", "delta_ci95_low", "delta_ci95_high", "p_value",
              "p_value_holm", "p_mcnemar", "p_mcnemar_holm", "seeds_for_power",
              "selection_protocol", "seeds", "gpu_hours_used", "hours_device",
              "gpu_hours_budget"]  # fmt: skip
P_FMT = "{:.4g}"
CELLS_NOTE = (
    "Cells: top-1 (%) on the test split, mean ± sample std over seeds of the "
    "completed runs (n) of one config: the runs a cell averages share their whole run "
    "identity (config, debug preset, world size) except the seed; a row's other configs "
    "are its variant lines, the differing keys in [brackets]. Δ is the mean difference "
    "of the row's main config (the catalog's recipe) to the main config of the row named "
    "in “Δ vs” on the same dataset (of its rows, the one sharing the most of model, stream "
    "and preprocessing; among equals the joint stream, so B14 is compared with B7 on "
    "joint), with Welch's t-test p when both sides have n ≥ 2; variant lines get no Δ; "
    "best per column in bold; — means no completed run."
)


def delta_cell(d: Delta | None, has_baseline: bool) -> str:
    """The Δ column's text: value, marker and p; ``— (protocols differ)`` when refused."""
    if d is not None and d.refused:
        return f"{DASH} (protocols differ)"
    pair = d.as_pair() if d is not None else None
    return fmt_delta(pair, has_baseline, d is not None and d.marked,
                     None if d is None or d.both_n2 else d.p_mcnemar)  # fmt: skip


def delta_csv(d: Delta | None) -> list[str]:
    """delta, delta_ci95_low, delta_ci95_high, p_value, p_value_holm, p_mcnemar,
    p_mcnemar_holm, seeds_for_power."""
    if d is None or d.value is None:
        return [""] * 8
    ci = d.ci95 or (None, None)
    return [fmt_num(d.value), fmt_num(ci[0]), fmt_num(ci[1]), fmt_num(d.p_value, P_FMT),
            fmt_num(d.p_value_holm, P_FMT), fmt_num(d.p_mcnemar, P_FMT),
            fmt_num(d.p_mcnemar_holm, P_FMT),
            "" if d.seeds_for_power is None else str(d.seeds_for_power)]  # fmt: skip


def _row_lines(row: Row, datasets: list[str], deltas: dict[tuple[int, str], Delta],
               hours_col: str) -> tuple[list[str], list[float | None], list[list]]:
    """One table row: its md cells, its means (for the bold best) and one csv line per
    dataset."""
    has_base = row.ablation.baseline is not None and not row.variant
    cells = [row.label if row.first_of_id else "", row.display_title,
             (row.ablation.baseline or "") if row.first_of_id else ""]  # fmt: skip
    means, lines = [], []
    for ds in datasets:
        cell, d = row.cell(ds), deltas.get((id(row), ds))
        cells += [cell.text(), delta_cell(d, has_base)]
        means.append(cell.mean)
        ci = cell.ci95 or (None, None)
        lines.append([
            row.label, row.title, row.ablation.baseline or "", *row.key, row.variant, ds,
            cell.n, fmt_num(cell.mean), fmt_num(cell.std), fmt_num(ci[0]), fmt_num(ci[1]),
            *(cell.incomplete.get(s, 0) for s in INCOMPLETE),
            *delta_csv(d), "/".join(sorted(cell.protocols)),
            " ".join(fmt_num(s, "{:.0f}") for s in cell.seeds),
            fmt_num(row.gpu_seconds / 3600, "{:.2f}"), "+".join(sorted(row.devices)),
            fmt_num(row.ablation.gpu_hours, "{:g}"),
        ])  # fmt: skip
    cells += [hours_text(row, hours_col),
              f"{row.ablation.gpu_hours:g}" if row.first_of_id else ""]  # fmt: skip
    return cells, means, lines


def ablation_table(runs: Runs, table: str) -> dict[str, str]:
    """``{table}.md``, ``.csv`` and ``.tex`` for one of the catalog's tables."""
    meta = catalog.TABLES[table]
    rows = table_rows_cache(runs, table)
    ids = set(catalog.ids(table))
    mine = [r for r in runs.tabled(runs.all) if r["ablation"] in ids]
    datasets = runs.datasets(mine) or runs.datasets() or [NO_RUNS]
    deltas = table_deltas(table, runs, datasets)
    hours_col = hours_header(rows)
    header = ["#", "Experiment", "Δ vs"]
    for ds in datasets:
        header += [ds, "Δ"]
    header += [hours_col, "Budget h"]
    md_rows, means, csv_rows = [], [], []
    for row in rows:
        cells, row_means, lines = _row_lines(row, datasets, deltas, hours_col)
        md_rows.append(cells)
        means.append(row_means)
        csv_rows += lines
    bold_best(md_rows, means, [3 + 2 * j for j in range(len(datasets))])
    used = sum(r.gpu_seconds for r in rows) / 3600
    budget_line = (
        f"{hours_col.removesuffix(' h') if hours_col != 'Hours' else 'Device'} hours: "
        f"{used:.1f} used of the plan's ~{meta.budget_hours:g} GPU h budget "
        f"(its rows sum to {catalog.rows_budget(table):g} h)."
    )
    extra = [
        f"{CELLS_NOTE} {hours_col} counts every run of the row (failed ones too).",
        selection_note(table),
        protocol_note(rows),
        *delta_notes(rows, deltas, datasets),
        budget_line,
    ]
    marker_key = (f" {MARKER}: Holm-adjusted p < 0.05 over the table's Δs on the dataset "
                  "(Welch's t-test with n ≥ 2 per side, else the exact McNemar test, which "
                  "covers test-set sampling, not seed-to-seed variance)."
                  if any(d.marked for d in deltas.values()) else "")
    per_class, lacking = per_class_csv(runs, table, datasets)
    if lacking:
        extra.append(f"Per-class accuracy ({table}_per_class.csv, with the action names) is — "
                     "(left out) for rows whose runs have no per-sample predictions: "
                     + "; ".join(lacking) + ".")
    left_out = [r for r in runs.all if r["ablation"] in ids and r["debug"]]
    if left_out and not runs.include_debug:
        extra.append(f"{len(left_out)} run(s) of this table's rows used a debug preset "
                     "(debug=...); they are left out here and listed in other.md "
                     "(--include-debug puts them in as variant lines).")
    if table == "lite":
        extra.append(maskclr_verdict(runs))
        extra.append(teacher_note(mine))
    title = f"{meta.title} (the training plan §{meta.section})"
    figures = "".join(f"\n![{cap}]({name})\n" for cap, name in runs.figures.get(table, []))
    md = f"# {title}\n\n" + render_md(header, md_rows) + figures
    md += notes_md(notes(runs, mine, extra))
    csv_header = CSV_HEADER
    return {
        f"{table}.md": md,
        f"{table}.csv": render_csv(csv_header, csv_rows),
        f"{table}.tex": render_tex(header, md_rows, f"{title}. {budget_line}{marker_key}", table),
        f"{table}_per_class.csv": per_class,
    }


def other_table(runs: Runs) -> dict[str, str]:
    """``other.md``/``.csv``: every run outside the catalog, so nothing is lost."""
    def outside(r: dict) -> bool:
        return r["ablation"] not in catalog.ABLATIONS or (bool(r["debug"])
                                                          and not runs.include_debug)

    mine = [r for r in runs.all if outside(r)]
    done = [r for r in runs.completed if outside(r)]

    def key(r: dict) -> tuple[str, str, str, str, str]:
        return (r["ablation"], *variant_of(r), r["variant"])

    keys = sorted({key(r) for r in mine},
                  key=lambda k: (k[0], *variant_sort_key(k[1:4]), k[4] != "", k[4]))
    datasets = runs.datasets(mine) or [NO_RUNS]
    rows = []
    for k in keys:
        label = (k[0] if k[0] in catalog.ABLATIONS else f"{k[0]} (unknown)") if k[0] else DASH
        row = Row(label=label, title="", key=k[1:4], shown=(), variant=k[4])
        fill_row(row, [r for r in mine if key(r) == k], [r for r in done if key(r) == k])
        rows.append(row)
    hours_col = hours_header(rows)
    header = ["Ablation", "Model", "Stream", "Preprocessing", "Config", *datasets, hours_col]
    md_rows, means, csv_rows = [], [], []
    for k, row in zip(keys, rows):
        md_rows.append([row.label, *(v or "?" for v in k[1:4]), short_variant(k[4]),
                        *(row.cell(d).text() for d in datasets),
                        hours_text(row, hours_col)])  # fmt: skip
        means.append([row.cell(d).mean for d in datasets])
        for d in datasets:
            c = row.cell(d)
            ci = c.ci95 or (None, None)
            csv_rows.append([k[0], *k[1:4], k[4], d, c.n, fmt_num(c.mean), fmt_num(c.std),
                             fmt_num(ci[0]), fmt_num(ci[1]),
                             *(c.incomplete.get(s, 0) for s in INCOMPLETE),
                             fmt_num(row.gpu_seconds / 3600, "{:.2f}"),
                             "+".join(sorted(row.devices))])  # fmt: skip
    bold_best(md_rows, means, [5 + j for j in range(len(datasets))])
    extra = [
        "Runs with no ablation ID (—), an ID outside the training plan §9, or a debug preset "
        "(kept out of the ablation and paper tables unless --include-debug), keyed by model, "
        "stream, preprocessing and config: a cell averages runs that share their whole run "
        "identity but the seed; Config names the keys where a line differs from the most-run "
        "config of its ablation, model, stream and preprocessing. Cells as in base.md.",
        protocol_note(rows),
    ]
    body = render_md(header, md_rows) if md_rows else "No runs outside the ablation tables.\n"
    md = "# Other runs\n\n" + body + notes_md(notes(runs, mine, extra))
    csv_header = [
        "ablation",
        "model",
        "stream",
        "preprocessing",
        "variant",
        "dataset",
        "n",
        "mean_top1",
        "std_top1",
        "ci95_low",
        "ci95_high",
        "n_failed",
        "n_interrupted",
        "n_running",
        "gpu_hours_used",
        "hours_device",
    ]
    return {"other.md": md, "other.csv": render_csv(csv_header, csv_rows)}
