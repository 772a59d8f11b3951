"""Findings of an independent review of the lectures' extras (virtual node, ID-GNN, P-GNN, diagnostics,
augmentation, graph transformer), each pinned by a test that fails on the code before the fix."""
import pytest
import torch

from gnnkit.nn import IDGNN, PGNN, AddKHopEdges, GraphTransformerConv, VirtualNode, add_k_hop_edges, global_add_pool
from gnnkit.nn.diagnostics import SmoothingMonitor, mad, relative_energy
from gnnkit.nn.pgnn_conv import bourgain_anchor_sets


def test_virtual_node_residual_drops_out_the_update_only():
    """OGB: v <- v + dropout(MLP(pool + v)); the old state was dropped out (and rescaled) with the update."""
    torch.manual_seed(0)
    vn = VirtualNode(4, dropout=0.5, residual=True).train()
    x, batch, state = torch.randn(6, 4), torch.tensor([0, 0, 0, 1, 1, 1]), torch.randn(2, 4)
    torch.manual_seed(1)
    got = vn.update(x, state, batch)
    torch.manual_seed(1)
    want = state + torch.nn.functional.dropout(vn.mlp(global_add_pool(x, batch, 2) + state), 0.5, True)
    torch.testing.assert_close(got, want)


def _ring(n):
    i = torch.arange(n)
    return torch.cat([torch.stack([i, (i + 1) % n]), torch.stack([(i + 1) % n, i])], 1)


def test_idgnn_nodes_as_a_bool_mask_and_bad_nodes():
    torch.manual_seed(0)
    m = IDGNN(3, 8, 4).eval()
    x, ei = torch.randn(6, 3), _ring(6)
    mask = torch.tensor([False, True, False, True, True, False])
    torch.testing.assert_close(m(x, ei, mask), m(x, ei, torch.tensor([1, 3, 4])))
    with pytest.raises(ValueError, match=r"bool nodes mask must have shape \[6\]"):
        m(x, ei, torch.tensor([True, False]))
    with pytest.raises(ValueError, match="integer node indices or a bool mask"):
        m(x, ei, torch.tensor([1.7]))


@pytest.mark.parametrize("bs", [0, -1, 1.5])
def test_idgnn_batch_size_is_checked(bs):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        IDGNN(3, 8, 4, batch_size=bs)


def test_mad_target_is_checked():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"bool target must be a mask of shape \[3\]"):
        mad(x, target=torch.tensor([True]))
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        mad(x, target=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="bool mask or integer node indices"):
        mad(x, target=torch.tensor([0.0]))
    torch.testing.assert_close(mad(x, target=torch.tensor([True, False, True])), mad(x, target=torch.tensor([0, 2])))


def test_mad_edges_counts_a_duplicated_edge_once():
    torch.manual_seed(0)
    x, ei = torch.randn(5, 4), _ring(5)
    dup = torch.cat([ei, ei[:, :3]], 1)
    torch.testing.assert_close(mad(x, dup, mask="edges"), mad(x, ei, mask="edges"))


def test_relative_energy_is_twice_the_rayleigh_quotient_as_documented():
    """The docstring said "a Rayleigh quotient"; on an eigenvector of the augmented normalised Laplacian of
    eigenvalue lambda it returns 2 * lambda (each undirected pair stored twice): the docstring says so now."""
    ei, n = _ring(6), 6
    a = torch.zeros(n, n)
    a[ei[1], ei[0]] = 1
    d = a.sum(1) + 1
    lap = torch.eye(n) - (a + torch.eye(n)) / torch.sqrt(d[:, None] * d[None, :])
    lam, vec = torch.linalg.eigh(lap.double())
    for k in range(n):
        torch.testing.assert_close(float(relative_energy(vec[:, k:k + 1].float(), ei)), 2 * float(lam[k]),
                                   atol=1e-5, rtol=1e-5)
    assert "twice" in relative_energy.__doc__


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="heads must be an integer >= 1"):
        GraphTransformerConv(8, heads=0)
    with pytest.raises(ValueError, match="max_degree must be an integer >= 0"):
        GraphTransformerConv(8, heads=2, max_degree=-1)
    with pytest.raises(ValueError, match="copies must be > 0"):
        PGNN(3, 8, copies=0)
    with pytest.raises(ValueError, match="copies must be > 0"):
        bourgain_anchor_sets(16, copies=-1.0)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        AddKHopEdges(k=0)
    for bad in (0, 2.0, True):  # the function checks k as the transform does (2.0 was a TypeError from range)
        with pytest.raises(ValueError, match="add_k_hop_edges: k must be an int >= 1"):
            add_k_hop_edges(_ring(4), k=bad)
    with pytest.raises(ValueError, match="mad_mask must be 'all' or 'edges'"):
        SmoothingMonitor(torch.nn.Linear(2, 2), _ring(3), layers=[""], mad_mask="edge")


def test_add_k_hop_edges_in_half_precision():
    ei = _ring(5)
    for dt in (torch.float16, torch.bfloat16):
        got_ei, got_w = add_k_hop_edges(ei, torch.ones(ei.size(1), dtype=dt), k=2)
        want_ei, want_w = add_k_hop_edges(ei, torch.ones(ei.size(1)), k=2)
        assert got_w.dtype == dt and torch.equal(got_ei, want_ei)
        torch.testing.assert_close(got_w.float(), want_w)


def test_the_pyg_column_virtual_node_follows_the_same_residual_rule():
    from gnnkit.ogb.models import PyGVirtualNode
    torch.manual_seed(0)
    a, b = VirtualNode(4, dropout=0.5, residual=True).train(), PyGVirtualNode(4, dropout=0.5, residual=True).train()
    b.load_state_dict(a.state_dict())
    x, batch, state = torch.randn(6, 4), torch.tensor([0, 0, 0, 1, 1, 1]), torch.randn(2, 4)
    torch.manual_seed(1)
    want = a.update(x, state, batch)
    torch.manual_seed(1)
    torch.testing.assert_close(b.update(x, state, batch), want)


def test_residual_names_a_width_mismatch():
    from gnnkit.nn import GCNConv, Residual
    r = Residual(GCNConv(4, 8), 4, 4)  # declared 4 -> 4, the conv returns 8
    with pytest.raises(ValueError, match=r"Residual\(in_channels=4, out_channels=4\) got input width 4 and conv "
                                         "output width 8"):
        r(torch.randn(5, 4), _ring(5))


def test_pgnn_conv_names_bad_anchor_tables():
    from gnnkit.nn import PGNNConv
    conv = PGNNConv(3, 4)
    x = torch.randn(5, 3)
    with pytest.raises(IndexError, match=r"dist_argmax holds node ids outside \[0, 5\)"):
        conv(x, torch.rand(5, 2), torch.tensor([[0, 1]] * 4 + [[0, 9]]))
    with pytest.raises(ValueError, match=r"must both be \[N, k\]"):
        conv(x, torch.rand(5), torch.zeros(5, 2, dtype=torch.long))
