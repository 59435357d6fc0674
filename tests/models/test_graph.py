import torch

from lastexp.models import graph


def test_bones_are_ntu_tree():
    assert graph.NUM_JOINTS == 25
    assert len(graph.BONES_1BASED) == 24
    children = [c for c, _ in graph.BONES_1BASED]
    assert len(set(children)) == 24  # every joint but the root has one parent
    assert set(range(1, 26)) - set(children) == {21}  # spine shoulder is the root
    assert all(1 <= j <= 25 for bone in graph.BONES_1BASED for j in bone)


def test_adjacency_shape_and_identity():
    A = graph.A
    assert A.shape == (3, 25, 25)
    assert torch.equal(A[0], torch.eye(25))


def test_adjacency_rows_normalised():
    for k in (1, 2):
        sums = graph.A[k].sum(dim=1)
        assert torch.all(torch.isclose(sums, torch.ones(25)) | (sums == 0))
        assert (sums > 0).any()


def test_inward_outward_are_transposes():
    inward, outward = (graph.A[1] > 0).float(), (graph.A[2] > 0).float()
    assert torch.equal(inward, outward.T)
    assert int(inward.sum()) == 24
    both = inward + outward
    assert torch.equal(both, both.T)
    assert torch.all(torch.diagonal(both) == 0)


def test_body_regions_partition_the_joints():
    joints = [j for region in graph.BODY_REGIONS.values() for j in region]
    assert sorted(joints) == list(range(25))
    assert set(graph.BODY_REGIONS) == {
        "torso_head",
        "left_arm",
        "right_arm",
        "left_leg",
        "right_leg",
    }


def test_module_constant_is_not_shared_state():
    A = graph.spatial_adjacency()
    assert torch.equal(A, graph.A) and A is not graph.A


def test_graph_product_batched_matmul_equals_einsum():
    # the compiled-CPU branch of SpatialGCN's graph product (one bmm over the frames) computes
    # the einsum's sum, whatever the memory layout of the conv output it reads
    from lastexp.models.blocks import aggregate

    torch.manual_seed(0)
    n, k, c, t, v = 2, 3, 5, 4, 25
    y = torch.randn(n, k * c, t, v)
    a = torch.rand(k, v, v)
    expected = torch.einsum("nkctv,kwv->nctw", y.view(n, k, c, t, v), a)
    for layout in (torch.contiguous_format, torch.channels_last):
        got = aggregate(y.contiguous(memory_format=layout), a, channels_last=True)
        assert got.shape == (n, c, t, v)
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(aggregate(y, a), expected)  # eager keeps the einsum exactly
