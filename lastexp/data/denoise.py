"""The field's reference NTU preprocessing, stage by stage, on one parsed ``.skeleton`` file.

Every method of the paper's comparison table trains on arrays made by CTR-GCN's
``data/ntu{,120}/get_raw_skes_data.py``, ``get_raw_denoised_data.py`` and
``seq_transformation.py`` (which follow the NTU authors' denoising). The rules below are
those scripts' rules, written anew for one file at a time; the names say which stage:

1. :func:`raw_bodies` -- the reader's view: frames with no body are dropped, and a body's
   frames are numbered contiguously from the frame where it first appears (the reference
   appends ``previous index + 1``, so a body that vanishes and comes back is not re-spaced).
   Each body's *motion* (only when the file has more than one body ID) is
   ``sum over x, y, z of var(coordinate over all its joints and frames)``. A body ID that
   appears twice in one frame skips the file: the reference reader would append the repeat as
   the body's next frame, shifting the rest of it (and failing once it runs past the clip).
2. :func:`denoise` -- bodies tracked for ``<= 11`` frames are dropped; then, while more than
   one body is left, a body whose frames are "noisy" (x-spread > 0.8 * y-spread) on a ratio
   ``>= 0.69754`` of its frames is dropped, and otherwise its motion becomes
   ``min(motion, motion over its non-noisy frames)``; the survivors are ordered by motion,
   largest first (ties keep the order of first appearance). The reference's third rule
   (motion thresholds) is commented out there, so it is not applied here either.
3. :func:`assign_actors` -- one body left: a 75-wide sequence. Otherwise actor 1 is the most
   moving body; each further body (in motion order) joins actor 1's slot if it does not
   overlap actor 1's interval in time (an ID switch: the same person re-tracked), else actor
   2's slot if it does not overlap actor 2's, else it is dropped. "Overlap" is the
   reference's ``min(ends) - max(starts) > 0``, and actor 2's interval starts at frame 0.
   For files with more than one body ID, frames where the chosen actors sum to zero are then
   removed (:func:`remove_missing_frames`).
4. :func:`translate` -- the origin is the spine-middle joint (joint 2) of actor 1 in the first
   frame where actor 1 is present; it is subtracted everywhere and an actor's missing frames
   are set back to zero.
5. :func:`two_body_frames` -- the (T, 2, 25, 3) layout. A one-actor sequence gets a zero
   second body (``data/ntu/seq_transformation.py``); CTR-GCN's ``data/ntu120`` copy of the
   script writes a copy of the first body instead, which ``copy_single=True`` reproduces
   (``preprocessing.copy_single_body``, off by default).

numpy only: preprocessing workers import this module and the parser, never torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .skeleton import MISSING_SKELETON, NUM_JOINTS, SkeletonFormatError

NOISE_LEN_THRES = 11  # a body tracked for this many frames or fewer is noise
NOISE_SPR_THRES1 = 0.8  # a frame is noisy when its x-spread exceeds 0.8 x its y-spread
NOISE_SPR_THRES2 = 0.69754  # a body with at least this ratio of noisy frames is noise
COORDS = NUM_JOINTS * 3  # 75 values per body and frame
NO_SURVIVOR = "no body survives denoising (every body is tracked for 11 frames or fewer)"


@dataclass
class Body:
    """One tracked body as the reference reader stores it."""

    body_id: str
    start: int  # index of its first frame among the frames that hold any body
    joints: np.ndarray  # float32 (n, 25, 3), its frames in file order
    motion: np.float32 | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.joints) - 1


def motion(joints: np.ndarray) -> np.float32:
    """The NTU authors' motion: per coordinate, the variance over all joints and frames
    together, summed over x, y, z (float32, computed as the reference computes it)."""
    return np.sum(np.var(np.ascontiguousarray(joints).reshape(-1, 3), axis=0))


def raw_bodies(parsed: dict) -> tuple[int, list[Body]]:
    """Stage 1: ``(number of frames holding a body, bodies in order of first appearance)``.

    ``parsed`` is :func:`lastexp.data.skeleton.parse_skeleton`'s result. Raises
    :class:`SkeletonFormatError` when no frame holds a body.
    """
    items = list(parsed["bodies"].items())
    if not items:
        raise SkeletonFormatError(MISSING_SKELETON)
    for bid, (frames, _) in items:
        repeat = np.flatnonzero(np.diff(frames) == 0)
        if len(repeat):
            # the reference reader would take the repeat for the body's next frame: every
            # later frame of the body shifts, and past the clip's end its script fails
            raise SkeletonFormatError(f"body ID {bid} appears twice in frame "
                                      f"{int(frames[repeat[0]]) + 1}")
    with_body = np.unique(np.concatenate([frames for _, (frames, _) in items]))
    bodies = [Body(bid, int(np.searchsorted(with_body, frames[0])), xyz)
              for bid, (frames, xyz) in items]
    if len(bodies) > 1:
        for b in bodies:
            b.motion = motion(b.joints)
    return len(with_body), bodies


def noisy_frames(joints: np.ndarray) -> np.ndarray:
    """Per frame, whether its x-spread exceeds 0.8 x its y-spread (bool (n,))."""
    x, y = joints[:, :, 0], joints[:, :, 1]
    return ~((x.max(axis=1) - x.min(axis=1)) <= NOISE_SPR_THRES1 * (y.max(axis=1) - y.min(axis=1)))


def denoise(bodies: list[Body]) -> list[Body]:
    """Stage 2 for a file with more than one body ID: the length and spread rules, then the
    survivors by motion, largest first. Returns a new list; motions may be lowered."""
    kept = [b for b in bodies if len(b.joints) > NOISE_LEN_THRES]
    for b in list(kept):
        if len(kept) == 1:
            break
        noisy = noisy_frames(b.joints)
        n_noise = int(noisy.sum())
        if n_noise == 0:
            continue
        if n_noise / float(len(b.joints)) >= NOISE_SPR_THRES2:
            kept.remove(b)
        else:
            b.motion = min(b.motion, motion(b.joints[~noisy]))
    if len(kept) == 1:
        return kept
    return sorted(kept, key=lambda b: b.motion, reverse=True)  # stable: ties keep file order


def _overlaps(start_a: int, end_a: int, start_b: int, end_b: int) -> bool:
    return min(end_a, end_b) - max(start_a, start_b) > 0


def assign_actors(bodies: list[Body], num_frames: int) -> np.ndarray:
    """Stage 3: float32 ``(num_frames, 75)`` for one body, ``(num_frames, 150)`` for two or
    more (actor 1 in the first 75 columns), with the ID-switch re-joining of the reference."""
    if not bodies:
        raise SkeletonFormatError(NO_SURVIVOR)
    if len(bodies) == 1:
        b = bodies[0]
        out = np.zeros((num_frames, COORDS), dtype=np.float32)
        out[b.start: b.end + 1] = b.joints.reshape(-1, COORDS)
        return out
    out = np.zeros((num_frames, 2 * COORDS), dtype=np.float32)
    first, rest = bodies[0], bodies[1:]
    s1, e1 = first.start, first.end
    out[s1: e1 + 1, :COORDS] = first.joints.reshape(-1, COORDS)
    s2, e2 = 0, 0  # the reference's initial (virtual) interval of actor 2
    for b in rest:
        if not _overlaps(s1, e1, b.start, b.end):
            out[b.start: b.end + 1, :COORDS] = b.joints.reshape(-1, COORDS)
            s1, e1 = min(b.start, s1), max(b.end, e1)
        elif not _overlaps(s2, e2, b.start, b.end):
            out[b.start: b.end + 1, COORDS:] = b.joints.reshape(-1, COORDS)
            s2, e2 = min(b.start, s2), max(b.end, e2)
    return out


def remove_missing_frames(seq: np.ndarray) -> np.ndarray:
    """Drop the frames whose values sum to zero (no chosen actor present)."""
    return seq[seq.sum(axis=1) != 0]


def translate(seq: np.ndarray) -> np.ndarray:
    """Stage 4: subtract actor 1's spine-middle joint in its first present frame; frames where
    an actor is missing stay zero. Returns a new float32 array of the same shape."""
    seq = np.array(seq, dtype=np.float32, copy=True)
    two = seq.shape[1] == 2 * COORDS
    if two:
        missing1 = seq[:, :COORDS].sum(axis=1) == 0
        missing2 = seq[:, COORDS:].sum(axis=1) == 0
    present = np.flatnonzero((seq[:, :COORDS] != 0).any(axis=1))
    if not len(present):
        raise SkeletonFormatError(MISSING_SKELETON)
    origin = seq[present[0], 3:6].copy()
    seq -= np.tile(origin, seq.shape[1] // 3)
    if two:
        seq[missing1, :COORDS] = 0
        seq[missing2, COORDS:] = 0
    return seq


def denoised_sequence(parsed: dict) -> np.ndarray:
    """Stages 1-3: the denoised actor sequence, float32 ``(T, 75)`` or ``(T, 150)``."""
    num_frames, bodies = raw_bodies(parsed)
    if len(bodies) == 1:
        return assign_actors(bodies, num_frames)
    seq = assign_actors(denoise(bodies), num_frames)
    return remove_missing_frames(seq)


def two_body_frames(seq: np.ndarray, copy_single: bool) -> np.ndarray:
    """Stage 5: ``(T, 75|150)`` -> float32 ``(T, 2, 25, 3)``; a one-actor sequence gets a zero
    second body, or a copy of the first with ``copy_single`` (CTR-GCN's data/ntu120 script)."""
    t = len(seq)
    out = np.zeros((t, 2, NUM_JOINTS, 3), dtype=np.float32)
    if seq.shape[1] == COORDS:
        out[:, 0] = seq.reshape(t, NUM_JOINTS, 3)
        if copy_single:
            out[:, 1] = out[:, 0]
    else:
        out[:] = seq.reshape(t, 2, NUM_JOINTS, 3)
    return out


def reference_sequence(parsed: dict, copy_single: bool = False) -> np.ndarray:
    """All stages: float32 ``(T, 2, 25, 3)``, T the frames the reference keeps."""
    return two_body_frames(translate(denoised_sequence(parsed)), copy_single)


__all__ = ["Body", "NOISE_LEN_THRES", "NOISE_SPR_THRES1", "NOISE_SPR_THRES2", "assign_actors",
           "denoise", "denoised_sequence", "motion", "noisy_frames",
           "raw_bodies", "reference_sequence", "remove_missing_frames", "translate",
           "two_body_frames"]
