"""Per-step cost of lastexp's training loop over a bare PyTorch loop (BENCHMARKS.md).

Same model, same in-memory batches, same thread count; the two loops run interleaved
(A B A B ...) and the figures are medians over rounds, so machine noise hits both alike.
lastexp's loop runs as users get it: NaN guard, metrics on the device and the progress bar on.

  python benchmarks/trainer_overhead.py [--rounds 5] [--steps 200] [--real-steps 4]

Prints, last: the probe model's added ms/step (target <= +0.15 ms), the realistic model's
ratio (target <= 1.02; issue target <= 1.05), and the wall time of
``python -m lastexp --cfg job`` (target <= 1.0 s).
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lastexp.train.loop import NanGuard, StepContext, train_one_epoch  # noqa: E402


def probe_model() -> nn.Module:
    """BENCHMARKS.md's probe: one Linear 4800 -> 60 over (3, 64, 25) inputs."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 25, 60))


def real_model() -> nn.Module:
    from lastexp.models import build_model

    return build_model("last_e_base", num_classes=60, num_person=1)


def make_batches(n: int, shape: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(32, *shape, generator=g), torch.randint(0, 60, (32,), generator=g))
            for _ in range(n)]


def bare_loop(model: nn.Module, batches, opt) -> None:
    model.train()
    for x, y in batches:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def lastexp_loop(model: nn.Module, batches, opt, sink) -> None:
    def loss_fn(m, x, y):
        logits = m(x)
        return nn.functional.cross_entropy(logits, y), logits

    ctx = StepContext(optimizer=opt, loss_fn=loss_fn, transform=lambda x: x,
                      device=torch.device("cpu"), guard=NanGuard(), progress=sink)
    train_one_epoch(model, batches, ctx)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(make, shape, steps: int, rounds: int) -> tuple[list[float], list[float]]:
    batches = make_batches(steps, shape)
    torch.manual_seed(0)
    m_a, m_b = make(), make()
    opt_a = torch.optim.SGD(m_a.parameters(), lr=0.01, momentum=0.9)
    opt_b = torch.optim.SGD(m_b.parameters(), lr=0.01, momentum=0.9)
    sink = io.StringIO()  # the bar is drawn (to a buffer) exactly as on a terminal
    bare_loop(m_a, batches[:2], opt_a)  # warm up both
    lastexp_loop(m_b, batches[:2], opt_b, sink)
    bare, ours = [], []
    for _ in range(rounds):
        bare.append(timed(lambda: bare_loop(m_a, batches, opt_a)) / steps)
        ours.append(timed(lambda: lastexp_loop(m_b, batches, opt_b, sink)) / steps)
    return bare, ours


def cfg_job_seconds(rounds: int = 3) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lastexp", "--cfg", "job"], cwd=REPO,
                       capture_output=True, check=True)
        out.append(time.perf_counter() - t0)
    return out


def spread(xs: list[float]) -> str:
    return f"[{min(xs):.3g}..{max(xs):.3g}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200, help="probe steps per round")
    ap.add_argument("--real-steps", type=int, default=4, help="last_e_base steps per round")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    bare, ours = compare(probe_model, (3, 64, 25), args.steps, args.rounds)
    added = [(o - b) * 1e3 for b, o in zip(bare, ours)]
    rb, ro = compare(real_model, (3, 64, 25, 1), args.real_steps, args.rounds)
    ratios = [o / b for b, o in zip(rb, ro)]
    cfg = cfg_job_seconds()

    print(f"threads={args.threads} rounds={args.rounds} (interleaved, medians)")
    print(f"probe bare loop    {statistics.median(bare) * 1e3:.3f} ms/step {spread(bare)}")
    print(f"probe lastexp loop {statistics.median(ours) * 1e3:.3f} ms/step {spread(ours)}")
    print(f"last_e_base bare   {statistics.median(rb):.3f} s/step {spread(rb)}")
    print(f"last_e_base ours   {statistics.median(ro):.3f} s/step {spread(ro)}")
    print(f"probe added ms/step: {statistics.median(added):+.3f} {spread(added)} "
          "(target <= +0.15)")
    print(f"last_e_base ratio lastexp/bare: {statistics.median(ratios):.3f} {spread(ratios)} "
          "(target <= 1.05)")
    print(f"python -m lastexp --cfg job: {statistics.median(cfg):.2f} s {spread(cfg)} "
          "(target <= 1.0)")


if __name__ == "__main__":
    main()
