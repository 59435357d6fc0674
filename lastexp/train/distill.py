"""Knowledge distillation (the training plan §3): CE + temperature KD + per-stage feature mimicry.

``L = alpha * CE + beta * tau^2 * KL(softmax(t / tau) || softmax(s / tau)) + gamma * L_feat``,
``L_feat = sum_s MSE(proj_s(student_s), teacher_s)``. A term whose weight is 0 is not computed
(and with ``beta == gamma == 0`` the teacher is not even run).

The teacher is frozen: eval mode, ``requires_grad=False``, run under ``torch.no_grad``. It may
be one model or a weighted ensemble of models (their logits are summed with the weights; feature
mimicry uses the first member). :class:`FeatureProjector` holds the trainable 1x1 convolutions
that map student stage widths to teacher widths; it is trained with the student and discarded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lastexp.data.streams import to_stream


class FeatureProjector(nn.Module):
    """One 1x1 Conv2d per stage: student stage width -> teacher stage width."""

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int]) -> None:
        super().__init__()
        if len(student_channels) != len(teacher_channels):
            raise ValueError(
                f"student has {len(student_channels)} stages, teacher {len(teacher_channels)}"
            )
        self.proj = nn.ModuleList(
            nn.Conv2d(int(cs), int(ct), kernel_size=1)
            for cs, ct in zip(student_channels, teacher_channels)
        )

    @classmethod
    def between(cls, student: nn.Module, teacher: nn.Module) -> FeatureProjector:
        """Projector for two models of the protocol (both expose ``stage_channels``)."""
        return cls(student.stage_channels, teacher.stage_channels)

    def __len__(self) -> int:
        return len(self.proj)

    def forward(self, s: int, x: torch.Tensor) -> torch.Tensor:
        return self.proj[s](x)  # (N*M, C_student, T, V) -> (N*M, C_teacher, T, V)


def _match_time(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the longer of two (N*M, C, T, V) maps along T to the shorter one's T."""
    ta, tb = a.shape[2], b.shape[2]
    if ta > tb:
        a = F.adaptive_avg_pool2d(a, (tb, a.shape[3]))
    elif tb > ta:
        b = F.adaptive_avg_pool2d(b, (ta, b.shape[3]))
    return a, b


def feature_mimicry_loss(
    student_feats: Sequence[torch.Tensor],
    teacher_feats: Sequence[torch.Tensor],
    projector: FeatureProjector,
) -> torch.Tensor:
    """``sum_s MSE(proj_s(student_s), teacher_s.detach())`` over stages.

    Stage maps are (N*M, C, T_s, V); when student and teacher strides differ in T, the longer
    map is average-pooled to the shorter one (a 1x1 conv commutes with that pooling).
    """
    if not (len(student_feats) == len(teacher_feats) == len(projector)):
        raise ValueError(
            f"stage counts differ: student {len(student_feats)}, teacher {len(teacher_feats)}, "
            f"projector {len(projector)}"
        )
    total = student_feats[0].new_zeros((), dtype=torch.float32)
    for s, (fs, ft) in enumerate(zip(student_feats, teacher_feats)):
        if fs.shape[0] != ft.shape[0] or fs.shape[3] != ft.shape[3]:
            raise ValueError(
                f"stage {s + 1}: student {tuple(fs.shape)} and teacher {tuple(ft.shape)} differ "
                "in N*M or V (student and teacher need the same num_person and joints)"
            )
        fs, ft = _match_time(fs, ft.detach())
        total = total + F.mse_loss(projector(s, fs).float(), ft.float())
    return total


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """``tau^2 * KL(softmax(t / tau) || softmax(s / tau))``, batch mean (Hinton et al.)."""
    log_p_s = F.log_softmax(student_logits.float() / tau, dim=1)
    p_t = F.softmax(teacher_logits.detach().float() / tau, dim=1)
    return tau * tau * F.kl_div(log_p_s, p_t, reduction="batchmean")


@dataclass(frozen=True)
class LossWeights:
    """The weights of the distillation loss: ``alpha`` x cross-entropy on the labels (with
    ``label_smoothing``), ``beta`` x KD at temperature ``tau``, ``gamma`` x feature mimicry.
    :func:`distillation_loss` and :class:`Distiller` take these fields as keywords."""

    alpha: float
    beta: float
    gamma: float
    tau: float
    label_smoothing: float = 0.0


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor,
    student_feats: Sequence[torch.Tensor] | None,
    teacher_feats: Sequence[torch.Tensor] | None,
    projector: FeatureProjector | None,
    **weights: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (``ce``, ``kd``, ``feat``: unweighted floats, only those on);
    ``weights``: the fields of :class:`LossWeights` (``alpha``, ``beta``, ``gamma``, ``tau``,
    ``label_smoothing``)."""
    w = LossWeights(**weights)
    total = student_logits.new_zeros((), dtype=torch.float32)
    parts: dict[str, torch.Tensor] = {}
    if w.alpha > 0:
        parts["ce"] = F.cross_entropy(
            student_logits.float(), labels, label_smoothing=w.label_smoothing
        )
        total = total + w.alpha * parts["ce"]
    if w.beta > 0:
        if teacher_logits is None:
            raise ValueError("distill.beta > 0 needs teacher logits")
        parts["kd"] = kd_loss(student_logits, teacher_logits, w.tau)
        total = total + w.beta * parts["kd"]
    if w.gamma > 0:
        if student_feats is None or teacher_feats is None or projector is None:
            raise ValueError("distill.gamma > 0 needs student and teacher stage features and a "
                             "FeatureProjector")
        parts["feat"] = feature_mimicry_loss(student_feats, teacher_feats, projector)
        total = total + w.gamma * parts["feat"]
    return total, {k: float(v.detach()) for k, v in parts.items()}


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: what a teacher must be."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@dataclass
class TeacherMember:
    """One teacher model with its logit weight; ``stream`` is the input stream it was trained on
    (None: it reads the same input as the student)."""

    model: nn.Module
    weight: float = 1.0
    stream: str | None = None


class TeacherLogitCache:
    """Teacher logits per training-sample index, computed once.

    Valid only when a sample's input is the same every epoch (no augmentation, deterministic
    frame sampling): then running the teacher every step recomputes the same numbers.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits  # (num_samples, K)

    def __len__(self) -> int:
        return self.logits.shape[0]

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return self.logits[index.to(self.logits.device)]

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        teacher_logits_fn: Any,
        dataset: Any,
        *,
        transform: Any = None,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
    ) -> TeacherLogitCache:
        """Run ``teacher_logits_fn(x) -> (N, K)`` (e.g. :meth:`Distiller.teacher_logits`) over
        ``dataset`` in index order; ``transform`` is what the training loop applies to x."""
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
        out = []
        for x, _ in loader:
            x = x.to(device)
            if transform is not None:
                x = transform(x)
            out.append(teacher_logits_fn(x).float())
        return cls(torch.cat(out))


class IndexedDataset(torch.utils.data.Dataset):
    """Wraps a dataset so items are ``(x, y, index)``: what a logit cache is looked up by."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, y = self.dataset[i]
        return x, y, i

    def __getattr__(self, name: str):  # set_epoch, labels, names... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class Distiller:
    """The distillation ``loss_fn(model, x, y) -> (loss, logits)`` of the training loop.

    ``student_stream``: None when x already is the student's input (teachers then read the same
    x); a stream name when the loop hands over joint coordinates (augmented only) so that
    teachers of other streams (a 4-stream ensemble) can each get their own stream.
    """

    def __init__(
        self,
        teachers: nn.Module | TeacherMember | Sequence[TeacherMember],
        projector: FeatureProjector | None,
        *,
        student_stream: str | None = None,
        cache: TeacherLogitCache | None = None,
        **weights: float,
    ) -> None:
        """``weights``: the loss's weights, the fields of :class:`LossWeights`."""
        self.weights = LossWeights(**weights)
        if isinstance(teachers, nn.Module):
            teachers = [TeacherMember(teachers)]
        elif isinstance(teachers, TeacherMember):
            teachers = [teachers]
        self.members = list(teachers)
        if not self.members:
            raise ValueError("a Distiller needs at least one teacher")
        if student_stream is None and any(m.stream for m in self.members):
            raise ValueError("teachers with their own stream need student_stream (the loop must "
                             "hand joint coordinates to the loss)")
        if self.weights.gamma > 0 and projector is None:
            raise ValueError("distill.gamma > 0 needs a FeatureProjector")
        for m in self.members:
            freeze(m.model)
        self.projector = projector
        self.student_stream = student_stream
        self.cache = cache
        self.batch_index: torch.Tensor | None = None  # set by :meth:`with_indices`
        self.last_parts: dict[str, float] = {}

    @property
    def main(self) -> nn.Module:
        return self.members[0].model

    def _input(self, x: torch.Tensor, stream: str | None) -> torch.Tensor:
        if self.student_stream is None:
            return x
        return to_stream(x, stream or self.student_stream)

    @torch.no_grad()
    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the members' logits on x (the loss's input convention)."""
        total = None
        for m in self.members:
            m.model.eval()
            out = m.model(self._input(x, m.stream)).float() * m.weight
            total = out if total is None else total + out
        return total

    @torch.no_grad()
    def _teacher(self, x: torch.Tensor) -> tuple[torch.Tensor | None, list | None]:
        need_logits, need_feats = self.weights.beta > 0, self.weights.gamma > 0
        cached = None
        if need_logits and self.cache is not None and self.batch_index is not None:
            cached = self.cache[self.batch_index]
        feats = None
        main_logits = None
        if need_feats:
            self.main.eval()
            main_logits, f = self.main(self._input(x, self.members[0].stream),
                                       return_features=True)
            feats = f["stages"]
        if not need_logits or cached is not None:
            return cached, feats
        if len(self.members) == 1 and main_logits is not None:
            return main_logits.float() * self.members[0].weight, feats
        return self.teacher_logits(x), feats

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weights
        t_logits, t_feats = (None, None)
        if w.beta > 0 or w.gamma > 0:
            t_logits, t_feats = self._teacher(x)
        xs = self._input(x, None)
        if w.gamma > 0:
            logits, feats = model(xs, return_features=True)
            s_feats = feats["stages"]
        else:
            logits, s_feats = model(xs), None
        loss, self.last_parts = distillation_loss(logits, t_logits, y, s_feats, t_feats,
                                                  self.projector, **asdict(w))
        return loss, logits

    def with_indices(self, batches: Iterable) -> _IndexedBatches:
        """Adapt a loader over :class:`IndexedDataset` to the loop's ``(x, y)`` batches while
        telling the loss which sample indices the current batch holds (for the cache)."""
        return _IndexedBatches(batches, self)


class _IndexedBatches:
    def __init__(self, batches: Iterable, distiller: Distiller) -> None:
        self.batches, self.distiller = batches, distiller

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        try:
            for x, y, idx in self.batches:
                self.distiller.batch_index = idx
                yield x, y
        finally:
            self.distiller.batch_index = None


__all__ = [
    "Distiller",
    "FeatureProjector",
    "IndexedDataset",
    "LossWeights",
    "TeacherLogitCache",
    "TeacherMember",
    "distillation_loss",
    "feature_mimicry_loss",
    "freeze",
    "kd_loss",
]
