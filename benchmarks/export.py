"""Sizes and speed of the static INT8 ONNX export for the LAST-Lite models (issue #17).

    python benchmarks/export.py [--models last_lite_nano last_lite_small] [--opset 13]

For each model at its real default widths (60 classes, random init: sizes do not depend on the
weights' values) it exports the fp32 ONNX file, quantizes it statically as
``python -m lastexp.export`` does (calibration on random batches here), and prints the fp32 and
INT8 file sizes, their ratio, the INT8 weight bytes per parameter, and the INT8 / fp32
onnxruntime latency measured in this run (same batch, same thread settings).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lastexp.export import (
    export_onnx,
    int8_weight_bytes,
    quantize_onnx_int8,
    save_lean,
)
from lastexp.models import build_model, count_params


def latencies(paths: list[Path], x: np.ndarray, repeats: int) -> list[float]:
    """Fastest seconds of one single-threaded onnxruntime run on ``x`` per file; the files take
    turns, so a busy machine slows them alike."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sessions = [ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
                for p in paths]
    best = [float("inf")] * len(paths)
    for _ in range(repeats):
        for i, sess in enumerate(sessions):
            t = time.perf_counter()
            sess.run(None, {"x": x})
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["last_lite_nano", "last_lite_small"])
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--calibration-batches", type=int, default=4)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            torch.manual_seed(0)
            model = build_model(name, num_classes=60).eval()
            params = count_params(model)
            shape = (args.batch, 3, args.frames, 25, 1)
            raw, fp32, int8 = (Path(tmp) / f"{name}{s}.onnx" for s in ("_raw", "", "_int8"))
            how = export_onnx(model, torch.randn(2, *shape[1:]), raw, opset=args.opset,
                              name=name)
            save_lean(raw, fp32)
            calib = [rng.standard_normal(shape, dtype=np.float32)
                     for _ in range(args.calibration_batches)]
            quantize_onnx_int8(raw, int8, calib)
            u8 = Path(tmp) / f"{name}_int8_u8.onnx"
            quantize_onnx_int8(raw, u8, calib, activations="uint8")
            x = rng.standard_normal(shape, dtype=np.float32)
            t32, t8, tu8 = latencies([fp32, int8, u8], x, args.repeats)
            b32, b8, wb = fp32.stat().st_size, int8.stat().st_size, int8_weight_bytes(int8)
            rows.append((name, params, how["onnx_opset"], b32, b8, b8 / b32, wb, wb / params,
                         t32 * 1e3, t8 / t32, tu8 / t32))
    head = ("model", "params", "opset", "fp32 B", "int8 B", "int8/fp32 B", "int8 weight B",
            "weight B/param", "fp32 ms", "int8/fp32 time", "uint8-act/fp32 time")
    print(" | ".join(head))
    for r in rows:
        print(f"{r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]:.3f} | {r[6]} | {r[7]:.3f} | "
              f"{r[8]:.1f} | {r[9]:.2f} | {r[10]:.2f}")
    print(f"(batch {args.batch}, T={args.frames}, onnxruntime CPU, 1 thread, fastest of "
          f"{args.repeats}; uint8-act: export.activations=uint8, same size)")


if __name__ == "__main__":
    main()
