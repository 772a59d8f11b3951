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


@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("loops", [True, False])
@pytest.mark.parametrize("form", ["graph", "edge_index", "sparse"])
def test_gcn_norm_then_gcnconv_without_normalisation_is_pygs_idiom(weighted, loops, form):
    """Normalise once with gcn_norm, then GCNConv(normalize=False): gnnkit's gcn_norm returned CSR-ordered
    weights that the layer read in edge order (5.35 off on a weighted graph, no error)."""
    from torch_geometric.nn import GCNConv as PygGCNConv
    from torch_geometric.nn.conv.gcn_conv import gcn_norm as pyg_gcn_norm
    torch.manual_seed(0)
    n = 7
    ei = torch.randint(0, n, (2, 20))
    ei = torch.cat([ei, torch.tensor([[2], [2]])], 1)  # one loop of its own
    x = torch.randn(n, 5)
    w = torch.rand(ei.size(1)) if weighted else None
    if form == "sparse":
        adj = torch.sparse_coo_tensor(ei.flip(0), torch.ones(ei.size(1)) if w is None else w, (n, n)).coalesce()
        pe, pw = pyg_gcn_norm(adj, None, n, add_self_loops=loops)[0], None
        graph, gw = gnn.gcn_norm(adj, None, n, add_self_loops=loops)
    else:
        pe, pw = pyg_gcn_norm(ei, w, n, add_self_loops=loops)
        graph, gw = gnn.gcn_norm(ei, w, n, add_self_loops=loops)
    p = PygGCNConv(5, 4, normalize=False)
    g = gnn.GCNConv(5, 4, normalize=False)
    g.load_state_dict(p.state_dict())
    want = p(x, pe, pw)
    got = g(x, graph.edge_index() if form == "edge_index" else graph, gw)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_layers_run_from_several_threads_at_once():
    """Threads calling layers on their own graphs (a threaded inference server): the shared graph cache raised
    "OrderedDict mutated during iteration" in 1-5 of 6 threads; every thread's outputs equal a lone call's."""
    import threading
    torch.manual_seed(0)
    convs = [gnn.GCNConv(8, 4), gnn.GATConv(8, 4, heads=2), gnn.SAGEConv(8, 4, aggr="max")]
    errors, wrong = [], []

    def work(seed):
        gen = torch.Generator().manual_seed(seed)
        try:
            for _ in range(80):
                n = int(torch.randint(5, 60, (1,), generator=gen))
                ei = torch.randint(0, n, (2, int(torch.randint(5, 300, (1,), generator=gen))), generator=gen)
                x = torch.randn(n, 8, generator=gen)
                for c in convs:
                    a, b = c(x, ei), c(x, ei.clone())  # the second: a fresh tensor, no cache entry
                    if not torch.allclose(a, b, atol=1e-6):
                        wrong.append(seed)
        except Exception as exc:  # the test's point: no thread may fail
            errors.append(f"{type(exc).__name__}: {exc}")

    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ts = [threading.Thread(target=work, args=(s,)) for s in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        torch.set_num_threads(threads_before)
    assert not errors, errors[:3]
    assert not wrong


def _sparse_features(n=7, f=5):
    torch.manual_seed(0)
    return (torch.rand(n, f) > 0.6).float() * torch.randn(n, f), torch.randint(0, n, (2, 20))


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_gcn_takes_sparse_csr_features_as_pyg(layout):
    """x.to_sparse_csr() (bag-of-words features) ran in PyG's GCNConv; gnnkit's raised "Sparse CSR tensors do not
    have strides" from inside its SpMM."""
    from torch_geometric.nn import GCNConv as PygGCNConv
    xd, ei = _sparse_features()
    xs = xd.to_sparse() if layout == "coo" else xd.to_sparse_csr()
    p = PygGCNConv(5, 4)
    g = gnn.GCNConv(5, 4)
    g.load_state_dict(p.state_dict())
    torch.testing.assert_close(g(xs, ei), p(xs, ei), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("make", [lambda: gnn.SAGEConv(5, 4), lambda: gnn.SAGEConv(5, 4, aggr="max"),
                                  lambda: gnn.GINConv(torch.nn.Linear(5, 4)),
                                  lambda: gnn.GINEConv(torch.nn.Linear(5, 4), edge_dim=3),
                                  lambda: gnn.MPNNConv(5, edge_dim=3)])
def test_layers_that_aggregate_x_itself_name_sparse_features(make, layout):
    """SAGE, GIN, GINE and MPNN aggregate x itself (PyG's fail on sparse x too): a named error with the fix, where
    torch's raw "unsupported memory format option Contiguous" / "add(sparse, dense)" came before."""
    xd, ei = _sparse_features()
    xs = xd.to_sparse() if layout == "coo" else xd.to_sparse_csr()
    m = make()
    extra = (torch.randn(20, 3),) if isinstance(m, (gnn.GINEConv, gnn.MPNNConv)) else ()
    m(xd, ei, *extra)
    with pytest.raises(ValueError, match=r"x is a sparse tensor.*x\.to_dense\(\)"):
        m(xs, ei, *extra)


@pytest.mark.parametrize("transform", ["grad", "vmap"])
def test_torch_func_transforms_are_refused_by_name(transform):
    """torch.func.grad over functional_call raised "Cannot access data pointer of Tensor that doesn't have
    storage" and vmap torch's autograd.Function message; both name the layer and the fix now, and
    functional_call without a transform still works."""
    from torch.func import functional_call, grad, vmap
    torch.manual_seed(0)
    ei = torch.randint(0, 7, (2, 20))
    x = torch.randn(7, 5)
    conv = gnn.GCNConv(5, 4)
    params = {k: v.detach() for k, v in conv.named_parameters()}
    torch.testing.assert_close(functional_call(conv, params, (x, ei)), conv(x, ei))
    with pytest.raises(RuntimeError, match="GCNConv: torch.func transforms .* not supported.*torch.autograd.grad"):
        if transform == "grad":
            grad(lambda p: functional_call(conv, p, (x, ei)).pow(2).sum())(params)
        else:
            vmap(lambda xx: conv(xx, ei))(torch.stack([x, 2 * x]))
