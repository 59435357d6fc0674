"""Optional figures for the ablation tables, drawn when matplotlib is installed (Agg backend, no
display; the tables never depend on it; PNGs carry no timestamp):

- ``<table>_delta.png``: each Δ with its 95% Welch interval as an error bar and the
  significance marker of the table;
- ``<table>_curves.png``: per-epoch val top-1 of the baseline and full model, mean over seeds
  with a ± std band, n in the legend;
- ``<table>_<ID>_per_class.png``: the ten largest per-class gains and losses of a Δ row against
  its baseline, by action name (rows with predictions on both sides);
- ``<table>_<ID>_confusion.png``: the confusion matrix of the full-model row (every row with
  ``--confusion all``).

A store of thousands of runs has a per-class figure for each of its Δ rows, so the figures of
one kind and shape are one matplotlib figure whose artists are updated in place (building a
figure, its axes and their ticks costs more than drawing it), without pyplot, with unhinted
text (FreeType's autohinter is a quarter of the drawing time) and fast PNG compression; from
eight figures on, a forked helper process paints them as they are queued (:class:`Painting`).
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lastexp.results.actions import action_name
from lastexp.results.aggregate import DATASET_ORDER, Row, Runs, table_rows_cache
from lastexp.results.deltas import table_deltas
from lastexp.results.notes import row_name
from lastexp.results.perclass import class_delta, confusion
from lastexp.results.render import MARKER
from lastexp.results.store import load_history

# (baseline, full model) whose validation curves are compared per table.
CURVE_PAIRS = {"base": ("B0", "B7"), "lite": ("L0", "L5"), "preprocessing": ("P0", "P1")}
# The full-model row of each table: its confusion matrix is drawn by default.
FULL_MODEL = {"base": "B7", "lite": "L5", "preprocessing": "P0"}
TOP_CLASSES = 10


# Drawing settings: unhinted glyphs (autohinting is a quarter of a figure's drawing time); PNGs
# with zlib level 1 (a third of the encoding time of the default 6, files ~10% larger).
RC = {"text.hinting": "no_hinting", "svg.hashsalt": "lastexp"}
PNG = {"dpi": 100, "metadata": {"Software": None}, "pil_kwargs": {"compress_level": 1}}
SPLIT_FROM = 8  # queued figures from which a second process paints them too (fork ~20 ms)
# A queued figure: the function that paints it (figures, *args) and its arguments, the PNG's
# path first; both are pickled to the helper process.
Job = tuple[Callable[..., None], tuple]


def available() -> bool:
    try:  # deferred: asks only whether matplotlib is installed, at import cost of ~0.4 s
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _main_dataset(runs: Runs, ids: set[str]) -> str | None:
    present = runs.datasets([r for r in runs.tabled(runs.completed) if r["ablation"] in ids])
    ntu = [d for d in present if d in DATASET_ORDER and d != "synthetic"]
    return (ntu or present or [None])[0]


def _file_stem(table: str, row: Row) -> str:
    tag = hashlib.sha1(row.variant.encode()).hexdigest()[:6] if row.variant else ""
    bits = [table, row.label, *row.shown, tag]
    return "_".join(b.replace("/", "-").replace(" ", "") for b in bits if b)


class Figures:
    """Figures reused across the PNGs of one results command, one per kind and shape."""

    def __init__(self) -> None:
        # deferred: matplotlib (~0.4 s) loads only when figures are drawn
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.layout_engine import TightLayoutEngine

        self._figure, self._canvas, self._tight = Figure, FigureCanvasAgg, TightLayoutEngine
        self._kept: dict[tuple, object] = {}

    def tight(self, fig) -> None:
        """``fig.tight_layout()``'s margins, applied once: the figure keeps no layout engine,
        whose presence makes every ``savefig`` draw the figure twice."""
        self._tight().execute(fig)

    def new(self, figsize: tuple[float, float]):
        """A fresh figure on an Agg canvas (no pyplot, no display)."""
        fig = self._figure(figsize=figsize)
        self._canvas(fig)
        return fig

    def kept(self, key: tuple, build: Callable[[], object]):
        """The figure (with its artists) built once by ``build`` for ``key``."""
        if key not in self._kept:
            self._kept[key] = build()
        return self._kept[key]


@contextmanager
def painted(runs: Runs, tables: list[str], out_dir: str | os.PathLike[str],
            confusion_all: bool = False) -> Iterator[dict[str, list[tuple[str, str]]]]:
    """Queue every table's figures for ``out_dir`` and yield ``{table: [(caption, file
    name)]}``; the PNGs are painted as they are queued and while the block runs (by a
    forked helper, beside the tables the block builds) and when it ends (what is left,
    here)."""
    # deferred: matplotlib (~0.4 s) loads only when figures are drawn
    import matplotlib

    with matplotlib.rc_context(RC):
        painting = Painting(Figures())
        try:
            drawn = {table: draw(runs, table, out_dir, confusion_all, painting)
                     for table in tables}  # fmt: skip
            yield drawn
        except BaseException:
            painting.cancel()
            raise
        painting.finish()


def draw(runs: Runs, table: str, out_dir: str | os.PathLike[str], confusion_all: bool = False,
         jobs: list[Job] | Painting | None = None) -> list[tuple[str, str]]:
    """Draw the table's figures into ``out_dir``; returns ``(caption, file name)`` pairs. With
    ``jobs``, the figures are queued there instead."""
    pending: list[Job] | Painting = [] if jobs is None else jobs
    rows = table_rows_cache(runs, table)
    dataset = _main_dataset(runs, {r.label for r in rows})
    if dataset is None:
        return []
    out, drawn = Path(out_dir), []
    drawn += _delta_plot(pending, runs, table, rows, dataset, out)
    drawn += _curves(pending, runs, table, rows, dataset, out)
    for row in rows:
        gains = class_delta(runs, row, dataset) if row.baseline_row is not None else None
        if gains is not None:
            drawn.append(_per_class_plot(pending, table, row, dataset, gains[0], out))
    for row in rows:
        if confusion_all or (row.label == FULL_MODEL[table] and not row.variant):
            counts = confusion(runs, row, dataset)
            if counts is not None:
                drawn.append(_confusion_plot(pending, table, row, dataset, counts, out))
    if jobs is None:
        render(Figures(), pending)
    return drawn


class Painting:
    """Figures painted as they are queued (:meth:`append`). From the ``split_from``-th one on,
    and with a second CPU, a forked helper process paints them from a queue at once, while
    this process computes the next ones and builds the tables (each PNG is independent: a
    store's hundred per-class figures take both cores); :meth:`finish` paints here what the
    helper has not taken (everything, without a helper), waits for it and, if it failed,
    paints all it may have left undone."""

    def __init__(self, figures: Figures, split_from: int = SPLIT_FROM) -> None:
        self.figures, self.split_from = figures, split_from
        self.jobs: list[Job] = []
        self.mine: set[Path] = set()  # the PNGs painted here
        self.helper, self.queue = None, None

    def append(self, job: Job) -> None:
        self.jobs.append(job)
        if self.queue is not None:
            self.queue.put(job)
        elif len(self.jobs) == self.split_from and _cpus() >= 2 \
                and "fork" in mp.get_all_start_methods():
            context = mp.get_context("fork")
            self.queue = context.Queue()
            self.helper = context.Process(target=_helper, args=(self.figures, self.queue),
                                          daemon=True)  # fmt: skip
            self.helper.start()
            for queued in self.jobs:
                self.queue.put(queued)

    def finish(self) -> None:
        if self.queue is None:
            _paint_all(self.figures, self.jobs)
            return
        for _ in range(2):  # one end mark for the helper, one for this process
            self.queue.put(None)
        while True:
            try:
                job = self.queue.get(timeout=1.0)
            except queue.Empty:
                if self.helper.is_alive():
                    continue
                break
            if job is None:
                break
            job[0](self.figures, *job[1])
            self.mine.add(job[1][0])
        self.helper.join()
        self.queue.close()
        if self.helper.exitcode != 0:
            _paint_all(self.figures, [j for j in self.jobs if j[1][0] not in self.mine])

    def cancel(self) -> None:
        """Stop the helper (the block that was to use the figures failed)."""
        if self.helper is not None:
            self.helper.terminate()
            self.helper.join()


def render(figures: Figures, jobs: list[Job], split_from: int = SPLIT_FROM) -> None:
    """Paint ``jobs`` (two processes from ``split_from`` of them on, see :class:`Painting`)."""
    painting = Painting(figures, split_from)
    for job in jobs:
        painting.append(job)
    painting.finish()


def _cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _paint_all(figures: Figures, jobs: list[Job]) -> None:
    for paint, args in jobs:
        paint(figures, *args)


def _helper(figures: Figures, jobs: mp.Queue) -> None:
    """The helper process: paint queued jobs until the end mark; exit status 1 (no traceback)
    on any failure, and the parent paints what may be missing."""
    try:
        while (job := jobs.get()) is not None:
            job[0](figures, *job[1])
    except BaseException:  # noqa: BLE001 -- reported by the exit status; the parent repaints
        os._exit(1)


def _delta_plot(jobs: list[Job], runs: Runs, table: str, rows: list[Row], dataset: str,
                out: Path) -> list[tuple[str, str]]:
    deltas = table_deltas(table, runs, [dataset])
    bars = [(r, deltas.get((id(r), dataset))) for r in rows]
    bars = [(r, d) for r, d in bars if d is not None and d.value is not None]
    if not bars:
        return []
    labels = [f"{row_name(r)}{' ' + MARKER if d.marked else ''}" for r, d in bars]
    values = [d.value for _, d in bars]
    err = np.array([[d.value - d.ci95[0], d.ci95[1] - d.value] if d.ci95 else [0.0, 0.0]
                    for _, d in bars]).T  # fmt: skip
    name = f"{table}_delta.png"
    jobs.append((_paint_delta, (out / name, labels, values, err, dataset)))
    return [(f"Δ vs baseline on {dataset}, 95% intervals", name)]


def _paint_delta(figures: Figures, path: Path, labels: list[str], values: list[float],
                 err: np.ndarray, dataset: str) -> None:
    fig = figures.new((7, 0.35 * len(values) + 1.4))
    ax = fig.subplots()
    ax.barh(labels, values, xerr=err, capsize=3, ecolor="black",
            color=["tab:green" if v >= 0 else "tab:red" for v in values])  # fmt: skip
    ax.axvline(0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ top-1 vs baseline row (%), {dataset}; bars: 95% Welch interval (n ≥ 2)")
    ax.set_title(f"{MARKER}: Holm-adjusted p < 0.05", fontsize=9)
    figures.tight(fig)
    fig.savefig(path, **PNG)


def _curves(jobs: list[Job], runs: Runs, table: str, rows: list[Row], dataset: str,
            out: Path) -> list[tuple[str, str]]:
    base_id, full_id = CURVE_PAIRS[table]
    lines = []  # (label, color, epochs, per-seed values)
    for ab_id, color in ((base_id, "tab:blue"), (full_id, "tab:orange")):
        row = next((r for r in rows if r.label == ab_id and not r.variant
                    and r.cell(dataset).values), None)  # fmt: skip
        if row is None or not runs.root:
            continue
        curves = []
        for run_dir in row.cell(dataset).run_dirs:
            hist = load_history(runs.root, run_dir)
            if hist is not None and "val_top1" in hist and "epoch" in hist:
                curves.append(hist.set_index("epoch")["val_top1"])
        if not curves:
            continue
        epochs = sorted(set.intersection(*(set(c.index) for c in curves)))
        if epochs:
            values = np.array([[float(c.loc[e]) for e in epochs] for c in curves])
            lines.append((f"{row_name(row)} (mean of n={len(curves)})", color, epochs, values))
    if not lines:
        return []
    name = f"{table}_curves.png"
    jobs.append((_paint_curves, (out / name, lines, dataset)))
    return [(f"val top-1 per epoch, {base_id} vs {full_id} on {dataset}", name)]


def _paint_curves(figures: Figures, path: Path, lines: list[tuple], dataset: str) -> None:
    fig = figures.new((6, 4))
    ax = fig.subplots()
    for label, color, epochs, values in lines:
        mean = values.mean(axis=0)
        ax.plot(epochs, mean, color=color, label=label)
        if len(values) >= 2:
            std = values.std(axis=0, ddof=1)
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.25)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"val top-1 (%), {dataset}")
    ax.set_title("mean over seeds, band ± 1 std", fontsize=9)
    ax.legend()
    figures.tight(fig)
    fig.savefig(path, **PNG)


def _bar_chart(figures: Figures, n: int):
    """A figure of ``n`` horizontal bars with room for action names on the left."""
    height = 0.28 * n + 1.4
    fig = figures.new((7, height))
    # fixed margins (room for action names) instead of tight_layout, which would measure
    # every label of every figure again
    fig.subplots_adjust(left=0.45, right=0.97, bottom=0.75 / height, top=1 - 0.25 / height)
    ax = fig.subplots()
    bars = ax.barh(range(n), np.zeros(n)).patches
    ax.axvline(0, color="black", linewidth=0.8)
    pad = 0.05 * (n - 0.2)  # matplotlib's default 5% margin around bars of height 0.8
    ax.set_ylim(n - 0.6 + pad, -0.4 - pad)  # first bar on top
    ax.tick_params(axis="y", labelsize=7)
    return fig, ax, bars, ax.set_xlabel("", fontsize=8)


def _per_class_plot(jobs: list[Job], table: str, row: Row, dataset: str, gains: np.ndarray,
                    out: Path) -> tuple[str, str]:
    order = [k for k in np.argsort(-np.nan_to_num(gains, nan=0.0)) if not np.isnan(gains[k])]
    top = order[:TOP_CLASSES]
    bottom = [k for k in order[::-1][:TOP_CLASSES] if k not in top]
    picked = top + bottom[::-1]
    name = f"{_file_stem(table, row)}_per_class.png"
    jobs.append((_paint_per_class, (
        out / name, [action_name(dataset, int(k)) for k in picked],
        [float(gains[k]) for k in picked],
        f"per-class top-1 Δ (%) {row_name(row)} vs {row_name(row.baseline_row)}, {dataset}")))
    return (f"{row_name(row)}: largest per-class gains and losses vs "
            f"{row_name(row.baseline_row)} on {dataset}", name)


def _paint_per_class(figures: Figures, path: Path, labels: list[str], values: list[float],
                     xlabel: str) -> None:
    fig, ax, bars, label = figures.kept(("per_class", len(values)),
                                        lambda: _bar_chart(figures, len(values)))
    for bar, value in zip(bars, values):
        bar.set_width(value)
        bar.set_facecolor("tab:green" if value >= 0 else "tab:red")
    ax.set_yticks(range(len(values)), labels)
    low, high = min(0.0, *values), max(0.0, *values)
    pad = 0.05 * (high - low)  # matplotlib's margin, none beyond 0 where the bars start
    ax.set_xlim((low - pad if low < 0 else 0.0, high + pad if high > 0 else 0.0)
                if high > low else (-0.5, 0.5))
    label.set_text(xlabel)
    fig.savefig(path, **PNG)


def _confusion_figure(figures: Figures, k: int, dataset: str):
    """A k × k matrix with its colour bar (class names on the axes up to 30 classes)."""
    size = min(14.0, 3.0 + 0.12 * k)
    fig = figures.new((size, size))
    ax = fig.subplots()
    im = ax.imshow(np.zeros((k, k)), cmap="Blues", vmin=0.0, vmax=1.0)
    if k <= 30:
        names = [action_name(dataset, i) for i in range(k)]
        ax.set_xticks(range(k), [n.split(" ", 1)[0] if dataset.startswith("ntu") else str(i)
                                 for i, n in enumerate(names)], rotation=90, fontsize=6)
        ax.set_yticks(range(k), names, fontsize=6)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, fraction=0.046)
    title = ax.set_title("one line", fontsize=9)
    figures.tight(fig)  # once: later figures change only the image and the title's text
    return fig, ax, im, title


def _confusion_plot(jobs: list[Job], table: str, row: Row, dataset: str, counts: np.ndarray,
                    out: Path) -> tuple[str, str]:
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    name = f"{_file_stem(table, row)}_confusion.png"
    jobs.append((_paint_confusion, (
        out / name, dataset, rates,
        f"{row_name(row)} on {dataset}: row-normalised, summed over seeds")))
    return f"confusion matrix of {row_name(row)} on {dataset}", name


def _paint_confusion(figures: Figures, path: Path, dataset: str, rates: np.ndarray,
                     title: str) -> None:
    k = rates.shape[0]
    fig, _, im, text = figures.kept(("confusion", k, dataset if k <= 30 else ""),
                                    lambda: _confusion_figure(figures, k, dataset))
    im.set_data(rates)
    text.set_text(title)
    fig.savefig(path, **PNG)
