"""The numbered notes under every table: what the cells mean, the selection rule, the MaskCLR
decision, the teachers, incomplete / duplicate / unreadable runs, and the provenance line.
"""

from __future__ import annotations

import os

from lastexp import catalog
from lastexp.provenance import git_commit, git_dirty
from lastexp.results.aggregate import INCOMPLETE, Row, Runs, as_text
from lastexp.results.deltas import Delta
from lastexp.results.render import MARKER, fmt_num
from lastexp.runstore.layout import SCORES_FILE


def maskclr_verdict(runs: Runs) -> str:
    """The training plan §4's MaskCLR rule (:func:`lastexp.catalog.maskclr_decision`) on the
    completed runs of the main configs, duplicate seeds resolved: the L10/L11 cells of paper.md's
    LAST-Lite table."""
    decision = catalog.maskclr_decision(r for r in runs.tabled(runs.completed) if not r["variant"])
    threshold = f"{catalog.MASKCLR_THRESHOLD:.0f}%"
    if decision is None:
        return ("MaskCLR rule (the training plan §4): undecided — no completed L10/L11 run of "
                f"{catalog.MASKCLR_MODEL} on {catalog.MASKCLR_DATASET} yet.")
    due, row, mean = decision
    where = f"{row} at {mean:.1f}% on {catalog.MASKCLR_DATASET}"
    if due:
        return (
            f"MaskCLR rule (the training plan §4): **MaskCLR (L12) is due** — the best "
            f"distilled Lite result is {where}, below {threshold}."
        )
    return (
        f"MaskCLR rule (the training plan §4): not needed — the best distilled Lite result is "
        f"{where} (≥ {threshold})."
    )


def teacher_note(mine: list[dict]) -> str:
    """Which teacher L10-L12 distilled from: one run of the student's stream, or an ensemble."""
    ensembles = sorted({r["ablation"] for r in mine
                        if r["ablation"] in ("L10", "L11", "L12")
                        and isinstance(r.get("teacher_members"), list)})
    text = ("Teachers: L10 distils from the same-stream P0 run, L11 and L12 from the same-stream "
            "B7 run (the training plan's §3 command)")
    if ensembles:
        text += (f"; {', '.join(ensembles)} include runs distilled from the four-stream ensemble "
                 "of §3A (distill.teacher_streams)")
    return text + "."


def selection_note(table: str) -> str:
    """The table's selection rule: which weights each row reports, and what a Δ compares."""
    rules = {i: catalog.get(i).selection for i in catalog.ids(table)}
    text = f"Selection rule: {catalog.SELECTION_TEXT['best']}"
    others = {i: r for i, r in rules.items() if r != "best"}
    if not others:
        return text + " for every row, and for both sides of every Δ."
    text += ", except " + "; ".join(
        f"{i}: {catalog.SELECTION_TEXT[r]}" for i, r in others.items()
    )
    return text + (". A Δ of those rows compares with the baseline's final weights (the model "
                   "its training ends with), so neither side picks an epoch on the test split; "
                   "every other Δ compares best epochs.")


def hours_header(rows: list[Row]) -> str:
    """``GPU h`` or ``CPU h`` by the device the rows' runs trained on; ``Hours`` when mixed
    (each cell then names its device)."""
    devices = set().union(*(r.devices for r in rows)) if rows else set()
    if devices == {"CPU"}:
        return "CPU h"
    return "GPU h" if devices <= {"GPU"} else "Hours"


def hours_text(row: Row, header: str) -> str:
    text = f"{row.gpu_seconds / 3600:.1f}"
    return f"{text} {'+'.join(sorted(row.devices))}" if header == "Hours" and row.devices \
        else text


def row_name(row: Row) -> str:
    return f"{row.label} ({', '.join(row.shown)})" if row.shown else row.label


PROTOCOL_TEXT = {
    "test": "test-selected (the best epoch, early stopping and SWA's choice read the test split "
            "that the cell reports, as the field reports CTR-GCN and InfoGCN)",
    "validation": "a validation split held out of the training split (dataset.val_subjects / "
                  "dataset.val_fraction) chose the epoch; the test split was scored once, at "
                  "the end, for the rule's weights",
}


def protocol_note(rows: list[Row]) -> str:
    """Which selection protocol the cells used, per row when they differ."""
    by_row = {row_name(r) + (f" [{r.variant}]" if r.variant else ""): r.protocol
              for r in rows if r.protocol}
    found = set(by_row.values())
    if not found or found == {"test"}:
        return f"Selection protocol: {PROTOCOL_TEXT['test']}, for every row."
    if found == {"validation"}:
        return f"Selection protocol: {PROTOCOL_TEXT['validation']}, for every row."
    parts = []
    for proto in ("validation", "test", "mixed"):
        names = [n for n, p in by_row.items() if p == proto]
        if names:
            parts.append(f"{', '.join(names)}: {PROTOCOL_TEXT.get(proto, 'mixed protocols')}")
    return ("Selection protocol differs between rows — " + "; ".join(parts)
            + ". A Δ between rows of different protocols is refused (— (protocols differ)).")


def delta_notes(rows: list[Row], deltas: dict[tuple[int, str], Delta],
                datasets: list[str]) -> list[str]:
    """What the Δ statistics are, which test each marker used, and the Δs lacking one."""
    named = [(row_name(r), ds, deltas[(id(r), ds)]) for r in rows for ds in datasets
             if (id(r), ds) in deltas]
    if not named:
        return []
    marked = [f"{n} on {ds} ({d.marker_test})" for n, ds, d in named if d.marked]
    out = [
        f"Significance: {MARKER} marks a Δ whose Holm-adjusted p is below 0.05 (Holm–"
        "Bonferroni over this table's Δs on that dataset), by Welch's t-test when both sides "
        "have n ≥ 2, otherwise by the exact McNemar test on the per-sample test predictions "
        "of the rule's weights, pooled over the seeds both sides ran. McNemar covers "
        "test-set sampling but not seed-to-seed variance. "
        + (f"Marked: {'; '.join(marked)}." if marked else "No Δ is marked.")
        + " The csv adds each cell's 95% t-interval, each Δ's 95% Welch interval, both p "
        "values before and after Holm, and the seeds per side needed for 80% power at "
        "α = 0.05 to detect the Δ (python -m lastexp.plan prints them too)."
    ]
    lacking = [f"{n} on {ds} ({d.no_predictions} seed(s))" for n, ds, d in named
               if d.no_predictions]
    if lacking:
        out.append("McNemar p is — (csv p_mcnemar empty) where a matched seed's run has no "
                   f"per-sample predictions (runs written before {SCORES_FILE} stored "
                   "pred_best/pred_final/pred_swa): " + "; ".join(lacking) + ".")
    refused = [f"{n} on {ds}" for n, ds, d in named if d.refused]
    if refused:
        out.append("Δ refused (— (protocols differ)): the row and its baseline selected on "
                   "different splits (test vs validation): " + "; ".join(refused) + ".")
    return out


def _run_line(r: dict) -> str:
    bits = [r["ablation"] or "no ablation", r["model"], r["stream"], r["dataset"],
            r["preprocessing"], f"seed {fmt_num(r['seed'], '{:.0f}') or '?'}"]  # fmt: skip
    text = f"`{r['run_dir']}` ({' · '.join(b for b in bits if b)}): {r['status'] or '?'}"
    err = as_text(r["error"]).strip().replace("\n", " ")
    if err:
        text += f" — {err[:200]}{'…' if len(err) > 200 else ''}"
    return text


def notes(runs: Runs, mine: list[dict], extra: list[str]) -> list[str]:
    """The note paragraphs of one file: ``extra`` (the file's own), then those every file
    shares: its incomplete runs and duplicates, the unreadable run dirs, the provenance."""
    out = list(extra)
    incomplete = [r for r in mine if r["status"] in INCOMPLETE]
    if incomplete:
        out.append(
            f"Incomplete runs ({len(incomplete)}; counted in their cells, not in the means):\n"
            + "\n".join(f"   - {_run_line(r)}" for r in incomplete)
        )
    dirs = {r["run_dir"] for r in mine}
    dups = [(k, d) for k, d in runs.duplicates if k["run_dir"] in dirs]
    if dups:
        out.append(
            f"Duplicate seeds ({len(dups)}; the newest run is used, the others ignored):\n"
            + "\n".join(
                f"   - kept `{k['run_dir']}`, ignored "
                + ", ".join(f"`{d['run_dir']}`" for d in dropped)
                for k, dropped in dups
            )
        )
    if runs.problems:
        out.append(
            f"Unreadable run dirs ({len(runs.problems)}; skipped):\n"
            + "\n".join(f"   - `{p.run_dir}`: {p.message}" for p in runs.problems)
        )
    out.append(provenance_line(runs))
    return out


def notes_md(paragraphs: list[str]) -> str:
    """The ``**Notes**`` section of a Markdown file, numbered from 1."""
    return "\n**Notes**\n\n" + "\n".join(f"{i}. {n}" for i, n in enumerate(paragraphs, 1)) + "\n"


def provenance_line(runs: Runs) -> str:
    starts = [as_text(r["started_at"])[:10] for r in runs.all if as_text(r["started_at"])]
    ends = [as_text(r["finished_at"])[:10] for r in runs.all if as_text(r["finished_at"])]
    dates = starts + ends
    span = f"{min(dates)} to {max(dates)}" if dates else "unknown dates"
    datasets = ", ".join(runs.datasets()) or "none"
    return (
        f"Provenance: code {runs.provenance or 'unknown'}; {len(runs.all)} runs read "
        f"({len(runs.completed)} completed after de-duplication), {span}; datasets: {datasets}."
    )


def git_provenance(cwd: str | os.PathLike[str] | None = None) -> str:
    """``commit abc1234`` (+ `` (dirty)``) of the checkout at ``cwd`` (default: the working
    directory); ``commit unknown`` outside one."""
    head = git_commit(cwd)
    if not head:
        return "commit unknown"
    return f"commit {head}{' (dirty)' if git_dirty(cwd) else ''}"
