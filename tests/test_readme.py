"""The README is executable (marker ``readme``, a few minutes; CI runs it apart).

Every command of the README's ``bash`` blocks is run as written, one after the other, in one
scratch working directory (so the default ``runs/``, ``data/`` and ``results/`` are scratch
folders): a command that trains gets ``debug=tiny`` appended, after the command exactly as
written has passed the checks ``python -m lastexp`` makes before any work (so an impossible
value in the README, such as a warmup longer than the run, fails here although ``debug=tiny``
would hide it). Optional parts in brackets (``[hydra.sweeper.n_trials=12]``) are left out. The
commands that cannot run here are skipped for the reason :func:`skip_reason` gives (real NTU data,
a SLURM cluster, installing into the environment under test, the test suite itself, a sweep of
dozens of trainings whose every job is composed and checked with ``lastexp.plan`` instead).
Then every place the README says a file lands is checked.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lastexp.__main__ import command_problem
from lastexp.aliases import normalize_overrides
from tests.conftest import REPO

pytestmark = pytest.mark.readme

README = REPO / "README.md"
LONG_SWEEPS = 20  # more trainings than this: composed and checked job by job, not trained


def bash_commands(text: str) -> list[list[str]]:
    """Each command of the README's ``bash`` blocks as argv: continuation lines joined,
    comments dropped, ``a && b`` split into two commands."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            command: list[str] = []
            for token in [*tokens, "&&"]:
                if token == "&&":
                    if command:
                        commands.append(command)
                    command = []
                elif not (token.startswith("[") and token.endswith("]") and "=" in token
                          and not token.startswith("[-")):
                    command.append(token)
    return commands


def skip_reason(argv: list[str]) -> str | None:
    """Why a README command is not run here, or None."""
    line = " ".join(argv)
    if "pip" in argv and "install" in argv:
        return "installs into the environment under test (tests/test_install.py installs the " \
               "wheel into a fresh venv)"
    if "pytest" in argv:
        return "the test suite itself (.ci/run runs it)"
    if argv[:4] == ["python", "-m", "lastexp.runs", "rm"] and "--yes" not in argv:
        return "asks on a terminal before it removes anything (the test has none)"
    if "hydra/launcher=submitit_slurm" in line:
        return "needs a SLURM cluster (tests/launch/test_sweep_slurm.py, marker slurm)"
    if re.search(r"dataset=ntu|raw_dir=|dataset\.npz=", line):
        return "needs the real NTU RGB+D data"
    return None


def trains(argv: list[str]) -> bool:
    """``python -m lastexp ...`` or ``lastexp ...`` that runs jobs (not --help / --cfg)."""
    module = argv[2] if argv[:2] == ["python", "-m"] and len(argv) > 2 else None
    is_app = module == "lastexp" or argv[0] == "lastexp"
    return is_app and not any(a in ("--help", "-h", "--cfg", "-c", "--info") for a in argv)


def overrides_of(argv: list[str]) -> list[str]:
    return argv[3:] if argv[:2] == ["python", "-m"] else argv[1:]


def jobs_in(overrides: list[str], cwd: Path, env: dict[str, str]) -> int:
    """How many jobs a command starts (``lastexp.plan`` lists them)."""
    args = [o for o in overrides if o not in ("--multirun", "-m")]
    proc = subprocess.run([sys.executable, "-m", "lastexp.plan", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"jobs: .*?\(of (\d+)\)", proc.stdout)
    assert match, proc.stdout
    return int(match.group(1))


def results_flags(env: dict[str, str]) -> list[str]:
    """The results command counts debug runs only when asked, where it has that option."""
    proc = subprocess.run([sys.executable, "-m", "lastexp.results", "--help"], env=env,
                          capture_output=True, text=True, timeout=120)
    return ["--include-debug"] if "--include-debug" in proc.stdout else []


def expand(argv: list[str], cwd: Path) -> list[str]:
    """The words bash would pass: a pattern with ``*`` becomes its sorted matches (or stays as
    written when nothing matches, as bash leaves it)."""
    out = []
    for word in argv:
        found = sorted(str(p.relative_to(cwd)) for p in cwd.glob(word)) if "*" in word else []
        out.extend(found or [word])
    return out


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = expand(argv, cwd)
    cmd = [sys.executable, *argv[1:]] if argv[0] == "python" else [
        sys.executable, "-m", "lastexp", *argv[1:]]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_every_readme_command_runs_and_files_land_where_it_says(tmp_path, monkeypatch):
    commands = bash_commands(README.read_text())
    assert len(commands) >= 10, commands
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline",
           "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    monkeypatch.chdir(tmp_path)  # the checks below resolve runs/ as the commands do
    ran, skipped = [], []
    for argv in commands:
        line = " ".join(argv)
        reason = skip_reason(argv)
        if reason:
            skipped.append((line, reason))
            continue
        if trains(argv):
            overrides = overrides_of(argv)
            problem = command_problem(normalize_overrides(overrides))  # as written
            assert problem is None, f"README: {line}: {problem}"
            searched = any(a.startswith("+search=") for a in argv)  # n_trials: the preset's
            if "--multirun" in argv and not searched and \
                    jobs_in(overrides, tmp_path, env) > LONG_SWEEPS:
                skipped.append((line, "a sweep of dozens of trainings: every job composed and "
                                      "checked by lastexp.plan above; tests/test_sweeps_tiny.py "
                                      "trains each row"))
                continue
            if not any(a.startswith("debug=") for a in argv):
                argv = [*argv, "debug=tiny"]
        elif argv[:3] == ["python", "-m", "lastexp.results"]:
            argv = [*argv, *results_flags(env)]
        run(argv, tmp_path, env)
        ran.append(line)
    print("\nran:\n  " + "\n  ".join(ran))
    print("skipped:\n  " + "\n  ".join(f"{c}  ({r})" for c, r in skipped))
    assert any("+sweep=demo" in c for c in ran) and any("lastexp.results" in c for c in ran)
    assert not any("lastexp " in c and "logger=none" in c and "training.epochs=3" in c
                   for c, _ in skipped)
    check_where_files_land(tmp_path)


def check_where_files_land(work: Path) -> None:
    runs, data, results = work / "runs", work / "data", work / "results"
    # command 1: the synthetic corpus once into data/, the demo's runs into runs/, tables into
    # results/ (lite.md with lite_delta.png and lite_curves.png beside it)
    assert any(data.rglob("*.skeleton")), "no synthetic corpus in data/"
    demo = sorted(p.name.split("_")[0] + "_" + p.name.split("_")[3] for p in runs.glob("L[05]_*"))
    assert {"L0_s1", "L0_s2", "L5_s1", "L5_s2"} <= set(demo), demo
    for name in ("lite.md", "lite_delta.png", "lite_curves.png"):
        assert (results / name).is_file(), name
    # lastexp.results writes base, lite, preprocessing and paper as .md, .csv and .tex
    for table in ("base", "lite", "preprocessing", "paper"):
        for ext in ("md", "csv"):
            assert (results / f"{table}.{ext}").is_file(), f"{table}.{ext}"
    assert any(results.glob("*.tex"))
    # a run's directory: runs/<ablation|model>_<stream>_<dataset>_s<seed>_<hash> holding
    # .hydra/, metrics.json, history.csv, test_scores.npz, checkpoints/{last,best}.pt, lastexp.log
    (run,) = runs.glob("last_e_small_bone_synthetic_s2_*")
    assert re.fullmatch(r"last_e_small_bone_synthetic_s2_[0-9a-f]{8}", run.name)
    for rel in (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml",
                "metrics.json", "history.csv", "test_scores.npz", "checkpoints/last.pt",
                "checkpoints/best.pt", "lastexp.log"):
        assert (run / rel).is_file(), rel
    assert "epoch" in (run / "lastexp.log").read_text()
    # W&B (the default logger) runs offline into the run directory
    assert any(any(p.rglob("offline-run-*"))
               for p in runs.glob("last_e_base_joint_synthetic_s1_*")), "no W&B run in a run dir"
    # each --multirun keeps its own record below the runs root, <paths.runs>/.sweeps/<time>/:
    # Hydra's multirun.yaml, or the Optuna sweeper's optimization_results.yaml
    records = list((runs / ".sweeps").iterdir())
    assert all((r / "multirun.yaml").is_file() or (r / "optimization_results.yaml").is_file()
               for r in records), [sorted(p.name for p in r.iterdir()) for r in records]
    assert sum((r / "multirun.yaml").is_file() for r in records) >= 3  # demo, the 2 stream ones
    # the three +search= commands that run here (a val_fraction search twice, one on the test split)
    assert sum((r / "optimization_results.yaml").is_file() for r in records) == 3
    assert not (runs / "optimization_results.yaml").exists()
    # the study: <paths.runs>/search/lr_dropout_<model>_<stream>_<dataset>_s<seed>_<hash>.db
    # (two: the validation-split searches share one study, the search on the test split has its
    # own, with its protocol beside it)
    studies = sorted((runs / "search").glob("*.db"))
    assert len(studies) == 2, studies
    for study in studies:
        assert re.fullmatch(r"lr_dropout_last_e_base_joint_synthetic_s1_[0-9a-f]{8}\.db",
                            study.name), study.name
        assert study.with_suffix(".json").is_file(), study
    # nothing lands in Hydra's default outputs/ or multirun/ folders
    assert not (work / "outputs").exists() and not (work / "multirun").exists()


def test_skip_reasons_are_listed_for_every_skipped_command():
    """The commands left out are only those needing NTU data, a cluster, an install or the
    test suite; everything else runs."""
    commands = bash_commands(README.read_text())
    reasons = {skip_reason(c) for c in commands} - {None}
    assert reasons <= {
        "installs into the environment under test (tests/test_install.py installs the wheel "
        "into a fresh venv)", "the test suite itself (.ci/run runs it)",
        "needs a SLURM cluster (tests/launch/test_sweep_slurm.py, marker slurm)",
        "needs the real NTU RGB+D data",
        "asks on a terminal before it removes anything (the test has none)"}
    assert ["python", "-m", "lastexp", "training.epochs=3", "scheduler.warmup_epochs=1",
            "logger=none"] in commands
    assert all(skip_reason(c) is None for c in commands if "+sweep=demo" in c)
