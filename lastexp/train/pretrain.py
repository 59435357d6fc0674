"""MaskCLR self-supervised pretraining (the training plan §4): the loop that trains an encoder
with the objective of :mod:`lastexp.train.maskclr`.

AdamW at ``pretrain.lr`` with a cosine_warmup schedule over the pretraining epochs; biases and
norm layers get no weight decay. Afterwards the encoder's weights minus the classifier are kept
for initialising a student (:mod:`lastexp.train.pretrained_encoder`). In a run, the pretraining
state (weights of encoder and heads, optimizer, schedule, history, RNG states and, when stopped
by a signal or the time limit, the batch position) is saved at every epoch end, so a preempted
run continues pretraining bit for bit (:class:`PretrainHooks`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lastexp.errors import ConfigError
from lastexp.io import atomic_write
from lastexp.train.checkpoint import load_checkpoint, unusable_fix
from lastexp.train.maskclr import CONTRASTIVE_WEIGHT, MaskCLR
from lastexp.train.optim import build_optimizer
from lastexp.train.pretrained_encoder import load_encoder, save_encoder
from lastexp.train.sampler import EpochSampler
from lastexp.train.schedule import build_scheduler


class PretrainStopped(Exception):
    """Pretraining stopped by a signal or the time limit after a step; its state was saved
    (:attr:`PretrainHooks.save`), so the same command continues it bit for bit."""

    def __init__(self, epoch: int, batches: int) -> None:
        super().__init__(f"MaskCLR pretraining stopped in epoch {epoch + 1} after {batches} "
                         "batches")
        self.epoch, self.batches = epoch, batches


@dataclass
class PretrainHooks:
    """How a run drives :func:`pretrain`: a saved state to continue from, where to save one
    (at every epoch end, and when stopped), and whether to stop (checked after each step)."""

    state: dict[str, Any] | None = None
    save: Callable[[dict[str, Any]], None] | None = None
    should_stop: Callable[[], bool] | None = None


def _new_history() -> dict[str, list[float]]:
    return {"loss": [], "recon": [], "contrastive": [], "seconds": [], "lr": []}


class _Pretraining:
    """The moving parts of one pretraining and the state that resumes them exactly."""

    def __init__(self, model: MaskCLR, opt: Any, sched: Any, loader: Iterable, *, seed: int,
                 stream: str, device: torch.device) -> None:
        self.model, self.opt, self.sched, self.loader = model, opt, sched, loader
        self.seed, self.stream, self.device = seed, stream, device
        self.gen = torch.Generator(device=device)
        self.history = _new_history()
        # the loader's own generator (worker seeds) and its sampler (startable part-way)
        self.loader_gen = getattr(loader, "generator", None)
        self.sampler = getattr(loader, "sampler", None)

    def state(self, epoch: int, mid: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything the next step depends on, after ``epoch`` completed epochs (``mid``:
        where in the next one it stands)."""
        cuda = self.device.type == "cuda"
        return {"kind": "maskclr_state", "epoch": epoch, "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "history": self.history, "rng_torch": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
                "rng_loader": self.loader_gen.get_state() if self.loader_gen else None,
                "mid_epoch": mid}

    def restore(self, state: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """Continue from :meth:`state`; (epochs completed, mid-epoch position)."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        torch.set_rng_state(state["rng_torch"])
        if state.get("rng_cuda") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        if self.loader_gen is not None and state.get("rng_loader") is not None:
            self.loader_gen.set_state(state["rng_loader"])
        return int(state["epoch"]), state.get("mid_epoch")

    def epoch(self, epoch: int, mid: dict[str, Any] | None, hooks: PretrainHooks) -> None:
        """One epoch (the rest of it, from ``mid``); raises :class:`PretrainStopped` after
        saving the position when ``hooks.should_stop`` says so."""
        self.gen.manual_seed(self.seed * 1_000_003 + epoch)
        pos = mid or {"batches": 0, "seen": 0, "seconds": 0.0,
                      "sums": {"loss": 0.0, "recon": 0.0, "contrastive": 0.0}}
        if mid is not None:
            self.gen.set_state(mid["rng_gen"])
            if self.loader_gen is not None and mid.get("rng_loader") is not None:
                self.loader_gen.set_state(mid["rng_loader"])
        epoch_loader = self.loader_gen.get_state() if self.loader_gen is not None else None
        if hasattr(self.sampler, "set_epoch"):  # a new order each epoch; skip what was seen
            self.sampler.set_epoch(epoch, skip=pos["batches"] * int(self.loader.batch_size))
        batches = iter(self.loader)
        if mid is not None:  # after the iterator drew its worker seeds, as the first run did
            torch.set_rng_state(mid["rng_torch"])
        self.model.train()
        t0 = time.perf_counter() - pos["seconds"]
        sums, seen, done = dict(pos["sums"]), pos["seen"], pos["batches"]
        for batch in batches:
            done += 1
            b = self._step(batch, sums)
            seen += b
            if b and hooks.should_stop is not None and hooks.should_stop():
                where = {"batches": done, "seen": seen, "sums": sums,
                         "seconds": time.perf_counter() - t0, "rng_gen": self.gen.get_state(),
                         "rng_torch": torch.get_rng_state(), "rng_loader": epoch_loader}
                if hooks.save is not None:
                    hooks.save(self.state(epoch, where))
                raise PretrainStopped(epoch, done)
        for k, v in sums.items():
            self.history[k].append(v / max(seen, 1))
        self.history["seconds"].append(time.perf_counter() - t0)
        self.history["lr"].append(self.opt.param_groups[0]["lr"])
        with warnings.catch_warnings():  # an epoch stopped after its last step resumes with
            # no step left: torch's "scheduler before optimizer" warning does not apply
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.sched.step()

    def _step(self, batch: Any, sums: dict[str, float]) -> int:
        """One optimizer step on ``batch``; its sample count (0: skipped)."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        x = x.to(self.device)
        if x.shape[0] < 2:
            return 0  # InfoNCE needs negatives
        loss, parts = self.model(x, self.gen, stream=self.stream)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        b = x.shape[0]
        sums["loss"] += float(loss.detach()) * b
        sums["recon"] += parts["recon"] * b
        sums["contrastive"] += parts["contrastive"] * b
        return b


def pretrain(
    encoder: nn.Module,
    loader: Iterable,
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    device: torch.device | str = "cpu",
    mask_ratio: float = 0.6,
    temperature: float = 0.07,
    strategy: str = "body_region",
    seed: int = 0,
    stream: str = "joint",
    contrastive_weight: float = CONTRASTIVE_WEIGHT,
    warmup_epochs: int = 5,
    warmup_start_lr: float = 1e-5,
    min_lr: float = 1e-6,
    hooks: PretrainHooks | None = None,
) -> dict[str, list[float]]:
    """Pretrain ``encoder`` in place on the inputs of ``loader`` (labels ignored) with AdamW
    and cosine_warmup over ``epochs`` (§4's command); decoder and projector live only inside
    this call. Returns per-epoch means (``loss``, ``recon``, ``contrastive``, ``seconds``,
    ``lr``); then :func:`encoder_state`. A loader whose sampler has ``set_epoch`` (an
    :class:`EpochSampler`) visits a new order each epoch. ``hooks``: continue a saved state,
    save one at each epoch end, stop (and save) on request, bit for bit.
    """
    hooks = hooks or PretrainHooks()
    device = torch.device(device)
    torch.manual_seed(seed)
    model = MaskCLR(encoder, mask_ratio=mask_ratio, temperature=temperature,
                    strategy=strategy, contrastive_weight=contrastive_weight).to(device)
    # no weight decay on biases, norms and the encoder's structural parameters
    opt = build_optimizer(model, name="adamw", lr=lr, weight_decay=weight_decay)
    sched = build_scheduler(opt, name="cosine_warmup", epochs=epochs, lr=lr,
                            warmup_epochs=warmup_epochs, warmup_start_lr=min(warmup_start_lr, lr),
                            min_lr=min_lr)
    run = _Pretraining(model, opt, sched, loader, seed=seed, stream=stream, device=device)
    start, mid = run.restore(hooks.state) if hooks.state is not None else (0, None)
    for epoch in range(start, epochs):
        run.epoch(epoch, mid, hooks)
        mid = None
        if hooks.save is not None:
            hooks.save(run.state(epoch + 1))
    return run.history



def pretrain_phase(model: nn.Module, train_set: Any, *, pcfg: Any, seed: int, num_workers: int,
                   stream: str, model_name: str, device: torch.device, path: Path,
                   dinfo: Any = None, state_path: Path | None = None,
                   run_key: str | None = None,
                   should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """MaskCLR (the training plan §4) before the main phase, on ``pretrain.*`` (``pcfg``);
    the encoder is kept at ``path``, so a restarted run does not pretrain again. Every epoch
    end, and a stop (``should_stop``: a signal, the time limit), saves the pretraining state
    at ``state_path``; a restarted run continues it bit for bit (refused when another run,
    by ``run_key``, wrote it). Returns the phase's figures for metrics.json; raises
    :class:`PretrainStopped` when stopped."""
    main = dinfo is None or dinfo.main
    if not path.exists():
        loader = torch.utils.data.DataLoader(
            train_set, batch_size=pcfg.batch_size,
            sampler=EpochSampler(len(train_set), seed=seed), num_workers=num_workers,
            generator=torch.Generator().manual_seed(seed),
        )
        saved = _own_state(state_path, run_key) if state_path is not None else None
        if saved is None:
            print(f"lastexp: MaskCLR pretraining for {pcfg.epochs} epochs", flush=True)
        else:
            print(f"lastexp: resuming MaskCLR pretraining after {saved['epoch']} of "
                  f"{pcfg.epochs} epochs", flush=True)

        def save(state: dict[str, Any]) -> None:
            if main and state_path is not None:
                atomic_write(state_path, lambda f: torch.save({**state, "run_key": run_key}, f),
                             mode="wb")

        hist = pretrain(model, loader, epochs=pcfg.epochs, lr=pcfg.lr, device=device,
                        mask_ratio=pcfg.mask_ratio, temperature=pcfg.temperature,
                        strategy=pcfg.mask_strategy, seed=seed, stream=stream,
                        contrastive_weight=pcfg.contrastive_weight,
                        hooks=PretrainHooks(state=saved, save=save, should_stop=should_stop))
        if main:
            save_encoder(path, model, model_name=model_name, history=hist, run_key=run_key)
    if dinfo is not None:
        dinfo.barrier()
    if main and state_path is not None:  # the encoder is kept: its pretraining state is done
        state_path.unlink(missing_ok=True)
    state = load_checkpoint(path)
    _refuse_foreign(state, path, run_key)
    load_encoder(model, state, path)
    return pretrain_record(state, pcfg.epochs)


def pretrain_record(state: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The pretraining figures metrics.json keeps, from the encoder file's history (also when
    a resumed run reads them again)."""
    hist = state.get("history") or {}
    return {"pretrain_epochs": epochs,
            "pretrain_seconds": float(sum(hist.get("seconds", []))),
            "pretrain_final_loss": (hist.get("loss") or [None])[-1]}


def _refuse_foreign(state: dict[str, Any], path: Path, run_key: str | None) -> None:
    theirs = state.get("run_key")
    if theirs and run_key and theirs != run_key:
        raise ConfigError(f"{path} belongs to another run (run key {theirs}, this run's is "
                          f"{run_key}; copied from another run?); {unusable_fix(path)}")


def _own_state(path: Path, run_key: str | None) -> dict[str, Any] | None:
    """The saved pretraining state at ``path`` (None when absent), refused in one line when
    another run wrote it or it is no pretraining state."""
    if not path.exists():
        return None
    state = load_checkpoint(path)
    _refuse_foreign(state, path, run_key)
    missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "history", "rng_torch")
               if k not in state]
    if state.get("kind") != "maskclr_state" or missing:
        raise ConfigError(f"{path} is no MaskCLR pretraining state lastexp wrote (lacks "
                          f"{', '.join(missing) or 'its kind'}); {unusable_fix(path)}")
    return state


__all__ = [
    "PretrainHooks",
    "PretrainStopped",
    "pretrain",
    "pretrain_phase",
    "pretrain_record",
]
