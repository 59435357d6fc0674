"""The synthetic corpus's people: a 25-joint NTU skeleton driven by forward kinematics, and one
motion program per action class (joint angles and root offsets over time).

Some class pairs differ only by speed (velocity matters), some only by body region (the same
swing on an arm or a leg), and some are two-person interactions. :mod:`lastexp.data.synthetic`
places the people in a scene and writes the ``.skeleton`` files.
numpy only: this module must not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

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


def rot_y(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def forward_kinematics(offsets: np.ndarray, angles: np.ndarray, root: np.ndarray) -> np.ndarray:
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


def subject_offsets(seed: int, subject: int) -> np.ndarray:
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


@dataclass(frozen=True)
class _Motion:
    """The time base of one sample's program: normalised time ``u`` (0..1), angular time
    ``w = 2 pi t``, the fade-in/fade-out ``env``, and the sample's amplitude and phase."""

    u: np.ndarray
    w: np.ndarray
    env: np.ndarray
    amp: float
    phase: float

    def sin(self, freq: float) -> np.ndarray:
        return np.sin(self.w * freq + self.phase)


def _wave(a: np.ndarray, root: np.ndarray, m: _Motion, freq: float) -> None:
    """Raised right arm, forearm oscillating side to side."""
    a[0, :, _j(9), 2] = -1.3 * m.env * m.amp
    a[0, :, _j(10), 2] = (-1.1 + 0.7 * m.sin(freq)) * m.env * m.amp


def _swing(a: np.ndarray, root: np.ndarray, m: _Motion, joint: int) -> None:
    """Swing the limb at ``joint`` (right shoulder or hip) forward and back."""
    a[0, :, _j(joint), 0] = 0.8 * m.amp * m.sin(0.8) * m.env


def _raise_arms(a: np.ndarray, root: np.ndarray, m: _Motion) -> None:
    """Raise both arms sideways over the head and lower them."""
    lift = 1.3 * (1 - np.cos(m.w * 0.5)) * m.amp
    a[0, :, _j(5), 2] = lift
    a[0, :, _j(9), 2] = -lift


def _squat(a: np.ndarray, root: np.ndarray, m: _Motion) -> None:
    d = 0.5 * (1 - np.cos(m.w * 0.5)) * m.amp
    a[0, :, _j(13), 0] = a[0, :, _j(17), 0] = 1.2 * d
    a[0, :, _j(14), 0] = a[0, :, _j(18), 0] = -2.0 * d
    a[0, :, _j(15), 0] = a[0, :, _j(19), 0] = 0.8 * d
    a[0, :, _j(2), 0] = -0.3 * d
    a[0, :, _j(5), 0] = a[0, :, _j(9), 0] = 1.0 * d
    root[0, :, 1] = -0.45 * d


def _jump(a: np.ndarray, root: np.ndarray, m: _Motion) -> None:
    s = m.sin(0.9)
    up = np.maximum(s, 0.0) ** 1.5 * 0.3 * m.amp
    crouch = np.maximum(-s, 0.0) * m.amp
    root[0, :, 1] = up - 0.12 * crouch
    a[0, :, _j(14), 0] = a[0, :, _j(18), 0] = -0.8 * crouch
    a[0, :, _j(13), 0] = a[0, :, _j(17), 0] = 0.5 * crouch
    a[0, :, _j(5), 0] = a[0, :, _j(9), 0] = 1.2 * np.maximum(s, 0.0) * m.amp - 0.4 * crouch


def _bow(a: np.ndarray, root: np.ndarray, m: _Motion) -> None:
    d = 0.5 * (1 - np.cos(m.w * 0.4)) * m.amp
    a[0, :, _j(2), 0] = -0.9 * d
    a[0, :, _j(3), 0] = -0.3 * d


def _clap(a: np.ndarray, root: np.ndarray, m: _Motion) -> None:
    """Arms forward, hands meeting repeatedly."""
    a[0, :, _j(5), 0] = a[0, :, _j(9), 0] = 1.3 * m.env * m.amp
    a[0, :, _j(6), 0] = a[0, :, _j(10), 0] = 0.4 * m.env
    opening = 0.8 * (0.5 + 0.5 * m.sin(1.8)) * m.amp
    a[0, :, _j(5), 1] = (0.25 - opening) * m.env
    a[0, :, _j(9), 1] = -(0.25 - opening) * m.env


def _march(a: np.ndarray, root: np.ndarray, m: _Motion, freq: float) -> None:
    """March or jog in place: the same program, at double speed for jogging."""
    s = m.sin(freq)
    lift_l, lift_r = np.maximum(s, 0.0), np.maximum(-s, 0.0)
    a[0, :, _j(13), 0] = 0.7 * lift_l * m.amp
    a[0, :, _j(17), 0] = 0.7 * lift_r * m.amp
    a[0, :, _j(14), 0] = -1.1 * lift_l * m.amp
    a[0, :, _j(18), 0] = -1.1 * lift_r * m.amp
    a[0, :, _j(5), 0] = 0.45 * s * m.amp
    a[0, :, _j(9), 0] = -0.45 * s * m.amp
    a[0, :, _j(6), 0] = a[0, :, _j(10), 0] = 0.5


def _handshake(a: np.ndarray, root: np.ndarray, m: _Motion) -> None:
    """Both approach and shake right hands."""
    u = m.u
    for p in range(2):
        e = _ramp(u, 0.15, 0.35) * (1 - _ramp(u, 0.8, 0.95))
        root[p, :, 2] = -0.2 * _ramp(u, 0.0, 0.3)
        a[p, :, _j(9), 0] = (1.0 + 0.15 * m.sin(2.5)) * e * m.amp
        a[p, :, _j(10), 0] = 0.4 * e


def _push(a: np.ndarray, root: np.ndarray, m: _Motion) -> None:
    """A steps in and thrusts both arms, B is driven back."""
    u, amp = m.u, m.amp
    thrust = _ramp(u, 0.3, 0.45) * (1 - _ramp(u, 0.7, 0.9))
    root[0, :, 2] = -0.25 * _ramp(u, 0.15, 0.45)
    a[0, :, _j(5), 0] = a[0, :, _j(9), 0] = 1.4 * thrust * amp
    a[0, :, _j(6), 0] = a[0, :, _j(10), 0] = 1.2 * (1 - thrust)
    back = _ramp(u, 0.4, 0.7)
    root[1, :, 2] = 0.5 * back * amp
    a[1, :, _j(2), 0] = 0.35 * (back - _ramp(u, 0.7, 0.95)) * amp
    a[1, :, _j(5), 2] = 0.6 * back * (1 - _ramp(u, 0.75, 1.0))
    a[1, :, _j(9), 2] = -0.6 * back * (1 - _ramp(u, 0.75, 1.0))


def _hug(a: np.ndarray, root: np.ndarray, m: _Motion) -> None:
    """Walk towards each other and wrap the arms around."""
    u = m.u
    for p in range(2):
        root[p, :, 2] = -0.35 * _ramp(u, 0.0, 0.5)
        wrap = _ramp(u, 0.3, 0.6) * (1 - _ramp(u, 0.85, 1.0)) * m.amp
        a[p, :, _j(5), 0] = a[p, :, _j(9), 0] = 1.3 * wrap
        a[p, :, _j(5), 1] = 0.6 * wrap
        a[p, :, _j(9), 1] = -0.6 * wrap
        a[p, :, _j(6), 0] = a[p, :, _j(10), 0] = 1.0 * wrap


# the program of each class of ACTIONS: it writes the joint angles ``a`` (P, T, 25, 3) and
# root offsets ``root`` (P, T, 3) of the class's persons
_PROGRAMS: dict[int, Callable[[np.ndarray, np.ndarray, _Motion], None]] = {
    0: partial(_wave, freq=1.0), 1: partial(_wave, freq=2.0),
    2: partial(_swing, joint=9), 3: partial(_swing, joint=17),
    4: _raise_arms, 5: _squat, 6: _jump, 7: _bow, 8: _clap,
    9: partial(_march, freq=0.9), 10: partial(_march, freq=1.8),
    11: _handshake, 12: _push, 13: _hug,
}


def program(label: int, t: np.ndarray, u: np.ndarray, amp: float, phase: float):
    """Joint angles (P, T, 25, 3) and root offsets (P, T, 3) for each person of a class."""
    if label not in _PROGRAMS:
        raise ValueError(f"unknown synthetic action {label}")
    n = len(t)
    persons = 2 if label in TWO_PERSON else 1
    a = np.zeros((persons, n, 25, 3))
    root = np.zeros((persons, n, 3))
    _PROGRAMS[label](a, root, _Motion(u=u, w=2 * np.pi * t, env=_envelope(u), amp=amp,
                                      phase=phase))
    return a, root
