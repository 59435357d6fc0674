"""The one NTU bone table, pinned to the field's reference.

Expected values are CTR-GCN's ``graph/ntu_rgb_d.py`` ``inward_ori_index`` (1-based (child,
parent)), written out here by hand; the bone stream and the models' graph must both read it.
"""

import torch

from lastexp import ntu_skeleton
from lastexp.data import streams
from lastexp.models import graph

REFERENCE_INWARD_1BASED = [
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
]  # fmt: skip


def test_table_equals_the_reference():
    assert list(ntu_skeleton.BONES_1BASED) == REFERENCE_INWARD_1BASED
    assert ntu_skeleton.NUM_JOINTS == 25 and ntu_skeleton.ROOT_1BASED == 21


def test_parent_of_every_joint_and_the_root_is_its_own():
    expected = {c - 1: p - 1 for c, p in REFERENCE_INWARD_1BASED}
    expected[20] = 20
    assert ntu_skeleton.PARENT == tuple(expected[j] for j in range(25))


def test_stream_and_graph_read_the_same_table():
    assert streams.BONE_PAIRS is ntu_skeleton.BONES_1BASED
    assert streams.PARENT is ntu_skeleton.PARENT
    assert graph.INWARD is ntu_skeleton.INWARD


def test_bone_stream_is_joint_minus_reference_parent():
    x = torch.randn(2, 3, 8, 25, 2)
    bone = streams.to_stream(x, "bone")
    for c, p in REFERENCE_INWARD_1BASED:
        assert torch.allclose(bone[:, :, :, c - 1], x[:, :, :, c - 1] - x[:, :, :, p - 1])
    assert torch.count_nonzero(bone[:, :, :, 20]) == 0


def test_graph_inward_edges_are_the_reference_bones():
    inward = graph.A[1] > 0  # A[k, w, v]: output joint w reads input joint v
    edges = {(int(w), int(v)) for w, v in zip(*torch.nonzero(inward, as_tuple=True))}
    assert len(edges) == 24
    assert {tuple(sorted((c - 1, p - 1))) for c, p in REFERENCE_INWARD_1BASED} == {
        tuple(sorted(e)) for e in edges
    }
