"""Optional figures for the ablation tables: a Δ bar chart and baseline-vs-full val curves.

Only drawn when matplotlib is installed (Agg backend, no display); the tables never depend on
it. PNGs carry no timestamp, so the same store gives the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from lastexp.results.aggregate import DATASET_ORDER, Runs, delta, table_rows_cache
from lastexp.results.store import load_history

# (baseline, full model) whose validation curves are compared per table.
CURVE_PAIRS = {"base": ("B0", "B7"), "lite": ("L0", "L5"), "preprocessing": ("P0", "P1")}


def available() -> bool:
    try:  # deferred: asks only whether matplotlib is installed, at import cost of ~0.4 s
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _main_dataset(runs: Runs, ids: set[str]) -> str | None:
    present = runs.datasets([r for r in runs.completed if r["ablation"] in ids])
    ntu = [d for d in present if d in DATASET_ORDER and d != "synthetic"]
    return (ntu or present or [None])[0]


def draw(runs: Runs, table: str, out_dir: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Draw the table's figures into ``out_dir``; returns ``(caption, file name)`` pairs."""
    # deferred: matplotlib (~1.3 s with pyplot) loads only when figures are drawn
    import matplotlib

    matplotlib.use("Agg")
    # after matplotlib.use('Agg'): pyplot picks its backend when it is imported
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "lastexp"
    rows = table_rows_cache(runs, table)
    dataset = _main_dataset(runs, {r.label for r in rows})
    if dataset is None:
        return []
    out, figures = Path(out_dir), []
    bars = [(r, delta(r, dataset)) for r in rows]
    bars = [(r, d) for r, d in bars if d is not None]
    if bars:
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(bars) + 1.2))
        labels = [f"{r.label} {', '.join(r.shown)}".strip() for r, _ in bars]
        values = [d[0] for _, d in bars]
        ax.barh(labels, values, color=["tab:green" if v >= 0 else "tab:red" for v in values])
        ax.axvline(0, color="black", linewidth=0.8)
        ax.invert_yaxis()
        ax.set_xlabel(f"Δ top-1 vs baseline row (%), {dataset}")
        fig.tight_layout()
        name = f"{table}_delta.png"
        fig.savefig(out / name, dpi=100, metadata={"Software": None})
        plt.close(fig)
        figures.append((f"Δ vs baseline on {dataset}", name))
    base_id, full_id = CURVE_PAIRS[table]
    root = runs.root
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for ab_id in (base_id, full_id):
        chosen = [r for r in runs.completed if r["ablation"] == ab_id and r["dataset"] == dataset]
        for k, run in enumerate(sorted(chosen, key=lambda r: r["run_dir"])):
            hist = load_history(root, run["run_dir"]) if root else None
            if hist is None or "val_top1" not in hist or "epoch" not in hist:
                continue
            ax.plot(hist["epoch"], hist["val_top1"], color="tab:blue" if ab_id == base_id
                    else "tab:orange", alpha=0.8, label=ab_id if k == 0 else None)  # fmt: skip
            drawn = True
    if drawn:
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"val top-1 (%), {dataset}")
        ax.legend()
        fig.tight_layout()
        name = f"{table}_curves.png"
        fig.savefig(out / name, dpi=100, metadata={"Software": None})
        figures.append((f"val top-1 per epoch, {base_id} vs {full_id} on {dataset}", name))
    plt.close(fig)
    return figures
