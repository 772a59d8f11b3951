"""P-GNN: distances capped at q hops, Bourgain anchor sets, the layer against a loop reference of the
authors' layer, positions telling apart nodes a GCN cannot, anchors resampled in training only."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

import gnnkit.nn as gnn
from gnnkit.nn import PGNN, PGNNConv, bourgain_anchor_sets, closest_anchors, shortest_path_scores

PATH5 = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])  # 0 - 1 - 2 - 3 - 4 (one direction stored)


def test_scores_hand_worked_with_the_hop_cap():
    s = shortest_path_scores(PATH5, 5, q=2)
    assert s[0].tolist() == pytest.approx([1.0, 1 / 2, 1 / 3, 0.0, 0.0])  # beyond 2 hops: 0
    assert torch.equal(s, s.t())  # undirected
    assert shortest_path_scores(PATH5, 5, q=4)[0, 4] == pytest.approx(1 / 5)
    assert shortest_path_scores(PATH5, 6, q=9)[0, 5] == 0.0  # unreachable (isolated node 5)


def test_bourgain_sets():
    g = torch.Generator().manual_seed(0)
    sets = bourgain_anchor_sets(64, copies=0.5, generator=g)
    # m = log2(64) = 6 sizes (32, 16, ..., 1), int(0.5 * 6) = 3 copies each
    assert len(sets) == 18
    assert sorted({s.numel() for s in sets}) == [1, 2, 4, 8, 16, 32]
    assert all(s.unique().numel() == s.numel() for s in sets)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 12), seed=st.integers(0, 10 ** 6))
def test_closest_anchors_brute_force(n, seed):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, 2 * n), generator=g)
    s = shortest_path_scores(ei, n, q=3)
    sets = bourgain_anchor_sets(n, 1.0, g)
    best, arg = closest_anchors(s, sets)
    for v in range(n):
        for i, a in enumerate(sets):
            assert best[v, i] == max(float(s[v, u]) for u in a.tolist())
            assert s[v, arg[v, i]] == best[v, i] and int(arg[v, i]) in a.tolist()


@pytest.mark.parametrize("distance_map", [True, False])
def test_layer_matches_a_loop_reference(distance_map):
    torch.manual_seed(0)
    n, k, f = 6, 4, 3
    x, dmax = torch.randn(n, f), torch.rand(n, k)
    dmax[0, 1] = 0.0  # an anchor set beyond q hops
    darg = torch.randint(0, n, (n, k))
    conv = PGNNConv(f, 5, distance_map=distance_map)

    def weight(s):  # the authors' Nonlinear(1, out, 1): Linear, ReLU, Linear on the scalar score
        if not distance_map:
            return s
        if s == 0:  # no anchor within q hops: nothing from the (arbitrary) anchor
            return s
        lin1, lin2 = conv.distance_map[0], conv.distance_map[2]
        return (lin2.weight @ torch.relu(lin1.weight[:, 0] * s + lin1.bias) + lin2.bias)[0]

    pos, struct = conv(x, dmax, darg)
    for v in range(n):
        msgs = [torch.relu(conv.lin_hidden(torch.cat([x[darg[v, i]] * weight(dmax[v, i]), x[v]])))
                for i in range(k)]
        torch.testing.assert_close(struct[v], torch.stack(msgs).mean(0))
        torch.testing.assert_close(pos[v], torch.stack([conv.lin_position(m)[0] for m in msgs]))


def _cycle(n, offset=0):
    src = torch.arange(n) + offset
    return torch.stack([src, (torch.arange(n) + 1) % n + offset])


def test_positions_tell_apart_nodes_a_gcn_cannot():
    ei = torch.cat([_cycle(3), _cycle(6, 3)], 1)  # a triangle (0-2) and a hexagon (3-8), all degree 2
    ei = torch.cat([ei, ei.flip(0)], 1)
    x = torch.ones(9, 4)
    torch.manual_seed(0)
    gcn_out = gnn.GCN(4, 8, 2, 4)(x, ei)
    torch.testing.assert_close(gcn_out[0], gcn_out[3])
    model = PGNN(4, 8, num_layers=2, q=3).eval()
    out = model(x, ei)
    assert (out[0] - out[3]).abs().max() > 1e-3


def test_anchor_sets_fixed_in_eval_resampled_in_training():
    ei = torch.randint(0, 30, (2, 80), generator=torch.Generator().manual_seed(1))
    x = torch.randn(30, 4)
    model = PGNN(4, 8, q=2, seed=3)
    model.eval()
    torch.testing.assert_close(model(x, ei), model(x, ei))
    model.train()
    torch.manual_seed(0)
    a = model(x, ei)
    b = model(x, ei)
    assert not torch.allclose(a, b)
    assert len(model._scores) == 1  # distances computed once for the graph


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="distance_map must be True or False"):
        PGNN(4, 8, distance_map="no")  # a string would otherwise switch the map on
    with pytest.raises(ValueError, match="distance cap q must be a whole number of hops >= 1"):
        PGNN(4, 8, q=0)
    with pytest.raises(ValueError, match="distance table"):
        shortest_path_scores(PATH5, 60_000, q=2)
    with pytest.raises(ValueError, match=r"x must be \[N=3"):
        PGNNConv(4, 2)(torch.randn(2, 4), torch.rand(3, 2), torch.zeros(3, 2, dtype=torch.long))


def test_edge_index_out_of_range_is_named():
    with pytest.raises(ValueError, match=r"edge_index refers to nodes outside \[0, 3\)"):
        shortest_path_scores(PATH5, 3, q=2)


def test_distance_cache_sees_another_graph_with_the_same_sums():
    """Two graphs whose edge sums (and 31*src+dst sums) agree — the old cache key — get their own distances."""
    a = torch.tensor([[0, 1], [3, 2]])
    b = torch.tensor([[0, 1], [2, 3]])
    model = PGNN(3, 4, q=3).eval()
    x = torch.randn(4, 3)
    model(x, a)
    torch.testing.assert_close(model.scores(b, 4), shortest_path_scores(b, 4, 3))
    c = a.clone()
    model(x, c)
    c[1] = torch.tensor([2, 3])  # an in-place edit (c now equals b)
    torch.testing.assert_close(model.scores(c, 4), shortest_path_scores(b, 4, 3))


@pytest.mark.parametrize("bad,match", [
    (lambda x, e: (x, e.float()), "integer node ids"),
    (lambda x, e: (x, torch.tensor([[0, 9], [1, 2]])), "source id 9"),
    (lambda x, e: (x[:, :2], e), r"in_channels=3"),
    (lambda x, e: (x[:0], e[:, :0]), "no nodes"),
])
def test_bad_forward_input_is_named(bad, match):
    x, e = bad(torch.randn(5, 3), PATH5)
    with pytest.raises((ValueError, IndexError), match=match):
        PGNN(3, 4)(x, e)


def test_edge_index_is_validated_once_per_graph_and_never_skipped(monkeypatch):
    """Validation runs when a graph's distance scores are computed, not on every forward; a tensor with the
    same values in another dtype (float) or with an id out of range is a new key and is still refused."""
    import gnnkit.nn.pgnn_conv as P
    calls = []
    real = P.validate_edge_index
    monkeypatch.setattr(P, "validate_edge_index", lambda *a, **k: calls.append(1) or real(*a, **k))
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    model = PGNN(2, 8, q=2).eval()
    x = torch.randn(4, 2)
    model(x, ei)
    model(x, ei)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="integer node ids"):
        model(x, ei.float())
    with pytest.raises(IndexError, match="source id 4"):
        model(x, torch.tensor([[0, 1, 2, 4], [1, 2, 3, 0]]))
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        model(x, ei.t().contiguous()[:, :1].view(-1))


def test_distance_map_flag_reaches_every_layer():
    assert all(c.distance_map is not None for c in PGNN(4, 8, num_layers=3).convs)
    off = PGNN(4, 8, num_layers=3, distance_map=False)
    assert all(c.distance_map is None for c in off.convs)
    assert sum(p.numel() for p in off.parameters()) < sum(p.numel() for p in PGNN(4, 8, num_layers=3).parameters())


def test_reset_parameters_redraws_every_weight():
    torch.manual_seed(0)
    model = PGNN(4, 8, num_layers=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.reset_parameters()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == set(before), set(before) - changed


def test_distance_cache_keeps_a_splits_three_graphs_and_evicts_past_its_budget(monkeypatch):
    """A transductive split scores three message graphs each epoch: each graph's search runs once; a budget
    of two tables evicts the least recently used; a 0 budget keeps only the last graph."""
    import gnnkit.nn.pgnn_conv as mod
    calls = []
    real = mod.shortest_path_scores
    monkeypatch.setattr(mod, "shortest_path_scores", lambda ei, n, q: calls.append(ei) or real(ei, n, q))
    gen = torch.Generator().manual_seed(0)
    graphs = [torch.randint(0, 20, (2, 30 + i), generator=gen) for i in range(3)]
    x = torch.randn(20, 3)
    model = PGNN(3, 4, q=2).eval()
    for _ in range(3):  # three epochs
        for ei in graphs:
            torch.testing.assert_close(model.scores(ei, 20), real(ei, 20, 2))
    assert len(calls) == 3
    table = 20 * 20 * torch.get_default_dtype().itemsize
    calls.clear()
    model = PGNN(3, 4, q=2, cache_bytes=2 * table).eval()
    model(x, graphs[0]), model(x, graphs[1]), model(x, graphs[0])  # graph 1 is now the least recent
    model(x, graphs[2])  # evicts graph 1
    model(x, graphs[0]), model(x, graphs[2])
    assert len(calls) == 3
    model(x, graphs[1])
    assert len(calls) == 4 and len(model._scores) == 2
    model = PGNN(3, 4, q=2, cache_bytes=0).eval()
    model(x, graphs[0]), model(x, graphs[1]), model(x, graphs[1])
    assert len(model._scores) == 1
    for bad in (-1, "1G", 1.5, True):
        with pytest.raises(ValueError, match="cache_bytes must be an int >= 0"):
            PGNN(3, 4, cache_bytes=bad)
