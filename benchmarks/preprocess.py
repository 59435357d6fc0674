"""Data ingestion benchmark.

    python benchmarks/preprocess.py [--files 140] [--rounds 5] [--skip-loader]

1. Raw-file parse throughput of ``lastexp.data.skeleton.parse_skeleton`` over a plain
   line-by-line Python parser that reads files the way CTR-GCN's get_raw_skes_data.py does
   (readlines; per joint line strip, split, np.array of x/y/z and of the colour pair),
   interleaved rounds, medians (target >= 5x). Both produce the same x, y, z.
2. Projected time to preprocess all 56,880 NTU-60 files (parse + the reference denoising, actor
   assignment, frame removal and translation of lastexp.data.denoise)
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
from lastexp.data.arrays import sequence_from_file  # noqa: E402
from lastexp.data.skeleton import parse_skeleton  # noqa: E402
from lastexp.data.synthetic import generate_corpus  # noqa: E402

NTU60_FILES = 56880


def baseline_parse(path: str) -> dict:
    """Plain line-by-line parser, read the way CTR-GCN's get_raw_skes_data.py reads a file:
    readlines, then per joint line strip/split and ``np.array(fields[:3], dtype=np.float32)``
    (plus the two colour fields, which it keeps too), bodies collected by ID."""
    with open(path) as fr:
        str_data = fr.readlines()
    num_frames = int(str_data[0].strip("\r\n"))
    bodies: dict[str, dict] = {}
    current_line = 1
    for f in range(num_frames):
        num_bodies = int(str_data[current_line].strip("\r\n"))
        current_line += 1
        for _ in range(num_bodies):
            body_id = str_data[current_line].strip("\r\n").split()[0]
            current_line += 1
            num_joints = int(str_data[current_line].strip("\r\n"))
            current_line += 1
            joints = np.zeros((num_joints, 3), dtype=np.float32)
            colors = np.zeros((num_joints, 2), dtype=np.float32)
            for j in range(num_joints):
                temp_str = str_data[current_line].strip("\r\n").split()
                joints[j, :] = np.array(temp_str[:3], dtype=np.float32)
                colors[j, :] = np.array(temp_str[5:7], dtype=np.float32)
                current_line += 1
            body = bodies.setdefault(body_id, {"frames": [], "joints": [], "colors": []})
            body["frames"].append(f)
            body["joints"].append(joints)
            body["colors"].append(colors)
    return {"num_frames": num_frames,
            "bodies": {k: (np.asarray(v["frames"]), np.stack(v["joints"]))
                       for k, v in bodies.items()}}


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
        for p in files:  # both read the same coordinates
            ref, got = baseline_parse(p), parse_skeleton(p)
            assert list(ref["bodies"]) == list(got["bodies"]), p
            for k, (frames, xyz) in ref["bodies"].items():
                assert np.array_equal(frames, got["bodies"][k][0]), p
                assert np.array_equal(xyz, got["bodies"][k][1]), p
        r = parse_throughput(files, args.rounds)
        print(f"parse: baseline line parser {r['baseline_ms']:.2f} ms/file, parse_skeleton "
              f"{r['parse_ms']:.2f} ms/file -> {r['speedup']:.1f}x (target >= 5x)")
        sp = pool_speedup(files, workers, max(3, args.rounds // 2)) if workers > 1 else 1.0
        proj = NTU60_FILES * r["full_ms"] / 1e3 / sp
        print(f"full per-file (parse + reference denoising + translation) {r['full_ms']:.2f} "
              f"ms; pool speed-up on {workers} cores {sp:.2f}x -> NTU-60 ({NTU60_FILES} files) "
              f"projected {proj / 60:.1f} min (target <= 5 min)")
        if not args.skip_loader:
            for row in loader_wait(Path(tmp) / "data"):
                print(f"loader num_workers={row['num_workers']}: wait {row['wait_ms']:.1f} ms, "
                      f"forward+backward {row['step_ms']:.0f} ms -> data wait "
                      f"{100 * row['wait_share']:.1f}% of step time (target <= 5%)")


if __name__ == "__main__":
    main()
