"""GraphTransformerConv and its ops: attention against a per-graph loop (outputs and gradients), the
adjacency mask as GAT's neighbourhood, distances against SciPy, batch independence, the spatial bias
telling apart what plain attention cannot, bad input."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch_geometric.data import Batch, Data

from gnnkit.nn import GraphTransformerConv
from gnnkit.ops import batch_distances, graph_attention


def _loop_reference(q, k, v, n, dist, bias, adjacency, scale):
    """One graph at a time, no padding: plain softmax attention over the allowed keys."""
    out = (q + k + v) * 0.0  # zeros, in the autograd graph of every input
    for b in range(q.size(0)):
        m = int(n[b])
        if m == 0:
            continue
        s = q[b, :, :m] @ k[b, :, :m].transpose(-1, -2) * scale
        if bias is not None:
            s = s + bias[:, dist[b, :m, :m]]
        if adjacency:
            s = s.masked_fill(dist[b, :m, :m] > 1, float("-inf"))
        out[b, :, :m] = torch.softmax(s, -1) @ v[b, :, :m]
    return out if bias is None else out + 0.0 * bias.sum()


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 4), H=st.integers(1, 3), N=st.integers(1, 9), D=st.integers(1, 6),
       adjacency=st.booleans(), with_bias=st.booleans(), seed=st.integers(0, 10 ** 6))
def test_graph_attention_matches_a_per_graph_loop(B, H, N, D, adjacency, with_bias, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, N, D, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    n = torch.randint(0, N + 1, (B,), generator=g)
    dist = torch.randint(0, 4, (B, N, N), generator=g)
    dist.diagonal(dim1=1, dim2=2).zero_()  # a node is at distance 0 from itself (never masked)
    bias = torch.randn(H, 4, generator=g, dtype=torch.float64, requires_grad=True) if with_bias else None
    scale = 1 / math.sqrt(D)
    out = graph_attention(q, k, v, n, dist, bias, adjacency)
    ref = _loop_reference(q, k, v, n, dist, bias, adjacency, scale)
    torch.testing.assert_close(out, ref)
    go = torch.randn(out.shape, generator=g, dtype=torch.float64)
    inputs = [q, k, v] + ([bias] if bias is not None else [])
    for a, b in zip(torch.autograd.grad(out, inputs, go), torch.autograd.grad(ref, inputs, go)):
        torch.testing.assert_close(a, b)


def test_backward_recomputes_in_chunks(monkeypatch):
    import gnnkit.ops.transformer as tr
    monkeypatch.setattr(tr, "CHUNK_BYTES", 1)  # one graph per chunk
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(5, 2, 6, 3, generator=g, requires_grad=True) for _ in range(3))
    n = torch.tensor([6, 3, 0, 1, 5])
    out = graph_attention(q, k, v, n)
    ref = _loop_reference(q, k, v, n, None, None, False, 1 / math.sqrt(3))
    go = torch.randn(out.shape, generator=g)
    for a, b in zip(torch.autograd.grad(out, [q, k, v], go), torch.autograd.grad(ref, [q, k, v], go)):
        torch.testing.assert_close(a, b)


def test_batch_distances_match_scipy():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path
    g = torch.Generator().manual_seed(3)
    graphs = [Data(edge_index=torch.randint(0, n, (2, n), generator=g), num_nodes=n) for n in (1, 6, 9, 4)]
    b = Batch.from_data_list(graphs)
    dist, counts = batch_distances(b.edge_index, b.batch, max_distance=3)
    assert counts.tolist() == [1, 6, 9, 4] and dist.shape == (4, 9, 9)
    for i, d in enumerate(graphs):
        ei = d.edge_index.numpy()
        sp = shortest_path(coo_matrix((np.ones(ei.shape[1]), (ei[0], ei[1])), shape=(d.num_nodes,) * 2).tocsr(),
                           directed=False, unweighted=True)
        want = np.where(np.isfinite(sp) & (sp <= 3), sp, 4).astype(np.int64)
        assert np.array_equal(dist[i, :d.num_nodes, :d.num_nodes].numpy(), want)
        assert bool((dist[i, d.num_nodes:] == 4).all())  # padding: the far bucket


def _ring(n, offset=0):
    src = torch.arange(n) + offset
    ei = torch.stack([src, (torch.arange(n) + 1) % n + offset])
    return torch.cat([ei, ei.flip(0)], 1)


def test_each_graph_attends_within_itself_only():
    torch.manual_seed(0)
    graphs = [Data(x=torch.randn(n, 8), edge_index=_ring(n)) for n in (3, 5, 4)]
    conv = GraphTransformerConv(8, heads=2).eval()
    b = Batch.from_data_list(graphs)
    out = conv(b.x, b.edge_index, b.batch)
    for i, d in enumerate(graphs):  # alone or in a batch: the same embeddings
        alone = conv(d.x, d.edge_index, torch.zeros(d.num_nodes, dtype=torch.long))
        torch.testing.assert_close(out[b.ptr[i]:b.ptr[i + 1]], alone, rtol=1e-5, atol=1e-5)


def test_adjacency_mask_attends_to_neighbours_only():
    torch.manual_seed(0)
    x = torch.randn(6, 8)
    ei = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]])  # a path
    conv = GraphTransformerConv(8, heads=2, attention="adjacency", spatial_bias=False, degree_encoding=False,
                                ffn_ratio=0).eval()
    base = conv(x, ei, torch.zeros(6, dtype=torch.long))
    x2 = x.clone()
    # a random change (a constant shift would vanish in the pre-norm LayerNorm and prove nothing): node 5 is
    # 2+ hops from nodes 0..3, so with one hop of attention their outputs must not move
    x2[5] = torch.randn(8) * 3
    moved = conv(x2, ei, torch.zeros(6, dtype=torch.long))
    torch.testing.assert_close(base[:4], moved[:4])
    assert not torch.allclose(base[4:], moved[4:])
    # and the check can fail: full attention lets node 5 reach every node
    full = GraphTransformerConv(8, heads=2, attention="full", spatial_bias=False, degree_encoding=False,
                                ffn_ratio=0).eval()
    full.load_state_dict(conv.state_dict())
    assert not torch.allclose(full(x, ei, torch.zeros(6, dtype=torch.long))[:4],
                              full(x2, ei, torch.zeros(6, dtype=torch.long))[:4])


def test_a_spatial_bias_that_forbids_distances_beyond_one_is_the_adjacency_mask():
    """The two ways of letting the graph in agree at their limit: a bias of -inf on every bucket past
    distance 1 turns full attention into attention over the neighbours (the GAT limit)."""
    torch.manual_seed(0)
    graphs = [Data(x=torch.randn(n, 8), edge_index=_ring(n)) for n in (3, 6, 5)]
    b = Batch.from_data_list(graphs)
    full = GraphTransformerConv(8, heads=2, attention="full", spatial_bias=True).eval()
    with torch.no_grad():
        full.spatial[:, 2:] = -1e9
    masked = GraphTransformerConv(8, heads=2, attention="adjacency", spatial_bias=True).eval()
    masked.load_state_dict(full.state_dict())
    torch.testing.assert_close(full(b.x, b.edge_index, b.batch), masked(b.x, b.edge_index, b.batch))
    with torch.no_grad():  # and without that bias, the hexagon's far nodes do count
        full.spatial.zero_()
    assert not torch.allclose(full(b.x, b.edge_index, b.batch), masked(b.x, b.edge_index, b.batch))


def test_bad_input_is_named():
    conv = GraphTransformerConv(8, heads=2, max_nodes=4)
    x, ei = torch.randn(5, 8), torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="needs batch"):
        conv(x, ei)
    with pytest.raises(ValueError, match="exceeds max_nodes=4"):
        conv(x, ei, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="max_distance must be >= 1"):
        GraphTransformerConv(8, max_distance=0)
    with pytest.raises(ValueError, match="divisible by heads"):
        GraphTransformerConv(8, heads=3)
    with pytest.raises(ValueError, match="an edge joins two graphs"):
        batch_distances(torch.tensor([[0], [3]]), torch.tensor([0, 0, 1, 1]), 2)


def test_edge_index_out_of_range_is_named():
    with pytest.raises(ValueError, match="edge_index refers to nodes outside"):
        batch_distances(torch.tensor([[0], [7]]), torch.tensor([0, 0, 1]), 2)


def test_layer_names_bad_edges_and_batch_ids():
    conv = GraphTransformerConv(8, heads=2)
    x, ei = torch.randn(5, 8), torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="integer node ids"):
        conv(x, ei.float(), torch.zeros(5, dtype=torch.long))
    with pytest.raises(IndexError, match="source id 7"):
        conv(x, torch.tensor([[7], [1]]), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="non-negative integer graph ids"):
        conv(x, ei, torch.tensor([0, 0, 0, -1, -1]))


def test_cached_distances_follow_the_batch():
    """Two batches over one edge_index with the same sums of ids get their own distances (the cache is keyed
    on the graph sizes of a sorted batch)."""
    torch.manual_seed(0)
    conv = GraphTransformerConv(8, heads=2).eval()
    x = torch.randn(6, 8)
    ei = torch.tensor([[0, 4], [1, 5]])
    b1 = torch.tensor([0, 0, 1, 1, 1, 2])  # sizes (2, 3, 1)
    b2 = torch.tensor([0, 0, 0, 1, 2, 2])  # sizes (3, 1, 2): sum 5 in both; the edges 4-5 join graphs in b1
    with pytest.raises(ValueError, match="an edge joins two graphs"):
        conv(x, ei, b1)
    out = conv(x, ei, b2)
    fresh = GraphTransformerConv(8, heads=2).eval()
    fresh.load_state_dict(conv.state_dict())
    torch.testing.assert_close(out, fresh(x, ei.clone(), b2))


@pytest.mark.parametrize("attention", ["full", "adjacency"])
def test_graphs_of_very_different_sizes_are_padded_per_size_group(attention, monkeypatch):
    """A batch mixing graphs of 3 to 90 nodes runs in size groups, each padded to its own largest graph;
    outputs and gradients equal one group padded to the largest graph (the old way) and each graph alone."""
    import gnnkit.nn.graph_transformer_conv as gt
    torch.manual_seed(0)
    sizes = (3, 90, 5, 40, 4, 12, 41)
    graphs = [Data(x=torch.randn(n, 8), edge_index=_ring(n)) for n in sizes]
    b = Batch.from_data_list(graphs)
    groups = gt._size_buckets(b.edge_index, b.batch, sizes, 8)
    assert len(groups) == 4 and [d.size(-1) for _, _, d, _ in groups] == [5, 12, 41, 90]
    assert sorted(int(c) for _, _, _, counts in groups for c in counts) == sorted(sizes)
    conv = GraphTransformerConv(8, heads=2, attention=attention).eval()

    def run(layer):
        x = b.x.clone().requires_grad_(True)
        out = layer(x, b.edge_index.clone(), b.batch)
        (gx,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum(), x)
        return out.detach(), gx

    grouped = run(conv)
    real = gt._size_buckets
    monkeypatch.setattr(gt, "_size_buckets", lambda ei, batch, s, m: [
        (None, batch, *batch_distances(ei, batch, m, num_graphs=len(s)))])
    padded = run(conv)
    monkeypatch.setattr(gt, "_size_buckets", real)
    torch.testing.assert_close(grouped[0], padded[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grouped[1], padded[1], rtol=1e-5, atol=1e-5)
    for i, d in enumerate(graphs):
        alone = conv(d.x, d.edge_index, torch.zeros(d.num_nodes, dtype=torch.long))
        torch.testing.assert_close(grouped[0][b.ptr[i]:b.ptr[i + 1]], alone, rtol=1e-5, atol=1e-5)


def test_unsorted_batch_and_edges_across_graphs_are_named():
    conv = GraphTransformerConv(8, heads=2)
    with pytest.raises(ValueError, match="batch must be sorted"):
        conv(torch.randn(4, 8), torch.tensor([[0], [1]]), torch.tensor([0, 1, 0, 1]))
    sizes = (3, 40)
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor(sizes))
    with pytest.raises(ValueError, match="an edge joins two graphs"):
        conv(torch.randn(43, 8), torch.tensor([[0], [10]]), batch)


def test_inside_a_compiled_model_the_layer_runs_eagerly_with_one_break():
    """Review finding: under torch.compile the layer traced a dozen data-dependent host syncs (15 graph breaks,
    ~26 s to compile a toy model) and fullgraph=True failed deep inside with a guard error."""
    torch.manual_seed(0)
    conv, lin = GraphTransformerConv(8, heads=2), torch.nn.Linear(8, 3)
    x = torch.randn(12, 8, requires_grad=True)
    ei, batch = torch.randint(0, 6, (2, 20)), torch.tensor([0] * 6 + [1] * 6)
    ei = torch.cat([ei, ei + 6], 1)

    def model(x):
        return lin(conv(x.relu(), ei, batch)).sum(0)

    ref = model(x)
    ref.sum().backward()
    g_ref, x.grad = x.grad, None
    torch._dynamo.reset()
    explain = torch._dynamo.explain(model)(x)
    assert explain.graph_break_count == 1
    out = torch.compile(model, backend="aot_eager")(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, g_ref)
    torch._dynamo.reset()  # else the non-fullgraph entries above serve the call
    with pytest.raises(Exception, match="disable"):  # refused by name, not a guard error deep inside
        torch.compile(model, backend="aot_eager", fullgraph=True)(x)


def test_the_attention_kernels_follow_torchs_tf32_setting():
    """fp32 tile products in full fp32 unless torch allows TF32 matmuls (the per-backend or the global
    ``fp32_precision``; reading the legacy ``allow_tf32`` would raise once those were set); 16-bit inputs always
    on TF32 cores (exact for their values).  The H200 check (tests/test_kernels_cuda.py) measures the difference."""
    pytest.importorskip("triton")
    from gnnkit.kernels.graph_attention import dot_precision
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip("torch without the fp32_precision API")
    before = matmul.fp32_precision, torch.backends.fp32_precision
    try:
        assert dot_precision(torch.float16) == dot_precision(torch.bfloat16) == "tf32"
        matmul.fp32_precision = "ieee"
        assert dot_precision(torch.float32) == "ieee"
        matmul.fp32_precision = "tf32"
        assert dot_precision(torch.float32) == "tf32"
        matmul.fp32_precision, torch.backends.fp32_precision = "none", "tf32"  # the global setting decides
        assert dot_precision(torch.float32) == "tf32"
        torch.backends.fp32_precision = "ieee"
        assert dot_precision(torch.float32) == "ieee"
    finally:
        torch.backends.fp32_precision = before[1]
        matmul.fp32_precision = before[0]
