"""The epoch loop of a run and its finish (final evaluation, SWA, the delivered logits).

Each epoch is evaluated on the split the run selects on: the test split by default (the best
epoch reported as the field reports it), or a validation split carved from training
(``dataset.val_subjects`` / ``dataset.val_fraction``): then the best epoch, early stopping and a
search read validation only, and the finish scores the test split once for each weight set a
rule reports (best.pt, the final weights, the SWA model), keeping each one's predictions.

Per step the loop synchronises with the host only where the NaN guard needs it (see
``lastexp.train.loop``); per epoch it evaluates, steps the schedule, writes ``best.pt`` then
``last.pt``, history.csv and metrics.json (all atomically), in that order, so that a kill at
any point resumes to the same result.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from lastexp.errors import ConfigError
from lastexp.io import is_disk_full
from lastexp.models import set_causal
from lastexp.runstore.layout import RunDir
from lastexp.runstore.metrics import timestamp, write_metrics
from lastexp.runstore.scores import write_scores
from lastexp.train.checkpoint import load_checkpoint, save_checkpoint
from lastexp.train.early_stopping import EarlyStopping
from lastexp.train.loop import EpochProgress, StepContext, evaluate, train_one_epoch
from lastexp.train.seeding import epoch_seed
from lastexp.train.signals import StopFlag
from lastexp.train.state import Progress, RunFacts, Trainables, checkpoint_contents
from lastexp.train.tracking import write_history


@dataclass(frozen=True)
class Schedule:
    """What the loop reads of ``training.*`` (and the run's seed)."""

    epochs: int
    seed: int
    batch_size: int
    save_interval: int = 0
    overfit_check: bool = False
    causal_prob: float = 0.0
    causal_scope: str = "tcn"  # what a causal batch makes causal (lastexp.models.CAUSAL_SCOPES)
    max_hours: float = 0.0

    @classmethod
    def of(cls, tcfg: DictConfig, seed: int) -> Schedule:
        return cls(epochs=int(tcfg.epochs), seed=int(seed), batch_size=int(tcfg.batch_size),
                   save_interval=int(tcfg.save_interval or 0),
                   overfit_check=bool(tcfg.overfit_check),
                   causal_prob=float(tcfg.causal_prob), causal_scope=str(tcfg.causal_scope),
                   max_hours=float(tcfg.max_hours or 0))

    @property
    def limit_s(self) -> float:
        return self.max_hours * 3600 if self.max_hours else math.inf


@dataclass(frozen=True)
class Outputs:
    """The run directory's files, written by the main process only (DDP)."""

    run: RunDir
    main: bool = True

    def metrics(self, metrics: dict[str, Any]) -> None:
        if self.main:
            write_metrics(self.run.metrics, metrics)

    def history(self, rows: list[dict[str, Any]]) -> None:
        if self.main:
            write_history(self.run.history, rows)

    def checkpoint(self, path, state: dict[str, Any]) -> None:
        if self.main:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, state)


class Trainer:
    """Runs the epochs from where ``progress`` stands to ``schedule.epochs``, then finishes."""

    def __init__(self, *, parts: Trainables, facts: RunFacts, schedule: Schedule,
                 out: Outputs, ctx: StepContext, train_set: Any, sampler: Any,
                 train_loader: Iterable, test_loader: Iterable, test_set: Any,
                 train_model: nn.Module, eval_model: nn.Module, test_tf: Any,
                 aug_gen: torch.Generator, dinfo: Any, logger: Any, stop: StopFlag,
                 stopper: EarlyStopping, metrics: dict[str, Any], t_start: float,
                 val_loader: Iterable | None = None) -> None:
        self.parts, self.facts, self.schedule, self.out, self.ctx = parts, facts, schedule, out, ctx
        self.train_set, self.sampler, self.test_set = train_set, sampler, test_set
        self.train_loader, self.test_loader = train_loader, test_loader
        self.train_model, self.eval_model, self.test_tf = train_model, eval_model, test_tf
        self.aug_gen, self.dinfo, self.logger, self.stop = aug_gen, dinfo, logger, stop
        self.stopper, self.metrics, self.t_start = stopper, metrics, t_start
        # the split each epoch is evaluated on: what the best epoch and early stopping read
        self.val_loader = val_loader
        self.select_loader = val_loader if val_loader is not None else test_loader
        self.device = ctx.device
        self.causal_rng = np.random.default_rng(schedule.seed)
        if schedule.causal_prob > 0:
            ctx.before_step = self._causal_draw
        ctx.should_stop = self._should_stop
        if logger is not None:
            ctx.on_log = logger.log_step  # every logger.log_every_n_steps optimizer steps

    # ------------------------------------------------------------------ per step

    def _causal_draw(self) -> None:
        set_causal(self.parts.model, bool(self.causal_rng.random() < self.schedule.causal_prob),
                   self.schedule.causal_scope)

    def _should_stop(self) -> bool:
        late = time.time() - self.t_start > self.schedule.limit_s
        return self.dinfo.any(self.stop.requested or late, self.device)

    # ------------------------------------------------------------------ epochs

    def _seed_epoch(self, epoch: int) -> None:
        es = epoch_seed(self.schedule.seed, epoch)
        torch.manual_seed(es)
        self.aug_gen.manual_seed(es)
        # causal-mode draws too: an epoch-end checkpoint then resumes them exactly
        self.causal_rng = np.random.default_rng(es)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)

    def _checkpoint(self, progress: Progress, epoch: int, mid: dict | None = None) -> dict:
        return checkpoint_contents(self.parts, progress, self.facts, epoch=epoch, mid_epoch=mid)

    def train(self, progress: Progress, mid_epoch: dict | None) -> tuple[str, str | None]:
        """The epochs; ``(status, reason)``: completed, or interrupted (signal, time limit).
        On an exception, metrics.json records it before it propagates."""
        sch, metrics = self.schedule, self.metrics
        last_epoch_s = 0.0
        self.ctx.global_step = progress.global_step  # the step count goes on from the checkpoint
        try:
            for epoch in range(progress.epoch, sch.epochs):
                if self.dinfo.any(time.time() - self.t_start + last_epoch_s > sch.limit_s,
                                  self.device):
                    return "interrupted", f"training.max_hours={sch.max_hours} reached"
                if self.stopper.should_stop:
                    metrics["stopped_early_at"] = epoch
                    return "completed", None
                t_epoch = time.perf_counter()
                self._seed_epoch(epoch)
                resume_at = None
                if mid_epoch is not None:  # continue exactly where the interrupted run stopped
                    resume_at = EpochProgress(**mid_epoch["progress"])
                    torch.set_rng_state(mid_epoch["rng_torch"])
                    self.aug_gen.set_state(mid_epoch["rng_aug"])
                    self.causal_rng.bit_generator.state = mid_epoch["rng_causal"]
                    t_epoch -= mid_epoch["seconds"]
                    mid_epoch = None
                self.sampler.set_epoch(
                    epoch, skip=resume_at.batches * sch.batch_size if resume_at else 0)
                lr = self.parts.optimizer.param_groups[0]["lr"]
                tr = train_one_epoch(self.train_model, self.train_loader, self.ctx,
                                     desc=f"epoch {epoch + 1}/{sch.epochs}", resume=resume_at)
                if self.dinfo.active:  # report the epoch over all processes' samples
                    p = tr["progress"]
                    loss_sum, correct, seen = self.dinfo.sum([p.loss_sum, p.correct, p.seen],
                                                             self.device)
                    tr["train_loss"] = loss_sum / max(seen, 1)
                    tr["train_top1"] = 100.0 * correct / max(seen, 1)
                if tr["stopped"]:
                    return "interrupted", self._stop_mid_epoch(progress, epoch, tr, t_epoch)
                last_epoch_s = self._end_epoch(progress, epoch, lr, tr, t_epoch)
                if metrics.get("memorised"):
                    break
        except BaseException as exc:
            self.stop.restore()
            metrics.update(status="failed" if not isinstance(exc, KeyboardInterrupt) else
                           "interrupted", error=f"{exc.__class__.__name__}: {exc}",
                           finished_at=timestamp())
            try:
                self.out.metrics(metrics)
                if self.logger is not None:
                    self.logger.finish(metrics, exit_code=1)
            except OSError as later:  # the same full disk: the file that hit it first is named
                if not (is_disk_full(exc) and is_disk_full(later)):
                    raise
            raise
        return "completed", None

    def _stop_mid_epoch(self, progress: Progress, epoch: int, tr: dict, t_epoch: float) -> str:
        """A signal or the time limit stopped the epoch: save where it stands."""
        stop = self.stop
        reason = (f"signal {signal.Signals(stop.signum).name}" if stop.requested else
                  f"training.max_hours={self.schedule.max_hours} reached")
        progress.global_step = self.ctx.global_step
        mid = {"progress": tr["progress"].to_dict(), "rng_torch": torch.get_rng_state(),
               "rng_aug": self.aug_gen.get_state(),
               "rng_causal": self.causal_rng.bit_generator.state,
               "seconds": time.perf_counter() - t_epoch}
        self.out.checkpoint(self.out.run.last, self._checkpoint(progress, epoch, mid))
        print(f"lastexp: stopped in epoch {epoch + 1} after {tr['progress'].batches} batches; "
              "checkpoint saved", flush=True)
        return reason + ": resume by running the same command again"

    def _end_epoch(self, progress: Progress, epoch: int, lr: float, tr: dict,
                   t_epoch: float) -> float:
        """Evaluate, step the schedule and write the epoch's files; the epoch's seconds."""
        parts, sch, run, metrics = self.parts, self.schedule, self.out.run, self.metrics
        set_causal(parts.model, False)
        if parts.swa is not None:
            parts.swa.update(epoch)
        ev = evaluate(self.eval_model, self.select_loader, device=self.device,
                      transform=self.test_tf, amp_dtype=self.ctx.amp_dtype)
        parts.scheduler.step()
        seconds = time.perf_counter() - t_epoch
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": tr["train_loss"],
               "train_top1": tr["train_top1"], "val_loss": ev["val_loss"],
               "val_top1": ev["val_top1"], "seconds": seconds,
               "cum_seconds": progress.seconds + seconds, "grad_norm": tr["grad_norm"],
               "global_step": self.ctx.global_step}
        progress.global_step = self.ctx.global_step
        improved = progress.record(row)
        self.stopper.update(row)
        state = self._checkpoint(progress, epoch + 1)
        # best.pt before last.pt: a kill between the two resumes from the epoch before,
        # which replays this epoch and writes the same best.pt again
        if improved:
            self.out.checkpoint(run.best, state)
        self.out.checkpoint(run.last, state)
        if sch.save_interval and (epoch + 1) % sch.save_interval == 0:
            self.out.checkpoint(run.epoch_checkpoint(epoch + 1), state)
        self.out.history(progress.history)
        if self.logger is not None:
            self.logger.log_epoch(row)
        if self.dinfo.main:
            print(f"epoch {epoch + 1:3d}/{sch.epochs} lr {lr:.2e} "
                  f"train {tr['train_loss']:.4f}/{tr['train_top1']:5.1f}% "
                  f"val {ev['val_loss']:.4f}/{ev['val_top1']:5.1f}% ({seconds:.1f}s)",
                  flush=True)
        metrics.update(selection_fields(progress, validation=self.val_loader is not None),
                       best_epoch=progress.best_epoch, train_seconds=row["cum_seconds"],
                       epochs_done=epoch + 1)
        if sch.overfit_check and tr["train_top1"] >= 100.0:
            metrics.update(memorised=True, memorised_at_epoch=epoch + 1)
        self.out.metrics(metrics)
        return seconds

    # ------------------------------------------------------------------ finish

    def finish(self, progress: Progress, status: str, reason: str | None) -> dict[str, Any]:
        """A completed run's final numbers (the three selection rules) and delivered logits;
        metrics.json with the final status, for every run."""
        metrics, sch = self.metrics, self.schedule
        if status == "completed" and sch.overfit_check and self.dinfo.main:
            print(overfit_verdict(metrics, progress.history, len(self.train_set)), flush=True)
            metrics.setdefault("memorised", False)
        if status == "completed":
            self._final_evaluation(progress)
        metrics.update(status=status, finished_at=timestamp(),
                       nonfinite_inputs_skipped=self.ctx.guard.skipped_inputs,
                       nonfinite_losses_skipped=self.ctx.guard.skipped_losses)
        if reason:
            metrics["reason"] = reason
        self.out.metrics(metrics)
        if self.logger is not None:
            self.logger.finish(metrics)
        if self.dinfo.main:
            final = " ".join(f"{k.removesuffix('_top1')} {metrics[k]:.2f}%"
                             for k in ("final_top1", "swa_top1") if metrics.get(k) is not None)
            best = f"{progress.best_top1:.2f}%"
            if self.val_loader is not None:  # the epoch validation chose, scored on test
                test = metrics.get("best_top1")
                best = f"val {best}, test {'-' if test is None else f'{test:.2f}%'},"
            print(f"lastexp: {status}: {self.out.run.path} (best {best} at "
                  f"epoch {progress.best_epoch}{', ' + final if final else ''})", flush=True)
        return metrics

    def _final_evaluation(self, progress: Progress) -> None:
        # Three selection rules, each its own number (the training plan §7 and the tables'
        # notes): best_top1 is the best epoch of the trained weights (best.pt), final_top1 the
        # weights the schedule ends with, swa_top1 the averaged model (swa.pt). None replaces
        # another, so B13 against B7 compares like with like. Each is a test-split number, and
        # each keeps its per-sample predictions (pred_best, pred_final, pred_swa).
        if not progress.history:
            raise ConfigError("no epoch was run; raise training.epochs")
        metrics, sch, parts = self.metrics, self.schedule, self.parts
        final = self._score_test(self.eval_model)
        metrics.update(final_top1=final["val_top1"], final_loss=final["val_loss"])
        preds = {"pred_final": predictions(final)}
        ev = final
        # the finish draws randomness (dropout while SWA's BN statistics are recomputed) from
        # (seed, epochs) alone, so a run killed in this phase finishes the same on resume
        torch.manual_seed(epoch_seed(sch.seed, sch.epochs))
        if parts.swa is not None:  # the averaged weights, BN statistics recomputed
            self.sampler.set_epoch(sch.epochs)  # all training inputs for the BN statistics
            if hasattr(self.train_set, "set_epoch"):  # their clips drawn for this phase, not
                self.train_set.set_epoch(sch.epochs)  # for whichever epoch ran here last
            swa_model = parts.swa.finalize(self.train_loader, self.test_tf, self.device)
            self.out.checkpoint(self.out.run.swa, {**self._checkpoint(progress, sch.epochs),
                                                   "model": swa_model.state_dict()})
            ev = self._score_test(swa_model)
            metrics.update(swa_top1=ev["val_top1"], swa_loss=ev["val_loss"],
                           swa_epochs=parts.swa.n_averaged)
            preds["pred_swa"] = predictions(ev)
        best = self._score_best(progress, final)
        if best is not None:
            preds["pred_best"] = predictions(best)
            if self.val_loader is not None:  # the epoch validation chose, on the test split
                metrics.update(best_top1=best["val_top1"])
        # The logits of the model the run delivers: the SWA model when SWA is on.
        if self.out.main:
            write_scores(self.out.run.scores, ev["scores"].numpy(),
                         np.asarray(getattr(self.test_set, "labels", [])),
                         np.asarray(getattr(self.test_set, "names", [])), preds)

    def _score_test(self, model: nn.Module) -> dict[str, Any]:
        return evaluate(model, self.test_loader, device=self.device, transform=self.test_tf,
                        amp_dtype=self.ctx.amp_dtype, keep_scores=True)

    def _score_best(self, progress: Progress, final: dict[str, Any]) -> dict[str, Any] | None:
        """The test scores of the best epoch's weights: the final weights' when the last epoch
        run is the best, else those of best.pt, loaded into the model (the finish needs the
        trained weights no more); None when best.pt is missing, and on the processes of a
        distributed run other than the main one, which write nothing."""
        if progress.best_epoch == progress.epoch:
            return final
        if not self.out.main or not self.out.run.best.is_file():
            return None
        self.parts.model.load_state_dict(load_checkpoint(self.out.run.best)["model"])
        return self._score_test(self.eval_model)


def predictions(ev: dict[str, Any]) -> np.ndarray:
    """The predicted class of each sample of an evaluation kept with ``keep_scores``."""
    return ev["scores"].argmax(1).numpy() if len(ev["scores"]) else np.zeros(0, np.int64)


def selection_fields(progress: Progress, *, validation: bool) -> dict[str, Any]:
    """metrics.json's best epoch so far, while a run trains. Evaluated on the test split, its
    top-1 is ``best_top1``; with a validation split it is ``best_val_top1`` and ``best_top1``
    (always a test number) waits for the finish, which scores best.pt on the test split."""
    best = progress.best_top1 if progress.best_top1 >= 0 else None
    return {"best_val_top1": best, "best_top1": None} if validation else {"best_top1": best}


def overfit_verdict(metrics: dict, history: list[dict], n_train: int) -> str:
    """The one line of ``debug=overfit``: memorised, or after how many epochs it was not."""
    if metrics.get("memorised"):
        return (f"lastexp: overfit check passed: all {n_train} training samples memorised "
                f"after {metrics['memorised_at_epoch']} epochs")
    last = history[-1]["train_top1"] if history else 0.0
    return (f"lastexp: overfit check FAILED: {n_train} training samples not memorised after "
            f"{len(history)} epochs (train top-1 {last:.1f}%); check the model, the loss and the "
            "labels before a long run")
