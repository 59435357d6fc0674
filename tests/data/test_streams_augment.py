import math

import pytest
import torch

from lastexp.data.augment import random_rotate_scale
from lastexp.data.streams import BONE_PAIRS, PARENT, STREAMS, to_stream


def test_bone_pairs():
    assert len(BONE_PAIRS) == 24
    assert sorted(c for c, _ in BONE_PAIRS) == [v for v in range(1, 26) if v != 21]
    assert PARENT[20] == 20


def hand_made():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 5, 25, 2, generator=g)


def test_joint_and_bone_values():
    x = hand_made()
    assert to_stream(x, "joint") is x
    b = to_stream(x, "bone")
    for child, parent in BONE_PAIRS:
        torch.testing.assert_close(b[:, :, :, child - 1], x[:, :, :, child - 1] - x[:, :, :,
                                                                                     parent - 1])
    assert not b[:, :, :, 20].any()
    # a concrete value: joint 4 (head) minus joint 3 (neck)
    x2 = torch.zeros(1, 3, 1, 25, 1)
    x2[0, :, 0, 3, 0] = torch.tensor([1.0, 2.0, 3.0])
    x2[0, :, 0, 2, 0] = torch.tensor([0.5, 0.5, 0.5])
    assert to_stream(x2, "bone")[0, :, 0, 3, 0].tolist() == [0.5, 1.5, 2.5]


def test_velocity_and_bone_velocity():
    x = hand_made()
    v = to_stream(x, "velocity")
    torch.testing.assert_close(v[:, :, 1], x[:, :, 2] - x[:, :, 1])
    assert not v[:, :, -1].any()
    bv = to_stream(x, "bone_velocity")
    torch.testing.assert_close(bv, to_stream(to_stream(x, "bone"), "velocity"))
    assert not bv[:, :, -1].any()
    assert STREAMS == ("joint", "bone", "velocity", "bone_velocity")


def test_unknown_stream():
    with pytest.raises(ValueError, match="joint, bone, velocity, bone_velocity"):
        to_stream(hand_made(), "optical_flow")


def test_augment_deterministic_and_zero_frames():
    x = hand_made()
    x[:, :, 3:] = 0
    a = random_rotate_scale(x, torch.Generator().manual_seed(5))
    b = random_rotate_scale(x, torch.Generator().manual_seed(5))
    c = random_rotate_scale(x, torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert not a[:, :, 3:].any()
    assert a.shape == x.shape


def test_augment_preserves_bone_length_ratios():
    x = hand_made()
    y = random_rotate_scale(x, torch.Generator().manual_seed(1), max_deg=30.0, scale=(0.5, 2.0))
    lx = to_stream(x, "bone").norm(dim=1)  # (N, T, V, M)
    ly = to_stream(y, "bone").norm(dim=1)
    keep = [i for i in range(25) if i != 20]
    ratio = ly[:, :, keep] / lx[:, :, keep]
    per_sample = ratio.flatten(1)
    torch.testing.assert_close(per_sample, per_sample[:, :1].expand_as(per_sample), rtol=1e-4,
                               atol=1e-4)
    assert ((per_sample >= 0.5 - 1e-4) & (per_sample <= 2.0 + 1e-4)).all()


def test_augment_identity_when_disabled():
    x = hand_made()
    y = random_rotate_scale(x, torch.Generator().manual_seed(1), max_deg=0.0, scale=(1.0, 1.0))
    torch.testing.assert_close(x, y)
    assert math.isclose(1.0, 1.0)
