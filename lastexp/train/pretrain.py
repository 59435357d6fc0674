"""MaskCLR self-supervised pretraining (the training plan §4): masked reconstruction + InfoNCE.

Each batch gives two views of every sample: random rotation (+-15 deg) and scale (0.9-1.1),
then an independent body-region mask (zeroed joints, 60% on average). The encoder (any model of
the protocol) reads each masked view; its stage-3 features feed

* a linear decoder ``Linear(C_last, 3 * V)`` that reconstructs every frame's joints (features
  averaged over V, predicted at stage-3 frame rate, linearly upsampled to T); the MSE counts
  masked positions only, against the *original* sequence (before rotation and scale), as §4's
  ``MSE(decoder(encoder(masked_x)), original_x)`` says;
* a projector ``Linear(C_last, 128)`` on the pooled features; InfoNCE between the two views.

``L = L_recon + w * L_contrastive`` with ``w = pretrain.contrastive_weight`` (§4: 0.5;
L_recon averaged over both views). AdamW at ``pretrain.lr`` with a cosine_warmup schedule over
the pretraining epochs; biases and norm layers get no weight decay. Afterwards
:func:`encoder_state` keeps the encoder's weights minus the classifier, for initialising a
student (``model.load_state_dict(state, strict=False)``). In a run, the pretraining state (weights
of encoder and heads, optimizer, schedule, history, RNG states and, when stopped by a signal or
the time limit, the batch position) is saved at every epoch end, so a preempted run continues
pretraining bit for bit (:class:`PretrainHooks`).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lastexp.data.augment import random_rotate_scale
from lastexp.data.streams import to_stream
from lastexp.errors import ConfigError
from lastexp.io import atomic_write
from lastexp.models.graph import BODY_REGIONS
from lastexp.train.checkpoint import load_checkpoint, unusable_fix
from lastexp.train.optim import build_optimizer, no_decay_names
from lastexp.train.sampler import EpochSampler
from lastexp.train.schedule import build_scheduler

STRATEGIES = ("body_region", "random")
LIMBS = ("left_arm", "right_arm", "left_leg", "right_leg")
CONTRASTIVE_WEIGHT = 0.5
PROJ_DIM = 128


def _region_matrix(num_joints: int, device: torch.device) -> torch.Tensor:
    """(R, V) membership of the body regions: the four limbs first, torso/head last."""
    names = [*LIMBS, *(r for r in BODY_REGIONS if r not in LIMBS)]
    mat = torch.zeros(len(names), num_joints, dtype=torch.bool, device=device)
    for i, name in enumerate(names):
        mat[i, list(BODY_REGIONS[name])] = True
    return mat


def region_mask(
    x: torch.Tensor,
    ratio: float,
    generator: torch.Generator | None = None,
    strategy: str = "body_region",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero a set of joints of each sample, the same joints in every frame and person.

    ``body_region``: whole regions, limbs (arms, legs) in random order and torso/head only
    when the limbs are not enough (ratio > 0.8 on NTU). Regions are taken while fewer than
    ``ratio * V`` joints are masked; the region that would cross that count is taken with the
    probability that makes the expected masked share exactly ``ratio`` (whole regions cannot
    hit 60% of 25 joints exactly: the count varies by sample, 15 on average). ``random``:
    ``ceil(ratio * V)`` random joints.
    x: (N, C, T, V, M) -> (masked x, mask (N, T, V) bool, True = masked).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"pretrain.mask_strategy={strategy!r} is not one of "
                         f"{', '.join(STRATEGIES)}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"pretrain.mask_ratio={ratio} must lie in [0, 1]")
    n, _, t, v, _ = x.shape
    dev = x.device
    target = ratio * v  # joints to mask, in expectation
    if strategy == "random":
        keys = torch.rand(n, v, generator=generator, device=dev)
        rank = keys.argsort(dim=1).argsort(dim=1)
        joints = rank < math.ceil(target - 1e-9)  # (N, V)
    else:
        regions = _region_matrix(v, dev)  # (R, V)
        r = regions.shape[0]
        keys = torch.rand(n, r, generator=generator, device=dev)
        keys[:, len(LIMBS):] += 1.0  # torso/head after every limb
        order = keys.argsort(dim=1)  # (N, R): regions in masking order
        sizes = regions.sum(1)[order]  # (N, R)
        before = sizes.cumsum(1) - sizes  # joints masked before taking each region
        # P(take) = (target - before) / size, clamped: 1 below the target, 0 beyond it, and for
        # the one region that crosses it the share that makes the expectation exact
        p_take = ((target - before) / sizes).clamp(0.0, 1.0)
        take_sorted = torch.rand(n, 1, generator=generator, device=dev) < p_take
        take = torch.zeros_like(take_sorted).scatter(1, order, take_sorted)  # (N, R)
        joints = (take.float() @ regions.float()) > 0  # (N, V)
    mask = joints[:, None, :].expand(n, t, v)  # (N, T, V)
    keep = (~mask).to(x.dtype)[:, None, :, :, None]  # (N, 1, T, V, 1)
    return x * keep, mask


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: sample i of view 1 must pick sample i of view 2 among the batch
    (cosine similarity / temperature), and vice versa; the two cross-entropies averaged."""
    a = F.normalize(z1.float(), dim=1)
    b = F.normalize(z2.float(), dim=1)
    logits = a @ b.t() / temperature  # (N, N)
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over masked positions only. pred/target (N, C, T, V, M); mask (N, T, V) bool."""
    w = mask[:, None, :, :, None].to(pred.dtype).expand_as(pred)
    denom = w.sum().clamp(min=1.0)
    return ((pred.float() - target.float()) ** 2 * w).sum() / denom


class MaskCLR(nn.Module):
    """Encoder + reconstruction decoder + contrastive projector (both heads are discarded)."""

    def __init__(
        self,
        encoder: nn.Module,
        *,
        in_channels: int = 3,
        num_joints: int = 25,
        mask_ratio: float = 0.6,
        temperature: float = 0.07,
        strategy: str = "body_region",
        contrastive_weight: float = CONTRASTIVE_WEIGHT,
        proj_dim: int = PROJ_DIM,
        max_deg: float = 15.0,
        scale: tuple[float, float] = (0.9, 1.1),
    ) -> None:
        super().__init__()
        c_last = int(encoder.stage_channels[-1])
        self.encoder = encoder
        self.decoder = nn.Linear(c_last, in_channels * num_joints)
        self.projector = nn.Linear(c_last, proj_dim)
        self.in_channels, self.num_joints = in_channels, num_joints
        self.mask_ratio, self.temperature, self.strategy = mask_ratio, temperature, strategy
        self.max_deg, self.scale = max_deg, scale
        self.contrastive_weight = contrastive_weight

    def no_weight_decay(self) -> set[str]:
        """The encoder's own exclusions (structural parameters), under this module's names."""
        return {f"encoder.{name}" for name in no_decay_names(self.encoder)}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, T, V, M) -> per-frame features (N*M, T3, C_last), pooled (N, C_last)."""
        m = x.shape[-1]
        _, feats = self.encoder(x, return_features=True)
        f = feats["stages"][-1]  # (N*M, C_last, T3, V)
        head = getattr(self.encoder, "head", None)
        if head is not None and hasattr(head, "pool"):
            pooled = head.pool(f, m)  # (N, C_last)
        else:
            pooled = f.mean(dim=(2, 3)).view(-1, m, f.shape[1]).mean(1)
        return f.mean(dim=3).transpose(1, 2), pooled

    def reconstruct(self, frames: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Per-frame features (N*M, T3, C) -> joints (N, C_in, T, V, M)."""
        n, c, t, v, m = shape
        out = self.decoder(frames)  # (N*M, T3, C_in*V)
        out = out.view(n * m, -1, c, v).permute(0, 2, 1, 3)  # (N*M, C_in, T3, V)
        out = F.interpolate(out, size=(t, v), mode="bilinear", align_corners=False)
        return out.view(n, m, c, t, v).permute(0, 2, 3, 4, 1)  # (N, C_in, T, V, M)

    def view_loss(self, view: torch.Tensor, original: torch.Tensor,
                  generator: torch.Generator | None):
        """Mask ``view`` (an augmented copy), encode it, and reconstruct ``original`` (the
        sequence before augmentation) at the masked positions."""
        masked, mask = region_mask(view, self.mask_ratio, generator, self.strategy)
        frames, pooled = self.encode(masked)
        recon = masked_mse(self.reconstruct(frames, view.shape), original, mask)
        return recon, self.projector(pooled)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, stream: str = "joint"
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss on a batch of joint coordinates x (N, C, T, V, M) and its parts."""
        gen = generator
        if gen is None:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(int(torch.randint(0, 2**62, (1,))))
        views = [
            to_stream(random_rotate_scale(x, gen, max_deg=self.max_deg, scale=self.scale), stream)
            for _ in range(2)
        ]
        original = to_stream(x, stream)
        (r1, z1), (r2, z2) = (self.view_loss(v, original, gen) for v in views)
        recon = 0.5 * (r1 + r2)
        contrast = info_nce(z1, z2, self.temperature)
        loss = recon + self.contrastive_weight * contrast
        return loss, {"recon": float(recon.detach()), "contrastive": float(contrast.detach())}


def classifier_keys(encoder: nn.Module) -> list[str]:
    """State-dict keys pretraining cannot learn: the classifier (``head.fc``: any Linear with
    ``num_classes`` outputs) and the IB head (``ib.*``), whose class priors need labels."""
    keys = []
    k = getattr(encoder, "num_classes", None)
    for name, module in encoder.named_modules():
        is_cls = isinstance(module, nn.Linear) and k is not None and module.out_features == k
        if is_cls or name == "ib" or name.startswith("ib."):
            keys += [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)]
            keys += [f"{name}.{b}" for b, _ in module.named_buffers(recurse=False)]
    return sorted(set(keys))


def _encoder(maskclr_or_encoder: nn.Module) -> nn.Module:
    return getattr(maskclr_or_encoder, "encoder", maskclr_or_encoder)


def encoder_state(maskclr: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's state dict (of a :class:`MaskCLR` or the encoder itself) without decoder,
    projector and classifier keys; a fresh model of the same architecture loads it with
    ``strict=False`` and reports exactly :func:`classifier_keys` as missing (for LAST-E:
    ``head.fc.weight``, ``head.fc.bias``, plus ``ib.*`` when it has the IB head)."""
    enc = _encoder(maskclr)
    drop = set(classifier_keys(enc))
    return {k: v.detach().clone() for k, v in enc.state_dict().items() if k not in drop}


def save_encoder(path: str | os.PathLike, maskclr: nn.Module, **meta: Any) -> None:
    """Write ``{"kind": "maskclr_encoder", "encoder": state, "missing": keys, **meta}``
    atomically (meta: e.g. model_name, config, history)."""
    state = {"kind": "maskclr_encoder", "encoder": encoder_state(maskclr),
             "missing": classifier_keys(_encoder(maskclr)), **meta}
    atomic_write(path, lambda f: torch.save(state, f), mode="wb")


def load_encoder_into(model: nn.Module, path_or_state: str | os.PathLike | dict) -> list[str]:
    """Initialise ``model`` from a pretrained encoder (a file of :func:`save_encoder` or a state
    dict). Every key but the classifier must match in name and shape; returns the missing keys."""
    state = path_or_state
    if not isinstance(state, dict):
        state = load_checkpoint(Path(path_or_state))
    state = state.get("encoder", state)
    mine = model.state_dict()
    allowed = set(classifier_keys(model))
    bad_shape = [k for k, v in state.items() if k in mine and mine[k].shape != v.shape]
    extra = [k for k in state if k not in mine]
    missing = sorted(k for k in mine if k not in state)
    unexpected_missing = [k for k in missing if k not in allowed]
    if bad_shape or extra or unexpected_missing:
        first = (bad_shape or extra or unexpected_missing)[0]
        raise ValueError(
            f"pretrained encoder does not fit this model: {len(bad_shape)} reshaped, "
            f"{len(extra)} unexpected, {len(unexpected_missing)} missing tensors (e.g. {first})"
        )
    model.load_state_dict(state, strict=False)
    return missing


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


def load_encoder(model: nn.Module, state: dict, path: str | os.PathLike) -> list[str]:
    """A MaskCLR encoder's weights into ``model``, refused with one line when it does not
    fit; returns the missing (classifier) keys."""
    try:
        return load_encoder_into(model, state)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"encoder {path} does not fit model {type(model).__name__}: {exc}") \
            from None


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
    "MaskCLR",
    "PretrainHooks",
    "PretrainStopped",
    "classifier_keys",
    "encoder_state",
    "info_nce",
    "load_encoder",
    "load_encoder_into",
    "masked_mse",
    "pretrain",
    "pretrain_phase",
    "pretrain_record",
    "region_mask",
    "save_encoder",
]
