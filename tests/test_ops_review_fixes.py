"""Findings of an independent review of gnnkit.ops (2026-12-03), each pinned by a test that fails on the code
before its fix."""
import pytest
import torch

import gnnkit.ops.graph as graph_mod
from gnnkit.ops import Graph, as_graph, sddmm_slots, segment_reduce, segment_softmax, spmm, spmm_slots


@pytest.mark.parametrize("bad", [[[0, 7], [1, 2]], [[0, 1], [1, 9]], [[0, -3], [1, 2]]])
def test_out_of_range_ids_raise_under_torch_compile(bad):
    """Compiled, the range checks were skipped: an id of 7 for 4 nodes read memory outside x."""
    def f(x, e):
        g, _ = as_graph(e, num_nodes=4)
        return spmm(g, x)
    torch._dynamo.reset()
    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    x = torch.ones(4, 3)
    torch.testing.assert_close(cf(x, torch.tensor([[0, 1], [1, 2]])), f(x, torch.tensor([[0, 1], [1, 2]])))
    with pytest.raises(RuntimeError, match=r"edge_index holds a node id outside \[0, num_nodes\)"):
        cf(x, torch.tensor(bad))


def test_invalid_torch_sparse_adjacency_is_refused():
    x = torch.ones(3, 2)
    csr = torch.sparse_csr_tensor(torch.tensor([0, 1, 2, 2]), torch.tensor([1, 7]), torch.ones(2), (3, 3))
    with pytest.raises(IndexError, match=r"column ids from 1 to 7, outside \[0, 3\)"):
        as_graph(csr)
    down = torch.sparse_csr_tensor(torch.tensor([0, 2, 1, 3]), torch.tensor([0, 1, 2]), torch.ones(3), (3, 3))
    with pytest.raises(ValueError, match="row pointer must start at 0, never decrease"):
        as_graph(down)
    coo = torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 9]]), torch.ones(2), (3, 3))
    with pytest.raises(IndexError, match="source id 9"):
        as_graph(coo)
    neg = torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, -2]]), torch.ones(2), (3, 3))  # coalesce folds it
    with pytest.raises(IndexError, match=r"negative node id \(-2\)"):
        as_graph(neg)
    good = torch.sparse_csr_tensor(torch.tensor([0, 1, 2, 2]), torch.tensor([1, 2]), torch.ones(2), (3, 3))
    g, w = as_graph(good)
    assert spmm(g, x, w).tolist() == [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]


def test_transposed_weights_follow_edits_that_bypass_the_version_counter():
    g = Graph.build(torch.tensor([[0, 1, 2, 3, 1], [1, 2, 3, 0, 0]]), num_nodes=4)
    w = torch.ones(g.num_edges)  # constant weights a layer keeps, in CSR slot order
    grads = []
    for edit in (None, lambda: w.data.mul_(3), lambda: w.numpy().__setitem__(slice(None), 5.0)):
        if edit is not None:
            edit()
        x = torch.ones(4, 1, 2, requires_grad=True)
        spmm_slots(g, x, w.view(-1, 1)).sum().backward()
        grads.append(x.grad[:, 0, 0].clone())
    torch.testing.assert_close(grads[1], grads[0] * 3)
    torch.testing.assert_close(grads[2], grads[0] * 5)


def test_spmm_slots_checks_the_value_shape_and_reduce():
    g = Graph.build(torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]), num_nodes=4)
    x = torch.randn(4, 1, 3)
    with pytest.raises(ValueError, match=r"value must be \[E=4, H=1\]"):
        spmm_slots(g, x, torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"value must be \[E=4, H=1\]"):
        spmm_slots(g, x, torch.ones(4))
    with pytest.raises(ValueError, match="reduce='add' is not supported"):
        spmm_slots(g, x, reduce="add")
    with pytest.raises(ValueError, match=r"x must be \[num_src, H, F\]"):
        spmm_slots(g, x[:, 0])
    with pytest.raises(ValueError, match="must agree past the node dimension"):
        sddmm_slots(g, torch.randn(4, 2, 3), torch.randn(4, 1, 3))


def test_a_graph_built_under_inference_mode_trains():
    ei = torch.tensor([[1, 2, 0, 3], [2, 0, 1, 0]])  # not in CSR order: the graph keeps a permutation
    with torch.inference_mode():
        g = Graph.build(ei, num_nodes=4)
    x, w = torch.randn(4, 3, requires_grad=True), torch.rand(4, requires_grad=True)
    spmm(g, x, w).sum().backward()
    segment_softmax(g, w).sum().backward()
    for reduce in ("sum", "mean", "max", "min"):
        segment_reduce(g, w.view(-1, 1), reduce).sum().backward()
    assert x.grad is not None and w.grad is not None


def test_public_ops_name_bad_arguments():
    g = Graph.build(torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]), num_nodes=4)
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        spmm(g, torch.ones(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"edge_weight must have shape \[E=4\], got \[\]"):
        spmm(g, torch.ones(4, 2), torch.tensor(1.0))
    with pytest.raises(ValueError, match="reduce='mean' needs floating-point values"):
        segment_reduce(g, torch.ones(4, dtype=torch.long), "mean")
    assert segment_reduce(g, torch.ones(4, dtype=torch.long), "sum").tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="num_nodes must be a non-negative int"):
        as_graph(torch.tensor([[0], [0]]), num_nodes=-1)
    with pytest.raises(ValueError, match=r"size\[0\] must be a non-negative int"):
        as_graph(torch.tensor([[0], [0]]), size=(-1, 3))
    # review (2026-12-05): a float count failed deep inside, True was one node, 34.5 was truncated to 34
    for kw, name in ((dict(num_nodes=30.0), "num_nodes"), (dict(num_nodes=True), "num_nodes"),
                     (dict(size=(34.5, 34)), r"size\[0\]"), (dict(size=(3, False)), r"size\[1\]")):
        with pytest.raises(ValueError, match=name + " must be a non-negative int"):
            Graph.build(torch.tensor([[0], [0]]), **kw)
    assert Graph.build(torch.tensor([[0], [0]]), num_nodes=torch.tensor(3)).num_dst == 3  # a 0-d int tensor counts
    empty = torch.zeros(2, 0, dtype=torch.long)  # size=(None, 4): the same counts with and without edges
    assert (as_graph(empty, size=(None, 4))[0].num_src, as_graph(torch.tensor([[0], [1]]), size=(None, 4))[0].num_src) \
        == (4, 4)


def test_a_refilled_edge_index_keeps_one_cache_entry():
    graph_mod.clear_cache()
    ei = torch.randint(0, 50, (2, 400))
    for _ in range(5):
        ei.copy_(torch.randint(0, 50, (2, 400)))  # in place: same tensor, new version
        as_graph(ei, num_nodes=50)
    mine = [v for v in graph_mod._CACHE.values() if v[0]() is ei]
    assert len(mine) == 1


@pytest.mark.parametrize("values_grad", [False, True])
def test_an_uncoalesced_coo_adjacency_is_structured_once_and_sums_duplicates(values_grad):
    """Review finding (cost): a non-coalesced COO adj_t was coalesced and its structure rebuilt on every call."""
    torch.manual_seed(0)
    idx, v = torch.randint(0, 7, (2, 30)), torch.rand(30, requires_grad=values_grad)
    adj = torch.sparse_coo_tensor(idx, v, (7, 7))
    x = torch.randn(7, 3, requires_grad=True)
    g1, w1 = as_graph(adj)
    g2, w2 = as_graph(adj)
    assert g1 is g2
    out = spmm(g2, x, w2)
    want = adj.coalesce().to_dense() @ x
    torch.testing.assert_close(out, want)
    if values_grad:
        (gv,) = torch.autograd.grad(out.sum(), v, retain_graph=True)
        (rv,) = torch.autograd.grad(want.sum(), v)
        torch.testing.assert_close(gv, rv)


def test_an_uncoalesced_coo_built_on_an_index_tensor_follows_its_edits():
    """Review finding: the cached structure of an uncoalesced COO missed an in-place edit of the index tensor it
    shares storage with (the sparse tensor's version does not move)."""
    idx = torch.tensor([[0, 1, 2, 1], [1, 2, 0, 1]])
    adj = torch.sparse_coo_tensor(idx, torch.rand(4), (3, 3))
    x = torch.randn(3, 2)
    g, w = as_graph(adj)
    torch.testing.assert_close(spmm(g, x, w), adj.to_dense() @ x)
    idx[1, 0] = 0  # in place, through the shared storage
    g, w = as_graph(adj)
    torch.testing.assert_close(spmm(g, x, w), adj.to_dense() @ x)


def test_sparse_csr_and_coalesced_coo_follow_edits_of_their_index_tensors():
    """Review finding (session 13): a CSR matrix's int64 indices were shared with the cached Graph and an edit of
    them (which bumps no version the matrix carries) left a Graph whose col had moved under a stale transpose:
    right forward, wrong gradient.  A coalesced COO served its old structure."""
    crow, col = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2])
    A = torch.sparse_csr_tensor(crow, col, torch.ones(3, dtype=torch.float64), (3, 3))
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    g, w = as_graph(A)
    spmm(g, x, w).sum().backward()
    col[0] = 2
    g2, w2 = as_graph(A)
    assert g2 is not g and g.col.tolist() == [0, 1, 2]  # the first Graph kept its own indices
    x.grad = None
    spmm(g2, x, w2).sum().backward()
    assert x.grad[:, 0].tolist() == [0.0, 1.0, 2.0]  # the gradient of A @ x with the edited matrix
    idx = torch.tensor([[0, 1, 2], [0, 1, 2]])
    B = torch.sparse_coo_tensor(idx, torch.ones(3), (3, 3), is_coalesced=True)
    x = torch.randn(3, 2)
    as_graph(B)
    idx[1, 0] = 2
    g, w = as_graph(B)
    torch.testing.assert_close(spmm(g, x, w), B.to_dense() @ x)


def test_public_ops_name_a_missing_graph_and_a_device_mismatch():
    """Review finding (session 13): an edge_index where a Graph belongs failed with AttributeError, and a
    weight on another device reached the op (a meta tensor gave uninitialised memory)."""
    from gnnkit.ops import gat_attention
    ei = torch.tensor([[0, 1], [1, 0]])
    x = torch.randn(2, 3)
    for call in (lambda: spmm(ei, x), lambda: segment_softmax(ei, torch.randn(2)),
                 lambda: segment_reduce(ei, torch.randn(2)),
                 lambda: gat_attention(ei, x.view(2, 1, 3), torch.randn(2, 1), torch.randn(2, 1))):
        with pytest.raises(ValueError, match=r"graph must be a gnnkit.ops.Graph, got Tensor; fix: .*as_graph"):
            call()
    g, _ = as_graph(ei, num_nodes=2)
    with pytest.raises(ValueError, match=r"spmm: edge_weight is on meta but the graph is on cpu; fix"):
        spmm(g, x, torch.rand(2, device="meta"))
    # the learnable aggregations' slot ops: the same check (they had their own, without the device)
    from gnnkit.ops import quantile_aggregate_slots, softmax_aggregate_slots
    for op in (quantile_aggregate_slots, softmax_aggregate_slots):
        with pytest.raises(ValueError, match=rf"{op.__name__}: x is on meta but the graph is on cpu; fix"):
            op(g, torch.randn(2, 3, device="meta"))
        with pytest.raises(ValueError, match=rf"{op.__name__}: graph must be a gnnkit.ops.Graph.*as_graph"):
            op(ei, x)


def test_gat_attention_slots_checks_every_row_count():
    """Review finding (session 13): a_src, edge_term and edge_scale were not checked; swapped or [1, H] scores
    broadcast silently."""
    from gnnkit.ops import gat_attention_slots
    g, _ = as_graph(torch.tensor([[0, 1, 2], [1, 2, 3]]), size=(3, 5))
    x, a_src, a_dst = torch.randn(3, 2, 4), torch.randn(3, 2), torch.randn(5, 2)
    with pytest.raises(ValueError, match="a_src has 5 rows but the graph has 3 source nodes"):
        gat_attention_slots(g, x, a_dst, a_dst)
    with pytest.raises(ValueError, match="edge_term has 1 rows but the graph has 3 edges"):
        gat_attention_slots(g, x, a_src, a_dst, edge_term=torch.randn(1, 2))
    with pytest.raises(ValueError, match="edge_scale has 1 rows but the graph has 3 edges"):
        gat_attention_slots(g, x, a_src, a_dst, edge_scale=torch.rand(1))


def test_integer_and_float64_data_take_the_torch_path_on_every_backend(monkeypatch):
    """Review finding (session 13): integer segment sums (fine on CPU) failed in the Triton kernel, and float64
    softmax / GAT lost precision in kernels that compute in fp32 (gradcheck failed): both now run the torch path
    whatever GNNKIT_BACKEND says, so a result does not depend on the device."""
    from gnnkit.ops._backend import TRITON_FOUND, use_triton
    if not TRITON_FOUND:
        pytest.skip("triton is not installed")
    monkeypatch.setenv("GNNKIT_BACKEND", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert not use_triton("segment", torch.ones(3, dtype=torch.long))
    for op in ("softmax", "gat", "graph_attention"):
        assert not use_triton(op, torch.ones(3, dtype=torch.float64))
    assert use_triton("spmm", torch.ones(3, dtype=torch.float64))  # accumulates in float64 (kernels/_config.py)
    assert use_triton("softmax", torch.ones(3))


def test_graph_attention_refuses_negative_buckets_and_batch_distances_a_short_num_graphs():
    """Review finding (session 13): a negative dist bucket wrapped round to the last bias bucket, and
    batch_distances(num_graphs=) below the real count failed with an unnamed shape error."""
    from gnnkit.ops import batch_distances, graph_attention
    q = torch.randn(1, 2, 3, 4)
    dist = torch.zeros(1, 3, 3, dtype=torch.long)
    dist[0, 0, 1] = -1
    with pytest.raises(ValueError, match=r"dist has bucket -1; buckets are indices into bias, in \[0, 5\)"):
        graph_attention(q, q, q, torch.tensor([3]), dist, torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"batch holds graph ids from 0 to 1 but num_graphs=1; fix"):
        batch_distances(torch.tensor([[0, 2], [1, 3]]), torch.tensor([0, 0, 1, 1]), 2, num_graphs=1)


def test_a_boolean_segment_sum_counts_as_torch_sum():
    """Review (session 13): a bool sum stayed bool (a logical OR); torch.sum of booleans counts."""
    from gnnkit.ops import segment_reduce_slots
    g, _ = as_graph(torch.tensor([[0, 1, 2], [1, 1, 1]]), num_nodes=3)
    assert segment_reduce(g, torch.ones(3, dtype=torch.bool)).tolist() == [0, 3, 0]
    assert segment_reduce_slots(g, torch.ones(3, 1, dtype=torch.bool)).view(-1).tolist() == [0, 3, 0]


def test_registered_ops_run_their_body_directly_in_eager_and_the_op_elsewhere():
    """Session 15: an eager call through torch.library's dispatcher cost ~90 µs per op on this CPU (more
    than a small graph's SpMM); plain eager calls now run the body directly, everything else the op."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from gnnkit.ops import Graph
    from gnnkit.ops.primitives import spmm_op
    g = Graph.build(torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]]), num_nodes=3)
    x = torch.randn(3, 2, 4, requires_grad=True)
    v = torch.rand(4, 2)
    direct = spmm_op(g.rowptr, g.col, v, x.detach(), "sum")
    via_op = torch.ops.gnnkit.spmm(g.rowptr, g.col, v, x.detach(), "sum")
    assert torch.equal(direct, via_op) and direct.grad_fn is None
    # a call autograd would record goes through the op, whose missing formula raises (review: the direct path
    # under no_grad cut the term from the graph, a silently wrong gradient); forward AD likewise
    with pytest.raises(RuntimeError, match="no autograd formula"):
        (spmm_op(g.rowptr, g.col, v, x, "sum") + x).sum().backward()
    import torch.autograd.forward_ad as fwAD
    with fwAD.dual_level():
        dual = fwAD.make_dual(x.detach(), torch.ones(3, 2, 4))
        assert fwAD.unpack_dual(spmm_op(g.rowptr, g.col, v, dual, "sum")).tangent is None
    with torch.profiler.profile() as prof:
        spmm_op(g.rowptr, g.col, v, x.detach(), "sum")
    assert not any(e.name == "gnnkit::spmm" for e in prof.events())  # the body ran, not the dispatcher
    mode = FakeTensorMode()  # fake tensors (as compile's tracing makes them) reach the fake function
    fake = [mode.from_tensor(t) for t in (g.rowptr, g.col, x.detach())]
    with mode:
        out = spmm_op(fake[0], fake[1], None, fake[2], "sum")
    assert out.shape == (3, 2, 4)
    meta = spmm_op(g.rowptr.to("meta"), g.col.to("meta"), None, x.detach().to("meta"), "sum")
    assert meta.device.type == "meta" and meta.shape == (3, 2, 4)


@pytest.mark.parametrize("E,H,F", [(0, 3, 2), (7, 1, 5), (40, 4, 3), (300, 8, 8), (90, 3, 30)])
def test_small_multi_head_products_equal_the_per_head_path(monkeypatch, E, H, F):
    """Session 15: multi-head SpMM/SDDMM on small graphs gather the [E, H, F] messages once (one pass instead of
    one CPU product per head, 1.3-3x faster there); both paths give the same numbers, duplicates included."""
    from gnnkit.ops import Graph, reference as R
    gen = torch.Generator().manual_seed(E * 31 + H)
    N = 11
    ei = torch.randint(0, N, (2, E), generator=gen)
    if E:
        ei[:, -1] = ei[:, 0]  # a duplicate edge
    g = Graph.build(ei, num_nodes=N)
    x = torch.randn(N, H, F, generator=gen, dtype=torch.float64)
    v = torch.rand(E, H, generator=gen, dtype=torch.float64)
    a = torch.randn(N, H, F, generator=gen, dtype=torch.float64)
    small = (R.spmm_csr_ref(g.rowptr, g.col, v, x, "sum"), R.sddmm_csr_ref(g.rowptr, g.col, a, x, row=g.row))
    monkeypatch.setattr(R, "_SMALL_MESSAGES", -1)
    large = (R.spmm_csr_ref(g.rowptr, g.col, v, x, "sum"), R.sddmm_csr_ref(g.rowptr, g.col, a, x))
    for got, want in zip(small, large):
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-12)
