"""The CSR graph object: construction from every input form, validation, caching."""
import pytest
import torch

from gnnkit.ops import Graph, as_graph, clear_cache
from gnnkit.ops.graph import SparseTensor
from tests.conftest import random_graph


def _edges_set(g: Graph):
    ei = g.edge_index()
    return sorted(map(tuple, ei.t().tolist()))


def test_csr_layout_and_perm():
    ei = torch.tensor([[2, 0, 1, 2, 0], [1, 1, 0, 1, 2]])
    g, w = as_graph(ei, num_nodes=3)
    assert w is None
    assert g.rowptr.tolist() == [0, 1, 4, 5]
    assert g.row.tolist() == [0, 1, 1, 1, 2]
    assert g.col.tolist() == [1, 0, 2, 2, 0]
    # duplicates keep input order (stable sort): edge 0 before edge 3
    assert g.perm.tolist() == [2, 1, 0, 3, 4]
    assert torch.equal(g.edge_index(), ei)
    assert g.in_degree().tolist() == [1, 3, 1]
    assert g.out_degree().tolist() == [2, 1, 2]
    rowptr_t, col_t, perm_t = g.transpose()
    assert rowptr_t.tolist() == [0, 2, 3, 5]
    # the transposed slots point back at CSR slots with the same (src, dst)
    assert torch.equal(g.col[perm_t], torch.repeat_interleave(torch.arange(3), rowptr_t.diff()))
    assert torch.equal(g.row[perm_t], col_t)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_forms_agree(dtype):
    from torch_geometric import EdgeIndex
    from torch_geometric.utils import to_torch_coo_tensor, to_torch_csr_tensor
    N = 20
    ei = random_graph(N, 60, self_loops=True, duplicates=False)
    ei = torch.unique(ei, dim=1).contiguous()  # sparse forms coalesce duplicates
    ref = _edges_set(as_graph(ei, num_nodes=N)[0])
    forms = [ei.to(dtype), EdgeIndex(ei.to(dtype), sparse_size=(N, N)),
             to_torch_coo_tensor(ei.flip(0), size=(N, N)), to_torch_csr_tensor(ei.flip(0), size=(N, N))]
    if SparseTensor is not None:
        forms.append(SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(N, N)))
    for f in forms:
        g, _ = as_graph(f, num_nodes=N)
        assert _edges_set(g) == ref, type(f)


def test_bipartite_size():
    ei = torch.tensor([[0, 4, 2], [1, 0, 1]])
    g, _ = as_graph(ei, size=(5, 2))
    assert (g.num_src, g.num_dst) == (5, 2)
    assert g.rowptr.tolist() == [0, 1, 3]
    with pytest.raises(IndexError, match="destination id 1"):
        as_graph(ei, size=(5, 1))


def test_cache_hits_and_invalidation():
    clear_cache()
    ei = random_graph(10, 30)
    g1, _ = as_graph(ei, num_nodes=10)
    g2, _ = as_graph(ei, num_nodes=10)
    assert g1 is g2
    ei[0, 0] = (ei[0, 0] + 1) % 10  # in-place change bumps the version
    g3, _ = as_graph(ei, num_nodes=10)
    assert g3 is not g1
    assert as_graph(ei.clone(), num_nodes=10)[0] is not g3


@pytest.mark.parametrize("bad, exc, msg", [
    (torch.tensor([[0.0, 1.0], [1.0, 0.0]]), ValueError, "integer"),
    (torch.tensor([0, 1, 2]), ValueError, r"shape \[2, E\]"),
    (torch.tensor([[0, 1], [1, 0], [2, 2]]), ValueError, "transposed"),
    (torch.tensor([[0, -1], [1, 0]]), IndexError, "negative"),
    (torch.tensor([[0, 7], [1, 0]]), IndexError, r"edge_index\[0\] holds source id 7"),
    ([[0, 1], [1, 0]], ValueError, "torch.Tensor"),
    (torch.tensor([[0, 1], [1, 0]]).to(torch.uint32), ValueError, r"edge_index.long\(\)"),
])
def test_validation_errors(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        as_graph(bad, num_nodes=3)


def test_empty_graph():
    g, _ = as_graph(torch.empty(2, 0, dtype=torch.long), num_nodes=4)
    assert g.num_edges == 0 and g.rowptr.tolist() == [0, 0, 0, 0, 0]
    assert g.transpose()[0].tolist() == [0] * 5


def test_sparse_shape_mismatch():
    from torch_geometric.utils import to_torch_csr_tensor
    adj = to_torch_csr_tensor(torch.tensor([[0], [1]]), size=(3, 3))
    with pytest.raises(ValueError, match="adj_t convention"):
        as_graph(adj, num_nodes=4)


def test_an_edit_behind_the_version_counter_is_seen():
    """Regression (issue 13.6): edge_index changed through .data or numpy (no version bump) got the old
    graph from the cache; PyG uses the new edges, and so must gnnkit."""
    import gnnkit.nn as gnn
    from gnnkit.ops import spmm
    torch.manual_seed(0)
    x = torch.randn(6, 3)
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    g1, _ = as_graph(ei, num_nodes=6)
    assert g1.edge_index().tolist() == ei.tolist()
    ei.numpy()[0, 0] = 5                      # numpy view: the version counter does not move
    g2, _ = as_graph(ei, num_nodes=6)
    assert g2.edge_index().tolist() == [[5, 1, 2, 3], [1, 2, 3, 4]]
    ei.data[1, 3] = 0                         # .data: no version bump either
    assert as_graph(ei, num_nodes=6)[0].edge_index().tolist() == [[5, 1, 2, 3], [1, 2, 3, 0]]
    # the layers see the new edges: equal to a fresh tensor with the same values
    conv = gnn.GCNConv(3, 2)
    fresh = ei.clone()
    torch.testing.assert_close(conv(x, ei), conv(x, fresh))
    ei.numpy()[0, 1] = 4
    torch.testing.assert_close(conv(x, ei), conv(x, ei.clone()))
    torch.testing.assert_close(spmm(as_graph(ei, num_nodes=6)[0], x), spmm(as_graph(ei.clone(), num_nodes=6)[0], x))


def test_reversing_one_edge_behind_the_version_counter_is_seen():
    """Review finding: reversing an edge through .data kept the sum, the squares and the neighbour products,
    so the old structure came back; the positional (running) sum sees it."""
    ei = torch.tensor([[0, 1, 1], [1, 2, 0]])
    g1, _ = as_graph(ei, num_nodes=3)
    ei.data[:, 1] = torch.tensor([2, 1])
    g2, _ = as_graph(ei, num_nodes=3)
    assert g2 is not g1 and g2.edge_index().tolist() == [[0, 2, 1], [1, 1, 0]]


# ---------------------------------------------------------------------- the CSR build's sort and offsets
from hypothesis import given, settings, strategies as st  # noqa: E402

from gnnkit.ops.graph import _TORCH_RADIX_MIN, rowptr_of, stable_argsort  # noqa: E402


@given(n=st.sampled_from([0, 1, 2, 17, 1000, _TORCH_RADIX_MIN - 1, _TORCH_RADIX_MIN]),
       bits=st.integers(1, 47), seed=st.integers(0, 2 ** 16))
@settings(max_examples=40, deadline=None)
def test_stable_argsort_is_torch_stable_sort(n, bits, seed):
    """Both branches (numpy's 16-bit radix passes below torch's radix length, torch.sort from it on) give
    torch's stable permutation, duplicate keys in input order, for keys of 1 to 47 bits."""
    g = torch.Generator().manual_seed(seed)
    bound = 2 ** bits
    # few distinct values (many ties) or the full range
    hi = min(bound, int(torch.randint(1, 50, (1,), generator=g))) if seed % 2 else bound
    key = torch.randint(0, hi, (n,), generator=g)
    got = stable_argsort(key, bound)
    assert got.dtype == torch.int64
    assert torch.equal(got, torch.sort(key, stable=True).indices)


def test_stable_argsort_digits_and_extremes():
    """Keys that differ only in a high 16-bit digit, the largest key below the bound, and a bound of 1."""
    key = torch.tensor([3 << 32, 1 << 16, 5, (1 << 32) + 5, 0, 3 << 32, (1 << 40) - 1])
    assert torch.equal(stable_argsort(key, 1 << 40), torch.sort(key, stable=True).indices)
    assert torch.equal(stable_argsort(torch.zeros(5, dtype=torch.long), 1), torch.arange(5))


@given(n=st.integers(0, 40), e=st.integers(0, 300), seed=st.integers(0, 1000))
@settings(max_examples=30, deadline=None)
def test_rowptr_of_matches_searchsorted(n, e, seed):
    index = torch.sort(torch.randint(0, max(n, 1), (e if n else 0,), generator=torch.Generator().manual_seed(seed)))[0]
    assert torch.equal(rowptr_of(index, n), torch.searchsorted(index, torch.arange(n + 1)))


def test_csr_and_transpose_equal_the_composite_key_sorts():
    """The CSR (two radix passes) and its transpose (one stable sort by source) equal what sorting
    the composite keys dst * S + src and src * D + dst gives, duplicates and self-loops included."""
    g = torch.Generator().manual_seed(3)
    for ns, nd, e in [(7, 5, 60), (300, 200, 5000), (40000, 30000, 20000), (100000, 70000, 20000),
                      (70000, 100, 3000), (50, 50, 40000), (1, 1, 5), (3, 4, 1)]:
        src = torch.randint(0, ns, (e,), generator=g)
        dst = torch.randint(0, nd, (e,), generator=g)
        # int32 ids in a strided [E, 2] layout, as a transposed edge list gives them
        pairs = torch.stack([src, dst], 1).int()
        graph = Graph.from_coo(pairs[:, 0], pairs[:, 1], ns, nd)
        perm = torch.sort(dst * ns + src, stable=True).indices
        assert torch.equal(graph.perm if graph.perm is not None else torch.arange(e), perm)
        assert torch.equal(graph.rowptr, torch.searchsorted(dst[perm], torch.arange(nd + 1)))
        rowptr_t, col_t, perm_t = graph.transpose()
        ref_t = torch.sort(graph.col * nd + graph.row, stable=True).indices
        assert torch.equal(perm_t, ref_t)
        assert torch.equal(col_t, graph.row[ref_t])
        assert torch.equal(rowptr_t, torch.searchsorted(graph.col[ref_t], torch.arange(ns + 1)))


def test_stable_argsort_refuses_what_it_cannot_sort_and_sorts_out_of_range_keys_as_torch():
    with pytest.raises(ValueError, match="bound must be >= 1"):
        stable_argsort(torch.tensor([2, 1, 0]), 0)
    with pytest.raises(ValueError, match="1-D integer"):
        stable_argsort(torch.tensor([[3, 1], [0, 2]]), 4)
    with pytest.raises(ValueError, match="1-D integer"):
        stable_argsort(torch.tensor([0.5, 0.1]), 4)
    for key, bound in [(torch.tensor([65536, 3]), 10), (torch.tensor([-1, 3, -5, 0]), 10),
                       (torch.tensor([7, 3, 7, 1], dtype=torch.int16), 8),
                       (torch.tensor([5, 1], dtype=torch.uint8), 6)]:
        assert torch.equal(stable_argsort(key, bound), torch.sort(key, stable=True).indices)


@pytest.mark.parametrize("ns,nd", [(0, 3), (3, 0), (0, 0), (2, 2)])
def test_edgeless_graphs_transpose(ns, nd):
    e = torch.zeros(0, dtype=torch.long)
    rowptr_t, col_t, perm_t = Graph.from_coo(e, e, ns, nd).transpose()
    assert torch.equal(rowptr_t, torch.zeros(ns + 1, dtype=torch.long)) and col_t.numel() == perm_t.numel() == 0


def test_rowptr_of_refuses_what_it_cannot_count():
    with pytest.raises(ValueError, match="index must be a 1-D integer"):
        rowptr_of(torch.zeros(2, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="n=-1"):
        rowptr_of(torch.zeros(2, dtype=torch.long), -1)


# ---------------------------------------------------------------------- small CPU checks in numpy
@settings(max_examples=40, deadline=None)
@given(n=st.sampled_from([1, 2, 3, 1000, 2 ** 16, 2 ** 17]), big=st.booleans(),
       dtype=st.sampled_from([torch.int64, torch.int32, torch.int16, torch.uint8]), seed=st.integers(0, 2 ** 16))
def test_small_fingerprints_in_numpy_equal_torch_s(n, big, dtype, seed):
    """A small CPU tensor's fingerprint is taken with numpy (faster there): the same two sums, wrapping on int64
    overflow exactly as torch's kernels do, for every integer dtype and for strided views."""
    import gnnkit.ops.graph as G
    g = torch.Generator().manual_seed(seed)
    hi = {torch.uint8: 255, torch.int16: 2 ** 15 - 1, torch.int32: 2 ** 31 - 1}.get(dtype, 2 ** 62 if big else 50)
    t = torch.randint(0, hi, (2, n), generator=g).to(dtype)
    for view in (t, t.t(), t[:, ::2]):
        got = G._fingerprint(view)
        old, G._FP_HOST_MAX = G._FP_HOST_MAX, 0  # the torch path
        try:
            want = G._fingerprint(view)
        finally:
            G._FP_HOST_MAX = old
        assert got == want


def test_small_edge_index_range_errors_are_unchanged():
    """The numpy range check of a small CPU edge_index raises what the torch check raised, naming the argument;
    ids are read exactly (no float round trip) up to 2^62."""
    from gnnkit.ops.graph import validate_edge_index
    with pytest.raises(IndexError, match=r"edge_index holds a negative node id \(-1\)"):
        validate_edge_index(torch.tensor([[0, -1], [1, 0]]), None, None)
    with pytest.raises(IndexError, match=r"edge_index\[0\] holds source id 5 but there are only 3 source nodes"):
        validate_edge_index(torch.tensor([[0, 5], [1, 0]]), 3, 3)
    with pytest.raises(IndexError, match=r"adj\[1\] holds destination id 7 but there are only 4 destination"):
        validate_edge_index(torch.tensor([[0, 1], [7, 0]], dtype=torch.int32), 4, 4, name="adj")
    assert validate_edge_index(torch.tensor([[0, 2 ** 62 + 1], [3, 0]]), None, None) == (2 ** 62 + 2,) * 2
    assert validate_edge_index(torch.tensor([[0, 1], [2, 0]]).t().contiguous().t(), None, 5) == (5, 5)


@pytest.mark.parametrize("num_edges", [5, 70_000])  # a copy of the values (small) / the fingerprint (large)
def test_the_cache_sees_edits_behind_the_version_counter_on_both_sides_of_the_copy_bound(num_edges):
    """A cache entry recognises its tensor's values by a copy (up to 2^17 values: cheaper than a fingerprint
    and exact) or by the fingerprint (larger): an edit through .data / numpy is seen either way, and an
    unchanged tensor hits (the same Graph object)."""
    import gnnkit.ops.graph as G
    assert (2 * num_edges <= G._FP_HOST_MAX) == (num_edges == 5)
    g = torch.Generator().manual_seed(0)
    ei = torch.randint(0, 50, (2, num_edges), generator=g)
    g1, _ = as_graph(ei, num_nodes=60)
    assert as_graph(ei, num_nodes=60)[0] is g1
    ei.numpy()[1, -1] = 55  # no version bump
    g2, _ = as_graph(ei, num_nodes=60)
    assert g2 is not g1 and g2.edge_index()[1].max().item() == 55
    assert as_graph(ei, num_nodes=60)[0] is g2
    ei.data[0, 0] = 57
    g3, _ = as_graph(ei, num_nodes=60)
    assert g3 is not g2 and torch.equal(g3.edge_index(), ei)


def test_functionalized_edge_index_is_not_read_through_numpy():
    """Review finding: a torch.func.functionalize'd edge_index passed the numpy fast path's checks, and numpy read
    its unallocated storage (a pointer came back as the node count); such tensors keep torch's path, which fails
    cleanly."""
    from gnnkit.ops.graph import _on_host, validate_edge_index
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    assert _on_host(ei)
    seen = []

    def probe(e):
        seen.append(_on_host(e))
        return validate_edge_index(e, None, None)[0] * e.new_ones(1)

    with pytest.raises(RuntimeError, match="unallocated storage"):
        torch.func.functionalize(probe)(ei)
    assert seen == [False]


def _loops_by_sorting(ei: torch.Tensor, n: int):
    """PyG's remaining self-loops by sorting (the code before the merge): the base CSR's non-loop slots in slot
    order (duplicates of an edge in input order), then one loop per node, sorted by ``Graph.from_coo``; the
    kept slots' input ids; the last input loop of each node."""
    base = Graph.from_coo(ei[0], ei[1], n, n)
    slots = (base.col != base.row).nonzero().view(-1)
    nodes = torch.arange(n)
    ref = Graph.from_coo(torch.cat([base.col[slots], nodes]), torch.cat([base.row[slots], nodes]), n, n)
    kept = slots if base.perm is None else base.perm[slots]
    loop_edge = torch.full((n,), -1, dtype=torch.long)
    for i in (ei[0] == ei[1]).nonzero().view(-1).tolist():
        loop_edge[ei[0, i]] = i
    return ref, kept, loop_edge


@given(n=st.integers(1, 30), e=st.integers(0, 200), loops=st.integers(0, 40), seed=st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_remaining_self_loops_merge_equals_the_sort(n, e, loops, seed):
    """The merged CSR (host path) equals the sorted one: structure, slot order (duplicates in input order), the
    permutation, the kept edge ids and each node's last input loop; and a per-edge weight lands in the slots
    the graph built from the input order (non-loop edges, then the loops) gives it.  With repeated loops,
    duplicate edges, isolated nodes, no edges and only loops."""
    g = torch.Generator().manual_seed(seed)
    src = torch.cat([torch.randint(0, n, (e,), generator=g), torch.randint(0, n, (loops,), generator=g)])
    dst = torch.cat([torch.randint(0, n, (e,), generator=g), src[e:]])
    order = torch.randperm(src.numel(), generator=g)
    ei = torch.stack([src[order], dst[order]])
    graph, keep, loop_edge = Graph.from_coo(ei[0], ei[1], n, n).remaining_self_loops()
    ref, kept, ref_loop = _loops_by_sorting(ei, n)
    for name in ("rowptr", "col", "row"):
        assert torch.equal(getattr(graph, name), getattr(ref, name)), name
    assert (graph.perm is None) == (ref.perm is None)
    assert graph.perm is None or torch.equal(graph.perm, ref.perm)
    assert torch.equal(keep, kept) and torch.equal(loop_edge, ref_loop)
    w = torch.rand(ei.size(1), generator=g)
    padded = torch.cat([w, torch.ones(1)])  # a node without an input loop weighs 1
    loop_w = padded[torch.where(loop_edge >= 0, loop_edge, w.numel())]
    in_order = (ei[0] != ei[1]).nonzero().view(-1)
    nodes = torch.arange(n)
    by_input = Graph.from_coo(torch.cat([ei[0, in_order], nodes]), torch.cat([ei[1, in_order], nodes]), n, n)
    assert torch.equal(graph.to_csr_order(torch.cat([w[keep], loop_w])),
                       by_input.to_csr_order(torch.cat([w[in_order], loop_w])))


def test_remaining_self_loops_sorts_a_csr_with_unordered_rows_and_refuses_a_bipartite_graph():
    """A Graph from a CSR whose rows list their sources out of order cannot be merged: it is sorted (the
    result is the sorted one); a non-square graph is refused with the sizes named."""
    rowptr, col = torch.tensor([0, 3, 4, 6]), torch.tensor([2, 0, 1, 1, 2, 0])  # row 0's sources: 2, 0, 1
    graph, keep, loop_edge = Graph.from_csr(rowptr, col, 3, 3).remaining_self_loops()
    # slots 1 (0 -> 0), 3 (1 -> 1) and 4 (2 -> 2) are loops; the kept slots 0, 2, 5 (row 0: sources 2, 1) then
    # one loop per node, sorted
    ref = Graph.from_coo(torch.tensor([2, 1, 0, 0, 1, 2]), torch.tensor([0, 0, 2, 0, 1, 2]), 3, 3)
    assert torch.equal(graph.rowptr, ref.rowptr) and torch.equal(graph.col, ref.col)
    assert torch.equal(graph.perm, ref.perm)
    assert torch.equal(keep, torch.tensor([0, 2, 5])) and torch.equal(loop_edge, torch.tensor([1, 3, 4]))
    with pytest.raises(ValueError, match="square graph, got num_src=4, num_dst=3"):
        Graph.from_coo(torch.tensor([3]), torch.tensor([0]), 4, 3).remaining_self_loops()


# ---------------------------------------------------------------------- the public constructors' checks
_S, _D = torch.tensor([0, 1, 2, 2]), torch.tensor([1, 2, 0, 2])


@pytest.mark.parametrize("args, exc, msg", [
    ((_S.float(), _D, 3, 3), ValueError, r"Graph.from_coo: src must hold integer node ids .* src.long\(\)"),
    ((_S, _D.to(torch.bool), 3, 3), ValueError, r"dst must hold integer node ids"),
    ((torch.stack([_S, _D]), _D, 3, 3), ValueError, r"src must be a 1-D tensor .* edge_index\[0\]"),
    ((_S, _D[:3], 3, 3), ValueError, r"one id per edge each, got 4 and 3"),
    ((_S, _D, 2, 3), IndexError, r"src holds node ids from 0 to 2, outside \[0, num_src=2\)"),
    ((_S, _D - 1, 3, 3), IndexError, r"dst holds node ids from -1 to 1, outside \[0, num_dst=3\)"),
    ((_S, _D, 3, -1), ValueError, r"num_dst must be a non-negative int"),
    ((_S, _D, 3.0, 3), ValueError, r"num_src must be a non-negative int .* got 3.0"),
    ((_S, _D, True, 3), ValueError, r"num_src must be a non-negative int"),
])
def test_from_coo_names_the_bad_argument(args, exc, msg):
    with pytest.raises(exc, match=msg):
        Graph.from_coo(*args)


def test_from_coo_check_false_builds_the_same_graph_and_counts_may_be_numpy_or_tensor_ints():
    import numpy as np
    a = Graph.from_coo(_S, _D, np.int64(3), torch.tensor(3))
    b = Graph.from_coo(_S, _D, 3, 3, check=False)
    for name in ("rowptr", "col", "row"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert (a.num_src, a.num_dst) == (3, 3)
    e = Graph.from_coo(torch.zeros(0, dtype=torch.int32), torch.zeros(0, dtype=torch.int32), 0, 4)
    assert e.num_edges == 0 and e.rowptr.tolist() == [0] * 5


def test_with_remaining_self_loops_checks_its_pairs():
    with pytest.raises(IndexError, match=r"Graph.with_remaining_self_loops: src holds node ids from 0 to 2, "
                                         r"outside \[0, num_nodes=2\)"):
        Graph.with_remaining_self_loops(_S, _D, 2)
    with pytest.raises(ValueError, match="num_nodes must be a non-negative int"):
        Graph.with_remaining_self_loops(_S, _D, -3)
    g, keep, loop_edge = Graph.with_remaining_self_loops(_S, _D, 3)
    ref = Graph.from_coo(_S, _D, 3, 3).remaining_self_loops()
    assert torch.equal(g.col, ref[0].col) and torch.equal(g.rowptr, ref[0].rowptr)
    assert keep.tolist() == [0, 1, 2] and loop_edge.tolist() == [-1, -1, 3]


@pytest.mark.parametrize("rowptr, col, exc, msg", [
    (torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1]), ValueError, r"rowptr\) must have num_rows \+ 1 = 4 entries"),
    (torch.tensor([0, 2, 1, 3]), torch.tensor([2, 0, 1]), ValueError, r"never decrease .* fix: correct rowptr"),
    (torch.tensor([0, 1, 2, 2]), torch.tensor([2, 0, 1]), ValueError, r"end at the number of stored entries \(3\)"),
    (torch.tensor([0, 1, 2, 3]), torch.tensor([2, 0, 5]), IndexError, r"column ids from 0 to 5, outside \[0, 3\)"),
    (torch.tensor([0, 1, 2, 3]).float(), torch.tensor([2, 0, 1]), ValueError, r"rowptr must hold integer indices"),
    (torch.tensor([0, 1, 2, 3]), torch.tensor([[2, 0, 1]]), ValueError, r"col must be a 1-D tensor"),
])
def test_from_csr_names_the_bad_argument(rowptr, col, exc, msg):
    with pytest.raises(exc, match=msg):
        Graph.from_csr(rowptr, col, 3, 3)


def test_from_csr_equals_from_coo():
    g = Graph.from_coo(_S, _D, 3, 3)
    h = Graph.from_csr(g.rowptr, g.col, 3, 3)
    assert torch.equal(h.row, g.row) and torch.equal(h.col, g.col) and h.perm is None


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), e=st.integers(1, 120), width=st.sampled_from([(), (3,), (2, 4)]),
       seed=st.integers(0, 10**6))
def test_reordering_with_a_gradient_gathers_it_back(n, e, width, seed):
    """to_csr_order / from_csr_order of a tensor that carries a gradient: the backward is the inverse gather
    (PermuteRows), the same bits as index_select's scatter-add backward, and itself differentiable."""
    from gnnkit.ops.graph import PermuteRows
    g = torch.Generator().manual_seed(seed)
    graph = Graph.build(torch.randint(0, n, (2, e), generator=g), num_nodes=n)
    if graph.perm is None:
        return
    inv = torch.empty_like(graph.perm)
    inv[graph.perm] = torch.arange(e)
    v = torch.randn((e,) + width, generator=g, dtype=torch.float64)
    go = torch.randn((e,) + width, generator=g, dtype=torch.float64)
    for method, index in ((graph.to_csr_order, graph.perm), (graph.from_csr_order, inv)):
        a, b = v.clone().requires_grad_(), v.clone().requires_grad_()
        out = method(a)
        assert type(out.grad_fn).__name__ == "PermuteRowsBackward"
        want = b.index_select(0, index)
        assert torch.equal(out, want)
        ga, = torch.autograd.grad(out, a, go)
        gb, = torch.autograd.grad(want, b, go)
        assert torch.equal(ga, gb)
        with torch.no_grad():
            assert method(a).grad_fn is None
    assert torch.autograd.gradcheck(lambda t: PermuteRows.apply(t, graph.perm, inv), (v.clone().requires_grad_(),))
    assert torch.autograd.gradgradcheck(lambda t: PermuteRows.apply(t, graph.perm, inv).square(),
                                        (v.clone().requires_grad_(),))


def test_the_gathered_reorder_is_for_cpu_tensors_only():
    """On an H200 index_select's own backward was the faster one (edge softmax 4.4 vs 5.7 ms), so tensors off the
    CPU keep it (a meta tensor stands for them here)."""
    from gnnkit.ops.graph import _permute_with_gather
    assert _permute_with_gather(torch.randn(3, requires_grad=True))
    assert not _permute_with_gather(torch.randn(3))
    assert not _permute_with_gather(torch.empty(3, device="meta", requires_grad=True))


def test_reordering_under_forward_mode_ad_keeps_index_select():
    import torch.autograd.forward_ad as fwAD
    graph = Graph.build(torch.tensor([[0, 1, 2, 0], [2, 0, 1, 1]]), num_nodes=3)
    assert graph.perm is not None
    v, t = torch.randn(4, 2), torch.randn(4, 2)
    with fwAD.dual_level():
        out = graph.to_csr_order(fwAD.make_dual(v, t))
        assert torch.equal(fwAD.unpack_dual(out).tangent, t.index_select(0, graph.perm))


def test_reordering_under_inference_mode_records_nothing():
    """inference_mode with enable_grad() inside records nothing: a learned per-edge tensor is reordered by
    index_select (PermuteRows would have to save an inference tensor and fail); found by a review with
    GINEConv and GCNConv(normalize=False) taking Parameter edge features."""
    from gnnkit.nn import GINEConv
    graph = Graph.build(torch.tensor([[0, 1, 2, 0], [2, 0, 1, 1]]), num_nodes=3)
    assert graph.perm is not None
    w = torch.nn.Parameter(torch.randn(4, 2))
    layer = GINEConv(torch.nn.Linear(2, 2), edge_dim=2)
    with torch.inference_mode(), torch.enable_grad():
        assert not graph.to_csr_order(w).requires_grad
        assert not graph.from_csr_order(w).requires_grad
        out = layer(torch.randn(3, 2), graph, w)
    assert not out.requires_grad
