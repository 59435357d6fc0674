"""Benchmark: the run store under concurrent commands (issue #18's three concurrency scenarios).

Every command is a real ``python -m lastexp`` process on tiny runs (``debug=tiny logger=none
model=last_e_nano``, the synthetic corpus generated once, as the tests' ``shared_data``):

A. readers while runs are written: two ``--multirun`` sweeps in parallel write ``--runs`` runs
   into one runs root while two reader processes read them over and over, one the raw files
   (every ``metrics.json`` and ``history.csv``), one through the results command's loader
   (``lastexp.results.load_store``). A partial read is a file that does not parse (truncated
   JSON, a CSV row of the wrong width) or a run the loader calls corrupt or unreadable.
B. two identical commands on one run directory, started at the same moment (``--pairs`` times):
   how many trained it, how many were refused by the run's lock, and what they printed.
C. two different runs started at the same moment into one runs root: both must complete.

The figures are printed at the end (and with ``--json FILE`` written as JSON). About 2-3 minutes
on 2 CPU cores with the defaults; ``--runs 120`` repeats the issue's store size.

    python benchmarks/concurrency.py [--runs 40] [--pairs 3] [--epochs 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lastexp.runstore.metrics import is_completed

REPO = Path(__file__).resolve().parents[1]
TINY = ["debug=tiny", "logger=none", "model=last_e_nano"]


def lastexp(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.Popen([sys.executable, "-m", "lastexp", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 3600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


# ----------------------------------------------------------------------------- readers


def raw_reader(runs: str, stop, counts) -> None:
    """Read every run's metrics.json and history.csv, again and again, until ``stop``."""
    reads = partial = 0
    while not stop.is_set():
        try:
            entries = [e for e in os.scandir(runs) if e.is_dir() and not e.name.startswith(".")]
        except FileNotFoundError:
            entries = []
        for entry in entries:
            for name in ("metrics.json", "history.csv"):
                path = os.path.join(entry.path, name)
                try:
                    with open(path, encoding="utf-8") as fh:
                        text = fh.read()
                except FileNotFoundError:  # not written yet
                    continue
                reads += 1
                if name == "metrics.json":
                    try:
                        ok = isinstance(json.loads(text), dict)
                    except ValueError:
                        ok = False
                else:
                    rows = list(csv.reader(io.StringIO(text)))
                    ok = bool(rows) and all(len(r) == len(rows[0]) for r in rows)
                partial += not ok
        time.sleep(0.002)
    counts.update(raw_reads=reads, raw_partial=partial)


def results_reader(runs: str, stop, counts) -> None:
    """What ``python -m lastexp.results`` reads, in a loop: every run through its loader."""
    sys.path.insert(0, str(REPO))
    from lastexp.results.store import load_store

    passes = reads = partial = other = 0
    while not stop.is_set():
        if os.path.isdir(runs):
            df, problems = load_store(runs, warn=False)
            passes += 1
            reads += len(df) + len(problems)
            for p in problems:
                bad = p.message.startswith(("corrupt or truncated", "unreadable"))
                partial += bad
                other += not bad
        time.sleep(0.01)
    counts.update(results_passes=passes, results_reads=reads, results_partial=partial,
                  results_other_problems=other)


# ----------------------------------------------------------------------------- scenarios


def scenario_readers(work: Path, data: Path, n_runs: int, epochs: int) -> dict:
    runs = work / "a_runs"
    half = n_runs // 2
    common = [*TINY, f"training.epochs={epochs}", f"paths.runs={runs}", f"paths.data={data}"]
    manager = mp.Manager()
    counts, stop = manager.dict(), mp.Event()
    readers = [mp.Process(target=raw_reader, args=(str(runs), stop, counts)),
               mp.Process(target=results_reader, args=(str(runs), stop, counts))]
    for r in readers:
        r.start()
    t0 = time.monotonic()
    sweeps = [lastexp(["--multirun", *common, f"seed=range(1,{half + 1})"], work),
              lastexp(["--multirun", *common, f"seed=range({half + 1},{n_runs + 1})"], work)]
    try:
        results = [finish(s) for s in sweeps]
    finally:  # a sweep that failed or timed out must not leave the readers running
        stop.set()
        for s in sweeps:
            if s.poll() is None:
                s.kill()
        for r in readers:
            r.join()
    seconds = time.monotonic() - t0
    metrics = [json.loads(p.read_text()) for p in runs.glob("*/metrics.json")]
    tmp_left = [str(p.relative_to(runs)) for p in runs.rglob("*.tmp")]
    records = sorted(p.parent.name for p in runs.glob(".sweeps/*/multirun.yaml"))
    return {
        "runs": n_runs, "epochs": epochs, "seconds": round(seconds, 1),
        "sweep_exit_codes": [rc for rc, _, _ in results],
        "sweep_errors": [err.strip().splitlines()[-1] for rc, _, err in results
                         if rc != 0 and err.strip()],
        "completed": sum(map(is_completed, metrics)),
        "tmp_files_left": tmp_left, "sweep_records": len(records), **dict(counts),
    }


def classify(rc: int, out: str, err: str) -> str:
    if rc == 0 and "lastexp: completed:" in out:
        return "trained"
    if rc == 0 and "already completed, skipping" in out:
        return "skipped"
    if rc == 2 and "being trained by another command" in err:
        return "refused (locked)"
    return f"other (rc {rc})"


def scenario_identical(work: Path, data: Path, pairs: int, epochs: int) -> dict:
    runs = work / "b_runs"
    outcomes, lines, history_rows = [], [], []
    for k in range(pairs):
        args = [*TINY, f"training.epochs={epochs + 1}", f"seed={100 + k}", f"paths.runs={runs}",
                f"paths.data={data}"]
        procs = [lastexp(args, work), lastexp(args, work)]  # the same command, twice at once
        done = [finish(p) for p in procs]
        outcomes.append(sorted(classify(*d) for d in done))
        for rc, _out, err in done:
            if rc != 0:
                lines.append(f"exit {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}")
        found = [p.parent / "history.csv" for p in runs.glob(f"*_s{100 + k}_*/metrics.json")]
        if len(found) != 1 or not found[0].is_file():  # neither trained it: report, go on
            history_rows.append(None)
            continue
        with open(found[0], newline="") as fh:
            history_rows.append(sum(1 for _ in csv.DictReader(fh)))
    trained_once = sum(o.count("trained") == 1 for o in outcomes)
    return {"pairs": pairs, "outcomes": outcomes, "pairs_trained_exactly_once": trained_once,
            "pairs_trained_twice": sum(o.count("trained") == 2 for o in outcomes),
            "messages": sorted(set(lines)), "history_rows": history_rows,
            "epochs": epochs + 1}


def scenario_different(work: Path, data: Path, epochs: int) -> dict:
    runs = work / "c_runs"
    procs = [lastexp([*TINY, f"training.epochs={epochs}", f"seed={s}", f"paths.runs={runs}",
                      f"paths.data={data}"], work) for s in (200, 201)]
    done = [finish(p) for p in procs]
    metrics = [json.loads(p.read_text()) for p in runs.glob("*/metrics.json")]
    return {"exit_codes": [d[0] for d in done], "outcomes": [classify(*d) for d in done],
            "completed": sum(map(is_completed, metrics))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=40, help="runs written in scenario A")
    ap.add_argument("--pairs", type=int, default=3, help="identical pairs in scenario B")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lastexp-concurrency-") as tmp:
        work, data = Path(tmp), Path(tmp) / "data"
        rc, _, err = finish(lastexp([*TINY, f"paths.runs={work / 'warm'}", f"paths.data={data}"],
                                    work))  # the corpus and its cache, once
        if rc != 0:
            print(err, file=sys.stderr)
            return 1
        figures = {"A_readers_while_written": scenario_readers(work, data, args.runs, args.epochs),
                   "B_identical_commands": scenario_identical(work, data, args.pairs,
                                                              args.epochs),
                   "C_different_runs": scenario_different(work, data, args.epochs)}
    figures["seconds"] = round(time.monotonic() - t0, 1)
    figures["cpus"] = os.cpu_count()
    a, b, c = (figures[k] for k in ("A_readers_while_written", "B_identical_commands",
                                    "C_different_runs"))
    print(json.dumps(figures, indent=2))
    print(f"A: {a['completed']}/{a['runs']} runs written by 2 parallel sweeps (exit "
          f"{a['sweep_exit_codes']}, {a['sweep_records']} sweep records) while read "
          f"{a['raw_reads'] + a['results_reads']} times ({a['raw_reads']} raw files, "
          f"{a['results_reads']} through the results loader in {a['results_passes']} passes): "
          f"{a['raw_partial'] + a['results_partial']} partial reads, "
          f"{len(a['tmp_files_left'])} temporaries left")
    print(f"B: {b['pairs']} pairs of identical commands: {b['pairs_trained_exactly_once']} "
          f"trained once, {b['pairs_trained_twice']} twice; outcomes {b['outcomes']}; "
          f"history rows {b['history_rows']} (epochs {b['epochs']}); {b['messages']}")
    print(f"C: 2 different runs at once: exit {c['exit_codes']}, {c['completed']} completed")
    print(f"total {figures['seconds']} s on {figures['cpus']} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    bad = (a["raw_partial"] + a["results_partial"] or a["completed"] != a["runs"]
           or b["pairs_trained_twice"] or c["completed"] != 2)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
