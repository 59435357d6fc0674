"""The epoch loop: plain functions, metrics kept on the device, one host sync per epoch.

Host synchronisations per training step (the NaN guard's, which the training plan asks for,
and nothing else; ``benchmarks/models.py``'s ``sync`` column measures what they cost):

1. ``NanGuard.input_ok``: the batch is summed on the host *before* it is moved to the device,
   so on a GPU this waits for no kernel (it costs a CPU reduction, not a sync);
2. ``NanGuard.loss_ok``: ``bool(isfinite(loss))`` before the backward pass, so that a
   non-finite step is skipped instead of poisoning the weights: one device-to-host sync;
3. with ``training.amp=fp16`` only: ``GradScaler.step`` reads its found-inf flag on the host
   once per optimizer step (bf16 and fp32 have no scaler).

Loss sums, correct counts and the pre-clip gradient norms stay on the device and are read once,
at the end of the epoch; computing and clipping the gradient norm does not sync. With
``logger.log_every_n_steps=N`` the loop reads the last N steps' mean loss and gradient norm every
N optimizer steps (one sync per N steps) for W&B / TensorBoard and, without a terminal, for a
progress line (also after 30 s without one).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from lastexp.errors import NumericalError

log = logging.getLogger("lastexp.train")
LINE_SECONDS = 30.0  # without a terminal: a progress line at least this often
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Transform = Callable[[torch.Tensor], torch.Tensor]


class NonFiniteError(NumericalError):
    """Too many non-finite steps in a row: the run cannot recover by skipping (one line, naming
    the key to change; the run is marked failed)."""


@dataclass
class NanGuard:
    """Two-level guard of the training recipe: skip non-finite inputs; skip non-finite losses
    and reset BN."""

    max_consecutive: int = 20
    consecutive: int = 0
    skipped_inputs: int = 0
    skipped_losses: int = 0

    def input_ok(self, x: torch.Tensor) -> bool:
        # One reduction instead of an elementwise mask: a NaN or inf anywhere makes the sum
        # non-finite (15x cheaper on the CPU; only sums beyond 3e38 would be a false alarm).
        if bool(torch.isfinite(x.sum())):
            return True
        self.skipped_inputs += 1
        self.consecutive += 1  # a data set whose every batch is skipped must fail, not finish
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteError(
                f"{self.consecutive} batches in a row hold NaN or inf inputs "
                f"(training.max_nonfinite_steps={self.max_consecutive}); check the data"
            )
        return False

    def loss_ok(self, loss: torch.Tensor, model: nn.Module) -> bool:
        if bool(torch.isfinite(loss)):
            self.consecutive = 0
            return True
        self.skipped_losses += 1
        self.consecutive += 1
        reset_nonfinite_bn(model)
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteError(
                f"{self.consecutive} non-finite losses in a row (training.max_nonfinite_steps="
                f"{self.max_consecutive}); lower optimizer.lr or check the data"
            )
        return False


def reset_nonfinite_bn(model: nn.Module) -> None:
    """A NaN forward pass in train mode poisons BN running stats: reset the layers it hit."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            if not (torch.isfinite(m.running_mean).all() and torch.isfinite(m.running_var).all()):
                m.reset_running_stats()


@dataclass
class StepContext:
    """What one training epoch needs besides the model and the data."""

    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    transform: Transform
    device: torch.device
    accumulation: int = 1
    clip: float = 0.0
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype | None = None
    guard: NanGuard = field(default_factory=NanGuard)
    before_step: Callable[[], None] | None = None  # e.g. switch causal mode per batch
    should_stop: Callable[[], bool] | None = None  # polled per step (preemption signal)
    progress: Any = None  # None: a bar on a terminal only; False: never; a file: bar there
    global_step: int = 0  # optimizer steps of the run so far (restored from the checkpoint)
    log_every: int = 0  # logger.log_every_n_steps: per-step records every N steps (0: none)
    on_log: Callable[[dict[str, float]], None] | None = None  # receives those records


def _progress(total: int, desc: str, where: Any = None):
    """A progress bar on a terminal only; logs get progress lines instead (:class:`_Window`)."""
    if where is False or (where is None and not sys.stderr.isatty()):
        return None
    out = sys.stderr if where in (None, True) else where
    return tqdm(total=total, desc=desc, leave=False, mininterval=0.5, file=out)


@dataclass
class EpochProgress:
    """Where a training epoch stands: enough to stop after any optimizer step and resume
    there with identical results (the batch order is fixed by the epoch's seed)."""

    batches: int = 0  # batches consumed so far, including skipped ones
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    grad_norm_sum: float = 0.0  # pre-clip global gradient norms of the epoch's optimizer steps
    grad_norm_steps: int = 0  # ... those with a finite norm (an fp16 overflow step is skipped)
    # (loss_sum, seen, grad_norm_sum, grad_norm_steps) at the last per-step record: a record
    # after a resume averages the same steps as it would have without the stop
    log_mark: list = field(default_factory=lambda: [0.0, 0, 0.0, 0])

    def to_dict(self) -> dict:
        return dict(batches=self.batches, loss_sum=self.loss_sum, correct=self.correct,
                    seen=self.seen, grad_norm_sum=self.grad_norm_sum,
                    grad_norm_steps=self.grad_norm_steps, log_mark=list(self.log_mark))


class _Window:
    """The per-step records: every ``ctx.log_every`` optimizer steps the mean loss and gradient
    norm since the previous record (W&B / TensorBoard through ``ctx.on_log``), and without a
    progress bar a log line at those steps or after :data:`LINE_SECONDS`, whichever comes
    first. Reads the device only when a record or line is due."""

    def __init__(self, ctx: StepContext, desc: str, n_batches: int, line: bool,
                 mark: list) -> None:
        self.ctx, self.desc, self.n_batches, self.line = ctx, desc, n_batches, line
        loss, seen, norm, steps = mark
        dev = ctx.device
        self.mark = (torch.full((), float(loss), device=dev), int(seen),
                     torch.full((), float(norm), device=dev),
                     torch.full((), int(steps), device=dev, dtype=torch.long))
        self.t_line = time.monotonic()

    def saved(self) -> list:
        """The mark as plain numbers, for the mid-epoch state (read at the epoch's end)."""
        loss, seen, norm, steps = self.mark
        return [float(loss), seen, float(norm), int(steps)]

    def step(self, batch: int, sums: tuple[torch.Tensor, int, torch.Tensor, torch.Tensor],
             optimizer: torch.optim.Optimizer) -> None:
        ctx = self.ctx
        record = bool(ctx.log_every) and ctx.global_step % ctx.log_every == 0
        line = self.line and (record or time.monotonic() - self.t_line >= LINE_SECONDS)
        if not (record or line):
            return
        loss_sum, seen, norm_sum, norm_steps = sums
        m_loss, m_seen, m_norm, m_steps = self.mark
        stats = {"global_step": ctx.global_step, "lr": optimizer.param_groups[0]["lr"],
                 "train_loss": float(loss_sum - m_loss) / max(seen - m_seen, 1),
                 "grad_norm": float(norm_sum - m_norm) / max(int(norm_steps - m_steps), 1)}
        self.mark = (loss_sum.clone(), seen, norm_sum.clone(), norm_steps.clone())
        if record and ctx.on_log is not None:
            ctx.on_log(stats)
        if line:
            self.t_line = time.monotonic()
            log.info("%s batch %d/%d step %d: loss %.4f lr %.3g grad_norm %.3g", self.desc,
                     batch, self.n_batches, ctx.global_step, stats["train_loss"], stats["lr"],
                     stats["grad_norm"])


@dataclass
class _Sums:
    """A training epoch's running sums, kept on the device and read once, at its end."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: int
    norm: torch.Tensor  # pre-clip global gradient norms of the optimizer steps ...
    norm_steps: torch.Tensor  # ... and how many steps had a finite one

    @classmethod
    def resumed(cls, start: EpochProgress, device: torch.device) -> _Sums:
        return cls(torch.full((), start.loss_sum, device=device),
                   torch.full((), start.correct, device=device, dtype=torch.long),
                   start.seen,
                   torch.full((), start.grad_norm_sum, device=device),
                   torch.full((), start.grad_norm_steps, device=device, dtype=torch.long))

    def window(self) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        return self.loss, self.seen, self.norm, self.norm_steps

    def progress(self, batches: int, log_mark: list) -> EpochProgress:
        """Where the epoch stands after ``batches`` batches (reads the device)."""
        return EpochProgress(batches, float(self.loss), int(self.correct), self.seen,
                             float(self.norm), int(self.norm_steps), log_mark)


def train_one_epoch(
    model: nn.Module,
    batches: Iterable,
    ctx: StepContext,
    desc: str = "train",
    resume: EpochProgress | None = None,
) -> dict[str, Any]:
    """One pass over ``batches``; ``resume`` continues a pass stopped part-way.

    ``should_stop`` is honoured only right after an optimizer step, so no gradient is left
    half-accumulated; the returned ``progress`` then says where to resume.
    """
    model.train()
    start = resume or EpochProgress()
    sums = _Sums.resumed(start, ctx.device)
    n_batches = len(batches) if hasattr(batches, "__len__") else 0
    bar = _progress(n_batches, desc, ctx.progress)
    window = _Window(ctx, desc, n_batches, line=bar is None and ctx.progress is not False,
                     mark=start.log_mark)
    pending = 0  # micro-batches accumulated since the last optimizer step
    consumed = 0
    stopped = False
    ctx.optimizer.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        consumed = i + 1
        last = bool(n_batches) and i == n_batches - 1
        if _train_batch(model, x, y, ctx, sums):
            pending += 1
        if pending and (pending == ctx.accumulation or last):
            _step(ctx, sums, window, start.batches + i + 1)
            pending = 0
        if bar is not None:
            bar.update(1)
        if pending == 0 and not last and ctx.should_stop is not None and ctx.should_stop():
            stopped = True
            break
    if pending:
        _step(ctx, sums, window, start.batches + consumed)
    if bar is not None:
        bar.close()
    progress = sums.progress(start.batches + consumed, window.saved())
    return _epoch_result(progress, stopped, ctx.guard, t0)


def _train_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext,
                 sums: _Sums) -> bool:
    """Forward and backward on one batch, its loss and hits added to ``sums``; False (nothing
    added) when the guard skips its non-finite input or loss."""
    if not ctx.guard.input_ok(x):
        return False
    device = ctx.device
    x = ctx.transform(x.to(device, non_blocking=True))
    y = y.to(device, non_blocking=True)
    if ctx.before_step is not None:
        ctx.before_step()
    with torch.autocast(device.type, dtype=ctx.amp_dtype, enabled=ctx.amp_dtype is not None):
        loss, logits = ctx.loss_fn(model, x, y)
    if not ctx.guard.loss_ok(loss, model):
        return False
    scaled = loss / ctx.accumulation if ctx.accumulation > 1 else loss
    if ctx.scaler is not None:
        ctx.scaler.scale(scaled).backward()
    else:
        scaled.backward()
    sums.loss.add_(loss.detach(), alpha=y.shape[0])
    sums.correct += (logits.detach().argmax(1) == y).sum()
    sums.seen += y.shape[0]
    return True


def _step(ctx: StepContext, sums: _Sums, window: _Window, batch: int) -> None:
    """The optimizer step after ``batch`` batches: its gradient norm counted, then the
    per-step record if one is due."""
    _count_norm(_optimizer_step(ctx), sums.norm, sums.norm_steps)
    window.step(batch, sums.window(), ctx.optimizer)


def _epoch_result(progress: EpochProgress, stopped: bool, guard: NanGuard,
                  t0: float) -> dict[str, Any]:
    """The epoch's figures; an epoch that ran to its end without training a single batch
    fails (:class:`NonFiniteError`), never completes."""
    if not stopped and progress.batches and not progress.seen:
        raise NonFiniteError(
            f"all {progress.batches} training batches of the epoch were skipped as non-finite "
            f"({guard.skipped_inputs} NaN/inf inputs, {guard.skipped_losses} losses so "
            "far); check the data (dataset.npz / dataset.raw_dir) or lower optimizer.lr")
    denom = max(progress.seen, 1)
    return {
        "train_loss": progress.loss_sum / denom,  # the epoch's one sync
        "train_top1": 100.0 * progress.correct / denom,
        # mean pre-clip global gradient norm over the epoch's optimizer steps
        "grad_norm": (progress.grad_norm_sum / progress.grad_norm_steps
                      if progress.grad_norm_steps else float("nan")),
        "train_seconds": time.perf_counter() - t0,
        "stopped": stopped,
        "progress": progress,
    }


def _optimizer_step(ctx: StepContext) -> torch.Tensor:
    """Clip and step; the pre-clip global gradient norm (a device tensor: no sync).

    One norm over every parameter the optimizer trains: the model's and a distillation
    projector's, clipped together to ``ctx.clip``."""
    params = [p for group in ctx.optimizer.param_groups for p in group["params"]]
    if ctx.scaler is not None:
        ctx.scaler.unscale_(ctx.optimizer)  # the norm of the true gradients
    norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if ctx.clip > 0:
        nn.utils.clip_grads_with_norm_(params, ctx.clip, norm)
    if ctx.scaler is not None:
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
    else:
        ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    ctx.global_step += 1
    return norm


def _count_norm(norm: torch.Tensor, total: torch.Tensor, steps: torch.Tensor) -> None:
    """Add a step's gradient norm to the epoch's sums on the device; a non-finite one (an fp16
    overflow, whose step GradScaler skips) is left out."""
    finite = torch.isfinite(norm)
    total.add_(torch.where(finite, norm, torch.zeros_like(norm)).to(total.dtype))
    steps.add_(finite.to(steps.dtype))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable,
    *,
    device: torch.device,
    transform: Transform,
    amp_dtype: torch.dtype | None = None,
    keep_scores: bool = False,
) -> dict:
    """Top-1 and mean cross-entropy on a split; optionally the per-sample scores."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    scores = []
    for x, y in batches:
        x = transform(x.to(device, non_blocking=True))
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(x)
        logits = logits.float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        seen += y.shape[0]
        if keep_scores:
            scores.append(logits.cpu())
    seen = max(seen, 1)
    out = {"val_loss": float(loss_sum) / seen, "val_top1": 100.0 * float(correct) / seen}
    if keep_scores:
        out["scores"] = torch.cat(scores) if scores else torch.empty(0)
    if not math.isfinite(out["val_loss"]):
        out["val_loss"] = float("nan")
    return out
