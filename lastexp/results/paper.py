"""The two results tables of the training plan §10 (``paper.md``/``.csv``/``.tex``): the plan's
literature rows verbatim, our LAST-Base and LAST-Lite rows filled from the runs."""

from __future__ import annotations

from lastexp import catalog
from lastexp.results.aggregate import Cell, Row, Runs, fill_row
from lastexp.results.notes import maskclr_verdict, notes, notes_md
from lastexp.results.render import (
    fmt_flops,
    fmt_kb,
    fmt_params,
    render_csv,
    render_md,
    render_tex,
    split_md_row,
)
from lastexp.results.stats import median

# The training plan §10, verbatim: the literature rows and the placeholders of our own rows.
PAPER_BASE_HEADER = ["Model", "NTU-60 xsub", "NTU-60 xview", "NTU-120 xsub", "NTU-120 xset",
                     "Params"]  # fmt: skip
PAPER_BASE_DATASETS = ["ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset"]
PAPER_BASE_LITERATURE = [
    "| EfficientGCN-B0 | 88.3 | — | — | — | 150K |",
    "| CTR-GCN (4s) | 92.4 | 96.8 | 88.9 | 90.6 | 1.7M |",
    "| InfoGCN (6s) | 93.0 | 97.1 | 89.8 | 91.2 | 1.5M |",
    "| HD-GCN (6s) | 93.4 | — | 90.1 | — | ~3M |",
    "| HI-GCN | 93.3 | — | 90.3 | — | ~3-4M |",
]
# (label, ablation, model filter or None, stream filter or None, params placeholder)
PAPER_BASE_OURS = [
    ("**LAST-Base (1s)**", "B7", None, "joint", "~4.2M"),
    ("**LAST-Base (4s)**", "B14", None, None, "~16.8M"),
]
PAPER_LITE_HEADER = ["Model", "NTU-60 xsub", "Params", "FLOPs", "INT8 size"]
PAPER_LITE_LITERATURE = ["| EfficientGCN-B0 | 88.3 | 150K | — | — |"]
# (label, ablation, model, placeholders for params / FLOPs / INT8 size)
PAPER_LITE_OURS = [
    ("LAST-Lite nano (standalone)", "L5", "last_lite_nano", ("~60K", "—", "~15KB")),
    ("LAST-Lite small (standalone)", "L5", "last_lite_small", ("~190K", "—", "~48KB")),
    ("LAST-Lite small + distill (existing model)", "L10", "last_lite_small",
     ("~190K", "—", "~48KB")),
    ("LAST-Lite small + distill (Base)", "L11", "last_lite_small", ("~190K", "—", "~48KB")),
    ("LAST-Lite small + MaskCLR + distill", "L12", "last_lite_small", ("~190K", "—", "~48KB")),
]  # fmt: skip


def _select(runs: Runs, ablation: str, model: str | None, stream: str | None) -> list[dict]:
    """The runs of one of our rows: the ablation's main config (no variant line, no debug
    preset unless --include-debug), as the ablation tables' cells."""
    return [
        r for r in runs.tabled(runs.all)
        if r["ablation"] == ablation and (model is None or r["model"] == model)
        and (stream is None or r["stream"] == stream) and not r["variant"]
    ]  # fmt: skip


def _paper_cell(runs: Runs, selected: list[dict], dataset: str, ablation: str) -> Cell:
    dirs = {r["run_dir"] for r in selected if r["dataset"] == dataset}
    row = Row(label="", title="", key=("", "", ""), shown=(),
              rule=catalog.get(ablation).selection)
    fill_row(
        row,
        [r for r in runs.all if r["run_dir"] in dirs],
        [r for r in runs.completed if r["run_dir"] in dirs],
    )
    return row.cell(dataset)


def _base_rows(runs: Runs) -> list[list[str]]:
    rows: list[list[str]] = []
    done = {r["run_dir"] for r in runs.completed}
    for label, ab, model, stream, params_ph in PAPER_BASE_OURS:
        sel = _select(runs, ab, model, stream)
        cells = [_paper_cell(runs, sel, ds, ab).text() for ds in PAPER_BASE_DATASETS]
        shown = [r for r in sel if r["run_dir"] in done and r["dataset"] in PAPER_BASE_DATASETS]
        params = fmt_params(median([r["params"] for r in shown])) or params_ph
        rows.append([label, *cells, params])
    return rows


def _lite_rows(runs: Runs) -> list[list[str]]:
    rows: list[list[str]] = []
    done = {r["run_dir"] for r in runs.completed}
    for label, ab, model, (p_ph, f_ph, i_ph) in PAPER_LITE_OURS:
        sel = _select(runs, ab, model, None)
        cell = _paper_cell(runs, sel, "ntu60_xsub", ab)
        shown = [r for r in sel if r["run_dir"] in done and r["dataset"] == "ntu60_xsub"]
        rows.append([
            label, cell.text(),
            fmt_params(median([r["params"] for r in shown])) or p_ph,
            fmt_flops(median([r["flops"] for r in shown])) or f_ph,
            fmt_kb(median([r["int8_bytes"] for r in shown])) or i_ph,
        ])  # fmt: skip
    return rows


def _pad(row: list[str], width: int) -> list[str]:
    if len(row) == 5 and width == 6:  # lite row: model, xsub, params, flops, int8 → 6 columns
        return [row[0], row[1], row[2], row[3], row[4], ""]
    return row + [""] * (width - len(row))


def paper_tables(runs: Runs) -> dict[str, str]:
    """``paper.md``/``.csv``/``.tex``: the two tables of the training plan §10, literature
    rows kept."""
    base_rows, lite_rows = _base_rows(runs), _lite_rows(runs)
    md = ["# Results tables (the training plan §10)", "", "## LAST-Base Results", ""]
    md += render_md(PAPER_BASE_HEADER, [])[:-1].split("\n")
    md += PAPER_BASE_LITERATURE
    md += render_md(PAPER_BASE_HEADER, base_rows).split("\n")[2:-1]
    md += ["", "## LAST-Lite Results", ""]
    md += render_md(PAPER_LITE_HEADER, [])[:-1].split("\n")
    md += PAPER_LITE_LITERATURE
    md += render_md(PAPER_LITE_HEADER, lite_rows).split("\n")[2:-1]
    ntu = [d for d in runs.datasets() if d.startswith("ntu")]
    extra = [
        "Literature rows are copied from the training plan §10. LAST-Base (1s) = B7 on the joint "
        "stream, LAST-Base (4s) = B14; Lite rows: standalone = L5 with last_lite_nano / "
        "last_lite_small, + distill (existing model) = L10, + distill (Base) = L11, "
        "+ MaskCLR + distill = L12. "
        "Cells are best-epoch top-1 (%), except LAST-Base (4s): the ensemble of its members' "
        "final weights; mean ± std over seeds (n); Params, FLOPs and INT8 size "
        "are measured on the runs when present, otherwise the plan's placeholders (~).",
        maskclr_verdict(runs),
    ]
    if not ntu:
        extra.append(
            f"No NTU runs in the store (datasets present: {', '.join(runs.datasets()) or 'none'});"
            " the LAST rows stay empty."
        )
    paper_ids = {row[1] for row in PAPER_BASE_OURS} | {row[1] for row in PAPER_LITE_OURS}
    mine = [r for r in runs.all if r["ablation"] in paper_ids]
    text = "\n".join(md) + "\n" + notes_md(notes(runs, mine, extra))

    lit_base = [split_md_row(line) for line in PAPER_BASE_LITERATURE]
    lit_lite = [split_md_row(line) for line in PAPER_LITE_LITERATURE]
    csv_rows = [["base", *_pad(r, 6)] for r in lit_base + base_rows]
    csv_rows += [["lite", *_pad(r, 6)] for r in lit_lite + lite_rows]
    csv_header = ["table", "model", "ntu60_xsub", "ntu60_xview_or_params", "ntu120_xsub_or_flops",
                  "ntu120_xset_or_int8", "params"]  # fmt: skip
    csv_rows = [[c.replace("**", "") for c in r] for r in csv_rows]
    tex = render_tex(PAPER_BASE_HEADER, lit_base + base_rows, "LAST-Base results.", "paper-base")
    tex += "\n" + render_tex(PAPER_LITE_HEADER, lit_lite + lite_rows, "LAST-Lite results.",
                             "paper-lite")  # fmt: skip
    return {"paper.md": text, "paper.csv": render_csv(csv_header, csv_rows), "paper.tex": tex}
