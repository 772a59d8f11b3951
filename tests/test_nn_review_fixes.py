"""Drop-in parity cases found by an independent review (2026-12-02): each compares gnnkit's layer with PyG's
(same weights) where gnnkit used to differ, crash or mislead, and fails on the code before the fix."""
import io
import warnings

import pytest
import torch
import torch_geometric.nn as pyg

import gnnkit.nn as gnn

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")


def _pair(name, *args, **kwargs):
    torch.manual_seed(0)
    p = getattr(pyg, name)(*args, **kwargs)
    g = getattr(gnn, name)(*args, **kwargs)
    g.load_state_dict(p.state_dict())
    return p, g


def test_gcn_cached_without_normalisation_caches_nothing():
    """PyG caches only the normalised adjacency; gnnkit kept the first call's graph and weights (2.77 off)."""
    p, g = _pair("GCNConv", 4, 3, cached=True, normalize=False)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=gen)
    a, b = torch.randint(0, 6, (2, 12), generator=gen), torch.randint(0, 6, (2, 9), generator=gen)
    for ei, w in ((a, None), (b, None), (a, torch.rand(12, generator=gen))):
        torch.testing.assert_close(g(x, ei, w), p(x, ei, w))


@pytest.mark.parametrize("name", ["GATConv", "GATv2Conv"])
@pytest.mark.parametrize("fill", ["mean", "add", "max", "mul", 0.5])
def test_gat_target_to_source_fills_loops_and_returns_the_users_edge_index(name, fill):
    """Under flow="target_to_source" the loops' edge features were filled from the wrong side (0.23-0.50 off),
    and the returned attention edge_index had its rows swapped."""
    p, g = _pair(name, 4, 2, heads=2, edge_dim=3, fill_value=fill, flow="target_to_source")
    ei = torch.tensor([[0, 1, 2, 3, 1, 0], [1, 2, 3, 4, 0, 3]])
    x = torch.randn(5, 4, requires_grad=True)
    ea = torch.randn(6, 3)
    op, (eip, ap) = p(x, ei, ea, return_attention_weights=True)
    xg = x.detach().clone().requires_grad_(True)
    og, (eig, ag) = g(xg, ei, ea, return_attention_weights=True)
    torch.testing.assert_close(og, op)
    assert torch.equal(eig, eip)
    torch.testing.assert_close(ag, ap)
    op.sum().backward()
    og.sum().backward()
    torch.testing.assert_close(xg.grad, x.grad)


@pytest.mark.parametrize("name", ["GATConv", "GATv2Conv"])
def test_gat_fill_value_mul_is_pygs_product(name):
    """fill_value="mul" (PyG's scatter product, 1 for a node without in-edges) was refused."""
    p, g = _pair(name, 4, 2, heads=2, edge_dim=3, fill_value="mul")
    ei = torch.tensor([[0, 1, 2, 3, 1, 0, 4], [1, 2, 3, 1, 0, 3, 3]])  # node 4 has no in-edges
    x = torch.randn(5, 4)
    ea = torch.randn(7, 3, requires_grad=True)
    eg = ea.detach().clone().requires_grad_(True)
    op, og = p(x, ei, ea), g(x, ei, eg)
    torch.testing.assert_close(og, op)
    op.square().sum().backward()
    og.square().sum().backward()
    torch.testing.assert_close(eg.grad, ea.grad)


@pytest.mark.parametrize("name", ["GATConv", "GATv2Conv"])
def test_returned_attention_is_after_dropout_as_pygs(name):
    p, g = _pair(name, 4, 3, heads=2, dropout=0.5)
    ei = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 2], [1, 2, 3, 4, 5, 0, 3, 1]])
    x = torch.randn(6, 4)
    torch.manual_seed(1)
    op, (_, ap) = p.train()(x, ei, return_attention_weights=True)
    torch.manual_seed(1)
    og, (_, ag) = g.train()(x, ei, return_attention_weights=True)
    assert int((ap == 0).sum()) > 0
    torch.testing.assert_close(ag, ap)
    torch.testing.assert_close(og, op)


def test_an_edit_behind_the_version_counter_is_seen_even_when_the_old_sums_agree():
    """The cache's fingerprint (three sums) was equal for [0,1,1,0] and [1,0,0,1] in row 0: the old graph
    was served after `ei.numpy()[0] = ...` (3.35 off)."""
    p, g = _pair("GCNConv", 4, 3)
    x = torch.randn(4, 4)
    ei = torch.tensor([[0, 1, 1, 0], [2, 3, 3, 2]])
    with torch.no_grad():
        torch.testing.assert_close(g(x, ei), p(x, ei))
        ei.numpy()[0] = [1, 0, 0, 1]
        torch.testing.assert_close(g(x, ei), p(x, ei))


def test_sage_under_autocast_runs_as_pygs():
    """The fused root-weight GEMM (in place, which autocast does not cast) raised a dtype error."""
    p, g = _pair("SAGEConv", 4, 3)
    x, ei = torch.randn(6, 4), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = p(x, ei), g(x, ei)
    assert got.dtype == want.dtype
    torch.testing.assert_close(got, want)


def test_torch_save_of_a_cached_gcn_model_after_training():
    """torch.save raised "cannot pickle 'weakref.ReferenceType'" (a Graph's per-tensor cache entry)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    convs = [gnn.GCNConv(4, 8, cached=True), gnn.GCNConv(8, 2, cached=True)]
    x, ei = torch.randn(10, 4), torch.randint(0, 10, (2, 30))
    opt = torch.optim.SGD([q for c in convs for q in c.parameters()], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        convs[1](convs[0](x, ei).relu(), ei).sum().backward()
        opt.step()
    for c in convs:
        model.append(c)
    buf = io.BytesIO()
    torch.save(convs, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    with torch.no_grad():
        torch.testing.assert_close(back[1](back[0](x, ei).relu(), ei), convs[1](convs[0](x, ei).relu(), ei))


@pytest.mark.parametrize("name", ["GATConv", "GATv2Conv"])
def test_a_one_row_fill_value_is_repeated_and_a_wrong_one_named(name):
    p, g = _pair(name, 4, 2, edge_dim=3, fill_value=torch.tensor([[1.0, 2.0, 3.0]]))
    x, ei, ea = torch.randn(5, 4), torch.tensor([[0, 1, 2], [1, 2, 3]]), torch.randn(3, 3)
    torch.testing.assert_close(g(x, ei, ea), p(x, ei, ea))
    g.fill_value = torch.ones(2, 3)
    with pytest.raises(ValueError, match="fill_value of shape \\[2, 3\\]"):
        g(x, ei, ea)


def test_virtual_node_model_trains_on_a_single_graph():
    """BatchNorm over one virtual node raised "Expected more than 1 value per channel when training"."""
    torch.manual_seed(0)
    m = gnn.GCN(5, 8, 3, 4, virtual_node=True).train()
    x, ei = torch.randn(10, 5), torch.randint(0, 10, (2, 30))
    m(x, ei).sum().backward()
    grads = [q.grad for n, q in m.named_parameters() if "mlp" in n and q.grad is not None]
    assert grads and all(torch.isfinite(gr).all() for gr in grads)  # the virtual node's MLP learns
    assert m.eval()(x, ei).shape == (10, 4)


def test_sage_lstm_project_parameter_order_is_pygs():
    """An optimizer state_dict from PyG's model maps parameters by position."""
    p, g = _pair("SAGEConv", 4, 3, aggr="lstm", project=True)
    assert [n for n, _ in g.named_parameters()] == [n for n, _ in p.named_parameters()]


def test_quantile_nearest_rounds_as_pyg_in_every_dtype():
    kw = dict(aggr="quantile", aggr_kwargs=dict(q=0.25, interpolation="nearest"), root_weight=False, bias=False)
    p, g = _pair("SAGEConv", 2, 2, **kw)
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    ei = torch.tensor([[3, 0, 2, 3], [0, 1, 1, 1]])  # node 1: position 1.5 globally, 0.5 inside its row
    with torch.no_grad():
        torch.testing.assert_close(g(x, ei), p(x, ei))
        torch.testing.assert_close(g.double()(x.double(), ei), p.double()(x.double(), ei))


@pytest.mark.parametrize("pool", ["global_add_pool", "global_mean_pool", "global_max_pool"])
def test_pools_follow_pyg_without_batch_and_on_3d_input(pool):
    pf, gf = getattr(pyg, pool), getattr(gnn, pool)
    x = torch.randn(9, 3)
    b = torch.tensor([0, 0, 2, 2, 2, 3, 3, 0, 0])
    torch.testing.assert_close(gf(x, None, 3), pf(x, None, 3))  # one graph: size is ignored, as PyG
    x3 = torch.randn(2, 9, 3)
    torch.testing.assert_close(gf(x3, b), pf(x3, b))
    torch.testing.assert_close(gf(x3, None), pf(x3, None))


def test_gcn_norm_takes_pygs_arguments_in_pygs_order():
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    graph, w = gnn.gcn_norm(ei, None, 3, False, True, "source_to_target")
    assert graph.num_edges == 6 and w.shape == (6,)
    with pytest.raises(ValueError, match="flow='target_to_source'.*flip"):
        gnn.gcn_norm(ei, None, 3, False, True, "target_to_source")


@pytest.mark.parametrize("name", ["GATConv", "GATv2Conv"])
def test_attention_edge_index_of_an_edge_index_input_is_an_edge_index(name):
    from torch_geometric import EdgeIndex
    p, g = _pair(name, 4, 3)
    e = torch.tensor([[0, 1, 2, 3, 3], [1, 2, 3, 4, 3]])
    ei = EdgeIndex(e, sparse_size=(5, 5))
    x = torch.randn(5, 4)
    _, (want, aw) = p(x, ei, return_attention_weights=True)
    _, (got, ag) = g(x, ei, return_attention_weights=True)
    assert isinstance(got, EdgeIndex) and got.sparse_size() == want.sparse_size()
    assert torch.equal(got.as_tensor(), want.as_tensor())
    torch.testing.assert_close(ag, aw)


@pytest.mark.parametrize("xd,wd", [(torch.bfloat16, torch.float32), (torch.float16, torch.float32),
                                   (torch.float32, torch.float64), (torch.float16, torch.bfloat16)])
@pytest.mark.parametrize("f_in,cached", [(8, False), (2, False), (8, True)])
def test_gcn_result_dtype_follows_a_wider_edge_weight_as_pyg(xd, wd, f_in, cached):
    """PyG's messages are edge_weight * x_j: a bf16 model with fp32 edge weights returns fp32 (gnnkit returned
    bf16); both aggregation orders and the cached path, 2-D and 3-D x, gradients flowing into bf16 x."""
    torch.manual_seed(0)
    ei, w = torch.randint(0, 10, (2, 30)), torch.rand(30).to(wd)
    p = pyg.GCNConv(f_in, 4, cached=cached).to(xd)
    g = gnn.GCNConv(f_in, 4, cached=cached).to(xd)
    g.load_state_dict(p.state_dict())
    for shape in ((10, f_in), (3, 10, f_in)):
        x = torch.randn(*shape).to(xd).requires_grad_(True)
        want, got = p(x, ei, w), g(x, ei, w)
        assert got.dtype == want.dtype == torch.promote_types(xd, wd)
        tol = 2e-2 if torch.finfo(want.dtype).bits < 32 or wd == torch.bfloat16 else 1e-5
        torch.testing.assert_close(got, want, atol=tol, rtol=tol)
        got.float().sum().backward()
        assert x.grad is not None and x.grad.dtype == xd


def test_cached_gcn_keeps_the_cached_weights_dtype_as_pyg():
    """Review finding: cached=True after a bf16 x + fp32 edge_weight call returned bf16 on the next call (PyG reuses
    the cached fp32 weights: fp32)."""
    torch.manual_seed(0)
    ei, w = torch.randint(0, 10, (2, 30)), torch.rand(30)
    p = pyg.GCNConv(8, 4, cached=True).to(torch.bfloat16)
    g = gnn.GCNConv(8, 4, cached=True).to(torch.bfloat16)
    g.load_state_dict(p.state_dict())
    x = torch.randn(10, 8).to(torch.bfloat16)
    for ew in (w, None):
        assert g(x, ei, ew).dtype == p(x, ei, ew).dtype == torch.float32


def test_gcn_takes_a_one_column_edge_weight_as_pyg():
    """Review finding (session 13): GCNConv refused edge_weight [E, 1] (conv(x, ei, data.edge_attr)); PyG takes it."""
    torch.manual_seed(0)
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    x, w = torch.randn(4, 3), torch.rand(4, 1)
    theirs, ours = pyg.GCNConv(3, 2), gnn.GCNConv(3, 2)
    ours.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(ours(x, ei, w), theirs(x, ei, w), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours(x, ei, w), ours(x, ei, w.view(-1)))


def test_global_max_pool_without_batch_sends_the_gradient_to_one_maximum_as_pyg():
    """Review finding (session 13): without batch the pool split the gradient among tied maxima (amax); PyG's
    x.max(dim)[0] sends it to one of them (with batch both split, as scatter's amax)."""
    from torch_geometric.nn import global_max_pool as pyg_pool
    for batch in (None, torch.zeros(3, dtype=torch.long)):
        grads = []
        for pool in (gnn.global_max_pool, pyg_pool):
            x = torch.tensor([[1.0, 5.0], [1.0, 0.0], [0.0, 5.0]], requires_grad=True)
            pool(x, batch).sum().backward()
            grads.append(x.grad)
        torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("interpolation", ["lower", "higher", "midpoint", "nearest", "linear"])
@pytest.mark.parametrize("q", [0.1, 0.3, 0.7, 0.9])
def test_sage_quantile_position_as_pyg_for_a_float32_q(interpolation, q):
    """Review finding (session 13): the quantile's position was computed from the float32 buffer q in float64,
    where 0.7 * 10 is 6.99999988 (PyG and torch.quantile: 7.0), so another element was chosen."""
    x = torch.arange(12.0).view(12, 1)
    ei = torch.stack([torch.arange(1, 12), torch.zeros(11, dtype=torch.long)])  # node 0: 11 neighbours
    kw = dict(aggr="quantile", aggr_kwargs=dict(q=q, interpolation=interpolation))
    theirs = pyg.SAGEConv(1, 1, root_weight=False, bias=False, **kw)
    ours = gnn.SAGEConv(1, 1, root_weight=False, bias=False, **kw)
    theirs.lin_l.weight.data.fill_(1.0)
    ours.load_state_dict(theirs.state_dict())
    assert ours(x, ei)[0].item() == theirs(x, ei)[0].item()


@pytest.mark.parametrize("make", [
    lambda: (pyg.SAGEConv(2, 2, aggr="max"), gnn.SAGEConv(2, 2, aggr="max")),
    lambda: (pyg.SAGEConv(2, 2, aggr="min"), gnn.SAGEConv(2, 2, aggr="min")),
    lambda: (pyg.GINConv(torch.nn.Linear(2, 2), aggr="max"), gnn.GINConv(torch.nn.Linear(2, 2), aggr="max")),
    lambda: (pyg.GINEConv(torch.nn.Linear(2, 2), aggr="max", edge_dim=1),
             gnn.GINEConv(torch.nn.Linear(2, 2), aggr="max", edge_dim=1)),
])
def test_max_min_input_gradients_with_tied_neighbours_equal_pyg(make):
    """Review finding (session 13): with tied neighbours (integer / one-hot features) the gradient into the inputs
    went whole to the first tied neighbour; PyG splits it evenly (scatter amax/amin)."""
    torch.manual_seed(0)
    theirs, ours = make()
    ours.load_state_dict(theirs.state_dict())
    ei = torch.tensor([[0, 1, 3, 3, 4], [2, 2, 2, 4, 0]])  # 0, 1 and 3 tie into node 2; a duplicate-free mix
    extra = (torch.ones(5, 1),) if "GINE" in type(ours).__name__ else ()
    grads = []
    for m in (theirs, ours):
        x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [3.0, -1.0]], requires_grad=True)
        m(x, ei, *extra).square().sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", ["GAT", "GIN"])
def test_ready_models_built_with_edge_dim_need_edge_attr(model):
    """Review (session 13): GAT(edge_dim=2) without edge_attr silently ran without edge features; GIN raised."""
    m = getattr(gnn, model)(3, 8, 2, 2, edge_dim=2)
    with pytest.raises(ValueError, match=rf"{model} was built with edge_dim=2 but got no edge_attr; fix"):
        m(torch.randn(4, 3), torch.tensor([[0, 1, 2], [1, 2, 3]]))
    assert m(torch.randn(4, 3), torch.tensor([[0, 1, 2], [1, 2, 3]]), torch.randn(3, 2)).shape == (4, 2)


def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    """Review (session 13): the check was os.access only, which says yes to root everywhere: `gnnkit train --out
    /proc/x.json` trained for minutes and failed at the write.  A real temporary file is tried now."""
    import argparse

    from gnnkit.commands._args import out_dir, out_file
    for check, path in ((out_file, "/proc/x.json"), (out_dir, "/proc/newdir")):
        with pytest.raises(argparse.ArgumentTypeError, match=r"the folder /proc (\(|is not writable)"):
            check(path)
    assert out_file(str(tmp_path / "a" / "r.json")) and out_dir(str(tmp_path / "b"))
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder; pass a file path"):
        out_file(str(tmp_path / "not-yet") + "/")  # "dir/" wrote a file named dir


def test_gine_bfloat16_features_in_a_float32_model_promote_as_pygs():
    """Review finding: bfloat16 x in a float32 GINEConv cast edge_attr to bfloat16 before the float32 edge Linear
    (a dtype error); PyG promotes x_j + e_ji and returns float32."""
    ei = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
    x, ea = torch.randn(5, 4).bfloat16(), torch.randn(5, 3)
    for edge_dim in (3, None):
        torch.manual_seed(1)
        p = pyg.GINEConv(torch.nn.Linear(4, 2), edge_dim=edge_dim)
        g = gnn.GINEConv(torch.nn.Linear(4, 2), edge_dim=edge_dim)
        g.load_state_dict(p.state_dict())
        e = ea if edge_dim else torch.randn(5, 4)
        op, og = p(x, ei, e), g(x, ei, e)
        assert og.dtype == op.dtype == torch.float32
        torch.testing.assert_close(og, op)
    # wider edge features than the model (PyG raises): the model's dtype, as before
    g = gnn.GINEConv(torch.nn.Linear(4, 2))
    assert g(torch.randn(5, 4), ei, torch.randn(5, 4, dtype=torch.float64)).dtype == torch.float32


def test_lecture_extras_refuse_what_they_would_misread():
    """Review (session 15): P-GNN's q=2.5 searched 3 hops (limit q + 0.5); a float identity index was truncated
    (0.7 coloured node 0); VirtualNode.broadcast with a state for too few graphs hit a raw IndexError;
    SmoothingMonitor returned [] silently when the last nodes have no edges; cycle_count_features took a
    float size into torch's sparse constructor."""
    import warnings

    from gnnkit.nn import GCN, PGNN, IDGNNConv, VirtualNode
    from gnnkit.nn.diagnostics import SmoothingMonitor
    from gnnkit.nn.idgnn_conv import cycle_count_features
    from gnnkit.nn.pgnn_conv import shortest_path_scores
    path = torch.tensor([[0, 1, 2, 3, 1, 2, 3, 4], [1, 2, 3, 4, 0, 1, 2, 3]])
    for q in (2.5, True, 0):
        with pytest.raises(ValueError, match="q must be a whole number of hops >= 1"):
            shortest_path_scores(path, 5, q)
        with pytest.raises(ValueError, match="q must be a whole number of hops >= 1"):
            PGNN(3, 8, q=q)
    tri = torch.tensor([[0, 1, 1, 2, 2, 0], [1, 0, 2, 1, 0, 2]])
    with pytest.raises(ValueError, match="integer node indices.*identity.long()"):
        IDGNNConv(4, 3)(torch.randn(3, 4), tri, torch.tensor([0.7]))
    vn = VirtualNode(4)
    with pytest.raises(ValueError, match="state holds 2 graphs"):
        vn.broadcast(torch.randn(5, 4), torch.zeros(2, 4), torch.tensor([0, 0, 1, 2, 2]))
    with pytest.raises(ValueError, match=r"batch must be \[num_nodes=5\]"):
        vn.broadcast(torch.randn(5, 4), torch.zeros(2, 4), torch.tensor([0, 1]))
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])  # nodes 4 and 5 have no edges
    model = GCN(1, 4, 2, 2)
    with pytest.warns(UserWarning, match="pass num_nodes=x.size"), SmoothingMonitor(model, ei) as mon:
        model(torch.randn(6, 1), ei)
    assert mon.stats == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with SmoothingMonitor(model, ei, num_nodes=6) as mon:
            model(torch.randn(6, 1), ei)
    assert len(mon.stats) == 2
    for kw, name in (({"num_nodes": 3.0}, "num_nodes"), ({"num_nodes": 3, "max_length": 2.0}, "max_length"),
                     ({"num_nodes": 3, "chunk": 0}, "chunk")):
        with pytest.raises(ValueError, match=f"cycle_count_features: {name} must be an int"):
            cycle_count_features(tri, **kw)
    assert cycle_count_features(tri, 3, 3)[:, 2].tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("kwargs,msg", [
    ({"in_channels": 8.0}, r"GCN: in_channels must be an int >= 1 \(or -1: inferred on the first call\), got 8.0"),
    ({"in_channels": -3}, r"in_channels must be an int >= 1 \(or -1"),
    ({"hidden_channels": 0}, r"GCN: hidden_channels must be an int >= 1, got 0"),
    ({"num_layers": 2.0}, r"GCN: num_layers must be an int >= 1, got 2.0"),
    ({"num_layers": True}, r"GCN: num_layers must be an int >= 1, got True"),
    ({"out_channels": -3}, r"GCN: out_channels must be an int >= 1, got -3"),
])
def test_ready_models_name_a_bad_size(kwargs, msg):
    """A float width gave torch's "empty(): argument 'size' failed to unpack", a negative one "negative
    dimension", and hidden_channels=0 or num_layers=True built a model silently; each is now named."""
    args = {"in_channels": 8, "hidden_channels": 16, "num_layers": 2, "out_channels": 3, **kwargs}
    with pytest.raises(ValueError, match=msg):
        gnn.GCN(**args)


def test_ready_models_take_numpy_ints_and_a_lazy_input_width():
    import numpy as np
    m = gnn.GIN(np.int64(5), np.int32(8), np.int64(2), 3)
    assert type(m.in_channels) is int and m.in_channels == 5
    lazy = gnn.GCN(-1, 8, 2, 3)
    assert lazy(torch.randn(4, 6), torch.tensor([[0, 1, 2], [1, 2, 3]])).shape == (4, 3)


def test_attention_loops_straight_from_a_plain_edge_index():
    """GAT's self-loop graph for a plain edge_index is built from the tensor itself (one sort, not two) and
    cached on it: the same attention, outputs and gradients, bit for bit, as through a prebuilt Graph (the
    other path), including existing loops, duplicates and fill_value edge features; with
    flow="target_to_source" (no Graph input there) PyG's numbers; an edit behind the version counter is seen."""
    from gnnkit.nn._attention import attention_structure
    from gnnkit.ops import Graph
    torch.manual_seed(0)
    ei = torch.tensor([[0, 1, 1, 2, 3, 3, 4, 2], [1, 0, 1, 3, 2, 0, 4, 3]])  # loops 1->1, 4->4; 2->3 twice
    x, ea = torch.randn(6, 5), torch.randn(8, 3)
    conv = gnn.GATConv(5, 4, heads=2, edge_dim=3, fill_value="mean")
    outs = []
    for adj in (ei, Graph.build(ei, num_nodes=6)):
        conv.zero_grad()
        xx = x.clone().requires_grad_(True)
        out, (_, alpha) = conv(xx, adj, ea, return_attention_weights=True)
        out.sum().backward()
        outs.append((out.detach(), alpha.detach(), xx.grad, [p.grad.clone() for p in conv.parameters()]))
    (o1, a1, g1, p1), (o2, a2, g2, p2) = outs
    assert torch.equal(o1, o2) and torch.equal(a1, a2) and torch.equal(g1, g2)
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))
    theirs = pyg.GATConv(5, 4, heads=2, edge_dim=3, fill_value="mean", flow="target_to_source")
    ours = gnn.GATConv(5, 4, heads=2, edge_dim=3, fill_value="mean", flow="target_to_source")
    ours.load_state_dict(theirs.state_dict())
    (o, (e_o, a_o)), (t, (e_t, a_t)) = (m(x, ei, ea, return_attention_weights=True) for m in (ours, theirs))
    torch.testing.assert_close(o, t)
    assert torch.equal(e_o, e_t)
    torch.testing.assert_close(a_o, a_t)
    st = attention_structure(ei, 6, 6, True)
    assert attention_structure(ei, 6, 6, True) is st  # cached on the tensor
    ei.numpy()[1, 0] = 5  # no version bump
    st2 = attention_structure(ei, 6, 6, True)
    assert st2 is not st and 5 in st2.graph.edge_index()[1].tolist()


def test_a_lazy_input_width_is_refused_where_it_cannot_be_inferred():
    """Review finding: GIN(-1, ...) and virtual_node=True with -1 passed the size check and then failed with
    torch's "negative dimension -1" (GIN's MLP and the virtual node's input map are plain Linear layers)."""
    with pytest.raises(ValueError, match=r"GIN: in_channels=-1 .* not supported by GIN's MLP; pass the input width"):
        gnn.GIN(-1, 16, 2, 2)
    with pytest.raises(ValueError, match=r"GraphSAGE: in_channels=-1 .* not supported with virtual_node=True"):
        gnn.GraphSAGE(-1, 16, 2, 2, virtual_node=True)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    for model in (gnn.GCN, gnn.GraphSAGE, gnn.GAT):  # lazy where the convs infer the width
        assert model(-1, 8, 2, 3)(torch.randn(4, 6), ei).shape == (4, 3)


@pytest.mark.parametrize("pool", ["global_add_pool", "global_mean_pool", "global_max_pool"])
def test_pooling_a_graph_without_nodes_stays_in_autograd(pool):
    """Review 2026-12-05: x [0, F] without batch gave a fresh zeros row with no grad_fn, so a loss on it failed
    in backward; PyG's add/mean pools keep it in the graph (x.grad [0, F]).  The value stays 0 (gnnkit's choice
    where PyG's mean gives NaN and its max raises)."""
    x = torch.randn(0, 3, requires_grad=True)
    out = getattr(gnn, pool)(x)
    assert out.shape == (1, 3) and out.requires_grad and not out.detach().any()
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == (0, 3)
    assert getattr(gnn, pool)(torch.zeros(0, 3, dtype=torch.int32)).dtype == torch.int32
