"""ID-GNN: the lecture's failure case (a node of a triangle vs a node of a hexagon: same computation graph
for a GCN) fixed by identity colouring and by cycle-count features; the layer against a dense reference
and against GraphGym's ID-GCN definition; ego networks; bad input."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

import gnnkit.nn as gnn
from gnnkit.nn import IDGNN, IDGNNConv, cycle_count_features, ego_networks


def _cycle(n, offset=0):
    src = torch.arange(n) + offset
    dst = (torch.arange(n) + 1) % n + offset
    return torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)


# two triangles (nodes 0-5) and one hexagon (nodes 6-11): every node has degree 2
TWO_TRIANGLES_AND_HEXAGON = torch.cat([_cycle(3), _cycle(3, 3), _cycle(6, 6)], 1)
V1, V2 = 0, 6  # a node of a triangle, a node of the hexagon


def test_gcn_cannot_tell_the_triangle_node_from_the_hexagon_node():
    x = torch.ones(12, 4)
    for seed in range(5):
        torch.manual_seed(seed)
        gcn = gnn.GCN(4, 16, 3, 8)
        out = gcn(x, TWO_TRIANGLES_AND_HEXAGON)
        torch.testing.assert_close(out[V1], out[V2])  # the same computation graph, the same embedding


def test_idgnn_tells_them_apart():
    x = torch.ones(12, 4)
    for seed in range(5):
        torch.manual_seed(seed)
        model = IDGNN(4, 16, 8, num_layers=3)
        out = model(x, TWO_TRIANGLES_AND_HEXAGON, nodes=torch.tensor([V1, V2]))
        assert (out[0] - out[1]).abs().max() > 1e-3  # the ego comes back after 3 hops in the triangle only
        # and it is the colouring that separates them: both 3-hop ego networks are whole 2-regular cycles
        # (the triangle; the hexagon), on which the same layers without identity weights agree
        for conv in model.convs:
            torch.nn.init.zeros_(conv.lin_id.weight)
        out = model(x, TWO_TRIANGLES_AND_HEXAGON, nodes=torch.tensor([V1, V2]))
        torch.testing.assert_close(out[0], out[1])


def test_idgnn_fast_features_tell_them_apart():
    f = cycle_count_features(TWO_TRIANGLES_AND_HEXAGON, 12, max_length=6)
    # closed walks of length k: [A^k]_vv; a triangle node has 2 of length 3, a hexagon node none
    assert f[V1, 2] == 2 and f[V2, 2] == 0
    assert f[V1, 1] == f[V2, 1] == 2  # length 2: back and forth over either edge
    assert f[V2, 5] == 22  # hexagon: 20 back-and-forth walks of length 6 + the 2 tours of the cycle
    torch.manual_seed(0)
    gcn = gnn.GCN(4 + 6, 16, 3, 8)
    out = gcn(torch.cat([torch.ones(12, 4), f], 1), TWO_TRIANGLES_AND_HEXAGON)
    assert (out[V1] - out[V2]).abs().max() > 1e-3


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 9), e=st.integers(0, 25), k=st.integers(1, 4), seed=st.integers(0, 10 ** 6))
def test_cycle_counts_match_dense_matrix_powers(n, e, k, seed):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    a = torch.zeros(n, n, dtype=torch.float64)
    a.index_put_((ei[1], ei[0]), torch.ones(e, dtype=torch.float64), accumulate=True)
    want = torch.stack([torch.diagonal(torch.linalg.matrix_power(a, p)) for p in range(1, k + 1)], 1)
    torch.testing.assert_close(cycle_count_features(ei, n, k, chunk=3).double(), want)


def _dense_idgcn(conv, x, ei, ident):
    """GraphGym's ID-GCN layer, densely: messages x W (+ x W_id at coloured nodes), D^-1/2 (A + I) D^-1/2."""
    n = x.size(0)
    a = torch.zeros(n, n)
    a[ei[1], ei[0]] = 1.0
    a = a + torch.eye(n)
    d = a.sum(1).rsqrt()
    h = x @ conv.lin.weight.t() + (x @ conv.lin_id.weight.t()) * ident.float().unsqueeze(-1)
    return (d[:, None] * a * d[None, :]) @ h + conv.bias


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 10), e=st.integers(0, 30), seed=st.integers(0, 10 ** 6))
def test_idgnn_conv_matches_the_dense_definition(n, e, seed):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = torch.unique(ei[:, ei[0] != ei[1]], dim=1)  # simple graph: the dense form has no duplicates
    x = torch.randn(n, 5, generator=g)
    ident = torch.rand(n, generator=g) < 0.3
    torch.manual_seed(seed)
    conv = IDGNNConv(5, 3)
    torch.nn.init.normal_(conv.bias)
    torch.testing.assert_close(conv(x, ei, ident), _dense_idgcn(conv, x, ei, ident), rtol=1e-5, atol=1e-5)
    # indices and a mask colour the same nodes
    torch.testing.assert_close(conv(x, ei, ident.nonzero().view(-1)), conv(x, ei, ident))


def test_uncoloured_idgnn_conv_is_a_gcn_layer():
    torch.manual_seed(0)
    x, ei = torch.randn(7, 4), torch.randint(0, 7, (2, 20))
    conv, gcn = IDGNNConv(4, 3), gnn.GCNConv(4, 3)
    gcn.lin.weight.data.copy_(conv.lin.weight)
    gcn.bias.data.copy_(conv.bias)
    torch.testing.assert_close(conv(x, ei), gcn(x, ei), rtol=1e-5, atol=1e-5)


def test_ego_networks_are_the_k_hop_in_neighbourhoods():
    ids, ei, centre = ego_networks(TWO_TRIANGLES_AND_HEXAGON, 12, torch.tensor([V1, V2]), 2)
    assert sorted(ids[:3].tolist()) == [0, 1, 2]  # the whole triangle
    assert sorted(ids[3:].tolist()) == [6, 7, 8, 10, 11]  # 2 hops around the hexagon
    assert ids[centre].tolist() == [V1, V2]
    assert int(ei.max()) < ids.numel()


def test_bad_input_is_named():
    conv = IDGNNConv(4, 3)
    with pytest.raises(ValueError, match="in_channels=4"):
        conv(torch.randn(3, 5), torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="identity must be a bool mask"):
        conv(torch.randn(3, 4), torch.tensor([[0], [1]]), torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"identity indices must lie in \[0, 3\)"):
        conv(torch.randn(3, 4), torch.tensor([[0], [1]]), torch.tensor([5]))
    with pytest.raises(ValueError, match="max_length must be an int >= 1"):
        cycle_count_features(torch.tensor([[0], [1]]), 2, 0)


def test_idgnn_names_nodes_out_of_range():
    with pytest.raises(ValueError, match=r"nodes must be node indices in \[0, 12\)"):
        IDGNN(4, 8, 2)(torch.ones(12, 4), TWO_TRIANGLES_AND_HEXAGON, nodes=torch.tensor([12]))


def test_idgnn_takes_int32_and_names_bad_edges():
    x = torch.ones(12, 4)
    model = IDGNN(4, 8, 2).eval()
    torch.testing.assert_close(model(x, TWO_TRIANGLES_AND_HEXAGON.int()), model(x, TWO_TRIANGLES_AND_HEXAGON))
    with pytest.raises(ValueError, match="integer node ids"):
        model(x, TWO_TRIANGLES_AND_HEXAGON.float())
    with pytest.raises(IndexError, match="source id 12"):
        model(x, torch.tensor([[12], [0]]))
    with pytest.raises(ValueError, match=r"IDGNN: x must be \[N, in_channels=4\]"):
        model(torch.ones(12, 5), TWO_TRIANGLES_AND_HEXAGON)


def test_ego_cache_follows_the_order_of_nodes():
    """Two orders of one node set whose sums, sums of squares and running sums agree (the old cache key) give
    each order's own rows."""
    torch.manual_seed(0)
    model = IDGNN(4, 8, 2).eval()
    x = torch.randn(12, 4)
    a, b = torch.tensor([1, 2, 0, 3]), torch.tensor([2, 0, 1, 3])
    model(x, TWO_TRIANGLES_AND_HEXAGON, nodes=a)
    full = model(x, TWO_TRIANGLES_AND_HEXAGON)
    torch.testing.assert_close(model(x, TWO_TRIANGLES_AND_HEXAGON, nodes=b), full[b])


def test_cycle_count_features_names_a_bad_edge_index():
    from gnnkit.nn import cycle_count_features
    with pytest.raises(ValueError, match="edge_index"):
        cycle_count_features(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 2)
    with pytest.raises(IndexError, match="edge_index"):
        cycle_count_features(torch.tensor([[0], [5]]), 2)
