"""Deterministic synthetic NTU-like corpus, written as real ``.skeleton`` files.

The people and their motion programs (one per action class) are in
:mod:`lastexp.data.synthetic_motion`. Samples vary by subject proportions, camera yaw (cameras
1..3 = +45/0/-45 deg), setup (distance, height), replication, per-sample amplitude/phase/speed
jitter, length, and sensor noise; some files start with 0-body frames and some carry a
Kinect-like "ghost" body the denoiser must drop.
numpy only: this module must not import torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lastexp.config import SyntheticConfig
from lastexp.errors import DataError

from .convert import synthetic_config
from .locks import held, remove_corpus_leftovers
from .synthetic_motion import ACTIONS, forward_kinematics, program, rot_y, subject_offsets
from .workers import map_jobs

GENERATOR_VERSION = 3
FPS = 30.0
# Program time spans DURATION s (x speed jitter) whatever the frame count, so that cycles
# per sequence, which survive resampling to a fixed window, separate the speed pairs.
DURATION = 2.6

CAMERA_YAW_DEG = {1: 45.0, 2: 0.0, 3: -45.0}
NUM_SETUPS = 6


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
    angles, roots = program(sample.label, t, u, amp, phase)
    persons = len(angles)

    # scene placement: setup sets distance and camera height; camera id sets the yaw
    distance = 2.6 + 0.35 * ((sample.setup - 1) % 3) + rng.uniform(-0.1, 0.1)
    cam_height = 0.75 + 0.2 * ((sample.setup - 1) % 2) + rng.uniform(-0.05, 0.05)
    cam_yaw = np.deg2rad(CAMERA_YAW_DEG[sample.camera] + rng.uniform(-8.0, 8.0))
    centre = np.array([rng.uniform(-0.2, 0.2), -cam_height, distance])
    r_cam = rot_y(cam_yaw)
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
        offsets = subject_offsets(int(cfg.seed), subject)
        local = forward_kinematics(offsets, angles[p], roots[p])
        r_face = rot_y(facing[p] + rng.uniform(-0.15, 0.15))
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
    paths = map_jobs(_write_one, jobs, workers if len(jobs) >= 200 else 1, chunksize=16)
    return sorted(Path(p) for p in paths)


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
