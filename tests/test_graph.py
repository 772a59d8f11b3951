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
