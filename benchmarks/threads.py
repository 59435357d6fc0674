"""Benchmark: one epoch of README command 1's demo at 1 and 2 torch threads, on idle cores and
with a competing process (a busy loop on one core), in one run.

Each measurement is a real ``python -m lastexp`` run of the demo sweep's first row (L0, LAST-Lite
nano at width 0.25, 32-frame clips, batch 32, the synthetic corpus) for one epoch, with
``training.num_threads=N``; the figure is the epoch's ``seconds`` in its ``history.csv``
(training and evaluation, without start-up). The competitor is a separate process spinning in
a Python loop, started before the run and stopped after it. Each configuration is measured
``--repeats`` times, in interleaved order, and the median is printed (the figures of every
repeat as well, since a shared machine is noisy).

    python benchmarks/threads.py [--threads 1 2] [--repeats 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the demo sweep's jobs (sweeps/demo.yaml), one epoch of its first row
DEMO = ["+ablation=L0", "seed=1", "logger=none", "model.width_mult=0.25",
        "preprocessing.window=32", "training.epochs=1", "training.batch_size=32",
        "scheduler.warmup_epochs=0"]


def spin(stop) -> None:
    """A competing process: one core kept busy until ``stop``."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def epoch_seconds(threads: int, work: Path, data: Path, tag: str) -> float:
    """One epoch of the demo at ``threads`` torch threads: its history.csv ``seconds``."""
    runs = work / f"runs-{tag}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    env.pop("OMP_NUM_THREADS", None)  # training.num_threads decides, as for a user
    proc = subprocess.run(
        [sys.executable, "-m", "lastexp", *DEMO, f"training.num_threads={threads}",
         f"paths.runs={runs}", f"paths.data={data}"],
        cwd=work, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"benchmarks/threads.py: the run failed:\n{proc.stderr[-2000:]}")
    (history,) = runs.glob("*/history.csv")
    with open(history) as fh:
        return float(list(csv.DictReader(fh))[-1]["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    times: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work, data = Path(tmp), Path(tmp) / "data"
        epoch_seconds(1, work, data, "warmup")  # writes the corpus and its cache once
        for r in range(args.repeats):
            for load in ("idle", "competing"):
                for n in args.threads:
                    stop = mp.Event()
                    rival = mp.Process(target=spin, args=(stop,)) if load == "competing" else None
                    if rival:
                        rival.start()
                        time.sleep(0.5)
                    try:
                        t = epoch_seconds(n, work, data, f"{load}-{n}-{r}")
                    finally:
                        if rival:
                            stop.set()
                            rival.join()
                    times.setdefault((load, n), []).append(t)
                    print(f"  {load:9s} {n} thread(s): {t:6.1f} s", flush=True)
    print(f"\ndemo epoch (L0, width 0.25, 32 frames, batch 32), {cpus} CPUs, "
          f"median of {args.repeats}:")
    print("| load | " + " | ".join(f"{n} thread(s)" for n in args.threads) + " |")
    print("|---|" + "---|" * len(args.threads))
    for load in ("idle", "competing"):
        cells = " | ".join(f"{statistics.median(times[(load, n)]):.1f} s" for n in args.threads)
        print(f"| {load} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(
            {f"{load}/{n}": v for (load, n), v in times.items()}, indent=1))


if __name__ == "__main__":
    main()
