"""P0's loader before and after storing its 64 frames (issue 29).

    python benchmarks/loader.py [--samples-per-class 24] [--rounds 5] [--epochs 2]

Before: the cache keeps every frame (padded to the longest clip, 300 on NTU) and training draws
one frame per segment each epoch: today's ``preprocessing.temporal_jitter=true``. After: the
default P0 cache stores the 64 frames. Both from the same synthetic captures with NTU's
clip-length range (30-300 frames, so the longest clip is 300 as on NTU).

Reported, as after / before ratios within one run:
1. the cache's size on disk (the x arrays: what a run memory-maps);
2. loader throughput, samples/s of a DataLoader (batch 64, shuffled, num_workers 0) over the
   training split, interleaved rounds, medians;
3. memory of a fresh process that loads the data and runs one epoch: its RSS and the part of
   it that is the memory-mapped cache (the Rss of its mappings, /proc/self/smaps).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lastexp.config import DatasetConfig, PreprocessingConfig, SyntheticConfig  # noqa: E402
from lastexp.data import load_arrays, load_data  # noqa: E402

VARIANTS = {"before (every frame + jitter)": True, "after (64 frames stored)": False}


def configs(spc: int, jitter: bool) -> tuple[DatasetConfig, PreprocessingConfig]:
    ds = DatasetConfig(synthetic=SyntheticConfig(samples_per_class=spc, min_frames=30,
                                                 max_frames=300))
    return ds, PreprocessingConfig(temporal_jitter=jitter)


def cache_bytes(cache: str) -> int:
    return sum(p.stat().st_size for p in Path(cache).glob("*_x.npy"))


def epoch_rate(root: str, spc: int, jitter: bool, epochs: int,
               resident: bool = False) -> float | dict:
    """Samples per second of ``epochs`` shuffled epochs through a DataLoader (``resident``:
    this process's memory after them instead, :func:`resident_kb`, while the data is mapped)."""
    # deferred: torch (~1.6 s) only for the loader measurement
    from torch.utils.data import DataLoader

    ds, prep = configs(spc, jitter)
    bundle = load_data(ds, prep, root, seed=0)
    loader = DataLoader(bundle.train, batch_size=64, shuffle=True, num_workers=0)
    n = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        bundle.train.set_epoch(epoch)
        for x, _ in loader:
            n += len(x)
    rate = n / (time.perf_counter() - start)
    return resident_kb(str(Path(root) / "cache")) if resident else rate


def resident_kb(prefix: str) -> dict:
    """This process's RSS and the resident kB of its mappings of files below ``prefix``."""
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    mapped, current = 0, None
    for line in open("/proc/self/smaps"):
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
            current = head[5] if len(head) > 5 else ""
        elif head and head[0] == "Rss:" and current and current.startswith(prefix):
            mapped += int(head[1])
    return {"VmRSS": int(status["VmRSS"].split()[0]), "cache": mapped}


def memory_of_one_epoch(root: str, spc: int, jitter: bool) -> dict:
    """RSS and the cache's resident part (kB) of a fresh process after one epoch."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "import loader\n"
        f"print(json.dumps(loader.epoch_rate({root!r}, {spc}, {jitter}, 1, resident=True)))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples-per-class", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    spc = args.samples_per_class
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        info = {}
        for label, jitter in VARIANTS.items():
            ds, prep = configs(spc, jitter)
            train, test, summary = load_arrays(ds, prep, root)
            info[label] = {"shape": tuple(train.x.shape), "bytes": cache_bytes(summary["cache"]),
                           "frames": summary["frames"]}
        print(f"{spc * 14} synthetic captures, clip frames {info[label]['frames']}; caches "
              f"built in {time.perf_counter() - t0:.0f} s")
        rates: dict[str, list[float]] = {label: [] for label in VARIANTS}
        for _ in range(args.rounds):  # interleaved: the machine may be shared
            for label, jitter in VARIANTS.items():
                rates[label].append(epoch_rate(root, spc, jitter, args.epochs))
        mem = {label: memory_of_one_epoch(root, spc, jitter)
               for label, jitter in VARIANTS.items()}
        for label in VARIANTS:
            m = mem[label]
            print(f"{label}: train x {info[label]['shape']}, cache x "
                  f"{info[label]['bytes'] / 1e6:.1f} MB, "
                  f"{statistics.median(rates[label]):.0f} samples/s, RSS after one epoch "
                  f"{m['VmRSS'] / 1e3:.0f} MB (of it the mapped cache {m['cache'] / 1e3:.1f} MB)")
        before, after = VARIANTS
        print(f"after / before: cache bytes {info[after]['bytes'] / info[before]['bytes']:.3f}, "
              f"samples/s {statistics.median(rates[after]) / statistics.median(rates[before]):.2f}"
              f"x, RSS {mem[after]['VmRSS'] / mem[before]['VmRSS']:.3f}, resident cache "
              f"{mem[after]['cache'] / max(mem[before]['cache'], 1):.3f}")
        print("(On NTU-60 xsub, 40,091 training clips with both bodies as P3 stores them: "
              f"{40091 * 3 * 300 * 25 * 2 * 4 / 1e9:.1f} GB before, "
              f"{40091 * 3 * 64 * 25 * 2 * 4 / 1e9:.2f} GB after.)")


if __name__ == "__main__":
    main()
