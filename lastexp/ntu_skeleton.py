"""The NTU RGB+D 25-joint skeleton's bone table: the one place it is written.

The graph the models convolve over (``lastexp.models.graph``) and the bone stream
(``lastexp.data.streams``) both read it. The table is the field's reference, CTR-GCN's
``graph/ntu_rgb_d.py`` (``inward_ori_index``); its bone stream (``feeders/bone_pairs.py``) uses
the same 24 pairs plus ``(21, 21)``, the root minus itself, which is :data:`PARENT`'s root entry.

Plain Python (no torch, no numpy): the data and the model packages can both import it for free.
"""

from __future__ import annotations

NUM_JOINTS = 25
ROOT_1BASED = 21  # spine shoulder: the joint every bone points towards

# NTU's 24 bones, 1-based (child, parent); the parent is the joint nearer the spine centre.
BONES_1BASED: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7),
    (9, 21), (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15),
    (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
)  # fmt: skip

# The same bones 0-based: (child, parent) pairs, and each joint's parent (the root its own).
INWARD: tuple[tuple[int, int], ...] = tuple((c - 1, p - 1) for c, p in BONES_1BASED)
_parents = {c: p for c, p in INWARD}
PARENT: tuple[int, ...] = tuple(_parents.get(j, j) for j in range(NUM_JOINTS))
del _parents
