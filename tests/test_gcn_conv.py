"""GCNConv against torch_geometric.nn.GCNConv with loaded weights, for every input form."""
import pytest
import torch
import torch_geometric.nn as pyg_nn
from torch_geometric import EdgeIndex
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csr_tensor

from gnnkit.nn import GCNConv
from gnnkit.ops.graph import SparseTensor
from tests.conftest import random_graph

N, FIN, FOUT = 40, 11, 7  # feature sizes that are not powers of two


def _pair(**kw):
    ref = pyg_nn.GCNConv(FIN, FOUT, **kw)
    torch.nn.init.normal_(ref.bias)  # a non-zero bias so it is compared too
    ours = GCNConv(FIN, FOUT, **kw)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref.eval(), ours.eval()


def _graph(seed=0):
    ei = random_graph(N, 150, seed=seed, self_loops=True, duplicates=True, hub=30)
    ei[:, :3] = torch.tensor([[5, 5, 9], [5, 5, 9]])  # repeated self-loops
    return ei


def test_state_dict_keys_and_repr():
    ref, ours = _pair()
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["bias", "lin.weight"]
    assert repr(ours) == "GCNConv(11, 7)"


@pytest.mark.parametrize("improved", [False, True])
@pytest.mark.parametrize("add_self_loops", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_matches_pyg_edge_index(improved, add_self_loops, weighted, dtype):
    ref, ours = _pair(improved=improved, add_self_loops=add_self_loops)
    ei = _graph()
    x = torch.randn(N, FIN, requires_grad=True)
    w = torch.rand(ei.size(1), requires_grad=True) if weighted else None
    out_ref = ref(x, ei, w)  # PyG on int64 (its int32 path is not trusted; field.md)
    out = ours(x, ei.to(dtype), w)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(out)
    grads_ref = torch.autograd.grad(out_ref, [x, ref.lin.weight] + ([w] if weighted else []), g)
    grads = torch.autograd.grad(out, [x, ours.lin.weight] + ([w] if weighted else []), g)
    if weighted and add_self_loops:
        # edges 0 and 1 are the same self-loop; only the last one's weight is used. PyG's
        # index_put backward still sends a gradient to the overwritten edge 0; ours is exactly 0.
        assert grads[2][0] == 0
        grads, grads_ref = (grads[0], grads[1], grads[2][1:]), (grads_ref[0], grads_ref[1], grads_ref[2][1:])
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _forms(ei):
    yield "EdgeIndex", EdgeIndex(ei, sparse_size=(N, N))
    yield "coo", to_torch_coo_tensor(ei.flip(0), size=(N, N))
    yield "csr", to_torch_csr_tensor(ei.flip(0), size=(N, N))
    if SparseTensor is not None:
        yield "SparseTensor", SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(N, N))


@pytest.mark.parametrize("normalize", [True, False])
def test_matches_pyg_every_form(normalize):
    ref, ours = _pair(normalize=normalize)
    ei = _graph(seed=1)
    x = torch.randn(N, FIN)
    for name, adj in _forms(ei):
        torch.testing.assert_close(ours(x, adj), ref(x, adj), atol=1e-5, rtol=1e-5, msg=name)


def test_cached_and_cache_reuse():
    ref, ours = _pair(cached=True)
    ei = _graph(seed=2)
    x = torch.randn(N, FIN)
    torch.testing.assert_close(ours(x, ei), ref(x, ei), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(x, ei), ref(x, ei), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="cached=True"):
        ours(torch.randn(N + 3, FIN), ei)
    ours.reset_parameters()
    assert ours._cached_norm is None


def test_edge_weight_in_place_change_is_seen():
    _, ours = _pair()
    ei = _graph(seed=3)
    x = torch.randn(N, FIN)
    w = torch.rand(ei.size(1))
    a = ours(x, ei, w)
    w.mul_(3.0)
    w[:10] = 0.0
    ref = pyg_nn.GCNConv(FIN, FOUT)
    ref.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x, ei, w), ref(x, ei, w), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, ours(x, ei, w))


def test_isolated_nodes_and_empty_graph():
    ref, ours = _pair()
    x = torch.randn(N, FIN)
    ei = torch.tensor([[0, 1], [1, 2]])  # most nodes isolated
    torch.testing.assert_close(ours(x, ei), ref(x, ei), atol=1e-5, rtol=1e-5)
    empty = torch.empty(2, 0, dtype=torch.long)
    torch.testing.assert_close(ours(x, empty), ref(x, empty), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("improved", [False, True])
def test_empty_graph_with_edge_weight(improved):
    """Review finding: an empty edge_index with an (empty) edge_weight raised IndexError (every node's loop
    weight was read from edge_weight); PyG gives each node its self-loop with the fill value."""
    ref, ours = _pair(improved=improved)
    empty = torch.empty(2, 0, dtype=torch.long)
    w = torch.rand(0, requires_grad=True)
    xr, xo = (torch.randn(N, FIN).requires_grad_(True) for _ in range(2))
    with torch.no_grad():
        xo.copy_(xr)
    out_r, out_o = ref(xr, empty, w), ours(xo, empty, w)
    torch.testing.assert_close(out_o, out_r, atol=1e-5, rtol=1e-5)
    (g_r,), (g_o,) = torch.autograd.grad(out_r.sum(), xr), torch.autograd.grad(out_o.sum(), xo)
    torch.testing.assert_close(g_o, g_r, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("call, exc, msg", [
    (lambda m, x, ei: m(x, ei.float()), ValueError, "integer"),
    (lambda m, x, ei: m(x, ei.t()), ValueError, "transposed"),
    (lambda m, x, ei: m(x[:5], ei), IndexError, "ids must lie"),
    (lambda m, x, ei: m(x, ei, torch.ones(3)), ValueError, "edge_weight"),
    (lambda m, x, ei: m(x[:, :4], ei), ValueError, "in_channels"),
    (lambda m, x, ei: m((x, x), ei), ValueError, "bipartite"),
])
def test_bad_input(call, exc, msg):
    _, ours = _pair()
    ei = _graph(seed=4)
    with pytest.raises(exc, match=msg):
        call(ours, torch.randn(N, FIN), ei)


def test_add_self_loops_without_normalize_is_an_error():
    with pytest.raises(ValueError, match="normalize"):
        GCNConv(4, 4, add_self_loops=True, normalize=False)


def test_training_step_matches_pyg():
    """A few optimiser steps stay equal: the gradients agree, not just the forward."""
    torch.manual_seed(0)
    ref, ours = _pair()
    ref.train(), ours.train()
    ei = _graph(seed=5)
    x = torch.randn(N, FIN)
    y = torch.randint(0, FOUT, (N,))
    opts = [torch.optim.Adam(m.parameters(), lr=0.05) for m in (ref, ours)]
    for _ in range(5):
        for m, opt in zip((ref, ours), opts):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x, ei), y).backward()
            opt.step()
    torch.testing.assert_close(ours.lin.weight, ref.lin.weight, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fin, fout", [(5, 9), (9, 5)])
def test_both_aggregation_orders_match_pyg_with_input_grad(fin, fout):
    """x narrower than the output is aggregated first, wider x is transformed first: same result."""
    ref = pyg_nn.GCNConv(fin, fout)
    ours = GCNConv(fin, fout)
    ours.load_state_dict(ref.state_dict())
    ei = _graph(seed=6)
    x = torch.randn(N, fin, requires_grad=True)
    out, out_ref = ours(x, ei), ref(x, ei)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, [x, ours.lin.weight], g),
                    torch.autograd.grad(out_ref, [x, ref.lin.weight], g)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_compiles_fullgraph_with_backward():
    torch._dynamo.reset()
    ref, ours = _pair()
    ei = _graph(seed=7)
    x = torch.randn(N, FIN, requires_grad=True)
    compiled = torch.compile(ours, fullgraph=True, backend="aot_eager")
    out = compiled(x, ei)
    torch.testing.assert_close(out, ref(x, ei), atol=1e-5, rtol=1e-5)
    (gx,) = torch.autograd.grad(out.sum(), x)
    (gx_ref,) = torch.autograd.grad(ref(x, ei).sum(), x)
    torch.testing.assert_close(gx, gx_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("f_in, f_out", [(4, 3), (16, 3), (4, 32)])
@pytest.mark.parametrize("x_grad", [False, True])
def test_cached_first_filled_under_inference_mode_then_trains(f_in, f_out, x_grad):
    """GCNConv(cached=True) whose first call runs under inference_mode (an evaluation before training)
    kept inference tensors: training then raised "Inference tensors cannot be saved for backward"
    (PyG raises the same); found by a review.  The cache is now a normal tensor and matches cached=False."""
    torch.manual_seed(0)
    ei = torch.randint(0, 20, (2, 60))
    x = torch.randn(20, f_in, requires_grad=x_grad)
    m = GCNConv(f_in, f_out, cached=True)
    with torch.inference_mode():
        first = m(x, ei)
    out = m(x, ei)
    out.sum().backward()
    ref = GCNConv(f_in, f_out)
    ref.load_state_dict(m.state_dict())
    torch.testing.assert_close(out, ref(x, ei))
    torch.testing.assert_close(first, out.detach())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_self_loop_graph_equals_the_one_built_from_the_input_order(seed):
    """The self-loop graph is read from the base CSR's slots (no inverse permutation); its structure and the
    per-slot weights equal those of the graph built from the input edge order (dropped loops, then one loop
    per node), with duplicate edges, repeated self-loops and shuffled input."""
    from gnnkit.nn.gcn_conv import _self_loop_structure
    from gnnkit.ops import Graph
    ei = _graph(seed)
    ei = ei[:, torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(seed))]
    ew = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(seed + 10))
    graph, keep, loop_edge = _self_loop_structure(Graph.from_coo(ei[0], ei[1], N, N), N)
    is_loop = ei[0] == ei[1]
    kept_in = (~is_loop).nonzero().view(-1)
    nodes = torch.arange(N)
    ref = Graph.from_coo(torch.cat([ei[0, kept_in], nodes]), torch.cat([ei[1, kept_in], nodes]), N, N)
    assert torch.equal(graph.rowptr, ref.rowptr) and torch.equal(graph.col, ref.col)
    assert torch.equal(graph.row, ref.row)
    ref_loop = torch.full((N,), -1, dtype=torch.long)
    for i in is_loop.nonzero().view(-1).tolist():  # the last self-loop edge of a node
        ref_loop[ei[0, i]] = i
    assert torch.equal(loop_edge, ref_loop)
    loop_w = torch.where(loop_edge >= 0, ew[loop_edge.clamp(min=0)], torch.ones(N))
    w_ours = graph.to_csr_order(torch.cat([ew[keep], loop_w]))
    w_ref = ref.to_csr_order(torch.cat([ew[kept_in], loop_w]))
    assert torch.equal(w_ours, w_ref)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_evaluation_builds_no_transpose_and_training_after_it_matches_pyg(mode):
    """Without gradients no backward can follow: the self-loop graph's transpose (and the weights in its order)
    are not built; the same graph trained afterwards gets them and matches PyG's gradients."""
    from gnnkit.ops import Graph
    ref, ours = _pair()
    x = torch.randn(N, FIN, generator=torch.Generator().manual_seed(7))
    graph = Graph.build(_graph(), num_nodes=N)
    with torch.no_grad() if mode == "no_grad" else torch.inference_mode():
        out = ours(x, graph)
    # (entries built under inference mode are kept apart: a training step cannot save inference tensors)
    store = graph._derived if mode == "no_grad" else graph._derived_nograd
    loops = store["gcn_loops"][0]
    assert "transpose" not in loops._derived and "transpose" not in loops._derived_nograd
    torch.testing.assert_close(out, ref(x, _graph()))
    xr, xo = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref(xr, _graph()).square().sum().backward()
    ours(xo, graph).square().sum().backward()
    assert graph.derived_or_none("gcn_loops")[0].derived_or_none("transpose") is not None
    torch.testing.assert_close(xo.grad, xr.grad)
    torch.testing.assert_close(ours.lin.weight.grad, ref.lin.weight.grad)


def test_gcn_norm_infers_the_node_count_as_pyg_without_a_csr_of_the_input():
    """``gcn_norm(edge_index)`` (num_nodes=None) takes PyG's largest id + 1 and sorts once (the self-loop
    graph, cached on the tensor): no CSR of the input itself lands in the graph cache."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm as pyg_gcn_norm

    from gnnkit.nn.gcn_conv import gcn_norm
    from gnnkit.ops.graph import _CACHE, clear_cache
    g = torch.Generator().manual_seed(3)
    ei = torch.randint(0, 40, (2, 300), generator=g)
    w = torch.rand(300, generator=g)
    clear_cache()
    graph, v = gcn_norm(ei, w)
    assert len(_CACHE) == 1 and graph.num_dst == int(ei.max()) + 1
    ref_graph, ref_v = gcn_norm(ei.clone(), w, num_nodes=graph.num_dst)
    assert torch.equal(graph.col, ref_graph.col) and torch.equal(v, ref_v)
    pei, pw = pyg_gcn_norm(ei, w, add_self_loops=True)
    n = graph.num_dst
    src, dst = graph.edge_index()  # the weights come in the graph's edge order
    dense = torch.zeros(n, n).index_put_((dst, src), v, accumulate=True)
    ref = torch.zeros(n, n).index_put_((pei[1], pei[0]), pw, accumulate=True)
    torch.testing.assert_close(dense, ref)
    with pytest.raises(IndexError, match="negative node id"):
        gcn_norm(ei - 1)
