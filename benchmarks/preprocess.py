"""Data ingestion benchmark.

    python benchmarks/preprocess.py [--files 140] [--rounds 5] [--skip-loader]

1. Raw-file parse throughput of ``lastexp.data.skeleton.parse_skeleton`` over a plain
   line-by-line Python parser (CTR-GCN get_raw_skes_data.py style: readline, split, float per
   field), interleaved rounds, medians (target >= 5x).
2. Projected time to preprocess all 56,880 NTU-60 files (parse + actor selection + centring)
   on this machine's cores, from the serial per-file time and the measured pool speed-up
   (target <= 5 min). Synthetic files with NTU-like lengths (60-120 frames, 1-2 bodies).
3. Share of step time spent waiting for data when training last_e_base at batch 64 on CPU
   (``next(iter)`` vs forward+backward), num_workers 0 and 2 (target <= 5%).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lastexp.config import PreprocessingConfig, SyntheticConfig  # noqa: E402
from lastexp.data.preprocess import sequence_from_file  # noqa: E402
from lastexp.data.skeleton import parse_skeleton  # noqa: E402
from lastexp.data.synthetic import generate_corpus  # noqa: E402

NTU60_FILES = 56880


def baseline_parse(path: str) -> dict:
    """Plain line-by-line parser: readline per line, split, float per field."""
    bodies: dict[str, tuple[list, list]] = {}
    with open(path) as fh:
        num_frames = int(fh.readline())
        for f in range(num_frames):
            for _ in range(int(fh.readline())):
                body_id = fh.readline().split()[0]
                joints = []
                for _ in range(int(fh.readline())):
                    joints.append([float(v) for v in fh.readline().split()])
                frames, xyz = bodies.setdefault(body_id, ([], []))
                frames.append(f)
                xyz.append(joints)
    return {"num_frames": num_frames,
            "bodies": {k: (np.asarray(f), np.asarray(x, dtype=np.float32)[:, :, :3])
                       for k, (f, x) in bodies.items()}}


def _timed(fn, files) -> float:
    start = time.perf_counter()
    for p in files:
        fn(p)
    return (time.perf_counter() - start) / len(files)


def _full(path: str):
    return sequence_from_file(path, 1, 300)


def parse_throughput(files: list[str], rounds: int) -> dict:
    base, ours, full = [], [], []
    for _ in range(rounds):  # interleaved: the machine may be shared
        base.append(_timed(baseline_parse, files))
        ours.append(_timed(parse_skeleton, files))
        full.append(_timed(_full, files))
    b, o, f = (statistics.median(v) for v in (base, ours, full))
    return {"baseline_ms": b * 1e3, "parse_ms": o * 1e3, "speedup": b / o, "full_ms": f * 1e3}


def pool_speedup(files: list[str], workers: int, rounds: int) -> float:
    jobs = files * 2
    serial, pooled = [], []
    with mp.get_context("fork").Pool(workers) as pool:
        pool.map(_full, files[:workers])  # warm up
        for _ in range(rounds):
            serial.append(_timed(_full, jobs))
            start = time.perf_counter()
            pool.map(_full, jobs, chunksize=8)
            pooled.append((time.perf_counter() - start) / len(jobs))
    return statistics.median(serial) / statistics.median(pooled)


def loader_wait(root: Path, steps: int = 5) -> list[dict]:
    import torch
    from torch.utils.data import DataLoader

    from lastexp.config import DatasetConfig
    from lastexp.data import load_data
    from lastexp.models import build_model

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ds = DatasetConfig(synthetic=SyntheticConfig(samples_per_class=40, min_frames=60,
                                                 max_frames=120))
    bundle = load_data(ds, PreprocessingConfig(), str(root), seed=0)
    model = build_model("last_e_base", num_classes=bundle.num_classes, num_person=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    out = []
    for workers in (0, 2):
        loader = DataLoader(bundle.train, batch_size=64, shuffle=True, num_workers=workers,
                            drop_last=True, persistent_workers=workers > 0)
        waits, comps = [], []
        it = iter(loader)
        for step in range(steps):
            t0 = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                it = iter(loader)
                x, y = next(it)
            t1 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            t2 = time.perf_counter()
            if step >= 2:  # skip worker start-up
                waits.append(t1 - t0)
                comps.append(t2 - t1)
        w, c = sum(waits), sum(comps)
        out.append({"num_workers": workers, "wait_ms": 1e3 * w / len(waits),
                    "step_ms": 1e3 * c / len(comps), "wait_share": w / (w + c)})
        del it, loader
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=140)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-loader", action="store_true")
    args = ap.parse_args()
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        spc = max(1, args.files // 14)
        paths = generate_corpus(Path(tmp) / "raw", SyntheticConfig(
            samples_per_class=spc, min_frames=60, max_frames=120))
        files = [str(p) for p in paths]
        frames = [parse_skeleton(p)["num_frames"] for p in files]
        nbody = [len(parse_skeleton(p)["bodies"]) for p in files]
        print(f"{len(files)} synthetic files, frames mean {np.mean(frames):.0f} "
              f"(min {min(frames)}, max {max(frames)}), bodies mean {np.mean(nbody):.2f}, "
              f"size mean {np.mean([os.path.getsize(p) for p in files]) / 1e3:.0f} kB")
        r = parse_throughput(files, args.rounds)
        print(f"parse: baseline line parser {r['baseline_ms']:.2f} ms/file, parse_skeleton "
              f"{r['parse_ms']:.2f} ms/file -> {r['speedup']:.1f}x (target >= 5x)")
        sp = pool_speedup(files, workers, max(3, args.rounds // 2)) if workers > 1 else 1.0
        proj = NTU60_FILES * r["full_ms"] / 1e3 / sp
        print(f"full per-file (parse + actors + centre) {r['full_ms']:.2f} ms; pool speed-up on "
              f"{workers} cores {sp:.2f}x -> NTU-60 ({NTU60_FILES} files) projected "
              f"{proj / 60:.1f} min (target <= 5 min)")
        if not args.skip_loader:
            for row in loader_wait(Path(tmp) / "data"):
                print(f"loader num_workers={row['num_workers']}: wait {row['wait_ms']:.1f} ms, "
                      f"forward+backward {row['step_ms']:.0f} ms -> data wait "
                      f"{100 * row['wait_share']:.1f}% of step time (target <= 5%)")


if __name__ == "__main__":
    main()
