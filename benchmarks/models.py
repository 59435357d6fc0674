"""Training throughput of every registered model: ``python benchmarks/models.py [--compile]``.

Prints samples/s for a forward+backward step (batch 16, T=64, M=1) on CPU in eager fp32, the
median of 3 timed rounds; with CUDA, also GPU eager fp32 and the speed-ups of AMP bf16,
channels_last (+ AMP) and, with ``--compile``, torch.compile (+ AMP), as ratios against the GPU
eager fp32 figure of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from lastexp.models import available_models, build_model, count_params  # noqa: E402


def samples_per_second(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    rounds: int = 3,
    steps: int = 3,
    warmup: int = 2,
) -> float:
    """Median over ``rounds`` of (steps * batch) / seconds for forward + backward + SGD step."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(warmup):
        step()
    sync()
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rates.append(steps * x.shape[0] / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile on GPU")
    parser.add_argument("--models", nargs="*", default=None, help="default: every model")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU figures")
    args = parser.parse_args(argv)

    names = args.models or available_models()
    x = torch.randn(args.batch, 3, args.frames, 25, 1)
    y = torch.randint(0, 60, (args.batch,))
    cuda = torch.cuda.is_available()
    header = f"{'model':<16} {'params':>10} {'CPU fp32 s/s':>13}"
    if cuda:
        header += f" {'GPU fp32 s/s':>13} {'bf16':>6} {'ch_last':>8} {'cl+bf16':>8}"
        header += f" {'compile':>8} {'cmp+bf16':>9}" if args.compile else ""
    print(header)
    for name in names:
        torch.manual_seed(0)
        model = build_model(name, num_classes=60)
        row = f"{name:<16} {count_params(model):>10,}"
        if args.no_cpu:
            row += f" {'-':>13}"
        else:  # one step per round on CPU: the big teachers take seconds per step
            row += f" {samples_per_second(model, x, y, steps=1, warmup=1):>13.1f}"
        if cuda:
            gx, gy = x.cuda(), y.cuda()

            def bf16() -> contextlib.AbstractContextManager:
                return torch.autocast("cuda", dtype=torch.bfloat16)

            gpu = model.cuda()
            base = samples_per_second(gpu, gx, gy)
            ratios = [samples_per_second(gpu, gx, gy, bf16)]
            gpu = gpu.to(memory_format=torch.channels_last)  # the 4-D convs inside
            ratios += [samples_per_second(gpu, gx, gy), samples_per_second(gpu, gx, gy, bf16)]
            if args.compile:
                compiled = torch.compile(model.cuda().to(memory_format=torch.contiguous_format))
                ratios += [
                    samples_per_second(compiled, gx, gy),
                    samples_per_second(compiled, gx, gy, bf16),
                ]
            row += f" {base:>13.1f} " + " ".join(f"{r / base:>7.2f}x" for r in ratios)
        print(row, flush=True)
    print(f"(batch {args.batch}, T={args.frames}, M=1, 60 classes; median of 3 rounds)")


if __name__ == "__main__":
    main()
