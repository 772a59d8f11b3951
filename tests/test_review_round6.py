"""Sixth review round (2026-12-05): findings of the API-surface comparison with PyG and the held-out-data runs,
each a test that fails on the code before its fix."""
import pytest
import torch
from torch_geometric.nn.models import GAT as PygGAT, GraphSAGE as PygGraphSAGE

import gnnkit.nn as gnn


def _graph(seed=0, n=30, e=90, f=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, f, generator=g), torch.randint(0, n, (2, e), generator=g)


@pytest.mark.parametrize("cls", [gnn.GCN, gnn.GraphSAGE, gnn.GAT, gnn.GIN])
def test_ready_models_take_dropout_as_the_fifth_positional_argument_as_pyg(cls):
    """PyG's BasicGNN: (in, hidden, num_layers, out, dropout, ...). gnnkit's GIN took train_eps fifth (GIN(5, 16, 2,
    4, 0.5): learnable eps, no dropout, no error) and GraphSAGE aggr (an AttributeError)."""
    m = cls(5, 16, 2, 4, 0.5)
    assert m.dropout == 0.5
    if cls is gnn.GIN:
        assert not any(c.eps.requires_grad for c in m.convs if isinstance(c.eps, torch.Tensor))
    with pytest.raises(TypeError):
        cls(5, 16, 2, 4, 0.5, 0.1)  # PyG's sixth is act; gnnkit's options are keyword-only


def test_gat_model_with_pygs_weights_matches_pyg_when_built_as_the_docs_say():
    x, ei = _graph()
    for layers in (2, 3):
        for heads in (1, 4):
            p = PygGAT(5, 16, layers, 4, dropout=0.6, heads=heads).eval()
            m = gnn.GAT(5, 16, layers, 4, dropout=0.6, heads=heads, out_heads=heads, attn_dropout=0.6).eval()
            m.load_state_dict(p.state_dict())
            torch.testing.assert_close(m(x, ei), p(x, ei), atol=1e-5, rtol=1e-5)


def test_graphsage_model_positional_dropout_matches_pyg():
    x, ei = _graph(1)
    p = PygGraphSAGE(5, 16, 2, 4, 0.5).eval()
    m = gnn.GraphSAGE(5, 16, 2, 4, 0.5).eval()
    m.load_state_dict(p.state_dict())
    torch.testing.assert_close(m(x, ei), p(x, ei), atol=1e-5, rtol=1e-5)
