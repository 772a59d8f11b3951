"""gnnkit.ops.coo_sum: the sum / mean over a small edge_index without a CSR, equal bit for bit to the CSR path
(outputs and gradients) for an edge_index sorted by (source, destination), to rounding in other orders."""
import sys

import pytest
import torch
import torch_geometric.nn as pyg
from torch.nn import Linear, ReLU, Sequential
from torch.utils._python_dispatch import TorchDispatchMode

import gnnkit.nn as gnn
from gnnkit.ops import Graph, coo_sum

spmm_mod = sys.modules["gnnkit.ops.spmm"]  # (the package attribute gnnkit.ops.spmm is the function)


def _sorted_graph(seed, n_src=40, n_dst=None, e=150, dup=True, dtype=torch.long):
    g = torch.Generator().manual_seed(seed)
    n_dst = n_src if n_dst is None else n_dst
    ei = torch.stack([torch.randint(0, n_src, (e,), generator=g), torch.randint(0, n_dst, (e,), generator=g)])
    if dup:  # repeated pairs (a multigraph) and self-loops
        ei = torch.cat([ei, ei[:, : e // 4], torch.arange(min(n_src, n_dst)).repeat(2, 1)[:, ::3]], 1)
    key = ei[0] * n_dst + ei[1]
    return ei[:, torch.sort(key, stable=True).indices].to(dtype).contiguous()


def _layers(f):
    torch.manual_seed(0)
    return {
        "GIN": lambda: gnn.GINConv(Sequential(Linear(f, 8), ReLU(), Linear(8, 8)), train_eps=True),
        "GIN-fixed-eps": lambda: gnn.GINConv(Sequential(Linear(f, 8), ReLU(), Linear(8, 8)), eps=0.25),
        "SAGE-mean": lambda: gnn.SAGEConv(f, 8),
        "SAGE-sum": lambda: gnn.SAGEConv(f, 8, aggr="sum"),
        "SAGE-mean-no-root": lambda: gnn.SAGEConv(f, 8, root_weight=False),
    }


def _step(layer, x, adj):
    layer.zero_grad()
    xg = x.clone().requires_grad_(True)
    y = layer(xg, adj)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y).to(y.dtype)).sum().backward()
    return [y.detach(), xg.grad] + [p.grad.clone() for p in layer.parameters() if p.grad is not None]


@pytest.mark.parametrize("name", list(_layers(6)))
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_bits_as_the_csr_path(name, seed, dtype):
    if dtype == torch.float64 and "mean" in name:
        pytest.skip("the float64 mean takes the CSR path (coo_sum serves the float32 mean only)")
    ei = _sorted_graph(seed, e=60 + 40 * seed, dtype=torch.int32 if seed == 3 else torch.long)
    n = 40
    x = torch.randn(n, 6, generator=torch.Generator().manual_seed(seed + 10), dtype=dtype)
    layer = _layers(6)[name]().to(dtype)
    assert coo_sum(ei, x, n, n, "mean" if "mean" in name else "sum") is not None  # the path is taken
    got = _step(layer, x, ei)
    want = _step(layer, x, Graph.build(ei.long(), num_nodes=n))  # a Graph: always the CSR path
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert torch.equal(a, b), (a - b).abs().max()


@pytest.mark.parametrize("seed", range(3))
def test_first_layer_mean_same_bits_without_a_function(seed, monkeypatch):
    """A mean whose x needs no gradient (a model's first layer, an evaluation) is computed without the autograd
    Function (its Python cost showed on MUTAG batches: SAGE's first layer 0.92x PyG, now ~1.0x): the same bits as
    the CSR path, output and parameter gradients, and the Function is not entered."""
    import importlib
    spmm_mod = importlib.import_module("gnnkit.ops.spmm")
    ei = _sorted_graph(seed, e=60 + 40 * seed)
    n = 40
    x = torch.randn(n, 6, generator=torch.Generator().manual_seed(seed + 10))
    layer = _layers(6)["SAGE-mean"]()

    def step(adj):
        layer.zero_grad()
        y = layer(x, adj)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        return [y.detach()] + [p.grad.clone() for p in layer.parameters()]
    want = step(Graph.build(ei, num_nodes=n))
    monkeypatch.setattr(spmm_mod.CooSumFunction, "forward", None)  # entering the Function would fail
    got = step(ei)
    for a, b in zip(got, want):
        assert torch.equal(a, b), (a - b).abs().max()


def test_same_bits_on_mutag_batches():
    from torch_geometric.loader import DataLoader

    from gnnkit.data import load_dataset
    ds = load_dataset("MUTAG")
    loader = DataLoader(ds, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    for name, make in _layers(7).items():
        layer = make()
        for i, b in enumerate(loader):
            x = torch.randn(b.num_nodes, 7, generator=torch.Generator().manual_seed(i))
            assert coo_sum(b.edge_index, x, b.num_nodes, b.num_nodes) is not None  # coalesced, as PyG keeps it
            for a, c in zip(_step(layer, x, b.edge_index), _step(layer, x, Graph.build(b.edge_index))):
                assert torch.equal(a, c), name


def test_bipartite_and_isolated_nodes():
    ei = _sorted_graph(5, n_src=30, n_dst=12, e=70, dup=False)
    x_src, x_dst = torch.randn(50, 6), torch.randn(20, 6)  # ids below 30 / 12: trailing nodes isolated
    assert coo_sum(ei, x_src, 50, 20) is not None
    for make in (lambda: gnn.SAGEConv((6, 6), 8), lambda: gnn.GINConv(Linear(6, 8))):
        layer = make()
        got = layer((x_src, x_dst), ei, size=(50, 20))
        want = layer((x_src, x_dst), Graph.build(ei, size=(50, 20)))
        assert got.shape == (20, 8) and torch.equal(got, want)


def test_matches_pyg():
    ei = _sorted_graph(7)
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    ours, theirs = gnn.SAGEConv(6, 8), pyg.SAGEConv(6, 8)
    ours.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(ours(x, ei), theirs(x, ei))
    ours, theirs = gnn.GINConv(Linear(6, 8), train_eps=True), pyg.GINConv(Linear(6, 8), train_eps=True)
    ours.load_state_dict(theirs.state_dict())
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours(xa, ei).square().sum().backward()
    theirs(xb, ei).square().sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(ours.eps.grad, theirs.eps.grad)


@pytest.mark.parametrize("name", list(_layers(6)))
@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_other_orders_agree_with_the_csr_path_to_rounding(name, order):
    """Any edge order takes the edge list (sums in input order, as PyG's): equal to the CSR path to rounding."""
    ei = _sorted_graph(2)
    perm = torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(3))
    ei = ei.flip(1) if order == "reversed" else ei[:, perm]
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(4))
    assert coo_sum(ei, x, 40, 40, "mean" if "mean" in name else "sum") is not None
    layer = _layers(6)[name]()
    for a, b in zip(_step(layer, x, ei), _step(layer, x, Graph.build(ei, num_nodes=40))):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_not_taken_where_too_large_or_not_served():
    ei = _sorted_graph(2)
    x = torch.randn(40, 6)
    assert coo_sum(ei, x, 40, 40) is not None
    big = torch.randn(40, 64)
    old = spmm_mod.COO_SUM_MAX
    try:
        spmm_mod.COO_SUM_MAX = ei.size(1) * 64 - 1
        assert coo_sum(ei, big, 40, 40) is None                        # more message values than the bound
    finally:
        spmm_mod.COO_SUM_MAX = old
    assert coo_sum(ei, torch.randn(40, 65), 40, 40) is None            # wider than MKL's path
    assert coo_sum(ei, x.double(), 40, 40, "mean") is None             # the float64 mean: CSR path
    assert coo_sum(ei, x.half(), 40, 40) is None
    assert coo_sum(ei[:, :0], x, 40, 40) is None                       # no edges
    assert coo_sum(ei, x, 40, 40, "max") is None
    assert coo_sum(Graph.build(ei), x, 40, 40) is None


def test_not_taken_under_a_dispatch_mode_or_autocast():
    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    ei, x = _sorted_graph(3), torch.randn(40, 6)
    with Log():
        assert coo_sum(ei, x, 40, 40) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert coo_sum(ei, x, 40, 40) is None


def test_bad_ids_raise_the_csr_paths_errors():
    ei = _sorted_graph(4)
    layer = gnn.GINConv(Linear(6, 8))
    bad = ei.clone()
    bad[0, -1] = 40
    with pytest.raises(IndexError, match=r"edge_index\[0\].*source id 40"):
        layer(torch.randn(40, 6), bad)
    bad = ei.clone()
    bad[0, 0] = -1
    with pytest.raises(IndexError, match="negative"):
        layer(torch.randn(40, 6), bad)


def test_no_grad_and_inference_mode():
    ei, x = _sorted_graph(6), torch.randn(40, 6)
    layer = gnn.SAGEConv(6, 8)
    want = layer(x, Graph.build(ei)).detach()
    with torch.no_grad():
        assert torch.equal(layer(x.clone().requires_grad_(True), ei), want)
    with torch.inference_mode():
        assert torch.equal(layer(x, ei), want)


def test_backward_follows_the_forwards_edges():
    """As on the CSR path (whose graph is a copy): an in-place edit of edge_index after the forward does not change
    the gradient, and an edge_index made under inference mode trains."""
    ei, x = _sorted_graph(8), torch.randn(40, 6)
    layer = gnn.GINConv(Linear(6, 8))
    want = _step(layer, x, Graph.build(ei.clone()))
    xg = x.clone().requires_grad_(True)
    y = layer(xg, ei)
    ei[0, :5] = 0  # in place, after the forward read it
    layer.zero_grad()
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    assert torch.equal(xg.grad, want[1])
    with torch.inference_mode():
        ei_inf = _sorted_graph(8)
    for layer in (gnn.GINConv(Linear(6, 8)), gnn.SAGEConv(6, 8)):
        assert coo_sum(ei_inf, x, 40, 40) is not None
        for a, b in zip(_step(layer, x, ei_inf), _step(layer, x, Graph.build(ei_inf.clone()))):
            assert torch.equal(a, b)


@pytest.mark.parametrize("make", [lambda: gnn.GINConv(Linear(6, 8)), lambda: gnn.SAGEConv(6, 8)])
def test_malformed_edge_index_gets_the_named_errors(make):
    layer, x = make(), torch.randn(40, 6)
    ei = _sorted_graph(1)
    with pytest.raises(ValueError, match="edge_index is required"):
        layer(x, None)
    with pytest.raises(ValueError, match=r"edge_index must have shape \[2, E\]"):
        layer(x, ei[0])
    with pytest.raises(ValueError, match="torch.as_tensor"):
        layer(x, ei.tolist())


@pytest.mark.parametrize("where", ["last", "first"])
def test_bad_destination_ids_raise_the_csr_paths_errors(where):
    ei = _sorted_graph(9)
    k = -1 if where == "last" else 0
    for layer in (gnn.GINConv(Linear(6, 8)), gnn.SAGEConv(6, 8)):
        bad = ei.clone()
        bad[1, k] = 40  # order kept when last, broken when first: either path names the argument
        with pytest.raises(IndexError, match=r"edge_index\[1\].*destination id 40"):
            layer(torch.randn(40, 6), bad)
        bad = ei.clone()
        bad[1, k] = -3
        with pytest.raises(IndexError, match="negative"):
            layer(torch.randn(40, 6), bad)


def test_bad_arguments_are_named():
    ei, x = _sorted_graph(1), torch.randn(40, 6)
    with pytest.raises(ValueError, match="reduce='avg'"):
        coo_sum(ei, x, 40, 40, "avg")
    with pytest.raises(ValueError, match="coo_sum: num_src must be a non-negative int"):
        coo_sum(ei, x, -1, 40)
    with pytest.raises(ValueError, match="coo_sum: num_dst must be a non-negative int"):
        coo_sum(ei, x, 40, 2.5)
    assert coo_sum(ei, x, 40, 40, "max") is None  # a known reduction it does not serve: the CSR path's


@pytest.mark.parametrize("default", [torch.bfloat16, torch.float16, torch.float64])
def test_the_mean_ignores_torchs_default_dtype(default):
    """The mean's degrees are float32 whatever torch's default dtype (a bfloat16 default once rounded 1/3 in the
    backward and saturated degrees above 256, and the bad count stayed cached)."""
    ei = torch.stack([torch.arange(300) % 10, torch.zeros(300, dtype=torch.long)])
    ei = torch.cat([ei, torch.tensor([[0, 1, 2], [3, 3, 3]])], 1)
    old = torch.get_default_dtype()
    try:
        torch.set_default_dtype(default)
        x = torch.ones(10, 2, dtype=torch.float32, requires_grad=True)
        out = coo_sum(ei, x, 10, 10, "mean")
        out.sum().backward()
    finally:
        torch.set_default_dtype(old)
    want_x = torch.ones(10, 2, requires_grad=True)  # the scatter mean, in float32
    count = torch.bincount(ei[1], minlength=10).clamp(min=1).float().view(-1, 1)
    want = torch.zeros(10, 2).index_add(0, ei[1], want_x.index_select(0, ei[0])) / count
    want.sum().backward()
    assert torch.equal(out, want.detach()) and out[0, 0] == 1 and out[3, 0] == 1
    torch.testing.assert_close(x.grad, want_x.grad)
    assert torch.equal(coo_sum(ei, torch.ones(10, 2), 10, 10, "mean"), out.detach())  # nothing bad kept
