"""gnnkit.ops.coo_gat_attention: GAT's attention over a small plain edge_index without a CSR (mini-batches),
equal to the CSR path to rounding (outputs and every gradient, dropout's mask included), taken only where it
applies, with the CSR path's errors for bad ids."""
import sys

import pytest
import torch
import torch_geometric.nn as pyg
from hypothesis import given, settings, strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

import gnnkit.nn as gnn
from gnnkit.ops import Graph, coo_gat_attention
from tests.conftest import assert_all_close, without_edge_list

gat_mod = sys.modules["gnnkit.ops.gat"]


def _graph(seed, n_src=30, n_dst=None, e=90, dtype=torch.long):
    """Random edges with repeated pairs, self-loops and (likely) nodes without in-edges, unsorted."""
    g = torch.Generator().manual_seed(seed)
    n_dst = n_src if n_dst is None else n_dst
    ei = torch.stack([torch.randint(0, n_src, (e,), generator=g), torch.randint(0, n_dst, (e,), generator=g)])
    ei = torch.cat([ei, ei[:, : e // 5], torch.arange(min(n_src, n_dst)).repeat(2, 1)[:, ::4]], 1)
    return ei[:, torch.randperm(ei.size(1), generator=g)].to(dtype).contiguous()


class Spy:
    """Counts the calls that took the edge-list path (``_coo_attention``)."""

    def __init__(self, monkeypatch):
        self.calls, real = 0, gat_mod._coo_attention

        def counted(*a, **k):
            self.calls += 1
            return real(*a, **k)
        monkeypatch.setattr(gat_mod, "_coo_attention", counted)


def csr_only():
    """Within: the layer takes the CSR path for a plain edge_index too (the reference)."""
    return without_edge_list("gnnkit.nn.gat_conv", "coo_gat_attention")


def _step(layer, x, adj, seed=0, **kw):
    layer.zero_grad()
    xs = tuple(t.clone().requires_grad_(True) for t in x) if isinstance(x, tuple) else (x.clone().requires_grad_(True),)
    torch.manual_seed(seed)  # dropout's mask
    y = layer(xs if isinstance(x, tuple) else xs[0], adj, **kw)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y).to(y.dtype)).sum().backward()
    return [y.detach()] + [t.grad for t in xs] + [p.grad.clone() for p in layer.parameters() if p.grad is not None]


def _same(got, want, dtype=torch.float32):
    assert_all_close(got, want, dtype)


LAYERS = {
    "heads3": dict(heads=3),
    "heads1": dict(heads=1),
    "mean-heads": dict(heads=2, concat=False),
    "no-loops": dict(heads=2, add_self_loops=False),
    "residual": dict(heads=2, residual=True),
    "target-to-source": dict(heads=2, flow="target_to_source"),
    "dropout": dict(heads=2, dropout=0.4),
}


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_the_csr_path(monkeypatch, name, seed, dtype):
    spy = Spy(monkeypatch)
    ei = _graph(seed, e=50 + 30 * seed, dtype=torch.int32 if seed == 2 else torch.long)
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(seed + 10), dtype=dtype)
    torch.manual_seed(seed)
    layer = gnn.GATConv(6, 4, **LAYERS[name]).to(dtype)
    layer.train(name == "dropout")
    got = _step(layer, x, ei, seed)
    assert spy.calls == 1  # the edge-list path served it
    with csr_only():
        want = _step(layer, x, ei, seed)
    assert spy.calls == 1
    _same(got, want, dtype)
    if name != "target-to-source":  # (a Graph is already oriented)
        _same(got, _step(layer, x, Graph.build(ei.long(), num_nodes=30), seed), dtype)  # a Graph: the CSR path


def test_matches_pyg_on_mutag_batches(monkeypatch):
    from torch_geometric.loader import DataLoader

    from gnnkit.data import load_dataset
    spy = Spy(monkeypatch)
    loader = DataLoader(load_dataset("MUTAG"), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    ours, theirs = gnn.GATConv(16, 4, heads=4), pyg.GATConv(16, 4, heads=4)
    ours.load_state_dict(theirs.state_dict())
    for i, b in enumerate(loader):
        x = torch.randn(b.num_nodes, 16, generator=torch.Generator().manual_seed(i))
        _same(_step(ours, x, b.edge_index.clone()), _step(theirs, x, b.edge_index))
    assert spy.calls == len(loader)


def test_dropout_drops_what_pyg_drops():
    """The mask is drawn over [E', H] in PyG's edge order (kept edges, then loops), as PyG draws it."""
    ei = _graph(4)
    x = torch.randn(30, 6)
    torch.manual_seed(0)
    ours, theirs = gnn.GATConv(6, 4, heads=2, dropout=0.5), pyg.GATConv(6, 4, heads=2, dropout=0.5)
    ours.load_state_dict(theirs.state_dict())
    _same(_step(ours, x, ei, seed=3), _step(theirs, x, ei, seed=3))


def test_bipartite_and_isolated_nodes(monkeypatch):
    spy = Spy(monkeypatch)
    ei = _graph(5, n_src=20, n_dst=12, e=60)
    x = (torch.randn(26, 6), torch.randn(15, 5))  # ids below 20 / 12: trailing nodes without edges
    layer = gnn.GATConv((6, 5), 4, heads=2)
    got = _step(layer, x, ei, size=(26, 15))
    assert spy.calls == 1 and got[0].shape == (15, 8)
    _same(got, _step(layer, x, Graph.build(ei, size=(26, 15))))
    # a node that receives nothing and has no loop (add_self_loops=False) gets only the bias, as on the CSR path
    layer = gnn.GATConv(6, 4, heads=2, add_self_loops=False)
    xs = torch.randn(30, 6)
    got = _step(layer, xs, ei)
    _same(got, _step(layer, xs, Graph.build(ei, num_nodes=30)))
    lonely = torch.ones(30, dtype=torch.bool)
    lonely[ei[1]] = False
    assert lonely.any() and torch.equal(got[0][lonely], layer.bias.detach().expand(int(lonely.sum()), -1))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), e=st.integers(0, 40), heads=st.integers(1, 3), loops=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_random_graphs_match_the_csr_path(n, e, heads, loops, seed):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    x = torch.randn(n, 5, generator=g)
    torch.manual_seed(seed)
    layer = gnn.GATConv(5, 3, heads=heads, add_self_loops=loops)
    want = _step(layer, x, Graph.build(ei, num_nodes=n))
    _same(_step(layer, x, ei), want)


def test_not_taken_where_it_does_not_apply(monkeypatch):
    spy = Spy(monkeypatch)
    ei, x = _graph(2), torch.randn(30, 6)
    torch.manual_seed(0)
    layer = gnn.GATConv(6, 4, heads=2)
    out, (ei_out, alpha) = layer(x, ei, return_attention_weights=True)  # the weights: the CSR path's output
    layer_e = gnn.GATConv(6, 4, heads=2, edge_dim=3)
    layer_e(x, ei, torch.randn(ei.size(1), 3))                          # edge features
    layer(x, Graph.build(ei))                                            # a Graph
    gnn.GATConv(6, 4, heads=2, aggr="mean")(x, ei)                       # another aggregation
    assert spy.calls == 0
    assert alpha.shape == (ei_out.size(1), 2)
    h, a = torch.randn(30, 2, 4), torch.randn(30, 2)
    assert coo_gat_attention(ei, h, a, a) is not None
    old = gat_mod.COO_ATTENTION_MAX
    try:
        gat_mod.COO_ATTENTION_MAX = (ei.size(1) + 30) * 8 - 1
        assert coo_gat_attention(ei, h, a, a) is None                    # more message values than the bound
        assert coo_gat_attention(ei, h, a, a, add_self_loops=False) is not None  # (no loops: fewer)
    finally:
        gat_mod.COO_ATTENTION_MAX = old
    old = gat_mod.COO_ATTENTION_MAX_EDGES
    try:
        gat_mod.COO_ATTENTION_MAX_EDGES = ei.size(1) + 29
        assert coo_gat_attention(ei, h, a, a) is None                    # more edges (with loops) than the bound
        assert coo_gat_attention(ei, h, a, a, add_self_loops=False) is not None
    finally:
        gat_mod.COO_ATTENTION_MAX_EDGES = old
    assert coo_gat_attention(ei, h.half(), a.half(), a.half()) is None
    assert coo_gat_attention(ei, h, a.double(), a) is None               # mixed dtypes
    assert coo_gat_attention(ei[:, :0], h, a, a, add_self_loops=False) is None  # no edges at all
    assert coo_gat_attention(ei.float(), h, a, a) is None                # (the CSR path names the dtype)
    assert coo_gat_attention(ei.t().contiguous(), h, a, a) is None       # [E, 2]: the CSR path's hint
    assert coo_gat_attention(Graph.build(ei), h, a, a) is None

    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with Log():
        assert coo_gat_attention(ei, h, a, a) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert coo_gat_attention(ei, h, a, a) is None


def test_no_grad_inference_and_a_reused_edge_index(monkeypatch):
    builds, real = [], gat_mod.loop_edges
    monkeypatch.setattr(gat_mod, "loop_edges", lambda *a: builds.append(1) or real(*a))
    ei, x = _graph(6), torch.randn(30, 6)
    torch.manual_seed(0)
    layer = gnn.GATConv(6, 4, heads=2)
    want = layer(x, Graph.build(ei)).detach()
    with torch.no_grad():
        torch.testing.assert_close(layer(x.clone().requires_grad_(True), ei), want)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x, ei), want)
    layer(x, ei)
    n = len(builds)
    torch.testing.assert_close(layer(x, ei), want)
    assert len(builds) == n  # the loop-augmented edge list is kept on the tensor: nothing rebuilt
    ei[0, 0] = (ei[0, 0] + 1) % 30  # an in-place edit: the kept list is stale, rebuilt
    torch.testing.assert_close(layer(x, ei), layer(x, Graph.build(ei.clone())))


def test_backward_follows_the_forwards_edges():
    """An in-place edit of edge_index after the forward does not change the gradient (the kept edge list is a
    copy, loops or not), and an edge_index made under inference mode trains."""
    for loops in (True, False):
        ei, x = _graph(8), torch.randn(30, 6)
        torch.manual_seed(0)
        layer = gnn.GATConv(6, 4, heads=2, add_self_loops=loops)
        want = _step(layer, x, Graph.build(ei.clone()))
        layer.zero_grad()
        xg = x.clone().requires_grad_(True)
        y = layer(xg, ei)
        ei[0, :5] = 0
        ei[1, :5] = 1
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        torch.testing.assert_close(xg.grad, want[1])
        with torch.inference_mode():
            ei_inf = _graph(8)
        _same(_step(layer, x, ei_inf), _step(layer, x, Graph.build(ei_inf.clone())))


@pytest.mark.parametrize("row,bad,match", [(0, 30, r"edge_index\[0\].*source id 30"),
                                           (1, 30, r"edge_index\[1\].*destination id 30"),
                                           (0, -1, "negative"), (1, -2, "negative")])
@pytest.mark.parametrize("loops", [True, False])
def test_bad_ids_raise_the_csr_paths_errors(row, bad, match, loops):
    ei = _graph(9)
    ei[row, 3] = bad
    with pytest.raises(IndexError, match=match):
        gnn.GATConv(6, 4, heads=2, add_self_loops=loops)(torch.randn(30, 6), ei)


def test_forward_mode_ad_takes_the_csr_path():
    """Under forward-mode AD the edge-list path steps aside (a transform is active): the layer behaves as before."""
    import torch.autograd.forward_ad as fwAD
    ei, x = _graph(1), torch.randn(30, 6)
    layer = gnn.GATConv(6, 4, heads=2)
    with fwAD.dual_level():
        h = fwAD.make_dual(torch.randn(30, 2, 4), torch.randn(30, 2, 4))
        assert coo_gat_attention(ei, h, torch.randn(30, 2), torch.randn(30, 2)) is None
    assert layer(x, ei).shape == (30, 8)
