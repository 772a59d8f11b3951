"""Drop-in contract of gnnkit.nn layers against their PyG counterparts: same constructor,
same state_dict keys, same outputs and gradients (fp32, 1e-5) for every adjacency form."""
import warnings

import pytest
import torch
import torch_geometric.nn as pnn
from torch.nn import Linear as L, ReLU, Sequential as Seq
from torch_geometric import EdgeIndex

import gnnkit.nn as gnn
from gnnkit.ops.graph import SparseTensor

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")

N, E, F_IN, D = 30, 120, 8, 3


def _graph(seed=0, n=N, e=E):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    x = torch.randn(n, F_IN, generator=g)
    ea = torch.randn(e, D, generator=g)
    return x, ei, ea


def _mlp(i=F_IN, o=4):
    return Seq(L(i, 16), ReLU(), L(16, o))


# name -> (factory(pyg_module, gnnkit_module), takes edge_attr)
LAYERS = {
    "sage_mean": (lambda m: m.SAGEConv(F_IN, 6), False),
    "sage_sum_norm": (lambda m: m.SAGEConv(F_IN, 6, aggr="add" if m is pnn else "sum", normalize=True), False),
    "sage_max_project": (lambda m: m.SAGEConv(F_IN, 6, aggr="max", project=True), False),
    "sage_min_noroot": (lambda m: m.SAGEConv(F_IN, 6, aggr="min", root_weight=False, bias=False), False),
    "gat": (lambda m: m.GATConv(F_IN, 5, heads=4), False),
    "gat_mean_heads_noloops": (lambda m: m.GATConv(F_IN, 5, heads=3, concat=False, add_self_loops=False), False),
    "gat_edge_residual": (lambda m: m.GATConv(F_IN, 5, heads=2, edge_dim=D, residual=True), True),
    "gat_edge_fill_const": (lambda m: m.GATConv(F_IN, 5, heads=2, edge_dim=D, fill_value=0.5), True),
    "gat_edge_fill_min": (lambda m: m.GATConv(F_IN, 5, heads=2, edge_dim=D, fill_value="min"), True),
    "gatv2": (lambda m: m.GATv2Conv(F_IN, 5, heads=3), False),
    "gatv2_edge_shared": (lambda m: m.GATv2Conv(F_IN, 5, heads=2, edge_dim=D, share_weights=True,
                                               residual=True), True),
    "gin": (lambda m: m.GINConv(_mlp(), eps=0.2, train_eps=True), False),
    "gin_fixed_eps": (lambda m: m.GINConv(_mlp(), eps=-0.3), False),
    "gine_edge_dim": (lambda m: m.GINEConv(_mlp(), edge_dim=D), True),
}


def _pair(name):
    torch.manual_seed(0)
    make, with_attr = LAYERS[name]
    p = make(pnn)
    g = make(gnn)
    g.load_state_dict(p.state_dict(), strict=True)
    assert list(g.state_dict()) == list(p.state_dict())
    p.eval()
    g.eval()
    return p, g, with_attr


def _run(layer, x, adj, ea):
    x = x.clone().requires_grad_(True)
    out = layer(x, adj, ea) if ea is not None else layer(x, adj)
    params = [q for q in layer.parameters() if q.requires_grad]
    grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), [x] + params)
    return out, grads


def _close(a, b):
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_matches_pyg_edge_index(name, dtype):
    """int32 is compared against PyG on int64 (PyG 2.8.1's own int32 gradients are wrong)."""
    p, g, with_attr = _pair(name)
    x, ei, ea = _graph()
    ea = ea if with_attr else None
    ref, ref_g = _run(p, x, ei, ea)
    out, out_g = _run(g, x, ei.to(dtype), ea)
    _close(out, ref)
    for a, b in zip(out_g, ref_g):
        _close(a, b)


def _adj_forms(ei, n):
    v = torch.ones(ei.size(1))
    coo = torch.sparse_coo_tensor(ei.flip(0), v, (n, n)).coalesce()
    forms = {"EdgeIndex": EdgeIndex(ei, sparse_size=(n, n)), "coo": coo, "csr": coo.to_sparse_csr()}
    if SparseTensor is not None:
        forms["SparseTensor"] = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(n, n))
    return forms


@pytest.mark.parametrize("name", ["sage_mean", "sage_max_project", "gat", "gatv2", "gin"])
def test_matches_pyg_on_sparse_forms(name):
    p, g, _ = _pair(name)
    x, ei, _ = _graph(1)
    ei = torch.unique(ei, dim=1).contiguous()  # sparse matrices merge duplicates; keep the edge sets equal
    for form, adj in _adj_forms(ei, N).items():
        ref, ref_g = _run(p, x, adj, None)
        out, out_g = _run(g, x, adj, None)
        _close(out, ref)
        for a, b in zip(out_g, ref_g):
            _close(a, b)


def test_weighted_torch_sparse_adj_is_used_like_pyg():
    """PyG multiplies by a torch.sparse adj_t's values in SAGE/GIN; gnnkit does too."""
    torch.manual_seed(0)
    x, ei, _ = _graph(2)
    ei = torch.unique(ei, dim=1).contiguous()
    adj = torch.sparse_coo_tensor(ei.flip(0), torch.rand(ei.size(1)) + 0.5, (N, N)).coalesce().to_sparse_csr()
    for name in ("sage_mean", "gin"):
        p, g, _ = _pair(name)
        _close(g(x, adj), p(x, adj))


@pytest.mark.parametrize("name", ["gat", "gat_edge_residual", "gatv2"])
def test_attention_weights_like_pyg(name):
    p, g, with_attr = _pair(name)
    x, ei, ea = _graph(3)
    ea = ea if with_attr else None
    _, (ei_p, a_p) = p(x, ei, ea, return_attention_weights=True)
    _, (ei_g, a_g) = g(x, ei, ea, return_attention_weights=True)
    assert torch.equal(ei_p, ei_g)
    _close(a_g, a_p)
    # per destination the weights sum to one
    s = torch.zeros(N, a_g.size(1)).index_add_(0, ei_g[1], a_g)
    _close(s, torch.ones_like(s))


def test_attention_weights_sparse_tensor_like_pyg():
    pytest.importorskip("torch_sparse")
    p, g, _ = _pair("gat")
    x, ei, _ = _graph(4)
    adj = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(N, N))
    _, a_p = p(x, adj, return_attention_weights=True)
    _, a_g = g(x, adj, return_attention_weights=True)
    assert torch.equal(a_p.storage.row(), a_g.storage.row()) and torch.equal(a_p.storage.col(), a_g.storage.col())
    _close(a_g.storage.value(), a_p.storage.value())


@pytest.mark.parametrize("name", ["sage_mean", "sage_max_project", "gat", "gatv2", "gin"])
def test_bipartite_like_pyg(name):
    p, g, _ = _pair(name)
    gen = torch.Generator().manual_seed(5)
    ns, nd = 25, 11
    x_src, x_dst = torch.randn(ns, F_IN, generator=gen), torch.randn(nd, F_IN, generator=gen)
    ei = torch.stack([torch.randint(0, ns, (60,), generator=gen), torch.randint(0, nd, (60,), generator=gen)])
    if name.startswith("gat"):  # PyG's GAT adds loops only for the first min(ns, nd) nodes
        _close(g((x_src, x_dst), ei), p((x_src, x_dst), ei))
    else:
        _close(g((x_src, x_dst), ei, size=(ns, nd)), p((x_src, x_dst), ei, size=(ns, nd)))


def test_gat_bipartite_tuple_channels_and_none_dst():
    torch.manual_seed(0)
    p = pnn.GATConv((F_IN, 4), 5, heads=2, add_self_loops=False)
    g = gnn.GATConv((F_IN, 4), 5, heads=2, add_self_loops=False)
    g.load_state_dict(p.state_dict(), strict=True)
    x_src, x_dst = torch.randn(20, F_IN), torch.randn(7, 4)
    ei = torch.stack([torch.randint(0, 20, (40,)), torch.randint(0, 7, (40,))])
    _close(g((x_src, x_dst), ei), p((x_src, x_dst), ei))
    _close(g((x_src, None), ei, size=(20, 7)), p((x_src, None), ei, size=(20, 7)))


def test_sage_lstm_matches_pyg_on_sorted_regular_graph():
    """With every node of equal degree and edges sorted by destination PyG's padded LSTM
    reads the same sequences as gnnkit's packed one (eval order = CSR order)."""
    torch.manual_seed(0)
    d = 4
    src = torch.randint(0, N, (N * d,))
    dst = torch.arange(N).repeat_interleave(d)
    order = (dst * N + src).argsort()
    ei = torch.stack([src[order], dst[order]])
    p = pnn.SAGEConv(F_IN, 6, aggr="lstm")
    g = gnn.SAGEConv(F_IN, 6, aggr="lstm")
    g.load_state_dict(p.state_dict(), strict=True)
    p.eval()
    g.eval()
    x = torch.randn(N, F_IN)
    ref, ref_g = _run(p, x, ei, None)
    out, out_g = _run(g, x, ei.to(torch.int32), None)
    _close(out, ref)
    for a, b in zip(out_g, ref_g):
        _close(a, b)


def test_sage_lstm_reads_real_last_neighbour_and_shuffles():
    torch.manual_seed(0)
    g = gnn.SAGEConv(F_IN, 6, aggr="lstm", root_weight=False, aggr_kwargs={"require_sorted": False})
    x, ei, _ = _graph(6)
    ei = ei[:, ei[1] != N - 1]  # node N-1 has no neighbours: its aggregate is zero
    deg = torch.bincount(ei[1], minlength=N)
    g.eval()
    out = g(x, ei)
    # the drop-in default is PyG's: an edge_index not sorted by destination is refused, naming the fix
    strict = gnn.SAGEConv(F_IN, 6, aggr="lstm", root_weight=False).eval()
    strict.load_state_dict(g.state_dict())
    assert not bool((ei[1, 1:] >= ei[1, :-1]).all())
    with pytest.raises(ValueError, match="'index' tensor is not sorted.*sort_edge_index.*require_sorted"):
        strict(x, ei)
    # sorted by destination with ties in input order (what PyG accepts): the same neighbour order
    by_dst = torch.sort(ei[1], stable=True).indices
    _close(strict(x, ei[:, by_dst]), g(x, ei))
    # node-by-node reference: an LSTM over the node's sources in input edge order (PyG's reading order)
    lstm = g.aggr_module.lstm
    for i in range(N):
        srcs = ei[0, ei[1] == i]
        if srcs.numel() == 0:
            agg = torch.zeros(F_IN)
        else:
            agg = lstm(x[srcs].unsqueeze(0))[1][0][-1, 0]
        _close(out[i], g.lin_l(agg))
    # bucketed by degree, not padded: the LSTM input holds exactly one row per edge
    from gnnkit.nn.lstm_aggr import _degree_buckets, _slot_order
    from gnnkit.ops import as_graph
    graph = as_graph(ei, num_nodes=N)[0]
    buckets = _degree_buckets(graph.rowptr, graph.col, _slot_order(graph, shuffle=True))
    assert sum(src.numel() for _, src in buckets) == ei.size(1)
    assert all(bool((deg[nd] == src.size(1)).all()) for nd, src in buckets)
    assert sum(nd.numel() for nd, _ in buckets) == int((deg > 0).sum())
    g.train()
    _close(g(x, ei), out)  # default (PyG's): training reads the neighbours in edge order too
    # GraphSAGE's shuffle is one option away: a fresh neighbour permutation per training call
    s = gnn.SAGEConv(F_IN, 6, aggr="lstm", root_weight=False, aggr_kwargs={"shuffle": True})
    s.load_state_dict(g.state_dict())
    a, b = s(x, ei), s(x, ei)
    assert not torch.allclose(a, b), "shuffle=True in training must draw a fresh neighbour permutation per call"
    # nodes with at most one neighbour are unaffected by the shuffle
    small = deg <= 1
    _close(a[small], out[small])
    with pytest.raises(ValueError, match="aggr_kwargs.*shuffle"):
        gnn.SAGEConv(F_IN, 6, aggr="lstm", aggr_kwargs={"bogus": 1})


@pytest.mark.parametrize("f_in, folded", [(3, True), (6, False)])
@pytest.mark.parametrize("form", ["single", "pair", "pair-none"])
def test_gat_score_folding_matches_pyg_for_every_input_form(form, f_in, folded):
    """GATConv folds the node scores into ``x @ M`` for inputs narrower than half its output
    (heads * out_channels = 8 here), and scores the transformed features otherwise; with separate
    lin_src/lin_dst (tuple in_channels) the destination score must come from lin_dst even for a
    single tensor x."""
    from gnnkit.nn.gat_conv import _fold_scores
    assert _fold_scores(f_in, 2, 4) is folded
    torch.manual_seed(0)
    x = torch.randn(30, f_in)
    ei = torch.randint(0, 30, (2, 120))
    ins = f_in if form == "pair-none" else (f_in, f_in)
    p = pnn.GATConv(ins, 4, heads=2)
    g = gnn.GATConv(ins, 4, heads=2)
    g.load_state_dict(p.state_dict())
    inp = {"single": x, "pair": (x, x + 1), "pair-none": (x, None)}[form]
    _close(g(inp, ei), p(inp, ei))


def test_lstm_aggr_kwargs_flags_must_be_booleans():
    """bool("no") is True: a string for an on/off option is refused, naming it."""
    for name in ("require_sorted", "shuffle", "pyg_padding"):
        with pytest.raises(ValueError, match=f"aggr_kwargs\\['{name}'\\] must be True or False"):
            gnn.SAGEConv(F_IN, 6, aggr="lstm", aggr_kwargs={name: "no"})


def test_lazy_gat_first_call_scores_destinations_with_lin_dst():
    """GATConv((-1, -1), ...) called with one x: its first (lazy) call scored the destinations with
    lin_src's features (off by 1.28 from PyG here before the fix); PyG uses lin_dst(x)."""
    torch.manual_seed(0)
    x = torch.randn(30, 6)
    ei = torch.randint(0, 30, (2, 120))
    g = gnn.GATConv((-1, -1), 4, heads=2)
    with torch.no_grad():
        first = g(x, ei)
    p = pnn.GATConv((6, 6), 4, heads=2)
    p.load_state_dict(g.state_dict())
    _close(first, p(x, ei))
