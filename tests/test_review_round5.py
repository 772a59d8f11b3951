"""Findings of the fifth review round (2026-12-05: differential fuzzing of the layers against PyG, of the ops
against their references, and of the link-prediction splits against their contracts), each failing on the code
before it."""
import warnings

import pytest
import torch
import torch_geometric.nn as pnn
from torch_geometric import EdgeIndex

import gnnkit.nn as gnn

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")


@pytest.mark.parametrize("cls", ["GATConv", "GATv2Conv"])
@pytest.mark.parametrize("loops", [False, True])
def test_gat_target_to_source_returns_an_edge_index_as_pyg(cls, loops):
    """flow="target_to_source" with an EdgeIndex and return_attention_weights: PyG hands back an EdgeIndex (the
    input itself when no loops are added); gnnkit returned the flipped plain tensor turned back."""
    torch.manual_seed(0)
    x = torch.randn(5, 4)
    ei = EdgeIndex(torch.tensor([[0, 1, 2, 3, 4, 1], [1, 2, 3, 4, 0, 3]]), sparse_size=(5, 5))
    p = getattr(pnn, cls)(4, 3, heads=2, add_self_loops=loops, flow="target_to_source")
    g = getattr(gnn, cls)(4, 3, heads=2, add_self_loops=loops, flow="target_to_source")
    g.load_state_dict(p.state_dict())
    po, (pe, pa) = p(x, ei, return_attention_weights=True)
    go, (ge, ga) = g(x, ei, return_attention_weights=True)
    assert isinstance(ge, EdgeIndex) and type(ge) is type(pe)
    assert (ge is ei) == (pe is ei)
    assert ge.sparse_size() == pe.sparse_size()
    torch.testing.assert_close(ge.as_tensor(), pe.as_tensor())
    torch.testing.assert_close(go, po)
    torch.testing.assert_close(ga, pa)
