"""The data's groups (``stream``, ``preprocessing``, ``dataset``) and their checks, with the
validation split's keys and the search protocol that depends on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from omegaconf import DictConfig, OmegaConf

from lastexp.config.ranges import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range
from lastexp.errors import ConfigError

STREAMS = ("joint", "bone", "velocity", "bone_velocity")  # the input streams (stream.name)


@dataclass
class StreamConfig:
    name: str = "joint"  # joint | bone | velocity | bone_velocity


@dataclass
class PreprocessingConfig:
    RANGES: ClassVar[dict[str, Range]] = {
        "window": POSITIVE, "max_frames": POSITIVE, "num_person": Range(1, 2),
    }

    name: str = "t64_uniform"
    window: int = 64  # frames fed to the model
    max_frames: int = 300  # frames stored per sample in the cache
    sampling: str = "uniform"  # uniform | crop_resize
    num_person: int = 1  # M: main actor only (1) or both bodies (2)
    # A one-actor clip's second body slot: zero (CTR-GCN's data/ntu scripts, the default) or,
    # with true, a copy of the first (what CTR-GCN's data/ntu120 align_frames writes)
    copy_single_body: bool = False
    p_interval_train: list[float] = field(default_factory=lambda: [0.5, 1.0])
    p_interval_test: list[float] = field(default_factory=lambda: [0.95])
    # uniform sampling: false (the training plan's Phase 0) stores exactly `window` frames per
    # sample, frame floor((i + 0.5) * L / window) of L valid frames, the same for train and
    # test; true stores up to `max_frames` and draws a random frame in each of the `window`
    # segments every training epoch (temporal jitter, an augmentation the notes do not give)
    temporal_jitter: bool = False


def check_preprocessing(p: DictConfig) -> None:
    for key in ("p_interval_train", "p_interval_test"):
        interval = list(p[key] or [])
        if not 1 <= len(interval) <= 2 or not all(0.0 < v <= 1.0 for v in interval) or \
                sorted(interval) != interval:
            raise ConfigError(f"preprocessing.{key}={interval} must be one or two increasing "
                              "values in (0, 1], e.g. [0.5,1.0]")


@dataclass
class SyntheticConfig:
    RANGES: ClassVar[dict[str, Range]] = {
        "subjects": AT_LEAST_ONE, "samples_per_class": AT_LEAST_ONE, "min_frames": AT_LEAST_ONE,
        "max_frames": AT_LEAST_ONE, "noise": NON_NEGATIVE, "seed": NON_NEGATIVE,
    }

    subjects: int = 40  # NTU subject ids 1..N, so the official xsub rule applies
    samples_per_class: int = 100
    min_frames: int = 48
    max_frames: int = 110
    noise: float = 0.01  # sensor noise, metres
    seed: int = 0


@dataclass
class DatasetConfig:
    RANGES: ClassVar[dict[str, Range]] = {"num_classes": NON_NEGATIVE, "limit": AT_LEAST_ONE,
                                          "val_fraction": Range(0, 1, True, True)}

    name: str = "synthetic"
    benchmark: str = "synthetic"  # synthetic | ntu60 | ntu120
    split: str = "xsub"  # xsub | xview | xset
    num_classes: int = 0  # 0 = taken from the data (synthetic)
    raw_dir: Optional[str] = None
    npz: Optional[str] = None
    # NTU's published list of samples with missing skeletons (a text file, one sample name per
    # line); those samples are excluded and reported in summary.json's `skipped`
    missing_list: Optional[str] = None
    limit: Optional[int] = None  # keep only the first N samples of each split (debug)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    # A validation split carved from the training split (lastexp.data.validation; none by
    # default: the best epoch is then chosen on the test split, as the field reports): whole
    # training subjects for xsub/xset (a list of subject IDs, or a count picked reproducibly),
    # or a class-stratified fraction for xview and the synthetic corpus.
    val_subjects: Any = None
    val_fraction: Optional[float] = None


def check_dataset(d: DictConfig) -> None:
    if d.benchmark != "synthetic" and d.split == "xset" and d.benchmark != "ntu120":
        raise ConfigError("dataset.split=xset exists for ntu120 only; use xsub or xview")
    s = d.synthetic
    if s.min_frames > s.max_frames:
        raise ConfigError(f"dataset.synthetic.min_frames={s.min_frames} is above "
                          f"dataset.synthetic.max_frames={s.max_frames}; lower it")


SUBJECT_SPLITS = ("xsub", "xset")  # the splits whose validation split holds out subjects


def check_selection(cfg: DictConfig) -> None:
    """The validation split's keys (``dataset.val_subjects`` / ``dataset.val_fraction``) and the
    search's protocol: a search tunes on a validation split unless ``search.on_test=true``.
    What only the data can tell (a subject that is not a training subject) is checked when the
    split is carved (:mod:`lastexp.data.validation`)."""
    subjects = OmegaConf.select(cfg, "dataset.val_subjects")
    fraction = OmegaConf.select(cfg, "dataset.val_fraction")
    split, benchmark = OmegaConf.select(cfg, "dataset.split"), OmegaConf.select(
        cfg, "dataset.benchmark")
    if subjects is not None and fraction is not None:
        raise ConfigError("dataset.val_subjects and dataset.val_fraction both carve the "
                          "validation split; set one of them")
    if subjects is not None:
        val_subjects_spec(subjects)
        if split not in SUBJECT_SPLITS:
            raise ConfigError(f"dataset.val_subjects: the {split} split is by camera, its "
                              "training subjects are test subjects too; carve a class-stratified "
                              "share instead, e.g. dataset.val_fraction=0.1")
    if fraction is not None:
        if not 0.0 < fraction < 1.0:
            raise ConfigError(f"dataset.val_fraction={fraction} must lie in (0, 1), e.g. 0.1")
        if benchmark != "synthetic" and split in SUBJECT_SPLITS:
            raise ConfigError(f"dataset.val_fraction: the {benchmark} {split} split holds out "
                              "subjects, so validation holds out whole training subjects: "
                              "dataset.val_subjects=3 (a count) or a list of subject IDs")
    name = OmegaConf.select(cfg, "search.name")
    if name and subjects is None and fraction is None and not OmegaConf.select(
            cfg, "search.on_test"):
        raise ConfigError(f"+search={name} would tune on the test split: carve a validation "
                          "split with dataset.val_subjects=N (xsub, xset) or "
                          "dataset.val_fraction=0.1 (xview, synthetic), or pass "
                          "search.on_test=true to tune on the test split and say so")


def val_subjects_spec(value: Any) -> int | list[int]:
    """``dataset.val_subjects`` as a count (int >= 1) or a sorted list of subject IDs."""
    if isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
        items = list(value)
        if items and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                         for v in items):
            return sorted(set(items))
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ConfigError(f"dataset.val_subjects={value} must be a count of training subjects "
                      "(e.g. 3) or a list of subject IDs (e.g. [1,8])")
