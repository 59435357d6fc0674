"""Benchmark: aggregate a 10,000-run store the way ``python -m lastexp.results`` does.

Builds a temporary store (random plausible metrics over every ablation ID, 3 seeds, five
datasets, a few failed/running/corrupt runs and duplicate seeds; each run with a saved Hydra
config and overrides, and a ``test_scores.npz`` with per-sample predictions ``pred_best`` /
``pred_final`` of ``--n-test`` samples), then, per pass:

1. the tables: load + tables + write in-process, figures off (``--plots``: on), the baseline;
2. the whole default command, ``python -m lastexp.results --runs <store> --out <dir>`` in a
   fresh process: imports, tables and every PNG (per-class, confusion, Δ, curves).

Medians of ``--repeat`` passes, each against the 10 s target, and the command's time as a
ratio of the tables' time measured in the same run (a figure that other processes on the
machine slow down alike). ``--no-cli`` times the tables only.

    python benchmarks/results.py [--runs 10000] [--repeat 3] [--n-test 1000] [--plots] [--no-cli]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lastexp import catalog
from lastexp.results import load_store, write_tables

TARGET_S = 10.0
# A job's saved config, as Hydra writes it (.hydra/config.yaml), abridged to its shape.
CONFIG = """seed: {seed}
ablation: {ablation}
model:
  name: {model}
  dropout: 0.15
  width_mult: 1.0
stream:
  name: {stream}
dataset:
  name: {dataset}
  num_classes: 60
optimizer:
  name: sgd
  lr: 0.1
  weight_decay: 0.0004
  momentum: 0.9
  nesterov: true
scheduler:
  name: cosine
  warmup_epochs: 5
training:
  epochs: 80
  batch_size: 64
  num_workers: 8
  device: cuda
  label_smoothing: 0.1
preprocessing:
  name: t64_uniform
  frames: 64
paths:
  runs: runs
  data: data
"""
DATASETS = ["synthetic", "ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset"]
STREAMS = ["joint", "bone", "velocity", "bone_velocity"]


def build_store(root: Path, n_runs: int, seed: int = 0, n_test: int = 1000) -> None:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    labels = (np.arange(n_test) % 60).astype(np.int16)
    names = np.array([f"S{i:05d}" for i in range(n_test)])
    ablation_ids = list(catalog.ABLATIONS) + [None, "X1"]
    for i in range(n_runs):
        ab = rng.choice(ablation_ids)
        model = {"B": "last_base", "L": rng.choice(["last_lite_nano", "last_lite_small"]),
                 "P": "last_e_base"}.get((ab or "-")[0], "last_e_small")  # fmt: skip
        status = rng.choices(["completed", "failed", "running", "interrupted"], [94, 3, 2, 1])[0]
        best = round(rng.gauss(85.0, 3.0), 2) if status == "completed" else None
        run = root / "multirun" / f"2025-01-{1 + i % 28:02d}" / f"{i // 28:03d}" / str(i % 28)
        (run / ".hydra").mkdir(parents=True)
        stream = rng.choice(STREAMS) if rng.random() < 0.2 else "joint"
        dataset, run_seed = rng.choice(DATASETS), rng.randrange(3)
        (run / ".hydra" / "config.yaml").write_text(CONFIG.format(
            seed=run_seed, ablation=ab, model=model, stream=stream, dataset=dataset))
        (run / ".hydra" / "overrides.yaml").write_text(
            f"- +ablation={ab}\n- dataset={dataset}\n- seed={run_seed}\n")
        if status == "completed":
            right = nrng.random(n_test) < 0.85
            preds = {k: np.where(right, labels, (labels + 1) % 60).astype(np.int16)
                     for k in ("pred_best", "pred_final")}
            np.savez(run / "test_scores.npz", labels=labels, names=names, **preds)
        metrics = {
            "status": status, "ablation": ab, "model": model,
            "stream": stream, "dataset": dataset, "preprocessing": "t64_uniform",
            "seed": run_seed, "epochs": 80, "best_top1": best,
            "best_epoch": rng.randrange(80), "final_top1": best, "params": rng.randrange(10**7),
            "flops": rng.random() * 1e10, "train_seconds": rng.random() * 36000,
            "device": "cuda", "n_train": 40091, "n_test": 16487,
            "error": "RuntimeError: CUDA out of memory" if status == "failed" else None,
            "int8_bytes": rng.randrange(10**5) if rng.random() < 0.1 else None,
            "started_at": f"2025-01-{1 + i % 28:02d}T08:00:00",
            "finished_at": f"2025-01-{1 + i % 28:02d}T{8 + i % 12:02d}:{i % 60:02d}:00",
        }  # fmt: skip
        text = json.dumps(metrics)
        (run / "metrics.json").write_text(text[: len(text) // 2] if i % 2000 == 7 else text)
        (run / "history.csv").write_text(
            "epoch,lr,train_loss,train_top1,val_loss,val_top1,seconds\n0,0.1,2,40,2,38,1\n"
        )
    (root / "multirun" / "multirun.yaml").write_text("hydra: {}\n")


def aggregate(runs: Path, out: Path, plots: bool = False) -> int:
    df, problems = load_store(runs, warn=False)
    write_tables(df, out, problems, plots=plots)
    return len(df)


def command(runs: Path, out: Path) -> float:
    """Seconds of the whole default ``python -m lastexp.results`` on ``runs`` (a new process)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lastexp.results", "--runs", str(runs), "--out",
                    str(out), "--quiet"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n-test", type=int, default=1000, help="test samples per run")
    parser.add_argument("--plots", action="store_true",
                        help="draw the PNG figures in the in-process passes too")
    parser.add_argument("--no-cli", action="store_true",
                        help="skip timing the whole python -m lastexp.results command")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        t0 = time.perf_counter()
        build_store(root, args.runs, n_test=args.n_test)
        print(f"built a store of {args.runs} run dirs in {time.perf_counter() - t0:.1f} s")
        tables, whole = [], []
        for k in range(args.repeat):
            t0 = time.perf_counter()
            n = aggregate(root, Path(tmp) / f"out{k}", args.plots)
            tables.append(time.perf_counter() - t0)
            line = f"  pass {k + 1}: tables {tables[-1]:.2f} s ({n} runs loaded)"
            if not args.no_cli:
                whole.append(command(root, Path(tmp) / f"cli{k}"))
                pngs = len(list((Path(tmp) / f"cli{k}").glob("*.png")))
                line += f"; python -m lastexp.results {whole[-1]:.2f} s ({pngs} PNGs)"
            print(line)
        median = statistics.median(tables)
        print(f"results aggregation{' with figures' if args.plots else ''}, {args.runs} runs, "
              f"median of {args.repeat}: {median:.2f} s ({median / TARGET_S:.2f}x the "
              f"{TARGET_S:g} s target)")  # fmt: skip
        if whole:
            cli = statistics.median(whole)
            print(f"python -m lastexp.results (imports, tables, figures), median of "
                  f"{args.repeat}: {cli:.2f} s ({cli / TARGET_S:.2f}x the {TARGET_S:g} s "
                  f"target; {cli / median:.2f}x the tables in this run)")  # fmt: skip


if __name__ == "__main__":
    main()
