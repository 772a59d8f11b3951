"""gnnkit.ops.coo_gcn_sum: GCN's normalised sum over a small plain edge_index without a CSR (mini-batches), equal to
the CSR path to rounding (outputs and every gradient), taken only where it applies, with the CSR path's errors."""
import copy
import sys

import pytest
import torch
import torch_geometric.nn as pyg
from hypothesis import given, settings, strategies as st

import gnnkit.nn as gnn
from gnnkit.ops import Graph, coo_gcn_sum
from tests.conftest import assert_all_close, without_edge_list

spmm_mod = sys.modules["gnnkit.ops.spmm"]  # (the package attribute gnnkit.ops.spmm is the function)


def _graph(seed, n=30, e=90, dtype=torch.long):
    """Random edges with repeated pairs, repeated self-loops and (likely) nodes without in-edges, unsorted."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = torch.cat([ei, ei[:, : e // 5], torch.arange(n).repeat(2, 1)[:, ::4], torch.arange(n).repeat(2, 1)[:, ::8]], 1)
    return ei[:, torch.randperm(ei.size(1), generator=g)].to(dtype).contiguous()


class Spy:
    """Counts the calls :func:`coo_gcn_sum` served (returned a result)."""

    def __init__(self, monkeypatch):
        self.calls, real = 0, spmm_mod.coo_gcn_sum

        def counted(*a, **k):
            out = real(*a, **k)
            self.calls += out is not None
            return out
        monkeypatch.setattr(sys.modules["gnnkit.nn.gcn_conv"], "coo_gcn_sum", counted)


def csr_only():
    """Within: the layer takes the CSR path for a plain edge_index too (the reference)."""
    return without_edge_list("gnnkit.nn.gcn_conv", "coo_gcn_sum")


def _step(layer, x, adj, x_grad=True):
    layer.zero_grad()
    xg = x.clone().requires_grad_(x_grad)
    y = layer(xg, adj)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y).to(y.dtype)).sum().backward()
    return [y.detach()] + ([xg.grad] if x_grad else []) + [p.grad.clone() for p in layer.parameters()]


def _same(got, want, dtype=torch.float32):
    assert_all_close(got, want, dtype)


LAYERS = {  # (in, out): aggregate first when in * (2 if x needs a gradient else 1) < 2 * out, else transform first
    "6->4": dict(in_channels=6, out_channels=4),
    "4->9": dict(in_channels=4, out_channels=9),
    "no-loops": dict(in_channels=6, out_channels=4, add_self_loops=False),
    "no-bias": dict(in_channels=6, out_channels=4, bias=False),
    "target-to-source": dict(in_channels=6, out_channels=4, flow="target_to_source"),
}


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("x_grad", [True, False])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_the_csr_path(monkeypatch, name, x_grad, seed, dtype):
    spy = Spy(monkeypatch)
    kw = LAYERS[name]
    ei = _graph(seed, e=50 + 30 * seed, dtype=torch.int32 if seed == 2 else torch.long)
    x = torch.randn(30, kw["in_channels"], generator=torch.Generator().manual_seed(seed + 10), dtype=dtype)
    torch.manual_seed(seed)
    layer = gnn.GCNConv(**kw).to(dtype)
    got = _step(layer, x, ei, x_grad)
    assert spy.calls == 1  # the edge-list path served it
    with csr_only():
        want = _step(layer, x, ei, x_grad)
    assert spy.calls == 1
    _same(got, want, dtype)


def test_matches_pyg_on_mutag_batches(monkeypatch):
    from torch_geometric.loader import DataLoader

    from gnnkit.data import load_dataset
    spy = Spy(monkeypatch)
    loader = DataLoader(load_dataset("MUTAG"), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    ours, theirs = gnn.GCNConv(16, 16), pyg.GCNConv(16, 16)
    ours.load_state_dict(theirs.state_dict())
    for i, b in enumerate(loader):
        x = torch.randn(b.num_nodes, 16, generator=torch.Generator().manual_seed(i))
        _same(_step(ours, x, b.edge_index.clone()), _step(theirs, x, b.edge_index))
    assert spy.calls == len(loader)


def test_matches_pyg_with_loops_and_isolated_nodes():
    """PyG's gcn_norm (add_remaining_self_loops: one loop per node, repeated input loops merged), a node of degree
    0 without loops getting only the bias."""
    ei = _graph(3)
    x = torch.randn(35, 6)  # nodes 30..34 have no edges
    for loops in (True, False):
        torch.manual_seed(0)
        ours, theirs = gnn.GCNConv(6, 4, add_self_loops=loops), pyg.GCNConv(6, 4, add_self_loops=loops)
        ours.load_state_dict(theirs.state_dict())
        _same(_step(ours, x, ei.clone()), _step(theirs, x, ei))
        assert coo_gcn_sum(ei.clone(), x, loops) is not None


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), e=st.integers(0, 40), loops=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_random_graphs_match_the_csr_path(n, e, loops, seed):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    x = torch.randn(n, 5, generator=g)
    torch.manual_seed(seed)
    layer = gnn.GCNConv(5, 3, add_self_loops=loops)
    got = _step(layer, x, ei)
    with csr_only():
        _same(got, _step(layer, x, ei))


def test_not_taken_where_it_does_not_apply(monkeypatch):
    spy = Spy(monkeypatch)
    ei, x = _graph(2), torch.randn(30, 6)
    gnn.GCNConv(6, 4)(x, ei, torch.rand(ei.size(1)))                    # edge weights
    gnn.GCNConv(6, 4, cached=True)(x, ei)                                # cached normalisation
    gnn.GCNConv(6, 4, improved=True)(x, ei)                              # loops of weight 2
    gnn.GCNConv(6, 4, normalize=False)(x, ei)
    gnn.GCNConv(6, 4)(x, Graph.build(ei, num_nodes=30))                   # a Graph
    gnn.GCNConv(6, 4)(torch.randn(3, 30, 6), ei)                          # a static graph's batch
    gnn.GCNConv(6, 9)(torch.randn(30, 6).to_sparse(), ei)                 # sparse features (aggregated first)
    assert spy.calls == 0
    assert coo_gcn_sum(ei, x) is not None
    old = spmm_mod.COO_GCN_MAX
    try:
        spmm_mod.COO_GCN_MAX = (ei.size(1) + 30) * 6 - 1
        assert coo_gcn_sum(ei, x) is None                                # more message values than the bound
        assert coo_gcn_sum(ei, x, add_self_loops=False) is not None      # (no loops: fewer)
    finally:
        spmm_mod.COO_GCN_MAX = old
    assert coo_gcn_sum(ei, x.half()) is None
    assert coo_gcn_sum(ei.clone(), x.to_sparse()) is None
    assert coo_gcn_sum(ei[:, :0], x, add_self_loops=False) is None       # no edges at all
    assert coo_gcn_sum(ei.float(), x) is None                            # (the CSR path names the dtype)
    assert coo_gcn_sum(ei.t().contiguous(), x) is None                   # [E, 2]: the CSR path's hint
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert coo_gcn_sum(ei, x) is None
    with torch.autograd.forward_ad.dual_level():
        assert coo_gcn_sum(ei, x) is None


def test_the_path_depends_on_the_inputs_alone(monkeypatch):
    """Every layer of a batch and every call on a graph used again takes the edge list (kept on the tensor): the same
    bits each time, and a checkpointed layer recomputes the path its forward took (the recomputation must save
    the same tensors)."""
    from torch.utils.checkpoint import checkpoint
    spy = Spy(monkeypatch)
    ei, x = _graph(4), torch.randn(30, 6)
    torch.manual_seed(0)
    layers = [gnn.GCNConv(6, 8), gnn.GCNConv(8, 8), gnn.GCNConv(8, 3)]
    h = x.clone().requires_grad_(True)
    for layer in layers:
        h = layer(h, ei).relu()
    assert spy.calls == 3
    first = _step(layers[1], torch.randn(30, 8, generator=torch.Generator().manual_seed(1)), ei)
    again = _step(layers[1], torch.randn(30, 8, generator=torch.Generator().manual_seed(1)), ei)
    assert spy.calls == 5 and all(torch.equal(a, b) for a, b in zip(first, again))
    for x_grad in (False, True):
        for layer in (gnn.GCNConv(6, 2), gnn.GCNConv(6, 9)):  # transform first / aggregate first
            xc = x.clone().requires_grad_(x_grad)
            checkpoint(layer, xc, ei, use_reentrant=False).sum().backward()
            assert layer.lin.weight.grad is not None


def test_a_huge_bad_id_raises_without_allocating_for_it():
    ei = _graph(5)
    ei[1, 3] = 2 ** 40  # degrees counted by index_add_ (which raises), not bincount (which would grow to the id)
    with pytest.raises(IndexError, match=r"edge_index\[1\].*destination id"):
        gnn.GCNConv(6, 4)(torch.randn(30, 6), ei)


def test_no_grad_inference_and_a_reused_edge_index(monkeypatch):
    builds, real = [], spmm_mod._gcn_edges
    monkeypatch.setattr(spmm_mod, "_gcn_edges", lambda *a: builds.append(1) or real(*a))
    ei, x = _graph(6), torch.randn(30, 6)
    torch.manual_seed(0)
    layer = gnn.GCNConv(6, 4)
    with csr_only():
        want = layer(x, ei).detach()
    with torch.no_grad():
        torch.testing.assert_close(layer(x.clone().requires_grad_(True), ei), want)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x, ei), want)
    layer(x, ei)
    n = len(builds)
    torch.testing.assert_close(layer(x, ei), want)
    assert len(builds) == n  # the edge list and its weights are kept on the tensor: nothing rebuilt
    torch.testing.assert_close(copy.deepcopy(layer).double()(x.double(), ei), want.double(), rtol=1e-5, atol=1e-5)
    ei[0, 0] = (ei[0, 0] + 1) % 30  # an in-place edit: the kept list is stale, rebuilt
    with csr_only():
        want = layer(x, ei.clone())
    torch.testing.assert_close(layer(x, ei), want)


def test_backward_follows_the_forwards_edges():
    """An in-place edit of edge_index after the forward does not change the gradient, and an edge_index made
    under inference mode trains."""
    for loops in (True, False):
        ei, x = _graph(8), torch.randn(30, 6)
        torch.manual_seed(0)
        layer = gnn.GCNConv(6, 4, add_self_loops=loops)
        with csr_only():
            want = _step(layer, x, ei.clone())
        layer.zero_grad()
        xg = x.clone().requires_grad_(True)
        y = layer(xg, ei)
        ei[0, :5] = 0
        ei[1, :5] = 1
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        torch.testing.assert_close(xg.grad, want[1])
        with torch.inference_mode():
            ei_inf = _graph(8)
        got = _step(layer, x, ei_inf)
        with csr_only():
            _same(got, _step(layer, x, ei_inf.clone()))


@pytest.mark.parametrize("row,bad,match", [(0, 30, r"edge_index\[0\].*source id 30"),
                                           (1, 30, r"edge_index\[1\].*destination id 30"),
                                           (0, -1, "negative"), (1, -2, "negative")])
@pytest.mark.parametrize("loops", [True, False])
def test_bad_ids_raise_the_csr_paths_errors(row, bad, match, loops):
    ei = _graph(9)
    ei[row, 3] = bad
    with pytest.raises(IndexError, match=match):
        gnn.GCNConv(6, 4, add_self_loops=loops)(torch.randn(30, 6), ei)
