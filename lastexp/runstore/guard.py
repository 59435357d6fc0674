"""What a command may change in a run directory: only what it wrote itself.

A command that skips a completed run, or is refused, leaves the directory byte-identical; one
that fails before training removes only what it added; one that fails while training keeps
what it trained and records why in metrics.json. ``.hydra/`` is written by the command that
trains the run (``hydra.output_subdir`` is null), never by one that skips it or is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lastexp.errors import ConfigError
from lastexp.io import atomic_write
from lastexp.runstore.key import run_dir_name
from lastexp.runstore.layout import (
    CHECKPOINT_DIR,
    EXPORT_DIR,
    HYDRA_DIR,
    HYDRA_LOG,
    INTERNAL_DIRS,
    LOCK_DIR,
    METRICS_FILE,
    NOT_RUNS,
    SEARCH_DIR,
    SWEEP_DIR,
    TRAINED,
    RunDir,
)
from lastexp.runstore.lock import lock_path, lock_problem
from lastexp.runstore.metrics import (
    foreign_kind,
    is_completed,
    is_failed,
    read_metrics,
    timestamp,
    write_metrics,
)


def stamp(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of a file, to tell whether a command rewrote it; None when absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def entries(run: RunDir) -> set[str]:
    return set(os.listdir(run.path)) if run.path.is_dir() else set()


def holds_a_run(before: set[str]) -> bool:
    """Whether a directory listing is of a run that existed before this command."""
    return bool(before & {"metrics.json", "checkpoints"})


def trained_here(run: RunDir, before: set[str]) -> bool:
    """Whether this command started training (wrote a file only training writes)."""
    return any(name not in before and (run.path / name).exists() for name in TRAINED)


def unchanged_since(run: RunDir, before: set[str], metrics_stamp: tuple | None) -> bool:
    """A command that skipped a completed run: its metrics.json and listing as they were."""
    return bool(metrics_stamp) and metrics_stamp == stamp(run.metrics) and \
        entries(run) <= before


def remove_own_log(run: RunDir, started_ns: int) -> None:
    """Hydra's log in the run directory when this process created it and left it empty."""
    with contextlib.suppress(OSError):
        st = run.hydra_log.stat()
        if st.st_size == 0 and st.st_mtime_ns >= started_ns:
            run.hydra_log.unlink()


def remove_added(run: RunDir, before: set[str]) -> None:
    """After a failed first attempt, remove what this command added (entries not in
    ``before``), and the directory itself when it held nothing but Hydra's log before;
    whatever was there before the command started stays."""
    try:
        added = set(os.listdir(run.path)) - before
    except OSError:
        return
    for name in sorted(added):
        path = run.path / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if before <= {HYDRA_LOG}:
        run.hydra_log.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run.path.rmdir()


def refuse_foreign_metrics(run: RunDir) -> None:
    """A metrics.json that is valid JSON but no object (a list, a number) is no run's: refuse
    to resume, skip or overwrite the directory rather than lose what it holds."""
    kind = foreign_kind(run.metrics)
    if kind is not None:
        raise ConfigError(f"{run.metrics} holds a JSON {kind}, not a run's metrics (an "
                          "object); move that file away, then run the command again")


def save_hydra_files(run: RunDir, cfg: DictConfig) -> None:
    """What Hydra's ``output_subdir`` would hold (``.hydra/config.yaml``, ``hydra.yaml``,
    ``overrides.yaml``), written atomically by the command that trains the run."""
    files = {"config.yaml": OmegaConf.to_yaml(cfg)}
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        files["hydra.yaml"] = OmegaConf.to_yaml(OmegaConf.create({"hydra": hc}))
        files["overrides.yaml"] = OmegaConf.to_yaml(hc.overrides.task)
    run.hydra.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        atomic_write(run.hydra / name, lambda f, t=text: f.write(t))


def mark_failed(run: RunDir, cfg: DictConfig, exc: BaseException) -> None:
    """metrics.json with status failed and the error, for a job that failed before training
    wrote its own (a missing raw_dir on the node, a teacher not found, ...)."""
    if foreign_kind(run.metrics) is not None:  # a foreign file: left as it is
        return
    prev = read_metrics(run.metrics)
    if isinstance(prev, str):  # absent or truncated
        prev = {}
    if is_failed(prev):
        return

    def sel(key: str) -> Any:
        try:
            return OmegaConf.select(cfg, key)
        except Exception:  # noqa: BLE001 -- an invalid config may not even resolve
            return None

    base = {"ablation": sel("ablation"), "model": sel("model.name"),
            "stream": sel("stream.name"), "dataset": sel("dataset.name"),
            "preprocessing": sel("preprocessing.name"), "seed": sel("seed"),
            "epochs": sel("training.epochs"), "best_top1": None, "final_top1": None}
    if os.environ.get("SLURM_JOB_ID"):
        base["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    run.path.mkdir(parents=True, exist_ok=True)
    write_metrics(run.metrics, {**base, **prev, "status": "failed",
                                "error": f"{exc.__class__.__name__}: {exc}",
                                "finished_at": timestamp()})
    if not run.hydra.exists():  # a run that failed before training: its config too (an
        save_hydra_files(run, cfg)  # existing run's .hydra/ is never rewritten)


# ------------------------------------------------------------- where a command may write


def _kind(path: Path) -> str | None:
    """"link", "file", "folder", "other" for what ``path`` names itself (never followed); None
    when nothing is there."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return "other"
    if stat.S_ISLNK(mode):
        return "link"
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def is_run(path: Path) -> bool:
    """A folder that holds a run (its metrics.json or checkpoints)."""
    return _kind(path / METRICS_FILE) is not None or _kind(path / CHECKPOINT_DIR) is not None


def holds_runs(path: Path) -> bool:
    """A runs root: a folder with ``.locks`` or a run directory directly below it."""
    if _kind(path) != "folder":
        return False
    if _kind(path / LOCK_DIR) is not None:
        return True
    try:
        return any(is_run(Path(e.path)) for e in os.scandir(path)
                   if e.is_dir(follow_symlinks=False))
    except OSError:
        return False


def runs_root_problem(runs_root: str | os.PathLike) -> str | None:
    """An empty ``paths.runs`` or the file system's root: no run store (they would put run
    directories at ``/``)."""
    if not str(runs_root).strip():
        return "paths.runs is empty; give the runs folder, e.g. paths.runs=runs"
    root = Path(runs_root).resolve()
    if root == Path(root.anchor):
        return (f"paths.runs={runs_root} is the root of the file system; give a folder of its "
                "own, e.g. paths.runs=runs")
    return None


def _writable(folder: Path) -> str | None:
    """Why nothing can be written in ``folder`` (read-only, immutable, not permitted), found by
    creating and removing a file there (``os.access`` says yes to root on an immutable one)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__


def run_dir_problem(run_dir: str | Path, runs_root: str | Path) -> str | None:
    """Why ``run_dir`` may not hold a run: it must lie strictly inside the runs root (so that
    no ``run_name=..``, ``run_name=.``, absolute path or ``hydra.run.dir=.`` can make a command
    write, resume or clean up outside it, or treat the root itself as a run)."""
    target, root = Path(run_dir).resolve(), Path(runs_root).resolve()
    if target == root or root not in target.parents:
        return (f"run directory {run_dir} is {'the runs root' if target == root else 'outside'} "
                f"paths.runs={runs_root}; give run_name a plain name (run_name=my_run) and "
                "leave hydra.run.dir / hydra.sweep.dir at their defaults")
    return None


def init_from_problem(cfg: DictConfig) -> str | None:
    """``init_from=`` must name a checkpoint file when the run will read it: when it starts from
    scratch (a run that resumes from its ``last.pt`` or is complete never reads it, so a source
    deleted since does not stop a resume). Checked before Hydra starts, so that a bad path costs no
    data load."""
    src = OmegaConf.select(cfg, "init_from")
    if not src or Path(str(src)).is_file():
        return None
    run = RunDir(Path(str(OmegaConf.select(cfg, "paths.runs"))) / run_dir_name(cfg))
    if run.last.exists() or is_completed(read_metrics(run.metrics)):
        return None
    what = "is a folder, not a file" if Path(str(src)).is_dir() else "does not exist"
    return (f"init_from={src} {what}; give the path of a checkpoint file, e.g. "
            f"init_from={RunDir(Path('runs', '<run>')).best.as_posix()}, or leave init_from out")


def run_dir_store_problem(run_dir: str | os.PathLike, runs_root: str | os.PathLike) -> str | None:
    """What keeps a command from training ``run_dir`` below ``runs_root`` without writing
    outside it, checked before anything is created: an empty or ``/`` runs root; a run
    directory in an internal folder (``.locks``, ``.sweeps``, ``search``, a hidden one) or
    inside another run; a run directory, ``metrics.json``, ``checkpoints/``, ``export/`` or
    ``.hydra/`` of the wrong type or a link; a lock of the wrong type; ``checkpoints/`` or the
    directory itself not writable. One line naming the path and the fix; None when fine."""
    problem = runs_root_problem(runs_root)
    if problem:
        return problem
    root = Path(runs_root)
    if root.exists() and not root.is_dir():
        return None  # the __main__ preflight's line (paths.runs is a file)
    run = RunDir(Path(run_dir))
    try:
        rel = run.path.resolve().relative_to(root.resolve())
    except ValueError:
        return None  # outside the runs root: :func:`run_dir_problem`'s line
    parent = root
    for i, part in enumerate(rel.parts):
        if part in INTERNAL_DIRS or part in NOT_RUNS or part.startswith("."):
            where = "is" if i == len(rel.parts) - 1 else "is inside"
            return (f"run directory {run.path} {where} {root / Path(*rel.parts[:i + 1])}, a "
                    "folder lastexp keeps for itself (results never read runs there); give "
                    "run_name a plain name (run_name=my_run)")
        if i and is_run(parent):
            return (f"run directory {run.path} is inside the run {parent}; give run_name a "
                    "plain name beside it (run_name=my_run)")
        parent = parent / part
    problem = lock_problem(lock_path(run.path, root))
    if problem:
        return problem
    kind = _kind(run.path)
    if kind is None:
        return None
    if kind != "folder":
        return (f"run directory {run.path} is {'a link' if kind == 'link' else 'not a folder'}; "
                "move it away or choose another run (run_name=, seed=)")
    for name, want in ((METRICS_FILE, "file"), (CHECKPOINT_DIR, "folder"),
                       (EXPORT_DIR, "folder"), (HYDRA_DIR, "folder")):
        got = _kind(run.path / name)
        if got not in (None, want):
            what = "a link" if got == "link" else f"not a {want}"
            return (f"{run.path / name} is {what}; a run keeps its own {want} there: move it "
                    "away, then run the command again")
    for folder in (run.path, run.checkpoints):
        why = _writable(folder) if folder.is_dir() else None
        if why:
            return (f"cannot write in {folder} ({why}); make it writable (chmod, chattr -i) or "
                    "choose another run (run_name=, seed=)")
    return None


def out_dir_problem(out: str | os.PathLike, flag: str, *,
                    runs_root: str | os.PathLike | None = None,
                    may_be_a_run: bool = False) -> str | None:
    """What keeps ``out`` (``--out`` of results or ensemble) from being a folder the command
    owns, checked before anything is created: empty, the file system's root, the runs root, a
    folder that holds runs, an existing run (unless ``may_be_a_run``: an ensemble rewriting
    its own directory), an internal folder (``.locks``, ``.sweeps``, a runs root's
    ``search``), a path inside a run, a link inside a run. One line; None when fine."""
    text = str(out)
    if not text.strip():
        return f"{flag} is empty; name a folder of its own, e.g. {flag} results"
    path = Path(out).resolve()
    if path == Path(path.anchor):
        return f"{flag} {text} is the root of the file system; name a folder of its own"
    for folder in path.parents:
        if _kind(folder) not in (None, "folder"):
            return f"{flag} {text}: {folder} is not a folder; name a folder for the output"
    if runs_root is not None and path == Path(runs_root).resolve():
        return f"{flag} {text} is the runs folder itself; name a folder of its own"
    if holds_runs(path):
        return (f"{flag} {text} holds run directories (a runs folder); name a folder of its "
                "own")
    if not may_be_a_run and is_run(path):
        return f"{flag} {text} is a run directory; name a folder of its own"
    for folder in (path, *path.parents):
        if folder.name in (LOCK_DIR, SWEEP_DIR) or (folder.name == SEARCH_DIR
                                                     and holds_runs(folder.parent)):
            return (f"{flag} {text} is inside {folder}, a folder lastexp keeps for itself; name "
                    "a folder of its own")
        if folder != path and is_run(folder):
            return f"{flag} {text} is inside the run {folder}; name a folder outside any run"
    return None
