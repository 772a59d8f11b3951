"""gnnkit layers inside PyG's ecosystem, each against PyG's own layer with the same weights:
``to_hetero`` and ``HeteroConv``, ``torch_geometric.explain`` (GNNExplainer and Captum edge
attributions), the ``MessagePassing`` options (``flow``, ``aggr``, ``node_dim``, ``decomposed_layers``,
hooks), SAGE with every kind of aggregation, static graphs, sparse ``x``, attention weights on every
adjacency form, and 2-layer stacks under ``torch.compile(fullgraph=True)`` with backward."""
import warnings

import pytest
import torch
import torch.nn.functional as F
import torch_geometric.nn as pnn
from torch_geometric.data import HeteroData
from torch_geometric.nn import MessagePassing

import gnnkit.nn as gnn
from gnnkit.ops import Graph

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")

N, E, F_IN = 24, 90, 8


def _close(a, b, atol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def _graph(seed=0, n=N, e=E, f=F_IN):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, f, generator=g), torch.randint(0, n, (2, e), generator=g)


LAYERS = {
    "GCNConv": lambda lib: lib.GCNConv(F_IN, 6),
    "SAGEConv": lambda lib: lib.SAGEConv(F_IN, 6),
    "GATConv": lambda lib: lib.GATConv(F_IN, 3, heads=2),
    "GATv2Conv": lambda lib: lib.GATv2Conv(F_IN, 3, heads=2),
    "GINConv": lambda lib: lib.GINConv(torch.nn.Sequential(torch.nn.Linear(F_IN, 6), torch.nn.ReLU())),
}


def _pair(name, **kw):
    torch.manual_seed(0)
    p = LAYERS[name](pnn)
    g = LAYERS[name](gnn)
    g.load_state_dict(p.state_dict(), strict=True)
    return p, g


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_drop_in_layer_is_a_message_passing(name):
    _, g = _pair(name)
    assert isinstance(g, MessagePassing)
    assert g.flow == "source_to_target" and g.explain is None


# ---------------------------------------------------------------------------- heterogeneous graphs
def _hetero(seed=0):
    g = torch.Generator().manual_seed(seed)
    data = HeteroData()
    data["paper"].x = torch.randn(20, 8, generator=g)
    data["author"].x = torch.randn(12, 5, generator=g)
    data["paper", "cites", "paper"].edge_index = torch.randint(0, 20, (2, 60), generator=g)
    data["author", "writes", "paper"].edge_index = torch.stack(
        [torch.randint(0, 12, (40,), generator=g), torch.randint(0, 20, (40,), generator=g)])
    data["paper", "rev_writes", "author"].edge_index = data["author", "writes", "paper"].edge_index.flip(0)
    return data


class _Homo(torch.nn.Module):
    def __init__(self, lib, kind):
        super().__init__()
        if kind == "sage":
            self.conv1, self.conv2 = lib.SAGEConv((-1, -1), 16), lib.SAGEConv((-1, -1), 4)
        else:  # GAT on bipartite edge types: no self-loops, as PyG requires
            self.conv1 = lib.GATConv((-1, -1), 8, heads=2, add_self_loops=False)
            self.conv2 = lib.GATConv((-1, -1), 4, add_self_loops=False)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index)


@pytest.mark.parametrize("kind", ["sage", "gat"])
def test_to_hetero_equals_pyg(kind):
    data = _hetero()
    outs = []
    for lib in (pnn, gnn):
        torch.manual_seed(0)
        model = pnn.to_hetero(_Homo(lib, kind), data.metadata(), aggr="sum")
        with torch.no_grad():
            model(data.x_dict, data.edge_index_dict)  # materialise the lazy weights
        outs.append(model)
    pyg, ours = outs
    ours.load_state_dict(pyg.state_dict(), strict=True)
    a = pyg(data.x_dict, data.edge_index_dict)
    b = ours(data.x_dict, data.edge_index_dict)
    assert a.keys() == b.keys()
    for k in a:
        _close(b[k], a[k])
    # and gradients reach every parameter the same way
    sum(v.sum() for v in a.values()).backward()
    sum(v.sum() for v in b.values()).backward()
    for (n1, p1), (n2, p2) in zip(pyg.named_parameters(), ours.named_parameters()):
        assert n1 == n2
        _close(p2.grad, p1.grad, atol=1e-4)


def test_hetero_conv_equals_pyg():
    data = _hetero(1)
    convs = []
    for lib in (pnn, gnn):
        torch.manual_seed(0)
        convs.append(pnn.HeteroConv({
            ("paper", "cites", "paper"): lib.GCNConv(8, 6),
            ("author", "writes", "paper"): lib.SAGEConv((5, 8), 6),
            ("paper", "rev_writes", "author"): lib.GATConv((8, 5), 6, add_self_loops=False),
        }, aggr="mean"))
    convs[1].load_state_dict(convs[0].state_dict(), strict=True)
    a, b = (c(data.x_dict, data.edge_index_dict) for c in convs)
    for k in a:
        _close(b[k], a[k])


# ---------------------------------------------------------------------------- explain
class _GCN(torch.nn.Module):
    def __init__(self, lib, conv="gcn"):
        super().__init__()
        make = {"gcn": lambda i, o: lib.GCNConv(i, o), "gat": lambda i, o: lib.GATConv(i, o, heads=1),
                "sage": lambda i, o: lib.SAGEConv(i, o), "gin": lambda i, o: lib.GINConv(torch.nn.Linear(i, o)),
                "sage-lstm": lambda i, o: lib.SAGEConv(i, o, aggr="lstm", **(
                    {"aggr_kwargs": {"pyg_padding": True}} if lib is gnn else {}))}[conv]
        self.conv1, self.conv2 = make(F_IN, 16), make(16, 3)

    def forward(self, x, edge_index):
        return self.conv2(F.relu(self.conv1(x, edge_index)), edge_index).log_softmax(-1)


@pytest.mark.parametrize("conv", ["gcn", "gat", "sage", "gin", "sage-lstm"])
def test_gnnexplainer_equals_pyg(conv):
    from torch_geometric.explain import Explainer, GNNExplainer
    x, ei = _graph(3)
    ei = torch.cat([ei, torch.tensor([[4, 9], [4, 9]])], 1)  # input self-loops: layers that add loops drop them
    if conv == "sage-lstm":  # PyG's LSTM needs edges sorted by destination
        ei = ei[:, torch.sort(ei[1], stable=True).indices]
    models = []
    for lib in (pnn, gnn):
        torch.manual_seed(0)
        models.append(_GCN(lib, conv).eval())
    models[1].load_state_dict(models[0].state_dict(), strict=True)
    masks = []
    for m in models:
        explainer = Explainer(m, GNNExplainer(epochs=30), explanation_type="model", node_mask_type="attributes",
                              edge_mask_type="object",
                              model_config=dict(mode="multiclass_classification", task_level="node",
                                                return_type="log_probs"))
        torch.manual_seed(1)
        exp = explainer(x, ei, index=5)
        masks.append((exp.edge_mask, exp.node_mask))
    assert masks[0][0].abs().sum() > 0  # the explanation is not empty
    _close(masks[1][0], masks[0][0], atol=1e-4)
    _close(masks[1][1], masks[0][1], atol=1e-4)


def test_captum_edge_attributions_equal_pyg():
    from torch_geometric.explain import Explainer
    from torch_geometric.explain.algorithm import CaptumExplainer
    x, ei = _graph(4)
    models = []
    for lib in (pnn, gnn):
        torch.manual_seed(0)
        models.append(_GCN(lib).eval())
    models[1].load_state_dict(models[0].state_dict(), strict=True)
    masks = []
    for m in models:
        explainer = Explainer(m, CaptumExplainer("IntegratedGradients"), explanation_type="model",
                              edge_mask_type="object",
                              model_config=dict(mode="multiclass_classification", task_level="node",
                                                return_type="log_probs"))
        masks.append(explainer(x, ei, index=2).edge_mask)
    assert masks[0].abs().sum() > 0
    _close(masks[1], masks[0], atol=1e-4)


# ---------------------------------------------------------------------------- MessagePassing options
@pytest.mark.parametrize("name", ["GCNConv", "SAGEConv", "GATConv", "GINConv"])
def test_flow_target_to_source_equals_pyg(name):
    p, g = _pair(name)
    x, ei = _graph(5)
    for m in (p, g):
        m.flow = "target_to_source"
    _close(g(x, ei), p(x, ei))
    g.flow = "source_to_target"
    _close(g(x, ei.flip(0)), p(x, ei))
    with pytest.raises(ValueError, match="flow"):
        g.flow = "target_to_source"
        g(x, Graph.build(ei, num_nodes=N))


def test_flow_keyword_and_unknown_kwargs_like_pyg():
    x, ei = _graph(6)
    torch.manual_seed(0)
    p = pnn.GCNConv(F_IN, 4, flow="target_to_source", decomposed_layers=2)
    g = gnn.GCNConv(F_IN, 4, flow="target_to_source", decomposed_layers=2)
    g.load_state_dict(p.state_dict())
    _close(g(x, ei), p(x, ei))
    with pytest.raises(ValueError, match="flow"):
        gnn.GCNConv(F_IN, 4, flow="sideways")
    with pytest.raises(TypeError):
        gnn.GCNConv(F_IN, 4, not_an_option=1)


def test_message_level_hooks_raise_a_named_error():
    g = gnn.GCNConv(F_IN, 4)
    for name in ("register_message_forward_pre_hook", "register_aggregate_forward_hook",
                 "register_propagate_forward_pre_hook"):
        with pytest.raises(NotImplementedError, match=name):
            getattr(g, name)(lambda *a: None)


# ---------------------------------------------------------------------------- aggregations
@pytest.mark.parametrize("aggr,kwargs", [
    ("std", {}), ("var", {}), ("softmax", {}), ("powermean", {}), ("median", {}), ("mul", {}),
    (["mean", "max", "std"], {"aggr_kwargs": {"mode": "cat"}}),
    (["mean", "sum", "softmax"], {"aggr_kwargs": {"mode": "proj", "mode_kwargs": {"in_channels": F_IN,
                                                                                  "out_channels": F_IN}}}),
    ("mean-object", {}), ("max-object", {}), ("var-object", {}), ("std-object", {}), ("std-semi", {}),
    ("softmax-learn", {}), ("softmax-semi", {}), ("softmax-negative", {}), ("powermean-learn", {}),
    ("powermean-3", {}), ("quantile-linear", {}), ("quantile-nearest", {}), ("quantile-midpoint", {}),
    ("quantile-higher", {}), ("median-fill", {}),
])
def test_sage_aggregations_equal_pyg(aggr, kwargs):
    from torch_geometric.nn import aggr as A
    objects = {"mean-object": lambda: A.MeanAggregation(), "max-object": lambda: A.MaxAggregation(),
               "var-object": lambda: A.VarAggregation(), "std-object": lambda: A.StdAggregation(),
               "std-semi": lambda: A.StdAggregation(semi_grad=True),
               "softmax-learn": lambda: A.SoftmaxAggregation(t=0.7, learn=True, channels=F_IN),
               "softmax-semi": lambda: A.SoftmaxAggregation(t=2.0, semi_grad=True),
               "softmax-negative": lambda: A.SoftmaxAggregation(t=-1.5, learn=True),
               "powermean-learn": lambda: A.PowerMeanAggregation(p=2.0, learn=True, channels=F_IN),
               "powermean-3": lambda: A.PowerMeanAggregation(p=3.0),
               "quantile-linear": lambda: A.QuantileAggregation(0.3, "linear"),
               "quantile-nearest": lambda: A.QuantileAggregation([0.8], "nearest"),
               "quantile-midpoint": lambda: A.QuantileAggregation(0.5, "midpoint"),
               "quantile-higher": lambda: A.QuantileAggregation(0.1, "higher"),
               "median-fill": lambda: A.MedianAggregation(fill_value=2.5)}
    x, ei = _graph(7)
    x = x.abs() + 0.1 if aggr in ("powermean", "mul") else x
    mods = []
    for lib in (pnn, gnn):
        torch.manual_seed(0)
        a = objects[aggr]() if isinstance(aggr, str) and aggr in objects else aggr
        mods.append(lib.SAGEConv(F_IN, 5, aggr=a, **kwargs))
    p, g = mods
    g.load_state_dict(p.state_dict(), strict=True)
    xp, xg = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = p(xp, ei), g(xg, ei)
    _close(b, a, atol=1e-4)
    a.square().sum().backward()
    b.square().sum().backward()
    _close(xg.grad, xp.grad, atol=1e-4)
    for (name, pa), pb in zip(p.named_parameters(), g.parameters()):  # learnt t / p included
        _close(pb.grad, pa.grad, atol=1e-4)


@pytest.mark.parametrize("aggr", ["softmax", "powermean", "var", "std", "max", "median"])
def test_sage_native_aggregations_gather_no_messages(aggr, monkeypatch):
    """These aggregations run on gnnkit's CSR ops (not PyG's module on [E, F] gathered messages)."""
    import gnnkit.nn.sage_conv as sage

    def refuse(*args, **kwargs):
        raise AssertionError("PyG's module on gathered messages was used")
    monkeypatch.setattr(sage, "gather_slots", refuse)
    g = gnn.SAGEConv(F_IN, 5, aggr=aggr)
    x, ei = _graph(3)
    g(x.abs() + 0.1, ei).sum().backward()


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("aggr", ["softmax", "powermean", "median"])
def test_sage_softmax_and_powermean_under_an_explainer_mask_equal_pyg(aggr, static):
    torch.manual_seed(0)
    p, g = pnn.SAGEConv(F_IN, 5, aggr=aggr), gnn.SAGEConv(F_IN, 5, aggr=aggr)
    g.load_state_dict(p.state_dict())
    x, ei = _graph(11)
    x = x.abs() + 0.1
    x = torch.stack([x, x.flip(0)]) if static else x  # a static graph: [B, N, F]
    mask = torch.randn(E)
    for m in (p, g):
        m.explain, m._edge_mask = True, mask
    _close(g(x, ei), p(x, ei), atol=1e-5)


# ---------------------------------------------------------------------------- input forms
@pytest.mark.parametrize("name", ["GCNConv", "GINConv", "GINEConv", "SAGEConv", "SAGEConv-max", "SAGEConv-std",
                                  "SAGEConv-softmax", "SAGEConv-powermean", "SAGEConv-median", "SAGEConv-multi"])
def test_static_graphs_equal_pyg(name):
    torch.manual_seed(0)
    make = {"GCNConv": lambda lib: lib.GCNConv(F_IN, 6),
            "SAGEConv": lambda lib: lib.SAGEConv(F_IN, 6),
            "SAGEConv-max": lambda lib: lib.SAGEConv(F_IN, 6, aggr="max", project=True),
            "SAGEConv-std": lambda lib: lib.SAGEConv(F_IN, 6, aggr="std"),
            "SAGEConv-softmax": lambda lib: lib.SAGEConv(F_IN, 6, aggr="softmax"),
            "SAGEConv-powermean": lambda lib: lib.SAGEConv(F_IN, 6, aggr="powermean", aggr_kwargs={"p": 2.0}),
            "SAGEConv-median": lambda lib: lib.SAGEConv(F_IN, 6, aggr="median"),
            "SAGEConv-multi": lambda lib: lib.SAGEConv(F_IN, 6, aggr=["mean", "max", "softmax"]),
            "GINConv": lambda lib: lib.GINConv(torch.nn.Linear(F_IN, 6)),
            "GINEConv": lambda lib: lib.GINEConv(torch.nn.Linear(F_IN, 6), edge_dim=3)}[name]
    p = make(pnn)
    g = make(gnn)
    g.load_state_dict(p.state_dict())
    x = torch.randn(3, N, F_IN)
    x = x.abs() + 0.1 if name == "SAGEConv-powermean" else x
    _, ei = _graph(8)
    args = (ei, torch.randn(E, 3)) if name == "GINEConv" else (ei,)
    _close(g(x, *args), p(x, *args))


@pytest.mark.parametrize("name", ["GCNConv", "GINConv", "GINEConv", "SAGEConv", "SAGEConv-softmax"])
def test_static_graphs_with_nodes_on_axis_0(name):
    """node_dim=0: x [N, B, F] (PyG runs GIN/SAGE so; its GCN/GINE fail) equals the [B, N, F] layout."""
    torch.manual_seed(0)
    make = {"GCNConv": lambda lib, **k: lib.GCNConv(F_IN, 6, **k),
            "SAGEConv": lambda lib, **k: lib.SAGEConv(F_IN, 6, **k),
            "SAGEConv-softmax": lambda lib, **k: lib.SAGEConv(F_IN, 6, aggr="softmax", **k),
            "GINConv": lambda lib, **k: lib.GINConv(torch.nn.Linear(F_IN, 6), **k),
            "GINEConv": lambda lib, **k: lib.GINEConv(torch.nn.Linear(F_IN, 6), edge_dim=3, **k)}[name]
    g0, g = make(gnn, node_dim=0), make(gnn)
    g.load_state_dict(g0.state_dict())
    x = torch.randn(N, 3, F_IN)
    _, ei = _graph(8)
    args = (ei, torch.randn(E, 3)) if name == "GINEConv" else (ei,)
    want = g(x.transpose(0, 1), *args).transpose(0, 1)
    _close(g0(x, *args), want)
    if name in ("GINConv", "SAGEConv", "SAGEConv-softmax"):
        p = make(pnn, node_dim=0)
        p.load_state_dict(g0.state_dict())
        _close(p(x, *args), want)
    with pytest.raises(ValueError, match="node_dim=2 puts the nodes on axis 2"):
        make(gnn, node_dim=2)(x, *args)


def test_sparse_x_in_gcn_equals_pyg():
    p, g = _pair("GCNConv")
    x, ei = _graph(9)
    xs = (x * (x > 1)).to_sparse()
    _close(g(xs, ei), p(xs, ei))


@pytest.mark.parametrize("name", ["GATConv", "GATv2Conv"])
@pytest.mark.parametrize("form", ["coo", "csr"])
def test_attention_weights_on_torch_sparse_equal_pyg(name, form):
    from torch_geometric.utils import to_torch_coo_tensor
    p, g = _pair(name)
    x, ei = _graph(10)
    ei = torch.unique(ei, dim=1)  # a sparse matrix holds each (i, j) once
    adj = to_torch_coo_tensor(ei.flip(0), size=(N, N))
    adj = adj.to_sparse_csr() if form == "csr" else adj
    (oa, (aa, wa)), (ob, (ab, wb)) = (m(x, adj, return_attention_weights=True) for m in (p, g))
    _close(ob, oa)
    assert ab.layout == aa.layout and ab.shape == aa.shape
    _close(ab.to_dense(), aa.to_dense())


# ---------------------------------------------------------------------------- compiled stacks
class _Stack(torch.nn.Module):
    def __init__(self, lib, kind):
        super().__init__()
        make = {"gcn": lambda i, o: lib.GCNConv(i, o), "gat": lambda i, o: lib.GATConv(i, o, heads=2, concat=False),
                "sage": lambda i, o: lib.SAGEConv(i, o), "gin": lambda i, o: lib.GINConv(torch.nn.Linear(i, o))}[kind]
        self.c1, self.c2 = make(F_IN, 16), make(16, 4)

    def forward(self, x, edge_index):
        return self.c2(F.relu(self.c1(x, edge_index)), edge_index)


@pytest.mark.parametrize("kind", ["gcn", "gat", "sage", "gin"])
@pytest.mark.parametrize("adj", ["edge_index", "Graph"])
def test_compiled_two_layer_stack_equals_pyg(kind, adj):
    """torch.compile(fullgraph=True), inductor, forward and backward of a 2-layer stack: equal to
    PyG's eager stack with the same weights (the issue's unbacked-size failure is gone)."""
    torch._dynamo.reset()
    x, ei = _graph(11)
    torch.manual_seed(0)
    p = _Stack(pnn, kind)
    g = _Stack(gnn, kind)
    g.load_state_dict(p.state_dict(), strict=True)
    a_in = Graph.build(ei, num_nodes=N) if adj == "Graph" else ei
    compiled = torch.compile(g, fullgraph=True)
    xp, xg = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = p(xp, ei), compiled(xg, a_in)
    _close(b, a)
    a.square().sum().backward()
    b.square().sum().backward()
    _close(xg.grad, xp.grad, atol=1e-4)
    for q1, q2 in zip(p.parameters(), g.parameters()):
        _close(q2.grad, q1.grad, atol=1e-4)


@pytest.mark.parametrize("name", ["GATConv", "GATv2Conv"])
def test_attention_dropout_in_training_drops_the_edges_pyg_drops(name):
    """Same seed, training mode, attention dropout 0.5: gnnkit draws its mask in PyG's edge order."""
    torch.manual_seed(0)
    make = {"GATConv": lambda lib: lib.GATConv(F_IN, 3, heads=2, dropout=0.5),
            "GATv2Conv": lambda lib: lib.GATv2Conv(F_IN, 3, heads=2, dropout=0.5)}[name]
    p = make(pnn)
    g = make(gnn)
    g.load_state_dict(p.state_dict())
    x, ei = _graph(12)
    outs = []
    for m in (p, g):
        torch.manual_seed(3)
        outs.append(m.train()(x, ei))
    _close(outs[1], outs[0])


@pytest.mark.parametrize("compiled", [False, True])
def test_lstm_with_pyg_padding_equals_pyg(compiled):
    """aggr_kwargs={"pyg_padding": True}: PyG's reading of the LSTM (state after the padding to the
    largest degree, nodes without neighbours included) on a graph of mixed degrees, with gradients."""
    torch._dynamo.reset()
    g_ = torch.Generator().manual_seed(13)
    ei = torch.randint(0, N, (2, 60), generator=g_)
    ei = ei[:, ei[1] < N - 3]  # three nodes without neighbours
    ei = ei[:, (ei[1] * N + ei[0]).argsort()]  # PyG's LSTM needs edges sorted by destination
    torch.manual_seed(0)
    p = pnn.SAGEConv(F_IN, 5, aggr="lstm")
    g = gnn.SAGEConv(F_IN, 5, aggr="lstm", aggr_kwargs={"pyg_padding": True})
    g.load_state_dict(p.state_dict(), strict=True)
    run = torch.compile(g, fullgraph=True, backend="aot_eager") if compiled else g
    x = torch.randn(N, F_IN, generator=g_)
    xp, xg = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = p(xp, ei), run(xg, ei)
    _close(b, a)
    a.sum().backward()
    b.sum().backward()
    _close(xg.grad, xp.grad, atol=1e-4)
    for q1, q2 in zip(p.parameters(), g.parameters()):
        _close(q2.grad, q1.grad, atol=1e-4)


@pytest.mark.parametrize("compiled", [False, True])
def test_lstm_under_an_explainer_mask_equals_pyg(compiled):
    """An explainer's edge mask multiplies each neighbour's message before the LSTM reads it (PyG's
    explain_message); gradients reach the mask, as GNNExplainer needs."""
    torch._dynamo.reset()
    g_ = torch.Generator().manual_seed(17)
    ei = torch.randint(0, N, (2, 60), generator=g_)
    ei = ei[:, torch.sort(ei[1], stable=True).indices]  # PyG's LSTM needs edges sorted by destination
    torch.manual_seed(0)
    p = pnn.SAGEConv(F_IN, 5, aggr="lstm")
    g = gnn.SAGEConv(F_IN, 5, aggr="lstm", aggr_kwargs={"pyg_padding": True})
    g.load_state_dict(p.state_dict(), strict=True)
    x = torch.randn(N, F_IN, generator=g_)
    masks = [torch.randn(ei.size(1), generator=torch.Generator().manual_seed(3)).requires_grad_(True)
             for _ in range(2)]
    for m, mask in zip((p, g), masks):
        m.explain, m._edge_mask = True, mask
    run = torch.compile(g, fullgraph=True, backend="aot_eager") if compiled else g
    a, b = p(x, ei), run(x, ei)
    _close(b, a)
    a.square().sum().backward()
    b.square().sum().backward()
    _close(masks[1].grad, masks[0].grad, atol=1e-4)
    g.explain = False
    assert (g(x, ei) - b).abs().max() > 1e-3  # the mask changed the result


@pytest.mark.parametrize("aggr", ["mean", "max", "min"])
@pytest.mark.parametrize("name", ["GCNConv", "GINConv", "GINEConv", "GATConv", "GATv2Conv"])
def test_aggr_keyword_equals_pyg(name, aggr):
    """PyG's MessagePassing ``aggr=`` on layers that sum by default: same outputs and gradients."""
    make = {"GCNConv": lambda lib: lib.GCNConv(F_IN, 6, aggr=aggr),
            "GINConv": lambda lib: lib.GINConv(torch.nn.Linear(F_IN, 6), aggr=aggr),
            "GINEConv": lambda lib: lib.GINEConv(torch.nn.Linear(F_IN, 6), edge_dim=3, aggr=aggr),
            "GATConv": lambda lib: lib.GATConv(F_IN, 3, heads=2, aggr=aggr),
            "GATv2Conv": lambda lib: lib.GATv2Conv(F_IN, 3, heads=2, aggr=aggr)}[name]
    torch.manual_seed(0)
    p = make(pnn)
    g = make(gnn)
    g.load_state_dict(p.state_dict(), strict=True)
    x, ei = _graph(14)
    args = (ei, torch.randn(E, 3)) if name == "GINEConv" else (ei,)
    xp, xg = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = p(xp, *args), g(xg, *args)
    _close(b, a)
    a.sum().backward()
    b.sum().backward()
    _close(xg.grad, xp.grad, atol=1e-4)
    with pytest.raises(ValueError, match="aggr='median' is not supported"):
        make(gnn).__class__(F_IN, 6, aggr="median") if name in ("GCNConv",) else gnn.GINConv(
            torch.nn.Linear(F_IN, 6), aggr="median")


def test_lstm_reads_neighbours_in_input_edge_order_like_pyg():
    """Edges sorted by destination only (PyG's requirement), sources in any order inside a row: gnnkit's
    LSTM reads them in that order, as PyG does (with pyg_padding its output equals PyG's)."""
    g_ = torch.Generator().manual_seed(21)
    ei = torch.randint(0, N, (2, 70), generator=g_)
    ei = ei[:, torch.sort(ei[1], stable=True).indices]  # by destination only
    torch.manual_seed(0)
    p = pnn.SAGEConv(F_IN, 5, aggr="lstm")
    g = gnn.SAGEConv(F_IN, 5, aggr="lstm", aggr_kwargs={"pyg_padding": True})
    g.load_state_dict(p.state_dict(), strict=True)
    x = torch.randn(N, F_IN, generator=g_)
    _close(g(x, ei), p(x, ei))


@pytest.mark.parametrize("nodes_first", [False, True])
def test_gine_static_graph_with_per_row_edge_features_equals_pyg(nodes_first):
    """Static graphs with edge features per batch row: [B, E, D] with x [B, N, F], or [E, B, D] with
    node_dim=0 and x [N, B, F] — as PyG takes them."""
    torch.manual_seed(0)
    kw = {"node_dim": 0} if nodes_first else {}
    p = pnn.GINEConv(torch.nn.Linear(F_IN, 6), edge_dim=3, **kw)
    g = gnn.GINEConv(torch.nn.Linear(F_IN, 6), edge_dim=3, **kw)
    g.load_state_dict(p.state_dict())
    _, ei = _graph(12)
    x = torch.randn(N, 2, F_IN) if nodes_first else torch.randn(2, N, F_IN)
    ea = torch.randn(E, 2, 3) if nodes_first else torch.randn(2, E, 3)
    _close(g(x, ei, ea), p(x, ei, ea))
    with pytest.raises(ValueError, match="edge_attr"):
        g(x, ei, torch.randn(E, 5, 3) if nodes_first else torch.randn(5, E, 3))
