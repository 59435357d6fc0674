"""Cost of a distillation step over plain training, and what cached teacher logits save.

Student: LAST-Lite small when the zoo has it (else LAST-E nano); teacher: LAST-E base at
width 1, frozen. Same in-memory batches (B, 3, 64, 25, 1), 60 classes; the variants run
interleaved (one step of each per turn) and the figures are medians over rounds.

  python benchmarks/distill.py [--rounds 5] [--steps 4] [--batch 16]

Variants: ``plain`` (CE), ``kd_live`` (CE + KD, teacher run every step), ``kd_cached``
(CE + KD from TeacherLogitCache), ``full_live`` (seed preset: CE + KD + feature mimicry; the
teacher must run for its features, so a logit cache cannot remove it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lastexp.app import CONF_DIR, register  # noqa: E402
from lastexp.models import available_models, build_model, count_params  # noqa: E402
from lastexp.train.distill import (  # noqa: E402
    Distiller,
    FeatureProjector,
    TeacherLogitCache,
)


def student_weights(model: str) -> dict[str, float]:
    """The loss weights of the training plan's §3A recipe for this student, as lastexp composes
    them (distill=from_base with the student's column)."""
    register()  # the schema and resolvers the config composes with
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["distill=from_base", f"model={model}"])
    d = cfg.distill
    return {"alpha": d.alpha, "beta": d.beta, "gamma": d.gamma, "tau": d.tau,
            "label_smoothing": cfg.training.label_smoothing}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4, help="steps per variant per round")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    student_name = "last_lite_small" if "last_lite_small" in available_models() else "last_e_nano"
    k = 60
    teacher = build_model("last_e_base", num_classes=k, num_person=1)
    students = {v: build_model(student_name, num_classes=k, num_person=1)
                for v in ("plain", "kd_live", "kd_cached", "full_live")}
    for s in students.values():
        s.load_state_dict(students["plain"].state_dict())
    g = torch.Generator().manual_seed(0)
    n_batches = args.steps
    xs = [torch.randn(args.batch, 3, 64, 25, 1, generator=g) for _ in range(n_batches)]
    ys = [torch.randint(0, k, (args.batch,), generator=g) for _ in range(n_batches)]
    idx = [torch.arange(i * args.batch, (i + 1) * args.batch) for i in range(n_batches)]

    preset = student_weights(student_name)
    kd = {**preset, "gamma": 0.0}
    live = Distiller(teacher, None, **kd)
    data = torch.utils.data.TensorDataset(torch.cat(xs), torch.cat(ys))
    live.teacher_logits(xs[0])  # warm-up, so the build time is the steady-state cost
    t0 = time.perf_counter()
    cache = TeacherLogitCache.build(live.teacher_logits, data, batch_size=args.batch)
    cache_build_s = time.perf_counter() - t0
    cached = Distiller(teacher, None, **kd, cache=cache)
    proj = FeatureProjector.between(students["full_live"], teacher)
    full = Distiller(teacher, proj, **preset)
    ce = nn.CrossEntropyLoss()

    def plain_loss(model, x, y):
        logits = model(x)
        return ce(logits, y), logits

    loss_fns = {"plain": plain_loss, "kd_live": live, "kd_cached": cached, "full_live": full}
    opts = {
        v: torch.optim.SGD([*s.parameters(), *(proj.parameters() if v == "full_live" else [])],
                           lr=0.01, momentum=0.9)
        for v, s in students.items()
    }

    def step(v: str, i: int) -> float:
        model, fn, opt = students[v], loss_fns[v], opts[v]
        model.train()
        if v == "kd_cached":
            cached.batch_index = idx[i]
        t = time.perf_counter()
        loss, _ = fn(model, xs[i], ys[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    for v in students:  # warm-up
        step(v, 0)
    per_round: dict[str, list[float]] = {v: [] for v in students}
    for _ in range(args.rounds):
        acc = {v: 0.0 for v in students}
        for i in range(n_batches):
            for v in students:
                acc[v] += step(v, i)
        for v in students:
            per_round[v].append(1000 * acc[v] / n_batches)
    med = {v: statistics.median(t) for v, t in per_round.items()}

    t_params = sum(p.numel() for p in teacher.parameters())
    print(f"student {student_name} ({count_params(students['plain']):,} params), teacher "
          f"last_e_base ({t_params:,} params, frozen), batch {args.batch}, "
          f"T=64, threads {torch.get_num_threads()}, {args.rounds} rounds x {args.steps} steps")
    print(f"cache build: {cache_build_s:.2f} s for {len(cache)} samples "
          f"({1000 * cache_build_s / len(cache):.2f} ms/sample, once per run)")
    for v in students:
        print(f"  {v:10s} {med[v]:8.1f} ms/step  (x{med[v] / med['plain']:.2f} of plain)")
    print(f"RESULT distill step (CE+KD+feat, live teacher) / plain = "
          f"{med['full_live'] / med['plain']:.2f}x; KD live / plain = "
          f"{med['kd_live'] / med['plain']:.2f}x; KD cached / plain = "
          f"{med['kd_cached'] / med['plain']:.2f}x; cache speed-up over live KD = "
          f"{med['kd_live'] / med['kd_cached']:.2f}x")


if __name__ == "__main__":
    main()
