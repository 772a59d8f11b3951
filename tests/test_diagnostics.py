"""Over-smoothing diagnostics: hand-worked values, the MAD reference definition (Chen et al.'s mad_value with
scikit-learn's cosine distances), hooks on any model, and the depth effect on a plain GCN."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import gnnkit.nn as gnn
from gnnkit.nn.diagnostics import SmoothingMonitor, dirichlet_energy, mad, relative_energy, smoothing_profile

PATH = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # 0 - 1 - 2, both directions


def test_dirichlet_energy_hand_worked():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    # (1-0)^2 twice + (3-1)^2 twice = 10, over 3 nodes
    assert float(dirichlet_energy(x, PATH)) == pytest.approx(10 / 3)
    # normalised: x_i / sqrt(1 + d_i), d = (1, 2, 1)
    a, b, c = 0.0, 1 / math.sqrt(3), 3 / math.sqrt(2)
    assert float(dirichlet_energy(x, PATH, normalized=True)) == pytest.approx(2 * ((b - a) ** 2 + (c - b) ** 2) / 3)
    assert float(dirichlet_energy(torch.ones(3, 4), PATH)) == 0.0  # a constant signal has no energy
    # relative: the normalised energy over the mean squared norm (10/3)
    assert float(relative_energy(x, PATH)) == pytest.approx((2 * ((b - a) ** 2 + (c - b) ** 2) / 3) / (10 / 3))


def _mad_reference(x, mask):
    """Chen et al. (2020), mad_value: cosine distances (scikit-learn), masked, per-node mean over non-zero."""
    from sklearn.metrics import pairwise_distances
    dist = pairwise_distances(x, x, metric="cosine")
    # gnnkit's one deviation, documented in mad(): float64 rounding-level distances (< 1e-12, e.g. 1e-16 between
    # duplicate rows, which the reference would count as a "non-zero" pair) are zero
    dist[dist < 1e-12] = 0.0
    md = dist * mask
    node = md.sum(1) / ((md != 0).sum(1) + 1e-8)
    return float(np.mean(node))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 12), f=st.integers(1, 5), seed=st.integers(0, 10 ** 6))
def test_mad_matches_the_reference_definition(n, f, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, f, generator=g, dtype=torch.float64)
    x[0] = x[1]  # a duplicate pair: zero distance, not counted
    assert float(mad(x)) == pytest.approx(_mad_reference(x.numpy(), np.ones((n, n))), abs=1e-9)
    ei = torch.randint(0, n, (2, 3 * n), generator=g)
    ei = torch.unique(ei[:, ei[0] != ei[1]], dim=1)
    adj = np.zeros((n, n))
    adj[ei[1].numpy(), ei[0].numpy()] = 1  # row i: the neighbours j -> i
    assert float(mad(x, ei, mask="edges")) == pytest.approx(_mad_reference(x.numpy(), adj), abs=1e-9)


def test_mad_hand_worked_and_target():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # node 0: distances 1 (to 1), 0 (to 2, identical) -> 1; node 1: 1, 1 -> 1; node 2: like node 0 -> 1
    assert float(mad(x)) == pytest.approx(1.0)
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    d01, d02, d12 = 1 - 1 / math.sqrt(2), 2.0, 1 + 1 / math.sqrt(2)
    nodes = [(d01 + d02) / 2, (d01 + d12) / 2, (d02 + d12) / 2]
    assert float(mad(x)) == pytest.approx(sum(nodes) / 3)
    assert float(mad(x, target=torch.tensor([True, False, True]))) == pytest.approx((nodes[0] + nodes[2]) / 2)
    assert float(mad(x, target=torch.tensor([1]))) == pytest.approx(nodes[1])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="edge_index refers to nodes outside"):
        dirichlet_energy(torch.randn(2, 3), PATH)
    with pytest.raises(ValueError, match="mask='edges' needs edge_index"):
        mad(torch.randn(3, 2), mask="edges")
    with pytest.raises(ValueError, match="mask must be"):
        mad(torch.randn(3, 2), mask="knn")
    with pytest.raises(ValueError, match="no module named"):
        SmoothingMonitor(gnn.GCN(4, 8, 2, 3), PATH, layers=["nope"])


def test_monitor_hooks_every_conv_of_any_model():
    torch.manual_seed(0)
    model = gnn.GCN(4, 8, 3, 2)
    x = torch.randn(3, 4)
    prof = smoothing_profile(model, x, PATH)
    assert [p["layer"] for p in prof] == ["input", "convs.0", "convs.1", "convs.2"]
    assert model.training  # restored
    # the hooked values are the layer outputs' own measures
    outs = []
    hooks = [c.register_forward_hook(lambda m, i, o: outs.append(o)) for c in model.convs]
    model.eval()
    with torch.no_grad():
        model(x, PATH)
    for h in hooks:
        h.remove()
    for p, o in zip(prof[1:], outs):
        assert p["energy"] == pytest.approx(float(dirichlet_energy(o, PATH)))
        assert p["mad"] == pytest.approx(float(mad(o)))


@pytest.mark.data
def test_energy_falls_with_depth_for_a_plain_gcn_on_cora():
    """The lecture's claim, at initialisation: repeated GCN propagation (here without ReLU's help: a linear
    GCN stack) drives the scale-free energy towards 0."""
    from gnnkit.data import load_dataset
    data = load_dataset("Cora")[0]
    torch.manual_seed(0)
    deep = torch.nn.ModuleList(gnn.GCNConv(64, 64, bias=False) for _ in range(16))
    x = torch.randn(data.num_nodes, 64)
    energies, h = [], x
    with torch.no_grad():
        for conv in deep:
            h = conv(h, data.edge_index)
            energies.append(float(relative_energy(h, data.edge_index)))
    assert energies[-1] < 0.1 * energies[0]  # measured: 0.64 after 1 layer, 0.021 after 16 (0.0045 at 32)
    assert all(b <= a * 1.05 for a, b in zip(energies, energies[1:]))  # falls layer after layer


def test_layers_that_run_on_other_rows_are_skipped_not_scored_as_nodes():
    """Review (session 13): ID-GNN's convs run on the ego networks of all nodes ([24, F] for a 6-node path); the
    monitor took any output with at least max(edge_index)+1 rows and scored those rows as the graph's nodes."""
    from gnnkit.nn.diagnostics import SmoothingMonitor, smoothing_profile
    p = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 4, 5], [1, 0, 2, 1, 3, 2, 4, 3, 5, 4]])
    torch.manual_seed(0)
    m = gnn.IDGNN(2, 4, 3, num_layers=2)
    rows = smoothing_profile(m, torch.randn(6, 2), p)
    assert [r["layer"] for r in rows] == ["input"]  # no conv output has one row per node of the path
    g = gnn.GCN(2, 4, 2, 3)
    assert [r["layer"] for r in smoothing_profile(g, torch.randn(8, 2), p)] == ["input", "convs.0", "convs.1"]
    with pytest.raises(ValueError, match=r"num_nodes=3 must be an int >= max\(edge_index\) \+ 1 = 6"):
        SmoothingMonitor(g, p, num_nodes=3)


def test_smoothing_profile_passes_the_forward_s_other_arguments():
    """A graph classifier's forward takes ``batch``: ``smoothing_profile`` passes ``model_args`` /
    ``model_kwargs`` (it could only call ``model(x, edge_index)``), and refuses other kinds with the fix."""
    from torch_geometric.nn import global_add_pool

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = gnn.GCNConv(3, 4), gnn.GCNConv(4, 4)

        def forward(self, x, edge_index, batch):
            return global_add_pool(self.conv2(self.conv1(x, edge_index).relu(), edge_index), batch)

    torch.manual_seed(0)
    ei = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])  # two graphs: a path 0-1-2 and an edge 3-4
    x, batch = torch.randn(5, 3), torch.tensor([0, 0, 0, 1, 1])
    m = Classifier()
    by_kw = smoothing_profile(m, x, ei, model_kwargs={"batch": batch})
    assert [r["layer"] for r in by_kw] == ["input", "conv1", "conv2"]
    assert by_kw == smoothing_profile(m, x, ei, model_args=(batch,))
    h = m.conv1(x, ei)  # the monitor scores the conv's output as it is
    assert by_kw[1]["energy"] == pytest.approx(float(dirichlet_energy(h, ei)), rel=1e-6)
    with pytest.raises(ValueError, match=r"model_args must be a tuple.*model_args=\(batch,\)"):
        smoothing_profile(m, x, ei, model_args=batch)
    with pytest.raises(ValueError, match=r"model_kwargs must be a dict"):
        smoothing_profile(m, x, ei, model_kwargs=[batch])


def test_mad_counts_small_real_distances_of_near_collapsed_nodes():
    """Nine nodes a hair apart (1e-4 noise) and one distinct: their small distances (~1e-8) are real and count, as
    in the reference (a 1e-6 cut-off dropped them and reported 1.18 instead of 0.237); exact duplicates still count
    as zero distance."""
    from sklearn.metrics import pairwise_distances
    g = torch.Generator().manual_seed(0)
    base = torch.randn(16, generator=g, dtype=torch.float64)
    x = torch.cat([base + 1e-4 * torch.randn(9, 16, generator=g, dtype=torch.float64),
                   torch.randn(1, 16, generator=g, dtype=torch.float64)])
    dist = pairwise_distances(x.numpy(), metric="cosine")
    node = dist.sum(1) / ((dist != 0).sum(1) + 1e-8)  # the reference, no cut-off at all
    assert float(mad(x)) == pytest.approx(float(np.mean(node)), rel=1e-6)
    assert float(mad(x)) < 0.5
    collapsed = base + 1e-4 * torch.randn(10, 16, generator=g, dtype=torch.float64)
    assert 0 < float(mad(collapsed)) < 1e-6  # near-collapsed: small, not zero
    assert float(mad(base.repeat(4, 1))) == 0.0  # exact duplicates: zero


def test_relative_energy_is_scale_free_in_float64():
    """The denominator stays in x's dtype: float64 embeddings of any scale give the same value (it overflowed to
    inf in float32 and returned 0 for values ~1e20)."""
    x = torch.tensor([[0.3, -1.0], [1.2, 0.5], [-0.7, 2.0]], dtype=torch.float64)
    ref = float(relative_energy(x, PATH))
    assert ref > 0
    for c in (1e-20, 1e20):
        assert float(relative_energy(x * c, PATH)) == pytest.approx(ref, rel=1e-12)
