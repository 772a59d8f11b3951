"""Sixth review round (2026-12-05): findings of the API-surface comparison with PyG and the held-out-data runs,
each a test that fails on the code before its fix."""
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.nn.models import GAT as PygGAT, GraphSAGE as PygGraphSAGE

import gnnkit.nn as gnn
from gnnkit.linkpred import TransductiveLinkSplit


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


@pytest.mark.parametrize("tf", ["one_hot_degree", "drop_edge"])
def test_inductive_split_of_a_dataset_applies_its_transform(tf):
    """InductiveLinkSplit(dataset) read an InMemoryDataset's storage directly and dropped its transform (features
    and edges), where the same graphs as a list were transformed."""
    import torch_geometric.transforms as T

    from gnnkit.data import load_dataset
    from gnnkit.linkpred import InductiveLinkSplit

    def drop_first_pair(d):
        d = d.clone()
        u, v = d.edge_index[:, 0].tolist()
        keep = ~(((d.edge_index[0] == u) & (d.edge_index[1] == v)) | ((d.edge_index[0] == v) & (d.edge_index[1] == u)))
        d.edge_index = d.edge_index[:, keep]
        return d

    ds = load_dataset("MUTAG", transform=T.OneHotDegree(10) if tf == "one_hot_degree" else drop_first_pair)
    a, b = InductiveLinkSplit(0.1, 0.2, seed=0), InductiveLinkSplit(0.1, 0.2, seed=0)
    got, want = a(ds), b([ds[i] for i in range(len(ds))])
    assert a.stats["unique_edges"] == b.stats["unique_edges"]
    for g, w in zip(got, want):
        assert torch.equal(g.x, w.x) and torch.equal(g.edge_index, w.edge_index)
        assert torch.equal(g.edge_label_index, w.edge_label_index)


def test_load_split_takes_the_dataset_the_split_was_made_from(tmp_path):
    """load_split(folder, full=dataset) raised "'TUDataset' object has no attribute 'num_nodes'" although its own
    errors say "pass the graph (or dataset) the split was made from"."""
    from gnnkit.cli import main
    from gnnkit.data import load_dataset
    from gnnkit.linkpred.io import load_split
    out = tmp_path / "sp"
    assert main(["split", "MUTAG", "--mode", "inductive", "--out", str(out)]) == 0
    ds = load_dataset("MUTAG")
    tr, va, te, _ = load_split(out, full=ds)
    tr2, _, _, _ = load_split(out, full=[ds[i] for i in range(len(ds))])
    assert tr.x.size(0) == tr.n_id.numel() and torch.equal(tr.x, tr2.x)
    with pytest.raises(TypeError, match="full must be"):
        load_split(out, full=torch.zeros(3))


def test_linkpred_names_a_saved_split_without_negatives(tmp_path, capsys):
    """gnnkit split --neg-ratio 0 wrote a split that gnnkit linkpred trained on for an epoch and then failed with
    "no negative scores" (no fix named)."""
    from gnnkit.cli import main
    out = tmp_path / "sp0"
    assert main(["split", "Cora", "--neg-ratio", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["linkpred", "Cora", "--split", str(out), "--epochs", "1", "--no-progress"]) == 2
    assert "holds no negatives" in capsys.readouterr().err
    out0 = tmp_path / "val0"  # an empty validation part keeps its own error (not "no negatives")
    assert main(["split", "Cora", "--num-val", "0", "--out", str(out0)]) == 0
    capsys.readouterr()
    assert main(["linkpred", "Cora", "--split", str(out0), "--epochs", "1", "--no-progress"]) == 2
    assert "no positive edges to score" in capsys.readouterr().err


def test_fit_names_a_split_without_negatives_before_training():
    """The library's fit() trained and then failed at the first evaluation ("no negative scores")."""
    from gnnkit.linkpred.train import LinkPredConfig, fit
    ei = torch.randint(0, 30, (2, 120), generator=torch.Generator().manual_seed(0))
    data = Data(edge_index=ei, num_nodes=30, x=torch.randn(30, 4))
    tr, va, te = TransductiveLinkSplit(0.1, 0.1, neg_sampling_ratio=0, is_undirected=False, seed=0)(data)
    with pytest.raises(ValueError, match="val split holds no negatives"):
        fit(tr, va, te, LinkPredConfig(epochs=1))


def test_vq_evaluation_calibration_row_of_edgeless_training_graphs_is_nan(tmp_path):
    """The calibration row (random training graphs) crashed with "generated holds only graphs with no nodes" when
    they had no edges (GRAN's pipeline empties them); the model's own edgeless samples were already NaN."""
    import math

    import networkx as nx

    from gnnkit.latent.datasets import GenerationDataset
    from gnnkit.latent.train import VQRun, config_for
    train = [nx.cycle_graph(6)] + [nx.empty_graph(5) for _ in range(9)]
    ds = GenerationDataset(name="sparse", train=train, test=[nx.cycle_graph(6), nx.path_graph(5)],
                           description="mostly edgeless", max_nodes=6)
    cfg = config_for("community-small", epochs=1, prior_epochs=1, hidden=16, prior_d_model=16, prior_layers=1,
                     batch_size=4)
    run = VQRun.create(cfg, run_dir=tmp_path / "run", data=ds).fit(progress=False)
    res = run.evaluate(num_samples=2, repeats=1, protocols=("gran",))
    assert math.isnan(res["mmd_gran"]["train_subset_degree"])


def test_add_k_hop_edges_names_a_node_count_given_as_edge_weight():
    from gnnkit.nn import add_k_hop_edges
    with pytest.raises(ValueError, match="edge_weight .*second argument.*num_nodes=..., k=..."):
        add_k_hop_edges(torch.tensor([[0, 1], [1, 2]]), 3)


@pytest.mark.parametrize("name", ["EdgeGCNConv", "IDGNNConv", "MPNNConv", "GraphTransformerConv", "PGNN"])
def test_torch_func_is_refused_by_name_beyond_the_drop_in_layers(name):
    """The re-read of this round: gnnkit's own layers (not PyG drop-ins) still raised torch's raw errors."""
    from torch.func import functional_call, grad
    torch.manual_seed(0)
    ei = torch.randint(0, 7, (2, 20))
    x = torch.randn(7, 4)
    m, extra = {"EdgeGCNConv": (lambda: gnn.EdgeGCNConv(4), (torch.randn(20, 4),)),
                "IDGNNConv": (lambda: gnn.IDGNNConv(4, 4), ()),
                "MPNNConv": (lambda: gnn.MPNNConv(4, edge_dim=3), (torch.randn(20, 3),)),
                "GraphTransformerConv": (lambda: gnn.GraphTransformerConv(4, heads=2),
                                         (torch.zeros(7, dtype=torch.long),)),
                "PGNN": (lambda: gnn.PGNN(4, 8, 2), ())}[name]
    m = m()
    params = {k: v.detach() for k, v in m.named_parameters()}
    with pytest.raises(RuntimeError, match=f"{name}: torch.func transforms .* not supported"):
        grad(lambda p: functional_call(m, p, (x, ei, *extra)).pow(2).sum())(params)


@pytest.mark.parametrize("make", [lambda: gnn.GINConv(torch.nn.Linear(8, 8)), lambda: gnn.SAGEConv(8, 8),
                                  lambda: gnn.GINEConv(torch.nn.Linear(8, 8), edge_dim=3)])
def test_compiled_layers_do_not_recompile_for_every_graph_size(make):
    """torch.compile(dynamic=True) specialised the node count (operator.index in a count check): one compiled
    frame per graph size, PyG's examples/compile/gin.py hit the recompile limit and ran eagerly (51 s vs 0.05 s
    an epoch)."""
    from torch._dynamo.testing import CompileCounter
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer, cc = make(), CompileCounter()
    f = torch.compile(layer, backend=cc, dynamic=True)
    for n in (50, 70, 90, 110):
        x, ei = torch.randn(n, 8), torch.randint(0, n, (2, 3 * n))
        extra = (torch.randn(3 * n, 3),) if isinstance(layer, gnn.GINEConv) else ()
        f(x, ei, *extra).sum().backward()
    assert cc.frame_count == 1


def test_torch_jit_script_is_refused_by_name():
    """torch.jit.script failed on an annotation it could not resolve ("ForwardRef('Graph')"), naming neither the
    cause nor the fix; nested in a model too."""
    for m in (gnn.GCNConv(4, 4), gnn.GCN(4, 8, 2, 3), torch.nn.Sequential(gnn.SAGEConv(4, 4))):
        with pytest.raises(RuntimeError, match="TorchScript .* not supported.*torch.compile"):
            torch.jit.script(m)


# ---------------------------------------------------------------- command-line fuzzing (sixth round, second part)
def _exit_code(argv):
    """The ``gnnkit`` executable's exit code for ``argv`` (its one-line errors on stderr)."""
    from gnnkit.cli import console_main
    return console_main(argv)


def test_report_paths_never_replace_a_checkpoint_or_a_split_manifest(tmp_path, capsys):
    """`vq eval RUN --json RUN/checkpoint.pt` replaced the trained checkpoint with a JSON report (and rewrote its
    .sha256, so `gnnkit verify` called it intact); `train --out SPLIT/manifest.json` replaced a split's manifest."""
    from gnnkit.cli import main
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 a torch zip")
    assert _exit_code(["vq", "eval", str(run), "--json", str(run / "checkpoint.pt")]) == 2
    assert "not a JSON report" in capsys.readouterr().err
    assert (run / "checkpoint.pt").read_bytes() == b"PK\x03\x04 a torch zip"
    split = tmp_path / "split"
    assert main(["split", "Cora", "--out", str(split)]) == 0
    before = (split / "manifest.json").read_bytes()
    capsys.readouterr()
    assert _exit_code(["train", "--epochs", "1", "--runs", "1", "--no-progress", "--out",
                       str(split / "manifest.json")]) == 2
    assert "record of a gnnkit split or run" in capsys.readouterr().err
    assert (split / "manifest.json").read_bytes() == before
    report = tmp_path / "r.json"  # an earlier report is replaced, as before
    report.write_text('{"old": 1}')
    assert main(["train", "--epochs", "1", "--runs", "1", "--impl", "gnnkit", "--no-progress", "--out",
                 str(report)]) == 0
    assert "old" not in report.read_text()


@pytest.mark.parametrize("argv,words", [
    (["train", "--hidden", str(2 ** 70)], "--hidden: .* too large"),
    (["train", "--weight-decay", "1e308"], "--weight-decay: .* too large for float32"),
    (["linkpred", "Cora", "--layers", "100000000000"], "--layers: .* too large"),
    (["profile", "--edges", ""], "--edges: an empty value"),
    (["profile", "--quick", "--plot", "p.png", "--no-plot"], "--plot p.png and --no-plot contradict"),
    (["verify", ""], "PATH: an empty value"),
    (["ogb", "ogbg-molhiv", "--model", ""], "--model: an empty value"),
    (["vq", "train", "community-small", "--quantizer", "fsq", "--codes", "1"], "--codes 1: FSQ needs at least 3"),
])
def test_command_line_extremes_are_refused_by_name(argv, words, tmp_path, monkeypatch, capsys):
    """Command-line fuzzing: huge numbers reached torch's overflow or allocation errors as tracebacks, empty
    sources fell back to defaults, a contradiction was ignored, a library function's name replaced the flag's."""
    monkeypatch.chdir(tmp_path)
    assert _exit_code(argv) == 2
    import re
    assert re.search(words, capsys.readouterr().err)
    assert not any(tmp_path.iterdir())  # nothing written


def test_verify_names_a_folder_it_cannot_read(tmp_path, monkeypatch, capsys):
    """`gnnkit verify /proc` ended in a PermissionError traceback. (Simulated: root reads any folder made here, and
    walking /proc itself races with exiting processes.)"""
    import gnnkit.integrity

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(tmp_path / "inner"))
    monkeypatch.setattr(gnnkit.integrity, "verify", unreadable)
    assert _exit_code(["verify", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_train_names_a_graph_dataset_without_masks(monkeypatch, capsys):
    """`gnnkit train --dataset ogbg-molhiv` failed in NormalizeFeatures on its integer features (a traceback) before
    the check that names node-classification datasets."""
    import os
    from pathlib import Path

    root = os.environ.get("GNNKIT_DATA")
    if not root or not (Path(root) / "ogb").is_dir():
        pytest.skip("ogbg-molhiv is found through GNNKIT_DATA (CI sets it)")
    assert _exit_code(["train", "--dataset", "ogbg-molhiv", "--epochs", "1", "--no-progress"]) == 2
    assert "has no train/val/test masks" in capsys.readouterr().err
