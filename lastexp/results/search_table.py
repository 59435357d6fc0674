"""The hyper-parameter searches of the store: ``search.md`` and one plot per study.

A search (``hydra/sweeper=optuna +search=<name>``) keeps its Optuna study in
``<runs>/search/<study>.db``; its trials are ordinary runs of the store. This module reads the
studies (never writes them) and tabulates every trial: number, parameters, the value the
search maximised (the run's best validation top-1) and its state. Same studies, same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lastexp.runstore.layout import BEST_FILE

SEARCH_DIR = "search"
SEARCH_MD = "search.md"


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict
    value: float | None
    state: str  # complete | fail | running | pruned | waiting


@dataclass(frozen=True)
class Study:
    name: str
    db: str  # relative to the runs root, POSIX separators
    direction: str
    trials: list[Trial]


def find_study_files(runs_dir: str | os.PathLike[str]) -> list[Path]:
    folder = Path(runs_dir) / SEARCH_DIR
    return sorted(folder.glob("*.db")) if folder.is_dir() else []


def load_studies(runs_dir: str | os.PathLike[str]) -> tuple[list[Study], list[str]]:
    """Every study of every ``<runs>/search/*.db``, and a line per file that could not be
    read (a broken file never hides the others)."""
    files = find_study_files(runs_dir)
    if not files:
        return [], []
    # deferred: optuna takes ~2.6 s to import; only a store holding studies needs it
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies, problems = [], []
    for path in files:
        rel = path.relative_to(runs_dir).as_posix()
        url = f"sqlite:///{path.resolve().as_posix()}"
        try:
            for summary in optuna.get_all_study_summaries(storage=url):
                study = optuna.load_study(study_name=summary.study_name, storage=url)
                trials = [
                    Trial(t.number, dict(t.params), t.value, t.state.name.lower())
                    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
                ]
                direction = ("maximise" if study.direction.name == "MAXIMIZE"
                             else "minimise")
                studies.append(Study(summary.study_name, rel, direction, trials))
        except Exception as exc:  # noqa: BLE001 -- a foreign or broken file: say so, go on
            problems.append(f"{rel}: {exc.__class__.__name__}: {exc}")
    studies.sort(key=lambda s: (s.name, s.db))
    return studies, problems


def _param(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _best(study: Study) -> Trial | None:
    done = [t for t in study.trials if t.state == "complete" and t.value is not None]
    if not done:
        return None
    pick = max if study.direction == "maximise" else min
    return pick(done, key=lambda t: (t.value if pick is max else -t.value, -t.number))


def build_search_md(studies: list[Study], problems: list[str] = (),
                    figures: set[str] = frozenset()) -> str:
    """The Markdown of ``search.md``; ``figures``: the plot files drawn (linked)."""
    lines = ["# Hyper-parameter searches", ""]
    if not studies:
        lines += ["(no searches)", ""]
    for study in studies:
        names = sorted({k for t in study.trials for k in t.params})
        best = _best(study)
        first_of: dict[tuple, int] = {}
        lines += [f"## {study.name}", ""]
        lines.append("| trial | " + " | ".join(names) + " | top-1 (%) | state |")
        lines.append("|" + "---|" * (len(names) + 3))
        for t in study.trials:
            key = tuple(_param(t.params.get(n)) for n in names)
            value = "—" if t.value is None else f"{t.value:.2f}"
            if best is not None and t.number == best.number:
                value = f"**{value}**"
            state = t.state
            if key in first_of and t.state == "complete":
                state += f" (= trial {first_of[key]})"
            elif t.state == "complete":
                first_of[key] = t.number
            cells = [str(t.number), *(_param(t.params[n]) if n in t.params else "—"
                                      for n in names), value, state]
            lines.append("| " + " | ".join(cells) + " |")
        n_done = sum(t.state == "complete" for t in study.trials)
        lines.append("")
        if plot_name(study) in figures:
            lines += [f"![top-1 per trial]({plot_name(study)})", ""]
        lines += [
            "**Notes**",
            "",
            f"- Study `{study.db}`: {len(study.trials)} trials, {n_done} complete; Optuna "
            f"{study.direction}s the value.",
            "- Selection rule: top-1 is the trial run's best validation top-1 (best epoch, "
            f"{BEST_FILE}), the value the search optimises.",
            "- A trial marked `(= trial k)` repeats trial k's parameters: its run was already "
            "in the store, so it was skipped and reported the stored value.",
        ]
        if best is not None:
            params = ", ".join(f"{n}={_param(best.params[n])}" for n in names
                               if n in best.params)
            lines.append(f"- Best: trial {best.number} ({params}), {best.value:.2f}%.")
        lines.append("")
    for problem in problems:
        lines.append(f"- unreadable study file: {problem}")
    if problems:
        lines.append("")
    return "\n".join(lines)


def plot_name(study: Study) -> str:
    return f"search_{study.name}.png"


def draw(study: Study, out_dir: Path) -> str | None:
    """Top-1 per trial with the best so far, and top-1 over the first two parameters."""
    try:
        # deferred: matplotlib (~1.3 s with pyplot) loads only when a figure is drawn
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    # after matplotlib.use('Agg'): pyplot picks its backend when it is imported
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    done = [t for t in study.trials if t.state == "complete" and t.value is not None]
    if not done:
        return None
    names = sorted({k for t in done for k in t.params})
    fig, axes = plt.subplots(1, 2 if len(names) >= 2 else 1, figsize=(10, 4), squeeze=False)
    ax = axes[0][0]
    xs, ys = [t.number for t in done], [t.value for t in done]
    pick = max if study.direction == "maximise" else min
    running = [pick(ys[: i + 1]) for i in range(len(ys))]
    ax.plot(xs, ys, "o", color="tab:blue", label="trial")
    ax.step(xs, running, where="post", color="tab:orange", label="best so far")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("best val top-1 (%)")
    ax.legend()
    if len(names) >= 2:
        ax = axes[0][1]
        px = [float(t.params.get(names[0], float("nan"))) for t in done]
        py = [float(t.params.get(names[1], float("nan"))) for t in done]
        points = ax.scatter(px, py, c=ys, cmap="viridis", s=60)
        if min(px) > 0 and max(px) / min(px) >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        fig.colorbar(points, ax=ax, label="best val top-1 (%)")
    fig.suptitle(study.name, fontsize=9)
    fig.tight_layout()
    name = plot_name(study)
    fig.savefig(out_dir / name, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return name


def write_search(runs_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                 plots: bool = True) -> dict[str, str]:
    """``search.md`` (and the plots) into ``out_dir`` when the store holds searches;
    returns ``{file name: text}`` ({} when there is no search)."""
    studies, problems = load_studies(runs_dir)
    if not studies and not problems:
        return {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {draw(study, out) for study in studies} if plots else set()
    text = build_search_md(studies, problems, figures)
    (out / SEARCH_MD).write_bytes(text.encode("utf-8"))
    return {SEARCH_MD: text}
