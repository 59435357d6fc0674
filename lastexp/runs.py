"""`python -m lastexp.runs list|diff|rm`: the run store from the shell.

- ``list``: every run below the runs root with its status, row (ablation ID), seed, key config
  values and best / final top-1; ``--where key=value`` keeps the runs whose metrics.json key, or
  dotted config key (``.hydra/config.yaml``), has that value;
- ``diff RUN RUN``: the config keys (dotted, from each run's ``.hydra/config.yaml``) that differ;
- ``rm RUN...``: removes run directories below the runs root, never one another command holds
  (its run lock is taken while it goes), after showing what goes and asking (``--yes`` skips
  the question; without a terminal to ask on, ``--yes`` is required).

A plain table by default, ``--json`` for scripts. Runs are found by the run store's one walker
and read by its readers; no torch import.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from tabulate import tabulate

from lastexp.cli import ArgumentParser
from lastexp.runstore import RunDir, RunLockedError, discard_lock, lock_path, run_lock, walk
from lastexp.runstore.layout import METRICS_FILE

PROG = "python -m lastexp.runs"
# The columns of `list`, in order; "row" is the metrics' "ablation" (the training plan §9 ID).
LIST_FIELDS = ("status", "row", "seed", "model", "stream", "dataset", "preprocessing",
               "epochs", "debug", "best_top1", "final_top1", "path")
ALIASES = {"row": "ablation"}  # --where row=B3 is --where ablation=B3
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ABSENT = object()  # a key one run's config lacks (diff), told apart from a null value


class RunsError(ValueError):
    """A bad argument: one line, exit status 2."""


# ----------------------------------------------------------------------------- reading


@dataclass
class Entry:
    """One run of the store: its directory and metrics (or why they are unreadable)."""

    path: Path
    metrics: dict[str, Any]
    problem: str | None = None
    _config: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def config(self) -> dict[str, Any]:
        """The run's flattened ``.hydra/config.yaml`` ({} when it has none), read once."""
        if self._config is None:
            self._config = read_config(RunDir(self.path)) or {}
        return self._config

    def lookup(self, key: str) -> Any:
        """A metrics.json key, else a dotted config key; :data:`ABSENT` when neither holds it."""
        key = ALIASES.get(key, key)
        if key in self.metrics:
            return self.metrics[key]
        return self.config.get(key, ABSENT)


def entries(root: Path) -> list[Entry]:
    """Every run below ``root`` (the store's walker), an unreadable metrics.json included."""
    found = []
    for path, metrics in walk(root):
        if isinstance(metrics, dict):
            found.append(Entry(path, metrics))
        else:
            found.append(Entry(path, {"status": "unreadable"}, problem=metrics))
    return found


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a nested mapping; lists stay values (``training.milestones: [50, 65]``)."""
    if not isinstance(node, Mapping) or (not node and prefix):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def read_config(run: RunDir) -> dict[str, Any] | None:
    """A run's ``.hydra/config.yaml`` as dotted keys; None when it has none or it is unreadable
    (a run that stopped before it trained)."""
    try:  # plain YAML as Hydra wrote it (libyaml's loader: --where reads thousands of them)
        with open(run.hydra_config, encoding="utf-8") as fh:
            cfg = yaml.load(fh, Loader=SAFE_LOADER)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return flatten(cfg) if isinstance(cfg, dict) else None


# ----------------------------------------------------------------------------- list


def parse_where(texts: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise RunsError(f"--where {text!r} is not key=value; e.g. --where model=last_e_base "
                            "or --where training.epochs=2")
        pairs.append((key.strip(), value))
    return pairs


def equals(actual: Any, text: str) -> bool:
    """Whether a stored value is the one ``--where`` names: as YAML reads it (``2`` is 2 and
    2.0, ``true`` is True, ``null`` is None, ``[50,65]`` a list), or as the text itself."""
    try:
        wanted = yaml.safe_load(text)
    except yaml.YAMLError:
        wanted = text
    if actual is None:
        return wanted is None or text.lower() == "none"
    if isinstance(actual, bool) != isinstance(wanted, bool):
        return str(actual).lower() == text.lower()
    return actual == wanted or str(actual) == text


def select(found: list[Entry], where: list[tuple[str, str]]) -> list[Entry]:
    """The runs whose every ``--where`` key holds its value. A key that no run holds is a typo:
    refused, naming it."""
    for key, _ in where:
        if found and all(e.lookup(key) is ABSENT for e in found):
            raise RunsError(f"--where {key}: no run has this key; give a {METRICS_FILE} key "
                            "(status, ablation or row, model, stream, dataset, seed, ...) or a "
                            "dotted config key (training.epochs, optimizer.lr, ...)")
    return [e for e in found if all(
        (v := e.lookup(k)) is not ABSENT and equals(v, text) for k, text in where)]


def list_row(entry: Entry) -> dict[str, Any]:
    """What ``list`` shows of a run (``--json``: these keys, plus ``error`` when it has one)."""
    m = entry.metrics
    row: dict[str, Any] = {
        "status": m.get("status"), "row": m.get("ablation"), "seed": m.get("seed"),
        "model": m.get("model"), "stream": m.get("stream"), "dataset": m.get("dataset"),
        "preprocessing": m.get("preprocessing"), "epochs": m.get("epochs"),
        "debug": m.get("debug"), "best_top1": m.get("best_top1"),
        "final_top1": m.get("final_top1"), "path": str(entry.path),
    }
    error = entry.problem or m.get("error")
    if error:
        row["error"] = error
    return row


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def render_list(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no runs"
    table = tabulate([[_cell(r[k]) for k in LIST_FIELDS] for r in rows],
                     headers=[k.replace("_top1", " top-1") for k in LIST_FIELDS],
                     disable_numparse=True)
    return f"{table}\n{len(rows)} run{'s' if len(rows) != 1 else ''}"


# ----------------------------------------------------------------------------- diff


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, value in a, value in b)`` for every dotted key whose values differ, sorted;
    :data:`ABSENT` where a run's config lacks the key."""
    keys = sorted(set(a) | set(b))
    return [(k, a.get(k, ABSENT), b.get(k, ABSENT)) for k in keys
            if a.get(k, ABSENT) != b.get(k, ABSENT)]


def _shown(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    return json.dumps(value) if not isinstance(value, str) else value


def render_diff(diff: list[tuple[str, Any, Any]], a: Path, b: Path) -> str:
    if not diff:
        return f"no config keys differ between {a} and {b}"
    names = (a.name, b.name) if a.name != b.name else (str(a), str(b))
    return tabulate([[k, _shown(x), _shown(y)] for k, x, y in diff],
                    headers=["key", *names], disable_numparse=True)


def diff_json(diff: list[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    """A list of ``{"key", "a", "b"}`` objects; a key a run lacks is left out of its side."""
    out = []
    for key, x, y in diff:
        item: dict[str, Any] = {"key": key}
        if x is not ABSENT:
            item["a"] = x
        if y is not ABSENT:
            item["b"] = y
        out.append(item)
    return out


def find_run(arg: str, root: Path) -> Path:
    """A run named as a path (``runs/<name>``) or by its path below the runs root."""
    path = Path(arg)
    if not os.path.lexists(path) and not path.is_absolute() and os.path.lexists(root / path):
        path = root / path
    if not os.path.lexists(path):
        raise RunsError(f"{arg}: no such run directory (as a path, nor below --runs {root}); "
                        f"see {PROG} list")
    return path


def config_of(arg: str, root: Path) -> tuple[Path, dict[str, Any]]:
    path = find_run(arg, root)
    config = read_config(RunDir(path))
    if config is None:
        raise RunsError(f"{arg} has no readable .hydra/config.yaml (not a run directory, or a "
                        f"run that stopped before training); see {PROG} list")
    return path, config


# ----------------------------------------------------------------------------- rm


@dataclass(frozen=True)
class Removal:
    given: Path  # as the user named it (a link below the runs root is removed with its run)
    real: Path  # the run directory itself
    entry: Entry


def removable(arg: str, root: Path, runs: Mapping[Path, Entry]) -> Removal:
    """The run ``arg`` names, if ``rm`` may remove it: a run directory the store's walker lists
    below the runs root; never the root itself, a folder outside it (a link pointing out
    included), the store's internal folders (``.locks``, ``.sweeps``, ...) or a folder that is
    no run."""
    given = find_run(arg, root)
    real, top = given.resolve(), root.resolve()
    if real == top:
        raise RunsError(f"{arg} is the runs root itself; name the runs inside it "
                        f"(see {PROG} list)")
    if top not in real.parents:
        link = " (a symlink pointing there)" if given.is_symlink() else ""
        raise RunsError(f"{arg} is outside --runs {root}{link}; rm removes only runs below the "
                        "runs root (pass --runs DIR for another store)")
    hidden = [p for p in real.relative_to(top).parts if p.startswith(".")]
    if hidden:
        raise RunsError(f"{arg} lies in the store's internal folder {hidden[0]}; rm removes only "
                        f"run directories (see {PROG} list)")
    if real not in runs:
        raise RunsError(f"{arg} is not a run directory of --runs {root} (no {METRICS_FILE}, or "
                        f"inside a run); rm removes only the runs {PROG} list shows")
    return Removal(given, real, runs[real])


def footprint(path: Path) -> str:
    files = size = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(folder, name)).st_size
                files += 1
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            break
        size /= 1024
    return f"{files} files, {size:.1f} {unit}" if unit != "B" else f"{files} files, {size} B"


def describe(r: Removal) -> str:
    m = r.entry.metrics
    what = ", ".join(str(x) for x in (m.get("status"), m.get("ablation") or m.get("model"),
                                      f"seed {m.get('seed')}") if x)
    return f"  {r.given}  ({what}; {footprint(r.real)})"


def remove(r: Removal) -> None:
    """Rename the run to a hidden name first (one atomic step: the walker no longer sees it,
    even when the deletion is interrupted), then delete it."""
    trash = r.real.with_name(f".removing-{r.real.name}-{os.getpid()}")
    try:
        os.rename(r.real, trash)
    except OSError as exc:
        raise RunsError(f"cannot remove {r.given}: {exc.strerror}; nothing of it was "
                        "removed") from None
    try:
        shutil.rmtree(trash)
    except OSError as exc:
        raise RunsError(f"{r.given}: removal stopped ({exc.strerror}); what is left is in "
                        f"{trash}, which no command reads") from None
    if r.given.is_symlink():
        r.given.unlink()


def rm(args: Sequence[str], root: Path, *, yes: bool, stdin: TextIO | None,
       stdout: TextIO) -> int:
    runs = {e.path.resolve(): e for e in entries(root)}
    chosen: dict[Path, Removal] = {}
    for arg in args:  # every argument checked before anything is touched
        r = removable(arg, root, runs)
        chosen.setdefault(r.real, r)
    stdout.write("will remove:\n" + "\n".join(describe(r) for r in chosen.values()) + "\n")
    if not yes and (stdin is None or not stdin.isatty()):
        n = len(chosen)
        raise RunsError(f"rm asks before removing and stdin is not a terminal; pass --yes to "
                        f"remove the {n} run{'s' if n != 1 else ''} listed above")
    had_lock = {real: lock_path(real, root).exists() for real in chosen}
    removed: list[Path] = []
    held = contextlib.ExitStack()
    try:
        try:
            for real in chosen:  # a run being trained is refused; none starts meanwhile
                held.enter_context(run_lock(real, root))
        except RunLockedError as exc:
            reason = str(exc).split(";")[0]
            raise RunsError(f"{reason}; nothing was removed: wait for it to finish, or leave "
                            "that run out") from None
        if not yes and not confirm(len(chosen), stdin, stdout):
            stdout.write("nothing removed\n")
            return 1
        for real, r in chosen.items():
            remove(r)
            removed.append(real)
            stdout.write(f"removed {r.given}\n")
        return 0
    finally:
        held.close()
        for real in chosen:  # a removed run's lock goes with it; the others stay as they were
            if real in removed or not had_lock[real]:
                discard_lock(real, root)


def confirm(n: int, stdin: TextIO, stdout: TextIO) -> bool:
    stdout.write(f"remove {n} run{'s' if n != 1 else ''}? [y/N] ")
    stdout.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


# ----------------------------------------------------------------------------- command


def parser() -> ArgumentParser:
    ap = ArgumentParser(prog=PROG, description="The run store from the shell: list its runs, "
                        "diff two runs' configs, remove runs safely.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{list,diff,rm}",
                            parser_class=ArgumentParser)
    runs_help = "the runs root (default: runs, as paths.runs)"
    run_help = "a run directory: its path, or its path below the runs root"
    p = sub.add_parser("list", help="every run with its status, row, seed, config and top-1")
    p.add_argument("--runs", default="runs", help=runs_help)
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help=f"keep runs whose {METRICS_FILE} key or dotted config key has VALUE "
                        "(repeatable: all must hold)")
    p.add_argument("--json", action="store_true", help="a JSON list of objects")
    p = sub.add_parser("diff", help="the config keys that differ between two runs")
    p.add_argument("runs_", nargs=2, metavar="RUN", help=run_help)
    p.add_argument("--runs", default="runs", help=runs_help)
    p.add_argument("--json", action="store_true", help="a JSON list of {key, a, b}")
    p = sub.add_parser("rm", help="remove runs below the runs root (asks first)")
    p.add_argument("runs_", nargs="+", metavar="RUN", help=run_help)
    p.add_argument("--runs", default="runs", help=runs_help)
    p.add_argument("--yes", action="store_true", help="do not ask before removing")
    return ap


def check_root(root: Path, *, required: bool) -> None:
    if root.exists() and not root.is_dir():
        raise RunsError(f"--runs {str(root)!r} is a file; name the runs folder (default: runs)")
    if required and not root.is_dir():
        raise RunsError(f"--runs {str(root)!r} does not exist; name the runs folder "
                        "(default: runs, as paths.runs)")


def main(argv: list[str] | None = None, *, stdin: TextIO | None = None,
         stdout: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if stdout is None else stdout
    root = Path(args.runs)
    try:
        check_root(root, required=args.command != "diff")
        if args.command == "list":
            rows = [list_row(e) for e in select(entries(root), parse_where(args.where))]
            text = json.dumps(rows, indent=1) if args.json else render_list(rows)
        elif args.command == "diff":
            (a, ca), (b, cb) = (config_of(x, root) for x in args.runs_)
            diff = config_diff(ca, cb)
            text = json.dumps(diff_json(diff), indent=1) if args.json else \
                render_diff(diff, a, b)
        else:
            return rm(args.runs_, root, yes=args.yes, stdin=stdin, stdout=out)
    except RunsError as exc:
        out.flush()
        print(f"lastexp.runs: error: {exc}", file=sys.stderr)
        return 2
    out.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
