"""Layer contract beyond numerical parity: bad input raises a named error, layers run inside
PyG's Sequential, on NeighborLoader mini-batches and under torch.compile(fullgraph=True)."""
import warnings

import pytest
import torch
from torch.nn import Linear as L, ReLU, Sequential as Seq
from torch_geometric.data import Data
from torch_geometric.loader import NeighborLoader
from torch_geometric.nn import Sequential as PygSequential

import gnnkit.nn as gnn

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")

N, E, F_IN = 30, 120, 8
# the random graphs here are not sorted by destination, which PyG's (and the drop-in's) LSTM refuses
UNSORTED_OK = {"require_sorted": False}


def _graph(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, F_IN, generator=g), torch.randint(0, N, (2, E), generator=g)


def _mlp(i=F_IN, o=4):
    return Seq(L(i, 16), ReLU(), L(16, o))


PLAIN = {
    "SAGEConv": lambda: gnn.SAGEConv(F_IN, 6),
    "SAGEConv-lstm": lambda: gnn.SAGEConv(F_IN, 6, aggr="lstm", aggr_kwargs=UNSORTED_OK),
    "GATConv": lambda: gnn.GATConv(F_IN, 4, heads=2),
    "GATv2Conv": lambda: gnn.GATv2Conv(F_IN, 4, heads=2),
    "GINConv": lambda: gnn.GINConv(_mlp()),
    "GCNConv": lambda: gnn.GCNConv(F_IN, 6),
}


@pytest.mark.parametrize("name", list(PLAIN))
def test_bad_edge_index_raises_named_errors(name):
    layer = PLAIN[name]()
    x, ei = _graph()
    with pytest.raises(ValueError, match="edge_index.*integer.*long"):
        layer(x, ei.float())
    with pytest.raises(ValueError, match=r"edge_index.*\[2, E\].*transposed"):
        layer(x, ei.t().contiguous())
    with pytest.raises(IndexError, match="edge_index.*negative"):
        bad = ei.clone()
        bad[0, 3] = -1
        layer(x, bad)
    with pytest.raises(IndexError, match=r"edge_index\[0\].*source id 30.*\[0, 30\)"):
        bad = ei.clone()
        bad[0, 3] = N
        layer(x, bad)
    if name != "GINConv":  # GIN has no in_channels; its nn checks the width
        with pytest.raises(ValueError, match="x.* has 5 features.*in_channels"):
            layer(torch.randn(N, 5), ei)


@pytest.mark.parametrize("name", list(PLAIN))
def test_edge_index_made_under_inference_mode(name):
    """Regression (issue 13.1): an edge_index created under torch.inference_mode() crashed every layer
    ('Inference tensors do not track version counter', from the graph cache)."""
    torch.manual_seed(0)
    layer = PLAIN[name]().eval()
    x, ei = _graph()
    with torch.inference_mode():
        ei_inf = ei.clone()
        inside = layer(x, ei_inf)
    with torch.no_grad():
        assert torch.allclose(layer(x, ei_inf), layer(x, ei), atol=1e-6)
    assert torch.allclose(inside, layer(x, ei).detach(), atol=1e-6)


def test_enable_grad_inside_inference_mode():
    """Inference mode records nothing, even under enable_grad(), and PyG's layers run there.  gnnkit's
    autograd Functions still recorded when a learned parameter went straight in (the softmax temperature,
    the Graphormer bias) and crashed saving inference tensors ("Inference tensors cannot be saved for
    backward").  Every form now runs there, equals its no_grad output and, as in PyG, needs no grad."""
    torch.manual_seed(0)
    x, ei = _graph(5)
    ea = torch.randn(E, 3)
    forms = {name: (make(), _args(name, ei, ea)) for name, make in ALL_FORMS.items()}
    forms["GraphTransformerConv"] = (gnn.GraphTransformerConv(F_IN, heads=2),
                                     (ei, torch.zeros(N, dtype=torch.long)))
    for name, (layer, args) in forms.items():
        layer.eval()
        with torch.no_grad():
            want = layer(x, *args)
        with torch.inference_mode(), torch.enable_grad():
            got = layer(x, *args)
        assert not got.requires_grad, name
        torch.testing.assert_close(got, want, msg=name)


def test_bad_edge_attr_and_weights():
    x, ei = _graph()
    with pytest.raises(ValueError, match="edge_attr.*without edge_dim.*edge_dim="):
        gnn.GATConv(F_IN, 4)(x, ei, torch.randn(E, 3))
    with pytest.raises(ValueError, match=r"edge_attr must have one row per edge \(E=120\)"):
        gnn.GATConv(F_IN, 4, edge_dim=3)(x, ei, torch.randn(E - 1, 3))
    with pytest.raises(ValueError, match="edge_attr has 2 features.*edge_dim=3"):
        gnn.GATConv(F_IN, 4, edge_dim=3)(x, ei, torch.randn(E, 2))
    with pytest.raises(ValueError, match="GINEConv needs edge features.*edge_attr"):
        gnn.GINEConv(_mlp(), edge_dim=3)(x, ei)
    with pytest.raises(ValueError, match=r"edge_attr must have one row per edge \(E=120\)"):
        gnn.GINEConv(_mlp(), edge_dim=3)(x, ei, torch.randn(7, 3))
    with pytest.raises(ValueError, match="edge_attr has 3.*set edge_dim=3"):
        gnn.GINEConv(_mlp())(x, ei, torch.randn(E, 3))
    with pytest.raises(ValueError, match=r"edge_weight must have shape \[E=120\]"):
        gnn.GCNConv(F_IN, 4)(x, ei, torch.rand(E + 1))
    with pytest.raises(ValueError, match="Could not resolve 'bogus' among choices"):  # PyG's resolver, as PyG
        gnn.SAGEConv(F_IN, 4, aggr="bogus")
    with pytest.raises(ValueError, match="x_src has 8 features but x_dst has 3"):
        gnn.GINConv(_mlp())((x, torch.randn(N, 3)), ei)
    with pytest.raises(ValueError, match="x_dst has 3 features.*in_channels"):
        gnn.SAGEConv(F_IN, 4)((x, torch.randn(N, 3)), ei)


def test_sparse_adj_of_wrong_shape_raises():
    x, ei = _graph()
    adj = torch.sparse_coo_tensor(ei.flip(0), torch.ones(E), (N + 2, N)).coalesce()
    with pytest.raises(ValueError, match="adj_t has shape"):
        gnn.SAGEConv(F_IN, 4)(x, adj)


def test_inside_pyg_sequential():
    torch.manual_seed(0)
    x, ei = _graph()
    ea = torch.randn(E, 3)
    model = PygSequential("x, edge_index, edge_attr", [
        (gnn.SAGEConv(F_IN, 16), "x, edge_index -> x"), ReLU(inplace=True),
        (gnn.GATConv(16, 8, heads=2, edge_dim=3), "x, edge_index, edge_attr -> x"), ReLU(inplace=True),
        (gnn.GINEConv(_mlp(16, 4), edge_dim=3), "x, edge_index, edge_attr -> x"),
    ])
    out = model(x, ei, ea)
    assert out.shape == (N, 4)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_neighbor_loader_minibatches_match_full_graph():
    """On a seed node's full 2-hop neighbourhood a 2-layer model gives the full-graph output."""
    import importlib.util
    if not (importlib.util.find_spec("torch_sparse") or importlib.util.find_spec("pyg_lib")):
        pytest.skip("PyG's NeighborLoader needs pyg-lib or torch-sparse")
    torch.manual_seed(0)
    x, ei = _graph(1)
    data = Data(x=x, edge_index=ei, num_nodes=N)
    model = torch.nn.ModuleList([gnn.SAGEConv(F_IN, 8), gnn.GATConv(8, 4, heads=2)]).eval()

    def run(x_, ei_):
        return model[1](model[0](x_, ei_).relu(), ei_)

    full = run(x, ei)
    loader = NeighborLoader(data, num_neighbors=[-1, -1], batch_size=7, shuffle=False)
    seen = 0
    for batch in loader:
        out = run(batch.x, batch.edge_index)[: batch.batch_size]
        torch.testing.assert_close(out, full[batch.n_id[: batch.batch_size]], atol=1e-5, rtol=1e-5)
        seen += batch.batch_size
    assert seen == N


COMPILED = {
    "SAGEConv": lambda: gnn.SAGEConv(F_IN, 6),
    "SAGEConv-max": lambda: gnn.SAGEConv(F_IN, 6, aggr="max"),
    "SAGEConv-lstm": lambda: gnn.SAGEConv(F_IN, 6, aggr="lstm", aggr_kwargs=UNSORTED_OK).eval(),
    "GATConv": lambda: gnn.GATConv(F_IN, 4, heads=2, edge_dim=3),
    "GATv2Conv": lambda: gnn.GATv2Conv(F_IN, 4, heads=2),
    "GINConv": lambda: gnn.GINConv(_mlp()),
    "GINEConv": lambda: gnn.GINEConv(_mlp(), edge_dim=3),
}


@pytest.mark.parametrize("name", list(COMPILED))
def test_compiles_fullgraph_and_matches_eager(name):
    """fullgraph=True fails on any graph break; aot_eager traces forward and backward
    through AOTAutograd like inductor does, without the C++ code generation time."""
    torch.manual_seed(0)
    torch._dynamo.reset()
    layer = COMPILED[name]()
    x, ei = _graph(2)
    args = (ei, torch.randn(E, 3)) if name in ("GATConv", "GINEConv") else (ei,)
    xe = x.clone().requires_grad_(True)
    ref = layer(xe, *args)
    (gref,) = torch.autograd.grad(ref.sum(), xe)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    xc = x.clone().requires_grad_(True)
    out = compiled(xc, *args)
    (gout,) = torch.autograd.grad(out.sum(), xc)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gout, gref, atol=1e-5, rtol=1e-5)


def test_compiled_lstm_aggregation_trains_like_eager():
    """Training mode under torch.compile: the neighbour permutation is drawn in the traced
    graph and the opaque op's backward recomputes the forward with that same permutation, so
    with one seed the compiled step gives eager's output and parameter gradients."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = gnn.SAGEConv(F_IN, 6, aggr="lstm", aggr_kwargs={"shuffle": True}).train()
    x, ei = _graph(3)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    results = []
    for fn in (layer, compiled):
        layer.zero_grad()
        torch.manual_seed(5)
        out = fn(x, ei)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in layer.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


ALL_FORMS = dict(COMPILED, **{
    "GCNConv": lambda: gnn.GCNConv(F_IN, 6),
    "SAGEConv-softmax": lambda: gnn.SAGEConv(F_IN, 6, aggr="softmax", aggr_kwargs={"learn": True}),
    "SAGEConv-powermean": lambda: gnn.SAGEConv(F_IN, 6, aggr="powermean", aggr_kwargs={"p": 2.0}),
    "SAGEConv-median": lambda: gnn.SAGEConv(F_IN, 6, aggr="median"),
    "MPNNConv": lambda: gnn.MPNNConv(F_IN, edge_dim=3, num_steps=2),
    "GATv2Conv-edge": lambda: gnn.GATv2Conv(F_IN, 4, heads=2, edge_dim=3),
})


def _args(name, graph_like, ea):
    return (graph_like, ea) if name in ("GATConv", "GINEConv", "MPNNConv", "GATv2Conv-edge") else (graph_like,)


@pytest.mark.parametrize("name", list(ALL_FORMS))
def test_a_prebuilt_graph_equals_edge_index(name):
    """A gnnkit.ops.Graph passed in place of edge_index gives the same output and gradients (and its
    derived state is built once: the second call adds no entry)."""
    from gnnkit.ops import Graph
    torch.manual_seed(0)
    layer = ALL_FORMS[name]()
    x, ei = _graph(3)
    ea = torch.randn(E, 3)
    graph = Graph.build(ei, num_nodes=N)
    outs = []
    for adj in (ei, graph, graph):
        xr = x.clone().requires_grad_(True)
        y = layer(xr, *_args(name, adj, ea))
        outs.append((y, torch.autograd.grad(y.sum(), xr)[0]))
        if adj is graph and len(outs) == 2:
            keys = set(graph._derived)
    assert set(graph._derived) == keys
    for y, g in outs[1:]:
        torch.testing.assert_close(y, outs[0][0])
        torch.testing.assert_close(g, outs[0][1])
    with pytest.raises(ValueError, match="Graph with num_src=30"):
        layer(torch.randn(N + 1, F_IN), *_args(name, graph, ea))


@pytest.mark.parametrize("name", list(ALL_FORMS))
def test_compiled_with_a_prebuilt_graph(name):
    """The compile path of benchmarks/layers_compile.py: a Graph built outside the compiled region,
    one eager call, then fullgraph compilation (forward and backward) that matches eager, with the
    graph's state read, not rebuilt (no recompilation on the second compiled call)."""
    from gnnkit.ops import Graph
    torch.manual_seed(0)
    torch._dynamo.reset()
    layer = ALL_FORMS[name]()
    x, ei = _graph(4)
    ea = torch.randn(E, 3)
    graph = Graph.build(ei, num_nodes=N)
    xe = x.clone().requires_grad_(True)
    ref = layer(xe, *_args(name, graph, ea))
    (gref,) = torch.autograd.grad(ref.sum(), xe)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    from torch._dynamo.utils import counters
    counters.clear()
    for _ in range(2):
        xc = x.clone().requires_grad_(True)
        out = compiled(xc, *_args(name, graph, ea))
        (gout,) = torch.autograd.grad(out.sum(), xc)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gout, gref, atol=1e-5, rtol=1e-5)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


STRUCTURE_OPS = ("aten::sort", "aten::searchsorted", "aten::nonzero", "aten::unique", "aten::_unique2",
                 "aten::unique_consecutive", "aten::argsort", "aten::bincount")
# forms whose warm step sorts by design: the values (median), or the degrees inside the opaque LSTM op
SORTS_PER_STEP = ("SAGEConv-lstm", "SAGEConv-median")


@pytest.mark.parametrize("name", [k for k in ALL_FORMS if k not in SORTS_PER_STEP])
def test_a_warm_eager_step_rebuilds_no_structure(name):
    """Everything that depends only on the graph (transposes, self-loop graphs, the attention layers'
    fill_value grouping, degrees) is built once and kept: a training step on a warm Graph runs no sort,
    search, compaction or count (review finding: GAT's edge features recounted the loops every call)."""
    from torch.profiler import profile

    from gnnkit.ops import Graph
    torch.manual_seed(0)
    layer = ALL_FORMS[name]()
    x, ei = _graph(7)
    ea = torch.randn(E, 3)
    graph = Graph.build(ei, num_nodes=N)

    def step():
        xc = x.clone().requires_grad_(True)
        layer(xc, *_args(name, graph, ea)).sum().backward()

    step()
    with profile() as prof:
        step()
    found = {e.key: e.count for e in prof.key_averages() if e.key in STRUCTURE_OPS}
    assert not found, f"a warm step rebuilt graph structure: {found}"


@pytest.mark.parametrize("name", list(ALL_FORMS))
def test_compiled_first_keeps_the_graph_state(name):
    """What users do: torch.compile the model and train on a prebuilt Graph that no eager call has touched.
    The first compiled call builds the graph's derived state (transposes, self-loop graphs, SDDMM pattern)
    and keeps it; the layer is compiled once more to read it, and from then on a compiled training step
    rebuilds no more structure than an eager step on a warm graph (sorts, searches, compactions counted in
    the profiles) and matches eager."""
    from torch._dynamo.utils import counters
    from torch.profiler import profile

    from gnnkit.ops import Graph
    torch.manual_seed(0)
    torch._dynamo.reset()
    layer = ALL_FORMS[name]()
    x, ei = _graph(7)
    ea = torch.randn(E, 3)
    cold = Graph.build(ei.clone(), num_nodes=N)  # own edge_index tensors: no state shared through the cache
    warm = Graph.build(ei.clone(), num_nodes=N)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    counters.clear()

    def step(fn, adj):
        torch.manual_seed(1)
        xc = x.clone().requires_grad_(True)
        out = fn(xc, *_args(name, adj, ea))
        return out, torch.autograd.grad(out.sum(), xc)[0]

    def structure_ops(fn, adj):
        with profile() as prof:
            got = step(fn, adj)
        return got, {e.key: e.count for e in prof.key_averages() if e.key in STRUCTURE_OPS}

    for _ in range(2):
        step(compiled, cold)
    compiles = dict(counters["stats"])
    assert compiles["unique_graphs"] <= 2, compiles
    (out, gx), in_compiled = structure_ops(compiled, cold)
    assert dict(counters["stats"]) == compiles  # no further compilation
    step(layer, warm)
    (ref, gref), in_eager = structure_ops(layer, warm)
    assert all(in_compiled[k] <= in_eager.get(k, 0) for k in in_compiled), \
        f"a compiled step rebuilt graph structure that eager keeps: compiled {in_compiled}, eager {in_eager}"
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx, gref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["GCNConv", "GATConv"])
def test_compiled_layer_on_many_graph_sizes_compiles_a_bounded_number_of_times(name):
    """Review finding: the graph's derived-state keys held the node count, and hashing it fixed the size, so a
    compiled layer fed mini-batch Graphs of 5 sizes hit Dynamo's recompile limit (fullgraph: an error).  Now
    the compiles stop at a fixed number (empty or filled state, static or dynamic size), whatever the sizes."""
    from torch._dynamo.utils import counters

    from gnnkit.ops import Graph
    torch.manual_seed(0)
    torch._dynamo.reset()
    counters.clear()
    layer = ALL_FORMS[name]()
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    batches = []
    for i in range(10):
        n = 12 + 5 * i
        g = torch.Generator().manual_seed(i)
        x, ei = torch.randn(n, F_IN, generator=g), torch.randint(0, n, (2, 4 * n), generator=g)
        ea = torch.randn(4 * n, 3, generator=g)
        batches.append((x, ea, Graph.build(ei, num_nodes=n), Graph.build(ei.clone(), num_nodes=n)))
    for epoch in range(3):
        for x, ea, graph, eager_graph in batches:
            xc = x.clone().requires_grad_(True)
            out = compiled(xc, *_args(name, graph, ea))
            (gx,) = torch.autograd.grad(out.sum(), xc)
            if epoch == 2:
                xe = x.clone().requires_grad_(True)
                ref = layer(xe, *_args(name, eager_graph, ea))
                torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(gx, torch.autograd.grad(ref.sum(), xe)[0], atol=1e-5, rtol=1e-5)
    assert counters["stats"]["unique_graphs"] <= 4, dict(counters["stats"])


def test_compiled_lstm_keeps_its_graph_for_backward_and_bounds_it():
    """Under compile in training, the LSTM aggregation keeps its autograd graph for the backward (no
    recompute); at most _KEEP_MAX graphs wait for a backward, and one whose graph was dropped recomputes
    the forward and still gives eager's gradients; no graph is kept without gradients."""
    from gnnkit.nn import lstm_aggr
    torch.manual_seed(0)
    torch._dynamo.reset()
    lstm_aggr._KEPT.clear()
    layer = gnn.SAGEConv(F_IN, 6, aggr="lstm", aggr_kwargs=UNSORTED_OK).eval()
    x, ei = _graph(5)
    xr = x.clone().requires_grad_(True)
    (gref,) = torch.autograd.grad(layer(xr, ei).sum(), xr)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        compiled(x, ei)
    assert len(lstm_aggr._KEPT) == 0
    outs = []
    for _ in range(lstm_aggr._KEEP_MAX + 3):
        xc = x.clone().requires_grad_(True)
        outs.append((xc, compiled(xc, ei)))
    assert len(lstm_aggr._KEPT) == lstm_aggr._KEEP_MAX
    for xc, out in (outs[0], outs[-1]):  # dropped (recomputes) and kept
        (g,) = torch.autograd.grad(out.sum(), xc)
        torch.testing.assert_close(g, gref, atol=1e-5, rtol=1e-5)
    assert len(lstm_aggr._KEPT) == lstm_aggr._KEEP_MAX - 1  # the kept one was used and released
    lstm_aggr._KEPT.clear()


def test_a_compiled_inference_pass_does_not_poison_the_graph():
    """Review finding: a compiled call under torch.inference_mode stored inference tensors in the Graph's
    derived state, and the next training step on that graph crashed."""
    from gnnkit.ops import Graph
    torch._dynamo.reset()
    x, ei = _graph(6)
    graph = Graph.build(ei, num_nodes=N)
    conv = gnn.GCNConv(F_IN, 4)
    compiled = torch.compile(conv, fullgraph=True, backend="aot_eager")
    with torch.inference_mode():
        compiled(x, graph)
    assert all(not t.is_inference() for v in graph._derived.values()
               for t in (v if isinstance(v, tuple) else (v,)) if isinstance(t, torch.Tensor))
    conv(x, graph).sum().backward()  # eager training on the same graph
    compiled(x.clone().requires_grad_(True), graph).sum().backward()


def test_compiled_lstm_keeps_pygs_sorting_rule():
    """The drop-in LSTM's check that edge_index is sorted by destination runs eagerly and is read, not
    recomputed, under fullgraph compilation; an unsorted graph is refused eagerly and compiled alike."""
    from gnnkit.ops import Graph
    torch._dynamo.reset()
    layer = gnn.SAGEConv(F_IN, 6, aggr="lstm").eval()
    x, ei = _graph(6)
    ei_sorted = ei[:, torch.sort(ei[1], stable=True).indices]
    graph = Graph.build(ei_sorted, num_nodes=N)
    ref = layer(x, graph)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, graph), ref)
    unsorted = Graph.build(ei, num_nodes=N)
    with pytest.raises(ValueError, match="'index' tensor is not sorted"):
        layer(x, unsorted)
    with pytest.raises(Exception, match="'index' tensor is not sorted"):
        compiled(x, unsorted)


def _tensors_in(v, seen=None):
    """Every tensor held by ``v``: tuples/lists, and Graphs with their structure and both derived stores."""
    from gnnkit.ops import Graph
    seen = set() if seen is None else seen
    if id(v) in seen:
        return
    seen.add(id(v))
    if isinstance(v, torch.Tensor):
        yield v
    elif isinstance(v, (tuple, list)):
        for u in v:
            yield from _tensors_in(u, seen)
    elif isinstance(v, Graph):
        for u in (v.rowptr, v.col, v.row, v.perm, *v._derived.values(), *v._derived_nograd.values()):
            yield from _tensors_in(u, seen)


def _main_store_tensors(graph):
    """Tensors a training step may read: the main store, and the Graphs it holds (with their stores)."""
    for v in graph._derived.values():
        yield from _tensors_in(v)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("name", [k for k in ALL_FORMS if k not in SORTS_PER_STEP])
def test_compiled_inference_keeps_the_graph_state(name, mode):
    """Compiled inference on a Graph no call has touched (a model compiled for serving): the graph state the
    first calls build is kept, so the third call rebuilds nothing (it was rebuilt per call: compiled GCN
    inference 12.8 ms against 4.1 ms eager at N=20k); it matches eager; and a later training step on the
    same graph, eager and compiled, finds no inference tensor in what it reads."""
    from torch._dynamo.utils import counters
    from torch.profiler import profile

    from gnnkit.ops import Graph
    ctx = torch.no_grad if mode == "no_grad" else torch.inference_mode
    torch.manual_seed(0)
    torch._dynamo.reset()
    counters.clear()
    layer = ALL_FORMS[name]()
    x, ei = _graph(8)
    ea = torch.randn(E, 3)
    graph = Graph.build(ei.clone(), num_nodes=N)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    with ctx():
        for _ in range(2):
            compiled(x, *_args(name, graph, ea))
        assert counters["stats"]["unique_graphs"] <= 2, dict(counters["stats"])
        with profile() as prof:
            out = compiled(x, *_args(name, graph, ea))
        ref = layer(x, *_args(name, Graph.build(ei.clone(), num_nodes=N), ea))
    found = {e.key: e.count for e in prof.key_averages() if e.key in STRUCTURE_OPS}
    assert not found, f"a compiled {mode} call rebuilt graph structure: {found}"
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert not any(t.is_inference() for t in _main_store_tensors(graph))
    xr = x.clone().requires_grad_(True)
    (gref,) = torch.autograd.grad(layer(xr, *_args(name, Graph.build(ei.clone(), num_nodes=N), ea)).sum(), xr)
    for fn in (layer, compiled):
        xr = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(xr, *_args(name, graph, ea)).sum(), xr)
        torch.testing.assert_close(g, gref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["GCNConv", "GATConv", "SAGEConv"])
def test_eager_inference_mode_keeps_the_structure_of_an_edge_index(name):
    """Under torch.inference_mode an edge_index's graph (and a Graph's derived state) was rebuilt on every
    call; it is now kept apart from what training reads, so the second call sorts nothing and a training
    step on the same edge_index afterwards works."""
    from torch.profiler import profile
    torch.manual_seed(0)
    layer = ALL_FORMS[name]()
    x, ei = _graph(9)
    ea = torch.randn(E, 3)
    with torch.inference_mode():
        ref = layer(x, *_args(name, ei, ea))
        with profile() as prof:
            out = layer(x, *_args(name, ei, ea))
    found = {e.key: e.count for e in prof.key_averages() if e.key in STRUCTURE_OPS}
    assert not found, f"an inference_mode call rebuilt graph structure: {found}"
    torch.testing.assert_close(out, ref)
    xr = x.clone().requires_grad_(True)
    layer(xr, *_args(name, ei, ea)).sum().backward()  # training on the same edge_index
    assert xr.grad is not None


@pytest.mark.parametrize("name", ["GCNConv", "SAGEConv", "GATConv", "GINConv"])
def test_inference_mode_keeps_the_structure_with_flow_target_to_source(name):
    """With flow="target_to_source" the flipped edge_index made under inference mode was an inference tensor,
    which the graph cache cannot keep: every eager inference call rebuilt its structure.  The flip of a plain
    edge_index is now a plain tensor, so the second call sorts nothing; outputs equal PyG's flow."""
    import torch_geometric.nn as pyg
    from torch.profiler import profile
    torch.manual_seed(0)
    make = {"GCNConv": lambda m: m.GCNConv(F_IN, 6, flow="target_to_source"),
            "SAGEConv": lambda m: m.SAGEConv(F_IN, 6, flow="target_to_source"),
            "GATConv": lambda m: m.GATConv(F_IN, 4, heads=2, flow="target_to_source"),
            "GINConv": lambda m: m.GINConv(_mlp(), flow="target_to_source")}[name]
    layer = make(gnn)
    ref_layer = make(pyg)
    ref_layer.load_state_dict(layer.state_dict())
    x, ei = _graph(11)
    with torch.inference_mode():
        first = layer(x, ei)
        with profile() as prof:
            out = layer(x, ei)
        want = ref_layer(x, ei)
    found = {e.key: e.count for e in prof.key_averages() if e.key in STRUCTURE_OPS}
    assert not found, f"an inference_mode call rebuilt graph structure: {found}"
    torch.testing.assert_close(out, first)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    xr = x.clone().requires_grad_(True)
    layer(xr, ei).sum().backward()  # training on the same edge_index afterwards
    assert xr.grad is not None


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_no_grad_after_inference_mode_on_the_same_graph(backend):
    """Review finding: GCN's normalised weights kept by inference-mode calls reached the SpMM's sparse tensor in
    a later compiled no_grad call, which raised "Cannot set version_counter for inference tensor"."""
    from gnnkit.ops import Graph
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = gnn.GCNConv(F_IN, 6)
    compiled = torch.compile(layer, fullgraph=True, backend=backend)
    for n in (N, N + 5):  # a second size: dynamic shapes
        g = torch.Generator().manual_seed(n)
        x, ei = torch.randn(n, F_IN, generator=g), torch.randint(0, n, (2, 4 * n), generator=g)
        graph = Graph.build(ei, num_nodes=n)
        with torch.inference_mode():
            compiled(x, graph), compiled(x, graph)
        with torch.no_grad():
            out = compiled(x, graph)
        torch.testing.assert_close(out, layer(x, Graph.build(ei.clone(), num_nodes=n)), atol=1e-5, rtol=1e-5)


def test_training_state_replaces_the_inference_mode_copies():
    """Review finding: state built under inference mode stayed alive beside the training copy built later (two
    graphs per edge_index, two normalisations per Graph), never read again; it is now dropped."""
    from gnnkit.ops import Graph, graph as graph_mod
    graph_mod.clear_cache()
    layer = gnn.GCNConv(F_IN, 6)
    x, ei = _graph(10)
    graph = Graph.build(ei.clone(), num_nodes=N)
    with torch.inference_mode():
        layer(x, graph), layer(x, ei)
    assert graph._derived_nograd and sum(1 for k in graph_mod._CACHE if k[0] == id(ei)) == 1
    layer(x.clone().requires_grad_(True), graph).sum().backward()
    layer(x.clone().requires_grad_(True), ei).sum().backward()
    assert not graph._derived_nograd
    keys = [k for k in graph_mod._CACHE if k[0] == id(ei)]
    assert len(keys) == 1 and "inference_mode" not in keys[0]


@pytest.mark.parametrize("name", list(PLAIN))
def test_no_grad_builds_no_backward_state(name):
    """Under no_grad a layer whose input requires grad (a learned embedding evaluated) builds nothing a
    backward reads: autograd Functions see needs_input_grad from requires_grad alone, whatever the grad
    mode, and SAGE's and GIN's CPU product built the graph's transpose there (the other layers, which did
    not, are checked too).  Same output as with the input detached."""
    torch.manual_seed(0)
    layer = PLAIN[name]().eval()
    x, ei = _graph(3)
    from gnnkit.ops import Graph
    graph = Graph.build(ei, num_nodes=N)
    xg = x.clone().requires_grad_(True)
    with torch.no_grad():
        got = layer(xg, graph)
    assert not got.requires_grad
    built = [g for g in [graph, *[v for v in graph._derived.values() if isinstance(v, Graph)],
                         *[v[0] for v in graph._derived.values()
                           if isinstance(v, tuple) and v and isinstance(v[0], Graph)]]
             if g.derived_or_none("transpose") is not None]
    assert not built, f"{name}: a transpose was built under no_grad"
    with torch.no_grad():
        torch.testing.assert_close(got, layer(x, graph))
    layer(xg, graph).sum().backward()  # training afterwards builds it and gets gradients
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


def test_no_grad_keeps_forward_ad_tangents_refused():
    """The detach under no_grad must not drop a forward-mode tangent: gnnkit's Functions have no jvp, and
    forward-mode AD through them raises under no_grad as it does with gradients on (not a silent None)."""
    import torch.autograd.forward_ad as fwad
    x, ei = _graph(4)
    layer = gnn.GINConv(_mlp())
    with fwad.dual_level():
        xd = fwad.make_dual(x.clone().requires_grad_(True), torch.randn_like(x))
        with torch.no_grad(), pytest.raises(NotImplementedError, match="jvp"):
            layer(xd, ei)
