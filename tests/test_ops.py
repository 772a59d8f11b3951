"""Every op (torch path) against a naive gather/scatter oracle, gradcheck in float64,
odd shapes and hypothesis-generated graphs."""
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.autograd import gradcheck

from gnnkit.ops import as_graph, gat_attention, sddmm, segment_reduce, segment_softmax, spmm
from tests.conftest import random_graph

REDUCES = ["sum", "mean", "max", "min"]


# ---------------------------------------------------------------- naive oracles (no CSR, no sparse kernels)
def naive_segment(values, dst, n, reduce):
    out = torch.zeros((n,) + values.shape[1:], dtype=values.dtype)
    for i in range(n):
        m = values[dst == i]
        if m.numel() == 0 or m.size(0) == 0:
            continue
        out[i] = {"sum": m.sum(0), "mean": m.mean(0), "max": m.max(0).values, "min": m.min(0).values}[reduce]
    return out


def naive_spmm(ei, x, w, n_dst, reduce):
    msg = x[ei[0]]
    if w is not None:
        msg = msg * (w.unsqueeze(-1) if msg.dim() == w.dim() + 1 else w)
    return naive_segment(msg, ei[1], n_dst, reduce)


def naive_softmax(ei, s, n):
    out = torch.empty_like(s)
    for i in range(n):
        m = ei[1] == i
        if m.any():
            out[m] = torch.softmax(s[m], dim=0)
    return out


def graphs():
    return st.tuples(st.integers(1, 12), st.integers(0, 40), st.integers(0, 10_000))


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("weighted", [False, True])
@given(g=graphs(), feat=st.integers(1, 7))
@settings(max_examples=15, deadline=None)
def test_spmm_matches_oracle(reduce, weighted, g, feat):
    n, e, seed = g
    ei = random_graph(n, e, seed=seed)
    graph, _ = as_graph(ei, num_nodes=n)
    x = torch.randn(n, feat, dtype=torch.float64)
    w = torch.rand(ei.size(1), dtype=torch.float64) if weighted else None
    torch.testing.assert_close(spmm(graph, x, w, reduce), naive_spmm(ei, x, w, n, reduce))


@pytest.mark.parametrize("reduce", REDUCES)
def test_spmm_gradcheck(reduce):
    ei = random_graph(9, 30, seed=1, hub=6)
    g, _ = as_graph(ei, num_nodes=11)  # nodes 9, 10 isolated
    x = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    w = torch.rand(ei.size(1), dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x, w: spmm(g, x, w, reduce), (x, w), fast_mode=True)
    assert gradcheck(lambda x: spmm(g, x, None, reduce), (x,), fast_mode=True)


def test_spmm_multihead_and_bipartite():
    ei = torch.tensor([[0, 3, 4, 4, 1], [0, 1, 1, 0, 1]])
    g, _ = as_graph(ei, size=(5, 2))
    x = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(spmm(g, x, w), naive_spmm(ei, x, w, 2, "sum"))
    assert gradcheck(lambda x, w: spmm(g, x, w, "mean"), (x, w), fast_mode=True)


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_max_min_gradient_is_split_among_tied_extrema_as_torch_scatter(reduce):
    """Equal messages into one node share its gradient evenly (torch's scatter amax/amin, PyG's max/min);
    session 13 changed this from "the first tied slot takes it all", which broke parity with PyG."""
    ei = torch.tensor([[1, 2, 3, 2], [0, 0, 0, 0]])  # a duplicate edge too
    g, _ = as_graph(ei, num_nodes=4)
    x = torch.tensor([[0.0, 1.0], [5.0, 2.0], [5.0, 3.0], [5.0, -1.0]], requires_grad=True)
    w = torch.tensor([1.0, 1.0, 1.0, 1.0], requires_grad=True)
    spmm(g, x, w, reduce=reduce).sum().backward()
    xr = x.detach().clone().requires_grad_()
    wr = w.detach().clone().requires_grad_()
    msg = xr[ei[0]] * wr.view(-1, 1)
    want = torch.zeros(4, 2).scatter_reduce(0, ei[1].view(-1, 1).expand(-1, 2), msg, "a" + reduce,
                                             include_self=False)
    want.sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(w.grad, wr.grad)
    # and segment_reduce over per-edge values
    v = torch.tensor([[5.0], [5.0], [5.0], [4.0]], requires_grad=True)
    segment_reduce(g, v, reduce).sum().backward()
    vr = v.detach().clone().requires_grad_()
    torch.zeros(4, 1).scatter_reduce(0, ei[1].view(-1, 1), vr, "a" + reduce, include_self=False).sum().backward()
    torch.testing.assert_close(v.grad, vr.grad)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 1e-2), (torch.bfloat16, 5e-2)])
def test_low_precision_accumulates_in_fp32(dtype, tol):
    ei = random_graph(30, 400, seed=3, hub=300)
    g, _ = as_graph(ei, num_nodes=30)
    x = torch.randn(30, 13)
    out = spmm(g, x.to(dtype), reduce="mean")
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), naive_spmm(ei, x, None, 30, "mean"), rtol=tol, atol=tol)


@given(g=graphs(), heads=st.integers(1, 3), feat=st.integers(1, 6))
@settings(max_examples=20, deadline=None)
def test_sddmm_matches_oracle(g, heads, feat):
    n, e, seed = g
    ei = random_graph(n, e, seed=seed)
    graph, _ = as_graph(ei, num_nodes=n)
    a = torch.randn(n, heads, feat, dtype=torch.float64)
    b = torch.randn(n, heads, feat, dtype=torch.float64)
    torch.testing.assert_close(sddmm(graph, a, b), (a[ei[1]] * b[ei[0]]).sum(-1))


def test_sddmm_gradcheck():
    ei = random_graph(8, 25, seed=2)
    g, _ = as_graph(ei, num_nodes=8)
    a = torch.randn(8, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, 2, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, b: sddmm(g, a, b), (a, b), fast_mode=True)
    a2, b2 = a[:, 0].detach().requires_grad_(), b[:, 0].detach().requires_grad_()
    assert gradcheck(lambda a, b: sddmm(g, a, b), (a2, b2), fast_mode=True)


@given(g=graphs(), heads=st.integers(1, 3))
@settings(max_examples=20, deadline=None)
def test_softmax_matches_oracle(g, heads):
    n, e, seed = g
    ei = random_graph(n, e, seed=seed)
    graph, _ = as_graph(ei, num_nodes=n)
    s = 10 * torch.randn(ei.size(1), heads, dtype=torch.float64)
    torch.testing.assert_close(segment_softmax(graph, s), naive_softmax(ei, s, n))


def test_softmax_gradcheck_and_1d():
    ei = random_graph(8, 25, seed=4, hub=5)
    g, _ = as_graph(ei, num_nodes=8)
    s = torch.randn(ei.size(1), 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda s: segment_softmax(g, s), (s,), fast_mode=True)
    s1 = torch.randn(ei.size(1), dtype=torch.float64)
    torch.testing.assert_close(segment_softmax(g, s1), naive_softmax(ei, s1, 8))


@pytest.mark.parametrize("reduce", REDUCES)
def test_segment_reduce(reduce):
    ei = random_graph(10, 40, seed=5)
    g, _ = as_graph(ei, num_nodes=12)
    v = torch.randn(ei.size(1), 3, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(segment_reduce(g, v, reduce), naive_segment(v.detach(), ei[1], 12, reduce))
    assert gradcheck(lambda v: segment_reduce(g, v, reduce), (v,), fast_mode=True)


def test_gat_attention_matches_dense_and_gradcheck():
    N, H, F = 9, 2, 3
    ei = random_graph(N, 30, seed=6)
    g, _ = as_graph(ei, num_nodes=N)
    x = torch.randn(N, H, F, dtype=torch.float64, requires_grad=True)
    a_s = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    a_d = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    t = torch.randn(ei.size(1), H, dtype=torch.float64, requires_grad=True)
    out, alpha = gat_attention(g, x, a_s, a_d, t, 0.2, return_attention=True)
    s = torch.nn.functional.leaky_relu(a_s[ei[0]] + a_d[ei[1]] + t, 0.2)
    ref_alpha = naive_softmax(ei, s.detach(), N)
    torch.testing.assert_close(alpha, ref_alpha)
    torch.testing.assert_close(out, naive_spmm(ei, x.detach(), ref_alpha, N, "sum"))
    assert gradcheck(lambda *a: gat_attention(g, *a, negative_slope=0.2)[0], (x, a_s, a_d, t), fast_mode=True)


@pytest.mark.parametrize("slope", [0.2, 0.0, -0.3])
@pytest.mark.parametrize("with_t", [False, True])
@pytest.mark.parametrize("idx", [torch.int64, torch.int32])
def test_gat_scores_segment_sum_backward(slope, with_t, idx):
    """The composite path's scores (built in place, node gradients as segment sums over the CSR
    and its transpose): gradcheck, and the same gradients as the gather/scatter formulation on a
    graph with a hub, duplicates, self-loops, isolated and bipartite nodes."""
    from gnnkit.ops.gat import EdgeScoresFunction
    S, N, H = 14, 11, 3
    g0 = torch.Generator().manual_seed(int(slope * 10) + with_t)
    src = torch.cat([torch.randint(0, S, (60,), generator=g0), torch.arange(10), torch.tensor([4, 4])])
    dst = torch.cat([torch.randint(0, N - 2, (60,), generator=g0), torch.zeros(10, dtype=torch.long),
                     torch.tensor([4, 4])])  # node 0 a hub, (4 -> 4) twice, nodes N-2, N-1 isolated
    ei = torch.stack([src, dst]).to(idx)
    g, _ = as_graph(ei, size=(S, N))
    a_s = torch.randn(S, H, dtype=torch.float64, requires_grad=True)
    a_d = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    t = torch.randn(g.num_edges, H, dtype=torch.float64, requires_grad=True) if with_t else None
    ins = (a_s, a_d) + ((t,) if with_t else ())

    def ours(*a):
        return EdgeScoresFunction.apply(g, a[0], a[1], a[2] if with_t else None, slope)

    def oracle(*a):
        pre = a[0][g.col.long()] + a[1][g.row.long()] + (a[2] if with_t else 0)
        return torch.nn.functional.leaky_relu(pre, slope)
    assert gradcheck(ours, ins)
    go = torch.randn(g.num_edges, H, dtype=torch.float64)
    ga = torch.autograd.grad(ours(*ins), ins, go)
    gb = torch.autograd.grad(oracle(*ins), ins, go)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)
    torch.testing.assert_close(ours(*ins), oracle(*ins))


@pytest.mark.parametrize("need", [(True, True), (True, False), (False, True)])
def test_node_sums_cpu_order_equals_the_transposed_segments(need):
    """GAT's node gradients: on CPU ``index_add_`` over the sources in CSR slot order must add each source's
    slots in the order of its transposed-CSR segment (what the segment-sum path of other devices adds), so the
    two agree bit for bit; the destination side is a segment sum over the CSR."""
    from gnnkit.ops.reference import node_sums_ref
    g0 = torch.Generator().manual_seed(3)
    S, N, H = 9, 12, 5
    src = torch.cat([torch.randint(0, S, (80,), generator=g0), torch.tensor([2, 2, 2])])
    dst = torch.cat([torch.randint(0, N - 1, (80,), generator=g0), torch.tensor([3, 3, 3])])  # duplicates
    g, _ = as_graph(torch.stack([src, dst]), size=(S, N))  # node N-1 without edges
    vals = torch.randn(g.num_edges, H, generator=g0) * 1e3  # another order would round differently

    def ordered_sums(ptr, order):  # slot by slot, left to right
        return torch.stack([sum((vals[k] for k in order[int(ptr[i]):int(ptr[i + 1])].tolist()), torch.zeros(H))
                            for i in range(ptr.numel() - 1)])
    rowptr_t, _, perm_t = g.transpose()
    want_src = ordered_sums(rowptr_t, perm_t)  # the transposed CSR's segments
    want_dst = ordered_sums(g.rowptr, torch.arange(g.num_edges))
    got_src, got_dst = node_sums_ref(vals, g.rowptr, g.row, g.col, None, None, S, *need)
    assert got_src.shape == ((S, H) if need[0] else (0, H)) and got_dst.shape == ((N, H) if need[1] else (0, H))
    if need[0]:
        assert torch.equal(got_src, want_src)
        # what the other devices' branch computes (segment sums over the gathered transposed order)
        torch.testing.assert_close(torch.segment_reduce(vals.index_select(0, perm_t), "sum", offsets=rowptr_t,
                                                        axis=0), want_src)
    if need[1]:
        assert torch.equal(got_dst, want_dst)
    no_edges = node_sums_ref(vals[:0], torch.zeros(N + 1, dtype=torch.long), g.row[:0], g.col[:0], None, None, S,
                             True, True)
    assert torch.equal(no_edges[0], torch.zeros(S, H)) and torch.equal(no_edges[1], torch.zeros(N, H))


def test_transposed_constant_values_are_cached_until_changed():
    ei = random_graph(20, 90, seed=3)
    g, _ = as_graph(ei, num_nodes=20)
    w = torch.rand(g.num_edges)
    _, _, perm_t = g.transpose()
    first = g.values_t(w)
    assert g.values_t(w) is first and torch.equal(first, w[perm_t])
    w.mul_(2)  # a new version: recomputed
    again = g.values_t(w)
    assert again is not first and torch.equal(again, w[perm_t])
    wg = torch.rand(g.num_edges, requires_grad=True)  # values with a gradient are never cached
    assert g.values_t(wg) is not g.values_t(wg)


def test_sddmm_pattern_cache_follows_the_structure():
    """Duplicates force a de-duplicated pattern; it is kept in the Graph it belongs to (built once,
    reused, dying with the graph), and a second graph never reuses another's pattern."""
    import gc
    import weakref
    a, b = torch.randn(6, 2, 3), torch.randn(6, 2, 3)
    for seed in range(3):
        ei = torch.cat([random_graph(6, 25, seed=seed), torch.tensor([[1, 1], [2, 2]])], 1)  # (1->2) twice
        g, _ = as_graph(ei, num_nodes=6)
        want = (a[ei[1]] * b[ei[0]]).sum(-1)
        for _ in range(2):
            torch.testing.assert_close(sddmm(g, a, b), want)
        pat = g.derived_or_none("sddmm_pattern")
        assert pat is not None and pat[2] is not None  # duplicates: a gather map
        assert g.sddmm_pattern() is pat  # built once
        assert pat[1].numel() == ei.unique(dim=1).size(1)  # one slot per distinct (src, dst)
    clean, _ = as_graph(random_graph(6, 10, seed=9).unique(dim=1), num_nodes=6)
    assert clean.sddmm_pattern()[2] is None and clean.sddmm_pattern()[1] is clean.col  # no copy without duplicates
    ref = weakref.ref(pat[1])
    del g, ei, pat
    gc.collect()
    assert ref() is None  # the pattern dies with its graph (no other strong reference)


def test_empty_graph_everywhere():
    g, _ = as_graph(torch.empty(2, 0, dtype=torch.long), num_nodes=3)
    x = torch.randn(3, 4, requires_grad=True)
    for r in REDUCES:
        out = spmm(g, x, reduce=r)
        assert torch.equal(out, torch.zeros(3, 4))
        out.sum().backward()
        assert torch.equal(x.grad, torch.zeros(3, 4))
        x.grad = None
    assert sddmm(g, x, x).shape == (0,)
    assert segment_softmax(g, torch.empty(0, 2)).shape == (0, 2)


def test_deterministic():
    ei = random_graph(200, 3000, seed=7, hub=500)
    g, _ = as_graph(ei, num_nodes=200)
    x = torch.randn(200, 16, requires_grad=True)
    w = torch.rand(ei.size(1), requires_grad=True)
    grads = []
    for _ in range(2):
        x.grad = w.grad = None
        spmm(g, x, w, "sum").pow(2).sum().backward()
        grads.append((x.grad.clone(), w.grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


@pytest.mark.parametrize("call, msg", [
    (lambda g, x: spmm(g, x, reduce="prod"), "reduce"),
    (lambda g, x: spmm(g, x[:2]), "num_src"),
    (lambda g, x: spmm(g, x, torch.ones(2)), "edge_weight"),
    (lambda g, x: spmm(g, x, torch.ones(4, dtype=torch.long)), "floating"),
    (lambda g, x: segment_softmax(g, torch.ones(3)), "logits"),
    (lambda g, x: sddmm(g, x, x[:, :2]), "trailing"),
])
def test_op_errors_name_the_argument(call, msg):
    g, _ = as_graph(torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]]), num_nodes=3)
    with pytest.raises(ValueError, match=msg):
        call(g, torch.randn(3, 4))


def test_force_torch_backend(monkeypatch):
    from gnnkit.ops import backend_mode, use_triton
    monkeypatch.setenv("GNNKIT_BACKEND", "torch")
    assert backend_mode() == "torch" and not use_triton("spmm", torch.zeros(1))
    monkeypatch.setenv("GNNKIT_BACKEND", "bogus")
    with pytest.raises(ValueError, match="GNNKIT_BACKEND"):
        backend_mode()


@given(g=graphs(), feat=st.integers(1, 7), bipartite=st.booleans())
@settings(max_examples=25, deadline=None)
def test_spmm_mean_backward_fp32_matches_autograd_oracle(g, feat, bipartite):
    """fp32 mean backward is one weighted SpMM through the transposed CSR (cached 1/deg
    weights): its gradient equals autograd through the naive gather/scatter oracle, with
    isolated and zero-in-degree nodes, on square and bipartite graphs."""
    n, e, seed = g
    ei = random_graph(n, e, seed=seed)
    n_dst = n + 3 if bipartite else n  # bipartite: 3 destinations without any edge
    graph, _ = as_graph(ei, size=(n, n_dst)) if bipartite else as_graph(ei, num_nodes=n)
    x = torch.randn(n, feat, requires_grad=True)
    go = torch.randn(n_dst, feat)
    (got,) = torch.autograd.grad(spmm(graph, x, None, "mean"), x, go)
    xr = x.detach().double().requires_grad_(True)
    loss = (naive_spmm(ei, xr, None, n_dst, "mean") * go.double()).sum() + 0 * xr.sum()  # edgeless too
    (ref,) = torch.autograd.grad(loss, xr)
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)
    (again,) = torch.autograd.grad(spmm(graph, x, None, "mean"), x, go)  # cached weights reused
    assert torch.equal(again, got)


def test_review_regressions_inference_cache_and_dtypes():
    """sddmm under inference_mode; the transposed-weight cache hits through a fresh view;
    in-place epilogues keep PyG's type promotion."""
    import gnnkit.nn as gnn
    ei = torch.tensor([[0, 1, 2, 2, 3], [1, 2, 3, 3, 0]])
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    with torch.inference_mode():
        g, _ = as_graph(ei, num_nodes=4)
        torch.testing.assert_close(sddmm(g, a, b), (a[ei[1]] * b[ei[0]]).sum(-1))
    g, _ = as_graph(ei.clone(), num_nodes=4)
    w = torch.rand(g.num_edges)
    assert g.values_t(w.view(-1, 1)) is g.values_t(w.view(-1, 1))
    x = torch.randn(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 GEMM/SpMM result + fp32 bias promotes, as in PyG
        assert gnn.GCNConv(4, 2)(x, ei).dtype == torch.float32
    out = gnn.GINConv(torch.nn.Identity())((x, torch.randn(4, 4, dtype=torch.float64)), ei)
    assert out.dtype == torch.float64


@pytest.mark.parametrize("side", ["src", "dst"])
@pytest.mark.parametrize("shape", [(5,), (3, 4)])
def test_gather_slots_matches_index_select_with_gradients(side, shape):
    """gather_slots = x[col] / x[row] per CSR slot; its scatter-free backward equals autograd's."""
    from gnnkit.ops import gather_slots
    for seed, (ns, nd, e) in enumerate([(7, 7, 40), (5, 9, 23), (4, 4, 0), (30, 2, 61)]):
        g_ = torch.Generator().manual_seed(seed)
        ei = torch.stack([torch.randint(0, ns, (e,), generator=g_), torch.randint(0, nd, (e,), generator=g_)])
        graph, _ = as_graph(ei, size=(ns, nd))
        n = ns if side == "src" else nd
        x = torch.randn((n,) + shape, generator=g_, dtype=torch.float64, requires_grad=True)
        idx = graph.col if side == "src" else graph.row
        out = gather_slots(graph, x, side)
        torch.testing.assert_close(out, x.detach()[idx])
        w = torch.randn(out.shape, generator=g_, dtype=torch.float64)
        (got,) = torch.autograd.grad((out * w).sum(), x)
        want = torch.zeros_like(x).index_add_(0, idx, w)
        torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="side"):
        gather_slots(graph, x, "both")
    with pytest.raises(ValueError, match="one row per"):
        gather_slots(graph, torch.randn(n + 1, 2), side)


def test_relu_message_slots_matches_autograd():
    """relu(x[col] + e) per CSR slot, its mask-based backward equal to autograd's, mixed widths rejected."""
    from gnnkit.ops import relu_message_slots
    for seed, (ns, nd, e) in enumerate([(7, 7, 40), (5, 9, 23), (4, 4, 0)]):
        g_ = torch.Generator().manual_seed(seed)
        ei = torch.stack([torch.randint(0, ns, (e,), generator=g_), torch.randint(0, nd, (e,), generator=g_)])
        graph, _ = as_graph(ei, size=(ns, nd))
        x = torch.randn(ns, 6, generator=g_, dtype=torch.float64, requires_grad=True)
        t = torch.randn(e, 6, generator=g_, dtype=torch.float64, requires_grad=True)
        out = relu_message_slots(graph, x, t)
        want = (x[graph.col] + t).relu()
        torch.testing.assert_close(out, want)
        w = torch.randn(out.shape, generator=g_, dtype=torch.float64)
        got = torch.autograd.grad((out * w).sum(), (x, t))
        ref = torch.autograd.grad((want * w).sum(), (x, t))
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b)
        # only the edge term needs a gradient
        (gt,) = torch.autograd.grad((relu_message_slots(graph, x.detach(), t) * w).sum(), t)
        torch.testing.assert_close(gt, ref[1])
    with pytest.raises(ValueError, match="same F"):
        relu_message_slots(graph, x, torch.randn(graph.num_edges, 5))


def test_relu_message_gradient_is_zero_at_inactive_slots_even_for_inf_and_nan():
    """As torch's ReLU backward: an inactive slot passes +0, not inf * 0 = NaN, on both backward paths (the
    node gradient asked for or not); keep_where equals torch.where bit for bit in every float dtype."""
    from gnnkit.ops import relu_message_slots
    from gnnkit.ops.primitives import keep_where
    ei = torch.tensor([[0, 1, 2, 1], [1, 2, 0, 0]])
    graph, _ = as_graph(ei, size=(3, 3))
    x = torch.tensor([[1.0, -5.0], [2.0, -5.0], [3.0, -5.0]])
    t = torch.zeros(4, 2, requires_grad=True)
    g = torch.tensor([[float("inf"), float("inf")], [float("nan"), float("nan")], [1.0, -float("inf")],
                      [2.0, 3.0]])
    want = torch.where((x[graph.col] + t.detach()) > 0, g, 0.0)
    for xin in (x, x.clone().requires_grad_()):
        out = relu_message_slots(graph, xin, t)
        grads = torch.autograd.grad(out, [t] + ([xin] if xin.requires_grad else []), g)
        torch.testing.assert_close(grads[0], want, rtol=0, atol=0, equal_nan=True)  # NaN stays NaN where active
        assert not grads[0][:, 1].isnan().any()
    for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        v = torch.randn(7, 5).to(dt)
        v[0, 0], v[1, 1] = float("nan"), float("-inf")
        m = torch.rand(7, 5) > 0.5
        m[0, 0] = m[1, 1] = False
        r = keep_where(v, m)
        assert r.dtype == dt
        torch.testing.assert_close(r, torch.where(m, v, torch.zeros((), dtype=dt)), rtol=0, atol=0, equal_nan=True)
        assert not r[~m].isnan().any() and (r[~m] == 0).all()


def test_relu_message_edge_term_only_gradient_compiled():
    """Only the edge term needs a gradient (a first GINE layer): compiled, fullgraph, the same gradient as
    eager, through the registered op (inductor's own bool-mask code was 100x slower on CPU)."""
    from gnnkit.ops import relu_message_slots
    g_ = torch.Generator().manual_seed(5)
    ei = torch.stack([torch.randint(0, 9, (50,), generator=g_), torch.randint(0, 9, (50,), generator=g_)])
    graph, _ = as_graph(ei, size=(9, 9))
    x = torch.randn(9, 4, generator=g_)
    t = torch.randn(50, 4, generator=g_, requires_grad=True)
    w = torch.randn(50, 4, generator=g_)

    def f(x, t):
        return (relu_message_slots(graph, x, t) * w).sum()

    from torch._dynamo.testing import AotEagerAndRecordGraphs

    (want,) = torch.autograd.grad(f(x, t), t)
    torch._dynamo.reset()
    (got,) = torch.autograd.grad(torch.compile(f, fullgraph=True)(x, t), t)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(want, w * ((x[graph.col] + t) > 0))
    torch._dynamo.reset()
    rec = AotEagerAndRecordGraphs()
    torch.autograd.grad(torch.compile(f, fullgraph=True, backend=rec)(x, t), t)
    code = "".join(gm.code for gm in rec.fw_graphs + rec.bw_graphs)
    assert "relu_message_mask_bwd" in code and "bitwise_not" not in code and "masked_fill" not in code


def test_the_slot_tier_names_a_row_count_mismatch():
    """The CSR-slot functions check one thing (cheaply): one row per node or edge of the graph."""
    from gnnkit.ops import gat_attention_slots, sddmm_slots, segment_softmax_slots, spmm_slots
    g, _ = as_graph(torch.tensor([[0, 1, 2], [1, 2, 0]]), num_nodes=3)
    with pytest.raises(ValueError, match="x has 5 rows but the graph has 3 source nodes"):
        spmm_slots(g, torch.randn(5, 1, 2))
    with pytest.raises(ValueError, match="value has 2 rows but the graph has 3 edges"):
        spmm_slots(g, torch.randn(3, 1, 2), torch.rand(2, 1))
    with pytest.raises(ValueError, match="b has 4 rows"):
        sddmm_slots(g, torch.randn(3, 1, 2), torch.randn(4, 1, 2))
    with pytest.raises(ValueError, match="logits has 4 rows but the graph has 3 edges"):
        segment_softmax_slots(g, torch.randn(4, 1))
    with pytest.raises(ValueError, match="x has 2 rows"):
        gat_attention_slots(g, torch.randn(2, 1, 2), torch.randn(2, 1), torch.randn(3, 1))


# ---------------------------------------------------------------- softmax aggregation (SAGE's "softmax")
def naive_softmax_aggregate(ei, x, n, t):
    out = torch.zeros(n, x.size(1), dtype=x.dtype)
    for i in range(n):
        xj = x[ei[0][ei[1] == i]]
        if xj.size(0):
            out[i] = (torch.softmax(xj * t, dim=0) * xj).sum(0)
    return out


@given(g=graphs(), feat=st.integers(1, 5), t=st.sampled_from([1.0, -2.0, 0.3, "channels"]))
@settings(max_examples=25, deadline=None)
def test_softmax_aggregate_matches_oracle_and_reference(g, feat, t):
    from gnnkit.ops import softmax_aggregate_ref, softmax_aggregate_slots
    n, e, seed = g
    ei = random_graph(n, e, seed=seed)
    graph, _ = as_graph(ei, num_nodes=n)
    x = torch.randn(n, feat, dtype=torch.float64) * 4
    tt = torch.linspace(-2, 2, feat, dtype=torch.float64) if t == "channels" else t
    want = naive_softmax_aggregate(ei, x, n, tt)
    torch.testing.assert_close(softmax_aggregate_slots(graph, x, tt), want)
    torch.testing.assert_close(softmax_aggregate_ref(ei[1], x[ei[0]], n, tt), want)


@pytest.mark.parametrize("semi_grad", [False, True])
def test_softmax_aggregate_gradcheck(semi_grad):
    from gnnkit.ops import softmax_aggregate_slots
    ei = random_graph(9, 30, seed=2, hub=6)
    g, _ = as_graph(ei, num_nodes=11)  # nodes 9, 10 isolated
    x = torch.randn(11, 4, dtype=torch.float64, requires_grad=True)
    if not semi_grad:
        for t in (torch.tensor(0.8, dtype=torch.float64, requires_grad=True),
                  torch.randn(4, dtype=torch.float64, requires_grad=True)):
            assert gradcheck(lambda x, t: softmax_aggregate_slots(g, x, t), (x, t), fast_mode=True)
        return
    # semi-gradient: the weights are constants, so d/dx = the softmax weights routed back to the sources
    out = softmax_aggregate_slots(g, x, 1.5, semi_grad=True)
    grad_out = torch.randn_like(out)
    (got,) = torch.autograd.grad(out, x, grad_out)
    xj = x[ei[0]]
    with torch.no_grad():
        e = (xj * 1.5).exp()
        s = torch.zeros(11, 4, dtype=x.dtype).index_add(0, ei[1], e)
        alpha = e / s[ei[1]]
    want = torch.zeros_like(x).index_add(0, ei[0], alpha * grad_out[ei[1]])
    torch.testing.assert_close(got, want)


def test_softmax_aggregate_names_bad_input():
    from gnnkit.ops import softmax_aggregate_slots
    g, _ = as_graph(torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    with pytest.raises(ValueError, match="x must be"):
        softmax_aggregate_slots(g, torch.randn(3, 2))
    with pytest.raises(ValueError, match="t has 3 values"):
        softmax_aggregate_slots(g, torch.randn(2, 2), torch.ones(3))
    with pytest.raises(ValueError, match="graph must be a gnnkit.ops.Graph"):
        softmax_aggregate_slots(torch.tensor([[0, 1], [1, 0]]), torch.randn(2, 2))
    with pytest.raises(ValueError, match="floating-point"):
        softmax_aggregate_slots(g, torch.ones(2, 2, dtype=torch.long))


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_softmax_aggregate_in_chunks_equals_one_pass(chunk, monkeypatch):
    """Forward (destination rows) and backward (source rows) in bounded chunks give the one-pass result."""
    import gnnkit.ops.aggregations as agg
    ei = random_graph(30, 200, seed=4, hub=25)
    g, _ = as_graph(ei, num_nodes=33)  # isolated nodes at the end; a hub row larger than a chunk
    x = torch.randn(33, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(33, 3, dtype=torch.float64)
    results = []
    for size in (1 << 20, chunk):
        monkeypatch.setattr(agg, "_CHUNK", size)
        out = agg.softmax_aggregate_slots(g, x, t)
        results.append((out, *torch.autograd.grad(out, (x, t), grad_out)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
    monkeypatch.setattr(agg, "_CHUNK", chunk)
    assert gradcheck(lambda x, t: agg.softmax_aggregate_slots(g, x, t), (x, t), fast_mode=True)


# ---------------------------------------------------------------- quantile aggregation (SAGE's "median")
@pytest.mark.parametrize("interpolation", ["lower", "higher", "nearest", "linear", "midpoint"])
@given(g=graphs(), q=st.sampled_from([0.0, 0.3, 0.5, 0.75, 1.0]))
@settings(max_examples=12, deadline=None)
def test_quantile_aggregate_matches_a_per_row_oracle(interpolation, g, q):
    from gnnkit.ops import quantile_aggregate_slots
    n, e, seed = g
    ei = random_graph(n, e, seed=seed)
    graph, _ = as_graph(ei, num_nodes=n + 1)  # one isolated node
    x = torch.randn(n + 1, 3, generator=torch.Generator().manual_seed(seed))
    want = torch.full((n + 1, 3), -1.0)
    for i in range(n + 1):
        v = x[ei[0][ei[1] == i]]
        if v.size(0):  # torch.quantile has the same five interpolations, on float64 positions
            want[i] = torch.quantile(v.double(), q, dim=0, interpolation=interpolation).float()
    got = quantile_aggregate_slots(graph, x, q, interpolation, fill_value=-1.0)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_quantile_aggregate_gradient_goes_to_the_chosen_source():
    from gnnkit.ops import quantile_aggregate_slots
    ei = torch.tensor([[0, 1, 2, 3, 4], [5, 5, 5, 5, 6]])
    g, _ = as_graph(ei, num_nodes=7)
    x = torch.tensor([[3.0], [1.0], [4.0], [2.0], [9.0], [0.0], [0.0]], requires_grad=True)
    out = quantile_aggregate_slots(g, x)  # lower median of {3, 1, 4, 2} is 2 (node 3); of {9} is 9
    assert out.view(-1).tolist() == [0.0] * 5 + [2.0, 9.0]
    out.sum().backward()
    assert x.grad.view(-1).tolist() == [0, 0, 0, 1, 1, 0, 0]


def test_quantile_aggregate_names_bad_input():
    from gnnkit.ops import quantile_aggregate_slots
    g, _ = as_graph(torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    with pytest.raises(ValueError, match="interpolation='cubic'"):
        quantile_aggregate_slots(g, torch.randn(2, 2), 0.5, "cubic")
    with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
        quantile_aggregate_slots(g, torch.randn(2, 2), 1.5)
    with pytest.raises(ValueError, match="float64"):
        quantile_aggregate_slots(g, torch.randn(2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="graph must be a gnnkit.ops.Graph"):
        quantile_aggregate_slots(torch.tensor([[0, 1], [1, 0]]), torch.randn(2, 2))
    empty, _ = as_graph(torch.empty(2, 0, dtype=torch.long), num_nodes=3)
    assert quantile_aggregate_slots(empty, torch.randn(3, 2), fill_value=7.0).eq(7.0).all()


@pytest.mark.parametrize("op", ["softmax_aggregate_semi_grad", "graph_attention"])
def test_second_derivatives_are_refused_not_silently_wrong(op):
    """once_differentiable alone lets grad(create_graph=True) of a plain loss through, detached from x, so a
    gradient of that gradient came out wrong; gnnkit's Functions raise instead (sums and means give them:
    tests/test_second_derivatives.py, which also covers max / min, softmax aggregation, the edge softmax and
    GAT's attention)."""
    from gnnkit.ops import softmax_aggregate_slots
    ei = random_graph(8, 30, seed=3)
    g, _ = as_graph(ei, num_nodes=8)
    x = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    from gnnkit.ops import graph_attention
    q = x.view(1, 1, 8, 4)
    run = {"softmax_aggregate_semi_grad": lambda: softmax_aggregate_slots(g, x, 1.5, semi_grad=True),
           "graph_attention": lambda: graph_attention(q, q, q, torch.tensor([8]))}[op]
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.grad(run().sum(), x, create_graph=True)
    (first,) = torch.autograd.grad(run().square().sum(), x)  # first derivatives are unaffected
    assert first.shape == x.shape


def test_softmax_aggregation_without_gradients_builds_no_transpose():
    """Evaluation (no gradient asked) builds and keeps nothing for a backward; with gradients the transpose is
    fetched in forward, and both give the same result."""
    from gnnkit.ops import Graph, softmax_aggregate_slots
    ei = random_graph(30, 120, seed=4, self_loops=True, duplicates=True)
    x = torch.randn(30, 5)
    g1, g2 = Graph.build(ei, num_nodes=30), Graph.build(ei.clone(), num_nodes=30)
    with torch.no_grad():
        a = softmax_aggregate_slots(g1, x, 0.7)
    assert g1.derived_or_none("transpose") is None
    b = softmax_aggregate_slots(g2, x.requires_grad_(True), 0.7)
    assert g2.derived_or_none("transpose") is not None
    torch.testing.assert_close(a, b.detach())


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), e=st.integers(0, 150), shape=st.sampled_from([(), (1,), (5,), (65,), (2, 3), (0,)]),
       reduce=st.sampled_from(["sum", "mean"]), dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
       seed=st.integers(0, 10**6))
def test_input_order_sums_equal_the_reordered_ones(n, e, shape, reduce, dtype, seed):
    """Sums and means of per-edge values in input order are read in place (an SpMM over ``graph.perm``), not
    reordered into a CSR-order copy: the same bits as reordering first, forward and backward, and no call of
    ``to_csr_order``."""
    from gnnkit.ops import Graph
    from gnnkit.ops.segment import segment_reduce_slots
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    graph = Graph.build(ei, num_nodes=n)
    v = torch.randn((e,) + shape, generator=g).to(dtype)
    go = torch.randn((n,) + shape, generator=g).to(dtype)
    a = v.clone().requires_grad_()
    b = v.clone().requires_grad_()
    want = segment_reduce_slots(graph, graph.to_csr_order(b), reduce)
    want.backward(go)
    real = Graph.to_csr_order
    calls = []
    Graph.to_csr_order = lambda self, t: calls.append(t.shape) or real(self, t)
    try:
        got = segment_reduce(graph, a, reduce)
    finally:
        Graph.to_csr_order = real
    got.backward(go)
    assert torch.equal(got, want) and torch.equal(a.grad, b.grad)
    assert graph.perm is None or not calls, "the values were reordered"


def test_input_order_sums_compile_without_graph_breaks():
    from gnnkit.ops import Graph
    torch.manual_seed(0)
    ei = torch.randint(0, 40, (2, 300))
    graph = Graph.build(ei, num_nodes=40)
    assert graph.perm is not None
    v = torch.randn(300, 7, requires_grad=True)

    def f(v):
        return segment_reduce(graph, v, "mean").square().sum()

    want = torch.autograd.grad(f(v), v)[0]
    torch._dynamo.reset()
    got = torch.autograd.grad(torch.compile(f, fullgraph=True, backend="aot_eager")(v), v)[0]
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("dtype,deg", [(torch.bfloat16, 257), (torch.float16, 2049), (torch.float16, 70000)])
def test_input_order_mean_gradient_divides_in_float32(dtype, deg):
    """A 16-bit mean's gradient is divided by the degree in float32 (bf16 holds integers above 256 rounded,
    fp16 turns 70,000 into inf), as the reordering path does; found by a review."""
    from gnnkit.ops import Graph
    from gnnkit.ops.segment import segment_reduce_slots
    ei = torch.stack([torch.arange(deg) % 3, torch.zeros(deg, dtype=torch.long)])[:, torch.randperm(deg)]
    graph = Graph.build(ei, num_nodes=3)
    assert graph.perm is not None
    a, b = (torch.ones(deg, 2, dtype=dtype, requires_grad=True) for _ in range(2))
    segment_reduce(graph, a, "mean").sum().backward()
    segment_reduce_slots(graph, graph.to_csr_order(b), "mean").sum().backward()
    assert torch.equal(a.grad, b.grad)
    torch.testing.assert_close(a.grad.float(), torch.full((deg, 2), 1 / deg), rtol=1e-2, atol=0)


@pytest.mark.parametrize("num_src", [0, 5])
def test_input_order_sums_on_a_graph_without_destinations(num_src):
    from gnnkit.ops import Graph
    empty = torch.empty(0, dtype=torch.long)
    graph = Graph.from_coo(empty, empty, num_src, 0)
    for shape in [(0,), (0, 4), (0, 2, 3)]:
        v = torch.randn(shape, requires_grad=True)
        for reduce in ("sum", "mean"):
            out = segment_reduce(graph, v, reduce)
            assert out.shape == (0,) + shape[1:]
            out.sum().backward()
            assert v.grad.shape == v.shape
