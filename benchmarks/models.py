"""Training throughput per model and speed setting: ``python benchmarks/models.py``.

For every registered model (or ``--models ...``) it times one training step (forward, loss,
backward, SGD step; batch 16, T=64, M=1) in each setting the trainer offers, interleaved
round by round (A B C A B C ...: the machine is shared) and prints the median samples/s of
eager fp32 and, for every other setting, its ratio to eager fp32 on the same device:

- ``compile``: ``training.compile=true`` (torch.compile of the model, default mode);
- ``bf16``: ``training.amp=bf16`` (autocast, no loss scaling);
- ``fp16``: ``training.amp=fp16`` (autocast + GradScaler; GPU only);
- ``ch_last``: ``training.channels_last=true`` (GPU only; on CPU add ``--all``);
- ``cmp+bf16``: both (GPU only);
- ``cmp_philox``: compiled, dropout masks from Inductor's own generator instead of eager's
  (what the trainer's exact-RNG setting costs; ``--all`` or ``--philox``);
- ``sync``: eager fp32 plus the NaN guard's per-step host synchronisation (``bool(isfinite(loss))``,
  what ``lastexp.train.loop`` does every step): its ratio is what that sync costs.

CPU columns always; GPU columns whenever CUDA is present. Compilation warm-up is excluded from
the timing and printed (it is paid once per run).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from lastexp.models import available_models, build_model, count_params  # noqa: E402
from lastexp.train.fastpath import Precision, compiled, to_channels_last  # noqa: E402


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, amp: str = "off",
              sync: bool = False) -> Callable[[], None]:
    """One training step of ``model`` in the given precision; ``sync``: check the loss on
    the host each step, as the trainer's NaN guard does."""
    precision = Precision(amp)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = precision.scaler(x.device)
    autocast = (lambda: torch.autocast(x.device.type, dtype=precision.dtype)) \
        if precision.dtype is not None else contextlib.nullcontext

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = nn.functional.cross_entropy(model(x).float(), y)
        if sync and not bool(torch.isfinite(loss)):
            return
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    return step


def interleaved(steps: dict[str, Callable[[], None]], batch: int, device: torch.device,
                rounds: int, per_round: int, warmup: int) -> tuple[dict[str, float], dict]:
    """Median samples/s of each step function over ``rounds`` interleaved rounds, and the
    warm-up seconds of each (compilation happens there)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    warm = {}
    for name, step in steps.items():
        t0 = time.perf_counter()
        for _ in range(warmup):
            step()
        sync()
        warm[name] = time.perf_counter() - t0
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(per_round):
                step()
            sync()
            rates[name].append(per_round * batch / (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in rates.items()}, warm


def philox(step: Callable[[], None]) -> Callable[[], None]:
    """Run ``step`` with Inductor's own RNG (``fallback_random`` off while it compiles)."""
    import torch._inductor.config as inductor_config

    def run() -> None:
        inductor_config.fallback_random = False
        try:
            step()
        finally:
            inductor_config.fallback_random = True

    return run


def variants(name: str, device: torch.device, x: torch.Tensor, y: torch.Tensor,
             want: list[str]) -> dict[str, Callable[[], None]]:
    """Step functions per setting, each on its own copy of the same initial weights."""
    torch.manual_seed(0)
    base = build_model(name, num_classes=60).to(device).train()
    out: dict[str, Callable[[], None]] = {}
    for v in ["eager", *want]:
        m = copy.deepcopy(base)
        if v == "ch_last":
            to_channels_last(m)
        if v in ("compile", "cmp+bf16", "cmp_philox"):
            m = compiled(m)
        amp = {"bf16": "bf16", "cmp+bf16": "bf16", "fp16": "fp16"}.get(v, "off")
        step = make_step(m, x, y, amp=amp, sync=v == "sync")
        out[v] = philox(step) if v == "cmp_philox" else step
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps per round on CPU")
    parser.add_argument("--models", nargs="*", default=None, help="default: every model")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile columns")
    parser.add_argument("--all", action="store_true", help="every setting on CPU too")
    parser.add_argument("--philox", action="store_true",
                        help="also compile with Inductor's own dropout RNG")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU figures")
    args = parser.parse_args(argv)

    names = args.models or available_models()
    cpu_want = ["compile", "bf16", "sync"]
    gpu_want = ["compile", "bf16", "fp16", "ch_last", "cmp+bf16", "sync"]
    if args.all or args.philox:
        cpu_want = [*(gpu_want if args.all else cpu_want), "cmp_philox"]
        gpu_want = [*gpu_want, "cmp_philox"]
    if args.no_compile:
        cpu_want = [v for v in cpu_want if v not in ("compile", "cmp+bf16", "cmp_philox")]
        gpu_want = [v for v in gpu_want if v not in ("compile", "cmp+bf16", "cmp_philox")]
    devices = [] if args.no_cpu else [(torch.device("cpu"), cpu_want, args.steps)]
    if torch.cuda.is_available():
        devices.append((torch.device("cuda"), gpu_want, 10))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    for device, want, per_round in devices:
        cols = " ".join(f"{v:>9}" for v in want)
        print(f"\n{device.type.upper()}: samples/s eager fp32, the others as ratios to it "
              f"(median of {args.rounds} interleaved rounds)")
        print(f"{'model':<16} {'params':>10} {'eager s/s':>10} {cols}   warm-up s (compile)")
        for name in names:
            x = torch.randn(args.batch, 3, args.frames, 25, 1, device=device)
            y = torch.randint(0, 60, (args.batch,), device=device)
            steps = variants(name, device, x, y, want)
            rates, warm = interleaved(steps, args.batch, device, args.rounds, per_round,
                                      warmup=3 if device.type == "cuda" else 2)
            ratios = " ".join(f"{rates[v] / rates['eager']:>8.2f}x" for v in want)
            params = count_params(build_model(name, num_classes=60))
            print(f"{name:<16} {params:>10,} {rates['eager']:>10.1f} {ratios}   "
                  f"{warm.get('compile', 0.0):.0f}", flush=True)
    print(f"\n(batch {args.batch}, T={args.frames}, M=1, 60 classes)")


if __name__ == "__main__":
    main()
