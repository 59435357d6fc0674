"""Official NTU RGB+D 60/120 benchmark splits (numpy-free, torch-free)."""

from __future__ import annotations

from .skeleton import NTUName

NTU60_XSUB_TRAIN = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
)
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN | frozenset(
    (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83,
     84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
)
XVIEW_TRAIN_CAMERAS = frozenset((2, 3))

BENCHMARKS = ("synthetic", "ntu60", "ntu120")
SPLITS = ("xsub", "xview", "xset")
NUM_CLASSES = {"ntu60": 60, "ntu120": 120}


def is_train(name: NTUName, benchmark: str, split: str) -> bool:
    """Whether a sample belongs to the training side of ``benchmark``/``split``."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark {benchmark!r} is not one of {', '.join(BENCHMARKS)}")
    if split == "xsub":
        subjects = NTU120_XSUB_TRAIN if benchmark == "ntu120" else NTU60_XSUB_TRAIN
        return name.subject in subjects
    if split == "xview":
        return name.camera in XVIEW_TRAIN_CAMERAS
    if split == "xset":
        if benchmark == "ntu60":
            raise ValueError("split 'xset' is defined for ntu120 (and synthetic) only")
        return name.setup % 2 == 0
    raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")


def keep_action(name: NTUName, benchmark: str) -> bool:
    """ntu60 keeps actions 1..60 only; ntu120 keeps 1..120; synthetic keeps all."""
    if benchmark in NUM_CLASSES:
        return 1 <= name.action <= NUM_CLASSES[benchmark]
    return name.action >= 1
