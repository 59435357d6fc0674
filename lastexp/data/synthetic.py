"""Deterministic synthetic NTU-like corpus, written as real ``.skeleton`` files.

Each action class is a motion program of a 25-joint NTU skeleton driven by forward
kinematics: some pairs differ only by speed (velocity matters), some only by body region
(the same swing on an arm or a leg), and some are two-person interactions. Samples vary by
subject proportions, camera yaw (cameras 1..3 = +45/0/-45 deg), setup (distance, height),
replication, per-sample amplitude/phase/speed jitter, length, and sensor noise; some files
start with 0-body frames and some carry a Kinect-like "ghost" body the denoiser must drop.
numpy only: this module must not import torch.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lastexp.config import SyntheticConfig
from lastexp.errors import DataError

from .convert import synthetic_config
from .locks import held, remove_corpus_leftovers

GENERATOR_VERSION = 3
FPS = 30.0
# Program time spans DURATION s (x speed jitter) whatever the frame count, so that cycles
# per sequence, which survive resampling to a fixed window, separate the speed pairs.
DURATION = 2.6

ACTIONS: list[str] = [
    "wave right hand",  # 0  \ speed pair
    "wave right hand fast",  # 1  /
    "swing right arm",  # 2  \ region pair
    "swing right leg",  # 3  /
    "raise both arms",  # 4
    "squat down",  # 5
    "jump up",  # 6
    "bow",  # 7
    "clap hands",  # 8
    "march in place",  # 9  \ speed pair
    "jog in place",  # 10 /
    "handshake",  # 11 two persons
    "push other person",  # 12 two persons
    "hug other person",  # 13 two persons
]
TWO_PERSON = frozenset((11, 12, 13))

# 1-based NTU joints; forward-kinematics tree rooted at the base of the spine.
_FK_PARENT = {
    2: 1, 21: 2, 3: 21, 4: 3, 5: 21, 6: 5, 7: 6, 8: 7, 22: 8, 23: 7,
    9: 21, 10: 9, 11: 10, 12: 11, 24: 12, 25: 11,
    13: 1, 14: 13, 15: 14, 16: 15, 17: 1, 18: 17, 19: 18, 20: 19,
}
_FK_ORDER = [1, 2, 21, 3, 4, 5, 6, 7, 8, 22, 23, 9, 10, 11, 12, 24, 25,
             13, 14, 15, 16, 17, 18, 19, 20]
# Rest pose (metres): x = the person's left, y = up, z = the person's back (front is -z).
_REST = {
    1: (0.0, 1.00, 0.0), 2: (0.0, 1.25, 0.0), 21: (0.0, 1.45, 0.0), 3: (0.0, 1.52, 0.0),
    4: (0.0, 1.65, 0.0),
    5: (0.18, 1.42, 0.0), 6: (0.20, 1.15, 0.0), 7: (0.21, 0.90, 0.0), 8: (0.21, 0.82, 0.0),
    22: (0.21, 0.74, 0.0), 23: (0.19, 0.82, -0.03),
    13: (0.09, 0.97, 0.0), 14: (0.10, 0.53, 0.0), 15: (0.10, 0.10, 0.0), 16: (0.10, 0.04, -0.12),
}
for _l, _r in ((5, 9), (6, 10), (7, 11), (8, 12), (22, 24), (23, 25),
               (13, 17), (14, 18), (15, 19), (16, 20)):
    _x, _y, _z = _REST[_l]
    _REST[_r] = (-_x, _y, _z)
_ARM = {6, 7, 8, 22, 23, 10, 11, 12, 24, 25}
_LEG = {14, 15, 16, 18, 19, 20}

CAMERA_YAW_DEG = {1: 45.0, 2: 0.0, 3: -45.0}
NUM_SETUPS = 6


def _j(joint: int) -> int:
    return joint - 1


def _euler(a: np.ndarray) -> np.ndarray:
    """(..., 3) angles about x, y, z -> (..., 3, 3) rotation Rz @ Ry @ Rx."""
    cx, cy, cz = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    sx, sy, sz = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    r = np.empty(a.shape[:-1] + (3, 3))
    r[..., 0, 0] = cz * cy
    r[..., 0, 1] = cz * sy * sx - sz * cx
    r[..., 0, 2] = cz * sy * cx + sz * sx
    r[..., 1, 0] = sz * cy
    r[..., 1, 1] = sz * sy * sx + cz * cx
    r[..., 1, 2] = sz * sy * cx - cz * sx
    r[..., 2, 0] = -sy
    r[..., 2, 1] = cy * sx
    r[..., 2, 2] = cy * cx
    return r


def _rot_y(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _forward_kinematics(offsets: np.ndarray, angles: np.ndarray, root: np.ndarray) -> np.ndarray:
    """offsets (25, 3) bone vectors from FK parent; angles (T, 25, 3); root (T, 3) -> (T, 25, 3)."""
    t = len(angles)
    local = _euler(angles)
    glob = np.empty((t, 25, 3, 3))
    pos = np.empty((t, 25, 3))
    glob[:, 0] = local[:, 0]
    pos[:, 0] = root + np.array(_REST[1])
    for joint in _FK_ORDER[1:]:
        j, p = _j(joint), _j(_FK_PARENT[joint])
        pos[:, j] = pos[:, p] + glob[:, p] @ offsets[j]
        glob[:, j] = glob[:, p] @ local[:, j]
    return pos


def _subject_offsets(seed: int, subject: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 7919, subject])
    height = rng.uniform(0.88, 1.12)
    arm = rng.uniform(0.92, 1.08)
    leg = rng.uniform(0.92, 1.08)
    off = np.zeros((25, 3))
    for joint, parent in _FK_PARENT.items():
        vec = np.subtract(_REST[joint], _REST[parent]) * height
        if joint in _ARM:
            vec *= arm
        elif joint in _LEG:
            vec *= leg
        off[_j(joint)] = vec
    return off


def _ramp(u: np.ndarray, a: float, b: float) -> np.ndarray:
    x = np.clip((u - a) / (b - a), 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _envelope(u: np.ndarray) -> np.ndarray:
    return _ramp(u, 0.0, 0.15) * (1.0 - _ramp(u, 0.85, 1.0))


def _program(label: int, t: np.ndarray, u: np.ndarray, amp: float, phase: float):
    """Joint angles (P, T, 25, 3) and root offsets (P, T, 3) for each person of a class."""
    n = len(t)
    persons = 2 if label in TWO_PERSON else 1
    a = np.zeros((persons, n, 25, 3))
    root = np.zeros((persons, n, 3))
    env = _envelope(u)
    w = 2 * np.pi * t

    def sin(freq: float) -> np.ndarray:
        return np.sin(w * freq + phase)

    if label in (0, 1):  # wave: raised right arm, forearm oscillating side to side
        freq = 1.0 if label == 0 else 2.0
        a[0, :, _j(9), 2] = -1.3 * env * amp
        a[0, :, _j(10), 2] = (-1.1 + 0.7 * sin(freq)) * env * amp
    elif label == 2:  # swing right arm forward/back
        a[0, :, _j(9), 0] = 0.8 * amp * sin(0.8) * env
    elif label == 3:  # the same swing on the right leg
        a[0, :, _j(17), 0] = 0.8 * amp * sin(0.8) * env
    elif label == 4:  # raise both arms sideways over the head and lower them
        lift = 1.3 * (1 - np.cos(w * 0.5)) * amp
        a[0, :, _j(5), 2] = lift
        a[0, :, _j(9), 2] = -lift
    elif label == 5:  # squat
        d = 0.5 * (1 - np.cos(w * 0.5)) * amp
        a[0, :, _j(13), 0] = a[0, :, _j(17), 0] = 1.2 * d
        a[0, :, _j(14), 0] = a[0, :, _j(18), 0] = -2.0 * d
        a[0, :, _j(15), 0] = a[0, :, _j(19), 0] = 0.8 * d
        a[0, :, _j(2), 0] = -0.3 * d
        a[0, :, _j(5), 0] = a[0, :, _j(9), 0] = 1.0 * d
        root[0, :, 1] = -0.45 * d
    elif label == 6:  # jump
        s = sin(0.9)
        up = np.maximum(s, 0.0) ** 1.5 * 0.3 * amp
        crouch = np.maximum(-s, 0.0) * amp
        root[0, :, 1] = up - 0.12 * crouch
        a[0, :, _j(14), 0] = a[0, :, _j(18), 0] = -0.8 * crouch
        a[0, :, _j(13), 0] = a[0, :, _j(17), 0] = 0.5 * crouch
        a[0, :, _j(5), 0] = a[0, :, _j(9), 0] = 1.2 * np.maximum(s, 0.0) * amp - 0.4 * crouch
    elif label == 7:  # bow
        d = 0.5 * (1 - np.cos(w * 0.4)) * amp
        a[0, :, _j(2), 0] = -0.9 * d
        a[0, :, _j(3), 0] = -0.3 * d
    elif label == 8:  # clap: arms forward, hands meeting repeatedly
        a[0, :, _j(5), 0] = a[0, :, _j(9), 0] = 1.3 * env * amp
        a[0, :, _j(6), 0] = a[0, :, _j(10), 0] = 0.4 * env
        opening = 0.8 * (0.5 + 0.5 * sin(1.8)) * amp
        a[0, :, _j(5), 1] = (0.25 - opening) * env
        a[0, :, _j(9), 1] = -(0.25 - opening) * env
    elif label in (9, 10):  # march / jog in place: same program, double speed
        freq = 0.9 if label == 9 else 1.8
        s = sin(freq)
        lift_l, lift_r = np.maximum(s, 0.0), np.maximum(-s, 0.0)
        a[0, :, _j(13), 0] = 0.7 * lift_l * amp
        a[0, :, _j(17), 0] = 0.7 * lift_r * amp
        a[0, :, _j(14), 0] = -1.1 * lift_l * amp
        a[0, :, _j(18), 0] = -1.1 * lift_r * amp
        a[0, :, _j(5), 0] = 0.45 * s * amp
        a[0, :, _j(9), 0] = -0.45 * s * amp
        a[0, :, _j(6), 0] = a[0, :, _j(10), 0] = 0.5
    elif label == 11:  # handshake: both approach and shake right hands
        for p in range(2):
            e = _ramp(u, 0.15, 0.35) * (1 - _ramp(u, 0.8, 0.95))
            root[p, :, 2] = -0.2 * _ramp(u, 0.0, 0.3)
            a[p, :, _j(9), 0] = (1.0 + 0.15 * np.sin(w * 2.5 + phase)) * e * amp
            a[p, :, _j(10), 0] = 0.4 * e
    elif label == 12:  # push: A steps in and thrusts both arms, B is driven back
        thrust = _ramp(u, 0.3, 0.45) * (1 - _ramp(u, 0.7, 0.9))
        root[0, :, 2] = -0.25 * _ramp(u, 0.15, 0.45)
        a[0, :, _j(5), 0] = a[0, :, _j(9), 0] = 1.4 * thrust * amp
        a[0, :, _j(6), 0] = a[0, :, _j(10), 0] = 1.2 * (1 - thrust)
        back = _ramp(u, 0.4, 0.7)
        root[1, :, 2] = 0.5 * back * amp
        a[1, :, _j(2), 0] = 0.35 * (back - _ramp(u, 0.7, 0.95)) * amp
        a[1, :, _j(5), 2] = 0.6 * back * (1 - _ramp(u, 0.75, 1.0))
        a[1, :, _j(9), 2] = -0.6 * back * (1 - _ramp(u, 0.75, 1.0))
    elif label == 13:  # hug: walk towards each other and wrap the arms around
        for p in range(2):
            root[p, :, 2] = -0.35 * _ramp(u, 0.0, 0.5)
            wrap = _ramp(u, 0.3, 0.6) * (1 - _ramp(u, 0.85, 1.0)) * amp
            a[p, :, _j(5), 0] = a[p, :, _j(9), 0] = 1.3 * wrap
            a[p, :, _j(5), 1] = 0.6 * wrap
            a[p, :, _j(9), 1] = -0.6 * wrap
            a[p, :, _j(6), 0] = a[p, :, _j(10), 0] = 1.0 * wrap
    else:
        raise ValueError(f"unknown synthetic action {label}")
    return a, root


@dataclass(frozen=True)
class _Sample:
    label: int
    index: int
    subject: int
    camera: int
    setup: int
    replication: int

    @property
    def name(self) -> str:
        return (
            f"S{self.setup:03d}C{self.camera:03d}P{self.subject:03d}"
            f"R{self.replication:03d}A{self.label + 1:03d}"
        )


# the fields of SyntheticConfig that make the corpus: hashed into its folder name and the cache
# key, so a field added to SyntheticConfig renames nothing unless it is listed here
CORPUS_FIELDS = ("subjects", "samples_per_class", "min_frames", "max_frames", "noise", "seed")


def corpus_fields(cfg: SyntheticConfig) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in CORPUS_FIELDS}


MAX_SUBJECTS = 999  # NTU names hold the subject in three digits (P001 .. P999)


def check_synthetic(cfg: SyntheticConfig) -> None:
    """Refuse a corpus that cannot be made, naming the ``dataset.synthetic`` key
    (:class:`DataError`, one line): sizes below 1, ``min_frames`` above ``max_frames``,
    a noise that is negative or not finite."""
    key = "dataset.synthetic"
    for name in ("subjects", "samples_per_class", "min_frames", "max_frames"):
        value = getattr(cfg, name)
        if not int(value) >= 1:
            raise DataError(f"{key}.{name}={value} must be >= 1")
    if int(cfg.subjects) > MAX_SUBJECTS:
        raise DataError(f"{key}.subjects={cfg.subjects} must be <= {MAX_SUBJECTS} (NTU names "
                        "hold the subject in three digits)")
    if int(cfg.min_frames) > int(cfg.max_frames):
        raise DataError(f"{key}.min_frames={cfg.min_frames} is above {key}.max_frames="
                        f"{cfg.max_frames}; set min_frames <= max_frames")
    noise = float(cfg.noise)
    if not (np.isfinite(noise) and noise >= 0):
        raise DataError(f"{key}.noise={cfg.noise} must be a finite value >= 0 (metres)")


def plan_samples(cfg: SyntheticConfig) -> list[_Sample]:
    """(subject, camera, setup, replication) of every file; every subject/camera appears."""
    check_synthetic(cfg)
    subjects, spc = int(cfg.subjects), int(cfg.samples_per_class)
    out = []
    for label in range(len(ACTIONS)):
        seen = set()
        for k in range(spc):
            subject = k % subjects + 1
            cycle = k // subjects
            camera = (subject + cycle + label) % 3 + 1
            replication = (cycle // 3) % 2 + 1
            setup = 1 + (subject * 5 + label * 3 + cycle // 6) % NUM_SETUPS
            key = (subject, camera, setup, replication)
            while key in seen:  # only for very large samples_per_class / few subjects
                setup += NUM_SETUPS
                key = (subject, camera, setup, replication)
            seen.add(key)
            out.append(_Sample(label, k, subject, camera, setup, replication))
    return out


# Kinect v2 SDK text: floats with 7 significant digits and C#-style exponents (1.234567E-05)
_JOINT_FMT = "%.7G " * 11 + "2\r\n"
_BLOCK_FMT = "25\r\n" + _JOINT_FMT * 25


def _joint_fields(xyz: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """xyz (T, 25, 3) camera space, local angles (T, 25, 3) -> (T, 25, 11) joint-line values."""
    z = np.maximum(xyz[..., 2], 0.3)
    fields = np.empty(xyz.shape[:2] + (11,))
    fields[..., :3] = xyz
    fields[..., 3] = 256.0 + 365.0 * xyz[..., 0] / z
    fields[..., 4] = 212.0 - 365.0 * xyz[..., 1] / z
    fields[..., 5] = 960.0 + 1060.0 * xyz[..., 0] / z
    fields[..., 6] = 540.0 - 1060.0 * xyz[..., 1] / z
    q = np.concatenate([np.ones(angles.shape[:2] + (1,)), 0.5 * angles], axis=-1)
    q[..., 1] += 0.03
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    fields[..., 7:] = q
    return fields


def _body_infos(rng: np.random.Generator, body_id: int, n: int) -> list[str]:
    """One 10-field body-info line per frame (IDs, hand states, lean, tracking state)."""
    hands = rng.integers(0, 3, size=(n, 2)).tolist()
    lean = np.cumsum(rng.normal(0.0, 0.01, size=(n, 2)), axis=0).tolist()
    return [
        f"{body_id} 0 1 {h[0]} 1 {h[1]} 0 {le[0]:.7G} {le[1]:.7G} 2\r\n"
        for h, le in zip(hands, lean)
    ]


def render_sample(sample: _Sample, cfg: SyntheticConfig) -> str:
    """The full text of one ``.skeleton`` file (CRLF line endings)."""
    rng = np.random.default_rng([int(cfg.seed), sample.label, sample.index, 31337])
    n = int(rng.integers(int(cfg.min_frames), int(cfg.max_frames) + 1))
    speed = rng.uniform(0.85, 1.15)
    u = np.linspace(0.0, 1.0, n)
    t = u * DURATION * speed
    amp = rng.uniform(0.8, 1.2)
    phase = rng.uniform(0.0, 2 * np.pi)
    angles, roots = _program(sample.label, t, u, amp, phase)
    persons = len(angles)

    # scene placement: setup sets distance and camera height; camera id sets the yaw
    distance = 2.6 + 0.35 * ((sample.setup - 1) % 3) + rng.uniform(-0.1, 0.1)
    cam_height = 0.75 + 0.2 * ((sample.setup - 1) % 2) + rng.uniform(-0.05, 0.05)
    cam_yaw = np.deg2rad(CAMERA_YAW_DEG[sample.camera] + rng.uniform(-8.0, 8.0))
    centre = np.array([rng.uniform(-0.2, 0.2), -cam_height, distance])
    r_cam = _rot_y(cam_yaw)
    if persons == 1:
        facing = [0.0]
        place = [np.zeros(3)]
    else:
        half = 0.8 if sample.label == 13 else 0.55
        facing = [-np.pi / 2, np.pi / 2]
        place = [np.array([-half, 0.0, 0.0]), np.array([half, 0.0, 0.0])]
    bodies = []
    for p in range(persons):
        subject = sample.subject if p == 0 else (sample.subject % int(cfg.subjects)) + 1
        offsets = _subject_offsets(int(cfg.seed), subject)
        local = _forward_kinematics(offsets, angles[p], roots[p])
        r_face = _rot_y(facing[p] + rng.uniform(-0.15, 0.15))
        world = local @ r_face.T + place[p]
        cam = world @ r_cam.T + centre
        cam += rng.normal(0.0, float(cfg.noise), size=cam.shape)
        bodies.append(_joint_fields(cam, angles[p]))

    present = np.ones((len(bodies), n), dtype=bool)
    if rng.random() < 0.10:  # Kinect starts tracking a little late
        present[:, : int(rng.integers(1, 4))] = False
    if persons == 1 and rng.random() < 0.15:  # a jittery ghost body
        ghost = np.zeros((n, 25, 3))
        main = bodies[0][..., :3]
        if rng.random() < 0.5:  # short-lived: tracked for < 11 frames
            dur = int(rng.integers(2, 11))
            shift = np.array([rng.choice([-1, 1]) * rng.uniform(0.6, 1.2), 0.0, 0.3])
            ghost[:] = main + shift + rng.normal(0.0, 0.08, size=main.shape)
        else:  # a wide flat blob (x-spread >> y-spread): not a human
            dur = int(rng.integers(11, max(12, n // 2)))
            cx, cy, cz = rng.uniform(-0.8, 0.8), rng.uniform(-0.6, 0.0), distance + 0.5
            ghost[..., 0] = cx + rng.uniform(-0.8, 0.8, size=(n, 25))
            ghost[..., 1] = cy + rng.uniform(-0.12, 0.12, size=(n, 25))
            ghost[..., 2] = cz + rng.normal(0.0, 0.1, size=(n, 25))
        start = int(rng.integers(0, max(1, n - dur)))
        row = np.zeros(n, dtype=bool)
        row[start: start + dur] = True
        bodies.append(_joint_fields(ghost, np.zeros((n, 25, 3))))
        present = np.vstack([present, row])

    base_id = 72057594037927936 + int(rng.integers(0, 10**5)) * 8
    ids = [base_id + 3 * b for b in range(len(bodies))]
    infos = [_body_infos(rng, ids[b], n) for b in range(len(bodies))]
    on_list = present.T.tolist()
    parts = [f"{n}\r\n"]
    values = []
    for frame in range(n):
        on = [b for b, flag in enumerate(on_list[frame]) if flag]
        parts.append(f"{len(on)}\r\n")
        for b in on:
            parts.append(infos[b][frame])
            parts.append(_BLOCK_FMT)
            values.append(bodies[b][frame])
    if not values:
        return "".join(parts)
    return "".join(parts) % tuple(np.concatenate(values).ravel().tolist())


def _write_one(args: tuple) -> str:
    out_dir, sample, cfg = args
    path = Path(out_dir) / f"{sample.name}.skeleton"
    with open(path, "w", newline="") as fh:
        fh.write(render_sample(sample, cfg))
    return str(path)


def generate_corpus(out_dir: str | Path, cfg: SyntheticConfig,
                    workers: int | None = None) -> list[Path]:
    """Write the whole corpus into ``out_dir``; returns the file paths (sorted)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), s, cfg) for s in plan_samples(cfg)]
    workers = min(os.cpu_count() or 1, 4) if workers is None else workers
    if workers > 1 and len(jobs) >= 200:
        ctx = mp.get_context(_mp_context())
        with ctx.Pool(workers, initializer=pool_worker_init) as pool:
            paths = pool.map(_write_one, jobs, chunksize=16)
    else:
        paths = [_write_one(j) for j in jobs]
    return sorted(Path(p) for p in paths)


def pool_worker_init() -> None:
    """Forked workers inherit the parent's signal handlers; under submitit SIGTERM is ignored,
    so Pool's terminate() would hang the job and USR2 would run submitit's checkpoint inside a
    worker. Workers take the defaults back and leave preemption to the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _mp_context() -> str:
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def corpus_hash(cfg: SyntheticConfig) -> str:
    blob = json.dumps({"v": GENERATOR_VERSION, **corpus_fields(cfg)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def ensure_corpus(data_root: str | Path, cfg: SyntheticConfig | Mapping[str, Any]) -> Path:
    """``<data_root>/synthetic/<hash>/raw``, generated once (atomically) and then reused.
    ``cfg``: a SyntheticConfig, or an OmegaConf node or dict of its fields. A corpus that
    cannot be made is refused before anything is written (:func:`check_synthetic`).

    Generation holds ``<hash>/raw.lock`` (a second command waits, then reuses the corpus) and
    writes ``raw.tmp-<pid>``, renamed to ``raw`` when complete; the ``raw.tmp-*`` that a
    killed generation left are removed under the lock."""
    cfg = synthetic_config(cfg)
    check_synthetic(cfg)
    base = Path(data_root) / "synthetic" / corpus_hash(cfg)
    raw = base / "raw"
    if raw.is_dir() and not any(base.glob("raw.tmp-*")):
        return raw
    base.mkdir(parents=True, exist_ok=True)
    with held(base / "raw.lock", discard_on_error=True):
        remove_corpus_leftovers(base)
        if raw.is_dir():
            return raw
        tmp = base / f"raw.tmp-{os.getpid()}"
        try:
            generate_corpus(tmp, cfg)
            (tmp / "config.json").write_text(json.dumps(corpus_fields(cfg), sort_keys=True))
            os.rename(tmp, raw)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return raw
