"""Second derivatives (``create_graph=True``: gradient penalties) through gnnkit's sum and mean SpMM, against
torch's numerical check and against PyG's layers with the same weights; the other ops still refuse by name."""
import pytest
import torch
import torch_geometric.nn as pyg_nn
from torch.nn import Linear

import gnnkit.nn as gnn
from gnnkit.ops import Graph, spmm


def _graph(n=30, e=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    ei[:, :5] = ei[:, 5:10]  # duplicate edges
    return ei


@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("weights", ["learned", "constant", "none"])
def test_spmm_second_derivatives_pass_gradgradcheck(reduce, weights):
    ei = _graph()
    graph = Graph.build(ei, num_nodes=30)
    x = torch.randn(30, 5, dtype=torch.float64, requires_grad=True)
    w = torch.rand(120, dtype=torch.float64, requires_grad=weights == "learned")
    if weights == "learned":
        assert torch.autograd.gradgradcheck(lambda x, w: spmm(graph, x, w, reduce=reduce), (x, w))
    else:
        value = None if weights == "none" else w
        assert torch.autograd.gradgradcheck(lambda x: spmm(graph, x, value, reduce=reduce), (x,))


def _penalty(conv, x, ei, w=None):
    """A gradient penalty on x and its gradients with respect to the layer's parameters (and w: edge weights, or
    GINE's edge features)."""
    out = conv(x, ei) if w is None else conv(x, ei, w)
    g, = torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)
    pen = g.pow(2).sum()
    # the Hessian's x block too, in float64 (in float32 a few of its entries differ from PyG's by up to 0.3 %:
    # rounding through SAGE std's sqrt and GAT's softmax)
    wrt = list(conv.parameters()) + ([w] if w is not None else []) + ([x] if x.dtype == torch.float64 else [])
    return pen, torch.autograd.grad(pen, wrt)


@pytest.mark.parametrize("make, weighted", [
    (lambda M: M.GCNConv(8, 8), False),
    (lambda M: M.GCNConv(8, 8), True),
    (lambda M: M.GINConv(Linear(8, 8)), False),
    (lambda M: M.SAGEConv(8, 8), False),
    (lambda M: M.SAGEConv(8, 8, aggr="sum"), False),
    (lambda M: M.GINEConv(Linear(8, 8), edge_dim=3), "features"),
    (lambda M: M.GATConv(8, 4, heads=2), False),
    (lambda M: M.GATConv(8, 4, heads=2, edge_dim=3), "features"),
    (lambda M: M.GATv2Conv(8, 4, heads=2), False),
    (lambda M: M.SAGEConv(8, 8, aggr="std"), False),
    (lambda M: M.SAGEConv(8, 8, aggr="median"), False),
    (lambda M: M.SAGEConv(8, 8, aggr="max"), False),
    (lambda M: M.SAGEConv(8, 8, aggr="min", project=True), False),
    (lambda M: M.SAGEConv(8, 8, aggr="softmax", aggr_kwargs={"learn": True}), False),
], ids=["gcn", "gcn-edge-weight", "gin", "sage-mean", "sage-sum", "gine", "gat", "gat-edge", "gatv2", "sage-std",
        "sage-median", "sage-max", "sage-min-pool", "sage-softmax-learned"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_penalty_matches_pyg_on_the_csr_path(make, weighted, dtype):
    """At 3,000 nodes / 15,000 edges the layers take the CSR ops (before 2026-12-06: a RuntimeError there, while the
    small-graph edge-list paths gave the same penalty)."""
    n, e = 3000, 15000
    ei = torch.randint(0, n, (2, e), generator=torch.Generator().manual_seed(1))
    x = torch.randn(n, 8, dtype=dtype, generator=torch.Generator().manual_seed(2)).requires_grad_()
    torch.manual_seed(0)
    theirs = make(pyg_nn).to(dtype)
    ours = make(gnn).to(dtype)
    ours.load_state_dict(theirs.state_dict())
    shape = (e, 3) if weighted == "features" else (e,)
    w = torch.rand(shape, dtype=dtype, generator=torch.Generator().manual_seed(3)).requires_grad_() if weighted \
        else None
    p_ref, g_ref = _penalty(theirs, x, ei, w)
    p, gs = _penalty(ours, x, ei, w)
    # float64: rounding (GAT's differed by 1e-9 relative while its LeakyReLU slope was a float32 factor)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=2e-4, atol=5e-5)
    torch.testing.assert_close(p, p_ref, **tol)
    for a, b in zip(gs, g_ref):
        torch.testing.assert_close(a, b, **tol)


def test_semi_gradient_softmax_still_refuses_second_derivatives_by_name():
    n, e = 3000, 15000
    ei = torch.randint(0, n, (2, e), generator=torch.Generator().manual_seed(1))
    x = torch.randn(n, 8, requires_grad=True)
    out = gnn.SAGEConv(8, 8, aggr="softmax", aggr_kwargs={"semi_grad": True})(x, ei)
    with pytest.raises(RuntimeError, match="first derivatives only here; .* supported by GCN, GIN, GINE, GAT, "
                                           "GATv2 and SAGE's aggregations, not by this op"):
        g, = torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)
        g.sum().backward()


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_segment_sums_and_gathers_pass_gradgradcheck(reduce):
    from gnnkit.ops import gather_slots, relu_message_slots, segment_reduce, segment_reduce_slots
    ei = _graph(seed=4)
    graph = Graph.build(ei, num_nodes=30)
    v = torch.randn(120, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(30, 3, dtype=torch.float64, requires_grad=True)
    # a nonlinear use of each output, so the second derivative is not zero
    assert torch.autograd.gradgradcheck(lambda v: segment_reduce(graph, v, reduce).pow(2), (v,))
    assert torch.autograd.gradgradcheck(lambda v: segment_reduce_slots(graph, v, reduce).pow(2), (v,))
    assert torch.autograd.gradgradcheck(lambda x: gather_slots(graph, x, "src").pow(2), (x,))
    assert torch.autograd.gradgradcheck(lambda x: gather_slots(graph, x, "dst").pow(2), (x,))
    e = torch.randn(120, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, e: relu_message_slots(graph, x, e).pow(2), (x, e))


def test_attention_ops_pass_gradgradcheck():
    from gnnkit.ops import gat_attention, segment_softmax
    graph = Graph.build(_graph(20, 80, seed=5), num_nodes=20)
    x = torch.randn(20, 2, 3, dtype=torch.float64, requires_grad=True)
    a_src = torch.randn(20, 2, dtype=torch.float64, requires_grad=True)
    a_dst = torch.randn(20, 2, dtype=torch.float64, requires_grad=True)

    def attend(x, a_src, a_dst):
        out = gat_attention(graph, x, a_src, a_dst)
        return out[0] if isinstance(out, tuple) else out
    assert torch.autograd.gradgradcheck(attend, (x, a_src, a_dst))
    logits = torch.randn(80, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda v: segment_softmax(graph, v), (logits,))


def test_lstm_aggregation_gradient_penalty_matches_pyg():
    from torch_geometric.utils import sort_edge_index
    n, e = 3000, 15000
    ei = sort_edge_index(torch.randint(0, n, (2, e), generator=torch.Generator().manual_seed(1)), sort_by_row=False)
    x = torch.randn(n, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    torch.manual_seed(0)
    theirs = pyg_nn.SAGEConv(8, 8, aggr="lstm").double()
    ours = gnn.SAGEConv(8, 8, aggr="lstm", aggr_kwargs={"pyg_padding": True}).double()
    ours.load_state_dict(theirs.state_dict())
    (p_ref, g_ref), (p, gs) = _penalty(theirs, x, ei), _penalty(ours, x, ei)
    torch.testing.assert_close(p, p_ref)
    for a, b in zip(gs, g_ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("slope", [0.2, -0.3, 0.0])
def test_create_graph_gradients_equal_the_first_order_ones(slope):
    """Under create_graph=True the formulas give the fast backward's first derivatives (float64, to rounding): GAT's
    slope was multiplied as a float32 factor (0.20000000298), 1e-9 off (re-read of this change)."""
    from gnnkit.ops import gat_attention
    graph = Graph.build(_graph(20, 80, seed=6), num_nodes=20)
    g = torch.Generator().manual_seed(7)
    x, a_src, a_dst = (torch.randn(20, 2, 3, dtype=torch.float64, generator=g),
                       torch.randn(20, 2, dtype=torch.float64, generator=g),
                       torch.randn(20, 2, dtype=torch.float64, generator=g))
    w = torch.rand(80, dtype=torch.float64, generator=g)

    def grads(create_graph):
        leaves = [t.clone().requires_grad_() for t in (x, a_src, a_dst, w)]
        out = gat_attention(graph, leaves[0], leaves[1], leaves[2], negative_slope=slope)
        out = out[0] if isinstance(out, tuple) else out
        loss = out.pow(2).sum() + spmm(graph, leaves[0][:, 0], leaves[3], reduce="mean").pow(2).sum()
        return torch.autograd.grad(loss, leaves, create_graph=create_graph)
    for fast, formula in zip(grads(False), grads(True)):
        torch.testing.assert_close(formula, fast, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("make", [lambda: gnn.GCNConv(4, 3, add_self_loops=False),
                                  lambda: gnn.GATConv(4, 3, add_self_loops=False),
                                  lambda: gnn.GCNConv(4, 3)], ids=["gcn-no-loops", "gat-no-loops", "gcn"])
def test_second_derivatives_on_a_graph_without_edges(make):
    """An edge-weighted sum over no edges crashed (a reshape of 0 elements) under create_graph=True only."""
    conv = make().double()
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    ei = torch.empty(2, 0, dtype=torch.long)
    (g,) = torch.autograd.grad(conv(x, ei).pow(2).sum(), x, create_graph=True)
    (first,) = torch.autograd.grad(conv(x, ei).pow(2).sum(), x)
    torch.testing.assert_close(g, first)
    g.pow(2).sum().backward()
    graph = Graph.build(ei, num_nodes=5)
    (gw,) = torch.autograd.grad(spmm(graph, x, torch.ones(0, dtype=torch.float64)).sum(), x, create_graph=True)
    assert gw.shape == x.shape and not gw.any()


def test_third_derivatives_match_pyg():
    """Higher orders run through the same formulas (the softmax's saved output re-enters them)."""
    n, e = 60, 240
    ei = torch.randint(0, n, (2, e), generator=torch.Generator().manual_seed(8))
    x0 = torch.randn(n, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    torch.manual_seed(0)
    theirs = pyg_nn.GATConv(4, 3, heads=2).double()
    ours = gnn.GATConv(4, 3, heads=2).double()
    ours.load_state_dict(theirs.state_dict())

    def third(conv):
        x = x0.clone().requires_grad_()
        (g1,) = torch.autograd.grad(conv(x, ei).pow(3).sum(), x, create_graph=True)
        (g2,) = torch.autograd.grad(g1.pow(2).sum(), x, create_graph=True)
        (g3,) = torch.autograd.grad(g2.sum(), x)
        return g3
    torch.testing.assert_close(third(ours), third(theirs), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_max_min_and_softmax_aggregation_pass_gradgradcheck(reduce):
    from gnnkit.ops import softmax_aggregate_slots
    graph = Graph.build(_graph(20, 80, seed=10), num_nodes=20)
    x = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)  # continuous values: no ties
    w = torch.rand(80, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, w: spmm(graph, x, w, reduce=reduce).pow(2), (x, w))
    t = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, t: softmax_aggregate_slots(graph, x, t), (x, t))
