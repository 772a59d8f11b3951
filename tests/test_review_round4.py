"""Findings of the read-only black-box reviews of 2026-12-05 (fourth round: layers against PyG, the generator
against issue 10), each failing on the code before it."""
import warnings

import pytest
import torch
import torch_geometric.nn as pnn
from torch.nn import Linear
from torch_geometric.nn import aggr as A

import gnnkit.nn as gnn

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")


def _by_destination_only(seed=0, n=12, e=60):
    """Edges sorted by destination (PyG's requirement for sequence aggregations) but not by source within one."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = ei[:, ei[1].argsort(stable=True)]
    assert not all(bool((ei[0, ei[1] == v][1:] >= ei[0, ei[1] == v][:-1]).all()) for v in range(n))
    return torch.randn(n, 3, generator=g), ei


_SEQUENCE_AGGRS = {
    "gru": lambda: A.GRUAggregation(3, 3),
    "mlp": lambda: A.MLPAggregation(3, 3, max_num_elements=12, num_layers=1),
    "lcm": lambda: A.LCMAggregation(3, 3),
    "multi": lambda: A.MultiAggregation(["mean", A.GRUAggregation(3, 3)]),
    "set_transformer": lambda: A.SetTransformerAggregation(3, heads=1),
}


@pytest.mark.parametrize("name", sorted(_SEQUENCE_AGGRS))
def test_sage_sequence_aggregations_read_messages_in_pyg_edge_order(name):
    """GRU / MLP / LCM read each neighbourhood as a sequence in input edge order (PyG's); gnnkit handed them its CSR
    order (sorted by source within a row): 0.14-0.76 off PyG on the same weights."""
    x, ei = _by_destination_only()
    x.requires_grad_(True)
    torch.manual_seed(1)
    p = pnn.SAGEConv(3, 2, aggr=_SEQUENCE_AGGRS[name]()).eval()
    g = gnn.SAGEConv(3, 2, aggr=_SEQUENCE_AGGRS[name]()).eval()
    g.load_state_dict(p.state_dict(), strict=True)
    yp, yg = p(x, ei), g(x, ei)
    assert torch.allclose(yp, yg, atol=1e-5), (yp - yg).abs().max()
    gp = torch.autograd.grad(yp.pow(2).sum(), [x, *p.parameters()], allow_unused=True)
    gg = torch.autograd.grad(yg.pow(2).sum(), [x, *g.parameters()], allow_unused=True)
    for a, b in zip(gp, gg):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_sage_sequence_aggregation_refuses_edges_not_sorted_by_destination_as_pyg():
    x, ei = _by_destination_only()
    ei = ei[:, torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(3))]
    with pytest.raises(ValueError, match="not sorted"):
        pnn.SAGEConv(3, 2, aggr=A.GRUAggregation(3, 3))(x, ei)
    with pytest.raises(ValueError, match="not sorted.*sort_edge_index"):
        gnn.SAGEConv(3, 2, aggr=A.GRUAggregation(3, 3))(x, ei)
    gnn.SAGEConv(3, 2, aggr=A.DeepSetsAggregation())(x, ei)  # a sum inside: any order, as PyG


@pytest.mark.parametrize("aggr", ["add", "mean", "max"])
@pytest.mark.parametrize("train_eps", [False, True])
def test_gin_takes_integer_features_as_pyg(aggr, train_eps):
    """PyG sums integer features and adds (1 + eps) x, a float; gnnkit's SpMM raised "not implemented for 'Long'"."""
    x = torch.randint(-3, 4, (6, 4), generator=torch.Generator().manual_seed(0))
    ei = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 2], [1, 2, 3, 4, 0, 0, 3, 3]])
    torch.manual_seed(1)
    p = pnn.GINConv(Linear(4, 3), train_eps=train_eps, aggr=aggr)
    g = gnn.GINConv(Linear(4, 3), train_eps=train_eps, aggr=aggr)
    g.load_state_dict(p.state_dict())
    yp, yg = p(x, ei), g(x, ei)
    assert yg.dtype == yp.dtype == torch.float32
    assert torch.equal(yp, yg)


@pytest.mark.parametrize("layer", ["GCNConv", "SAGEConv", "GATConv", "GATv2Conv"])
def test_integer_features_are_a_named_error(layer):
    x = torch.randint(0, 3, (5, 4))
    ei = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
    conv = getattr(gnn, layer)(4, 3)
    with pytest.raises(ValueError, match=rf"{layer}: x holds torch.int64 .*x.float\(\)"):
        conv(x, ei)
    if layer != "GCNConv":
        with pytest.raises(ValueError, match=r"x\[1\] \(x_dst\) holds torch.int64"):
            conv((x.float(), x), ei)


@pytest.mark.parametrize("layer", ["GATConv", "GATv2Conv"])
@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_attention_dropout_on_sparse_input_with_loops_drops_pyg_s_edges(layer, layout):
    """PyG coalesces a sparse adj_t with its loops added, so it draws the dropout mask with the loops sorted in;
    gnnkit drew it with the loops last (3.14 off PyG on a 6-node graph with the same seed)."""
    g = torch.Generator().manual_seed(4)
    n = 15
    ei = torch.randint(0, n, (2, 60), generator=g)  # self-loops and duplicates among them
    x = torch.randn(n, 4, generator=g)
    adj = torch.sparse_coo_tensor(ei.flip(0), torch.ones(ei.size(1)), (n, n)).coalesce()
    if layout == "csr":
        adj = adj.to_sparse_csr()
    p = getattr(pnn, layer)(4, 3, heads=2, dropout=0.5).train()
    q = getattr(gnn, layer)(4, 3, heads=2, dropout=0.5).train()
    q.load_state_dict(p.state_dict())
    for seed in range(3):
        torch.manual_seed(seed)
        a = p(x, adj)
        torch.manual_seed(seed)
        b = q(x, adj)
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_gine_reads_a_hybrid_sparse_adj_t_s_values_as_edge_attr(layout):
    """docs/layers/gin.md: "with a sparse adj_t its values are used when edge_attr is omitted, as in PyG"; a hybrid
    [N, N, D] adj_t was refused ("must be a 2-D sparse matrix")."""
    g = torch.Generator().manual_seed(2)
    n, e, d = 9, 30, 3
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = torch.unique(ei, dim=1)  # no duplicates: edge_index + edge_attr is then the same graph
    x, ea = torch.randn(n, 4, generator=g), torch.randn(ei.size(1), d, generator=g)
    adj = torch.sparse_coo_tensor(ei.flip(0), ea, (n, n, d)).coalesce()
    if layout == "csr":
        rows, cols = adj.indices()
        crow = torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(rows, minlength=n).cumsum(0)])
        adj = torch.sparse_csr_tensor(crow, cols, adj.values(), (n, n, d))
    torch.manual_seed(0)
    p = pnn.GINEConv(Linear(4, 5), edge_dim=d)
    q = gnn.GINEConv(Linear(4, 5), edge_dim=d)
    q.load_state_dict(p.state_dict())
    ref = p(x, ei, ea)
    assert torch.allclose(q(x, adj), ref, atol=1e-6)
    assert torch.allclose(q(x, ei, ea), ref, atol=1e-6)


# ------------------------------------------------------------------------------------------- the generator
def test_fsq_levels_for_a_codebook_size():
    from gnnkit.latent.fsq import fsq_levels_for
    assert fsq_levels_for(2 ** 10) == (8, 5, 5, 5)  # the FSQ paper's Table 1
    assert fsq_levels_for(2 ** 8) == (8, 6, 5)
    assert fsq_levels_for(64) == (8, 8) and fsq_levels_for(200) == (8, 5, 5) and fsq_levels_for(96) == (6, 4, 4)
    with pytest.raises(ValueError, match="no product of levels between 3 and 8.*--fsq-levels"):
        fsq_levels_for(67)
    with pytest.raises(ValueError, match="num_codes must be an int >= 3"):
        fsq_levels_for(2.0)


def test_vq_train_takes_codes_with_fsq_as_the_issue_writes_it(tmp_path, monkeypatch):
    """Issue 10: `gnnkit vq train DATASET --levels 1|2 --quantizer vq|fsq|gumbel --codes K`; --codes was refused with
    fsq.  It now picks FSQ levels of about K codes; sampled .pt files hold PyG Data (the issue's "PyG Data files")."""
    import subprocess
    import sys

    from torch_geometric.data import Data

    from gnnkit.cli import console_main, main
    from gnnkit.latent.train import VQRun
    monkeypatch.chdir(tmp_path)
    base = ["vq", "train", "community-small", "--levels", "1", "--quantizer", "fsq", "--epochs", "1",
            "--prior-epochs", "1", "--hidden", "16", "--layers", "1", "--no-progress"]
    assert main(base + ["--codes", "64", "--out", "r"]) == 0
    cfg = VQRun.resume(tmp_path / "r", load_data=False).cfg
    assert cfg.fsq_levels == (8, 8) and cfg.codes == 64  # the K asked for is recorded
    assert console_main(base + ["--codes", "64", "--fsq-levels", "8,5,5", "--out", "r2"]) == 2  # 200 codes: disagree
    assert main(["vq", "sample", "r", "-n", "3", "--out", "s"]) == 0
    d = torch.load(tmp_path / "s" / "graph_000.pt")  # gnnkit.latent imported: torch.load's default reads Data
    assert isinstance(d, Data) and Data(**d).num_nodes == d.num_nodes
    code = ("import torch, sys; from torch_geometric.data import Data; "
            "d = torch.load(sys.argv[1], weights_only=False); assert isinstance(d, Data), type(d)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "s" / "graph_000.pt")], check=True)


@pytest.mark.parametrize("quantizer", ["vq", "fsq", "gumbel"])
def test_a_float64_model_keeps_float64(quantizer):
    """`.double()` models with node features crashed (x cast to float32 against float64 weights); VQ searched in
    fp32 (codewords 2e-9 apart resolved to the wrong one); FSQ returned fp32 grid points."""
    import networkx as nx
    from torch_geometric.data import Batch

    from gnnkit.latent import FSQ, GraphVQVAE, GumbelQuantizer, VectorQuantizer, canonical
    from gnnkit.latent.datasets import to_pyg
    torch.manual_seed(0)
    q = {"vq": lambda: VectorQuantizer(8, 4), "fsq": lambda: FSQ([5, 5, 5, 5]),
         "gumbel": lambda: GumbelQuantizer(8, 4)}[quantizer]()
    g = canonical(to_pyg(nx.cycle_graph(6)))
    g.x = torch.randn(6, 3, dtype=torch.float64)
    m = GraphVQVAE(q, 10, in_channels=3, hidden_channels=16, heads=2).double()
    out = m(Batch.from_data_list([g]))
    assert out.loss.dtype == torch.float64
    assert all(t.dtype == torch.float64 for t in out.terms.values())
    out.loss.backward()


def test_vq_and_fsq_compute_in_float64_for_float64_input():
    from gnnkit.latent import FSQ, VectorQuantizer
    vq = VectorQuantizer(2, 1, kmeans_init=False).double().eval()
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0], [2e-9]], dtype=torch.float64))
    z = torch.tensor([[1.6e-9]], dtype=torch.float64)
    o = vq(z)
    assert int(o.indices) == 1 and float(o.quantized) == 2e-9
    f = FSQ([7]).eval()
    q = f(torch.tensor([[0.0]], dtype=torch.float64)).quantized  # a grid point k / 3 of the paper's grid
    grid = torch.arange(-3, 4, dtype=torch.float64) / 3
    assert q.dtype == torch.float64 and bool((grid == q).any())
    assert f.codes_from_indices(torch.arange(7)).dtype == torch.float32  # the module's own dtype (float32 here)


def test_evaluation_removes_isolated_nodes_as_the_reference_pipelines():
    """GDSS's adjs_to_graphs and GRAN's get_graph drop isolated nodes from generated graphs before the statistics;
    VQRun.evaluate scored them with the isolated nodes kept."""
    import networkx as nx

    from gnnkit.latent.metrics import as_scored, generation_mmd
    g = nx.path_graph(4)
    g.add_nodes_from([4, 5])  # two isolated nodes
    empty = nx.empty_graph(3)  # only isolated nodes
    scored, removed = as_scored([g, empty], "graphrnn")
    assert removed == 5 and scored[0].number_of_nodes() == 4 and scored[1].number_of_nodes() == 1  # GDSS: one node
    scored, removed = as_scored([g, empty], "gran")
    assert removed == 5 and scored[1].number_of_nodes() == 0  # GRAN: empty, then dropped and counted by the MMD
    assert g.number_of_nodes() == 6  # the input is not changed
    ref = [nx.path_graph(4), nx.cycle_graph(5)]
    res = generation_mmd(ref, scored, protocol="gran")
    assert res["num_generated_empty"] == 1 and res["num_generated"] == 1
    assert generation_mmd(ref, [nx.path_graph(4)], "graphrnn")["degree"] == \
        generation_mmd(ref, as_scored([g], "graphrnn")[0], "graphrnn")["degree"]


@pytest.mark.parametrize("layer", ["GATConv", "GATv2Conv"])
def test_returned_edge_index_keeps_the_input_s_sort_order_without_loops(layer):
    from torch_geometric import EdgeIndex
    ei = EdgeIndex(torch.tensor([[1, 2, 0, 2, 0], [0, 0, 1, 1, 2]]), sparse_size=(3, 3), sort_order="col")
    x = torch.randn(3, 4)
    for loops in (False, True):
        p, q = getattr(pnn, layer)(4, 2, add_self_loops=loops), getattr(gnn, layer)(4, 2, add_self_loops=loops)
        q.load_state_dict(p.state_dict())
        (_, (ep, ap)), (_, (eq, aq)) = p(x, ei, return_attention_weights=True), q(x, ei, return_attention_weights=True)
        assert torch.equal(ep.as_tensor(), eq.as_tensor()) and torch.allclose(ap, aq, atol=1e-6)
        assert ep.sort_order == eq.sort_order, (loops, ep.sort_order, eq.sort_order)


# ------------------------------------------------------------------------------------ the lectures' extras
@pytest.mark.parametrize("bad", [2.5, 2.0, "8", None, True])
def test_transformer_distance_cap_is_an_int_named(bad):
    """A float / string / None max_distance reached torch's own TypeError (zeros(): argument 'size'...)."""
    from gnnkit.nn import GraphTransformerConv
    from gnnkit.ops import batch_distances
    with pytest.raises(ValueError, match="max_distance"):
        GraphTransformerConv(8, heads=2, max_distance=bad)
    with pytest.raises(ValueError, match="batch_distances: max_distance"):
        batch_distances(torch.tensor([[0, 1], [1, 2]]), torch.zeros(3, dtype=torch.long), bad)
    with pytest.raises(ValueError, match="max_nodes"):
        GraphTransformerConv(8, heads=2, max_nodes="10")


def test_cycle_counts_exact_in_float64_on_request():
    """Counts are computed in float64 but came back in float32 only (rounded above 2^24, a hub of ~4,100 neighbours
    at k = 4); dtype=torch.float64 returns them exact."""
    from gnnkit.nn import cycle_count_features
    m = 6  # a star: closed 4-walks from the hub m * m, from a leaf m
    leaves = torch.arange(1, m + 1)
    e = torch.cat([torch.stack([torch.zeros_like(leaves), leaves]), torch.stack([leaves, torch.zeros_like(leaves)])], 1)
    exact = cycle_count_features(e, m + 1, 4, dtype=torch.float64)
    assert exact.dtype == torch.float64 and exact[0, 3] == m * m and exact[1, 3] == m
    assert cycle_count_features(e, m + 1, 4).dtype == torch.get_default_dtype()
    with pytest.raises(ValueError, match="dtype must be a floating"):
        cycle_count_features(e, m + 1, 4, dtype=torch.long)


# ------------------------------------------------------------------------------------------- ops and blocks
@pytest.mark.parametrize("block", ["add", "mean", "max", "virtual_node", "gated", "idgnn", "idgnn_id", "pgnn"])
def test_graph_level_blocks_compile_without_graph_breaks(block):
    """Issue 11: "No graph breaks (fullgraph=True), backward included"; the pools, VirtualNode, GatedReadout, IDGNNConv
    and PGNNConv checked their inputs with data-dependent Python branches (Could not guard on data-dependent
    expression)."""
    torch._dynamo.reset()
    x = torch.randn(10, 4, requires_grad=True)
    b = torch.tensor([0] * 5 + [1] * 5)
    ei = torch.tensor([[0, 1, 2, 3, 5, 6, 7, 8], [1, 2, 3, 4, 6, 7, 8, 9]])
    vn, gr, idc, pg = gnn.VirtualNode(4), gnn.GatedReadout(4, 4), gnn.IDGNNConv(4, 4), gnn.PGNNConv(4, 4)
    dm, da = torch.rand(10, 3), torch.randint(0, 10, (10, 3), generator=torch.Generator().manual_seed(0))
    f = {"add": lambda: gnn.global_add_pool(x, b, 2), "mean": lambda: gnn.global_mean_pool(x, b, 2),
         "max": lambda: gnn.global_max_pool(x, b, 2),
         "virtual_node": lambda: vn.broadcast(x, vn.initial_state(b, 2), b),
         "gated": lambda: gr(x, b, 2), "idgnn": lambda: idc(x, ei),
         "idgnn_id": lambda: idc(x, ei, torch.tensor([0, 3])), "pgnn": lambda: pg(x, dm, da)[0]}[block]
    ref = f()
    out = torch.compile(f, fullgraph=True, backend="aot_eager")()
    assert torch.allclose(out, ref)
    out.sum().backward()
    assert x.grad is not None


def test_gat_attention_names_integer_inputs_and_compiles_with_one_score_tensor():
    """Integer x: the attention weights were cast to it (all 0, silently); a_src is a_dst: under compile,
    autograd.Function refused the duplicate input."""
    from gnnkit.ops import Graph, gat_attention
    g = Graph.build(torch.tensor([[0, 1, 2], [3, 3, 3]]), num_nodes=4)
    a = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="gat_attention: x must be a floating-point tensor"):
        gat_attention(g, torch.ones(4, 2, 3, dtype=torch.long), a, a)
    torch._dynamo.reset()
    x, a = torch.randn(4, 2, 3, requires_grad=True), torch.randn(4, 2, requires_grad=True)
    f = lambda: gat_attention(g, x, a, a)[0]  # noqa: E731
    out = torch.compile(f, fullgraph=True, backend="aot_eager")()
    assert torch.allclose(out, f())
    out.sum().backward()


def test_a_structured_edit_across_fingerprint_blocks_is_seen():
    """Blocks of 2^20 ids were weighted 1, 3, 5, ...: +1, -2, +1 at one offset of three blocks kept both sums, and
    the cache returned the old graph (2.21 off)."""
    from gnnkit.ops import as_graph
    n, e = 1000, 1_200_000  # > 2^21 ids: three fingerprint blocks
    ei = torch.randint(1, n - 2, (2, e), generator=torch.Generator().manual_seed(0))
    g1, _ = as_graph(ei, num_nodes=n)
    flat, block = ei.data.view(-1), 2 ** 20
    flat[5] += 1
    flat[5 + block] -= 2
    flat[5 + 2 * block] += 1
    g2, _ = as_graph(ei, num_nodes=n)
    assert g2 is not g1


@pytest.mark.parametrize("layer", ["transformer", "idgnn", "pgnn"])
def test_layers_reading_the_edge_list_name_a_graph_or_sparse_input(layer):
    from gnnkit.ops import Graph
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    x = torch.randn(3, 8)
    call = {"transformer": lambda adj: gnn.GraphTransformerConv(8, heads=2)(x, adj, torch.zeros(3, dtype=torch.long)),
            "idgnn": lambda adj: gnn.IDGNN(8, 8, 2)(x, adj), "pgnn": lambda adj: gnn.PGNN(8, 8)(x, adj)}[layer]
    for adj in (Graph.build(ei, num_nodes=3), torch.sparse_coo_tensor(ei.flip(0), torch.ones(3), (3, 3))):
        with pytest.raises(ValueError, match=r"takes edge_index as a \[2, E\] tensor"):
            call(adj)
    call(ei)


# ------------------------------------------------------------------ the re-read of this round's own change
def test_float64_vq_with_ema_and_restarts_trains():
    from gnnkit.latent import VectorQuantizer
    for q in (VectorQuantizer(8, 4, ema=True), VectorQuantizer(8, 4, ema=True, dead_code_threshold=0.5).double(),
              VectorQuantizer(8, 4, dead_code_threshold=0.5)):
        q.train()
        for _ in range(3):
            out = q(torch.randn(50, 4, dtype=torch.float64, requires_grad=True))
            out.loss.backward()
        assert out.quantized.dtype == torch.float64


@pytest.mark.parametrize("case", ["pool", "virtual_node", "pgnn"])
def test_compiled_blocks_still_refuse_negative_ids(case):
    """With the checks out of the compiled graph a negative id wrapped around (node 3 summed into graph 1)."""
    torch._dynamo.reset()
    x = torch.randn(4, 2)
    vn, pg, dm = gnn.VirtualNode(2), gnn.PGNNConv(2, 2), torch.rand(4, 2)
    bad = torch.tensor([0, 0, 1, -1])
    f = {"pool": lambda: gnn.global_add_pool(x, bad, 2),
         "virtual_node": lambda: vn.broadcast(x, vn.initial_state(None, 2), bad),
         "pgnn": lambda: pg(x, dm, torch.tensor([[0, 1], [1, 2], [2, 3], [3, -1]]))}[case]
    with pytest.raises(RuntimeError, match="outside"):
        torch.compile(f, fullgraph=True)()


def test_checks_keep_what_was_accepted_before():
    import math

    import numpy as np

    from gnnkit._checks import check_flag, check_seed
    from gnnkit.latent.fsq import fsq_levels_for
    assert check_flag("f", np.True_) is True and check_flag("f", np.bool_(False)) is False
    assert check_seed("seed", torch.tensor(3)) == 3 and check_seed("seed", 3.0) == 3
    with pytest.raises(ValueError, match="seed must be an integer seed"):
        check_seed("seed", 1.5)
    gnn.GraphTransformerConv(8, heads=2, max_nodes=math.inf)
    assert fsq_levels_for(256) == (8, 6, 5)


def test_gin_refuses_bool_features_and_casts_integer_ones_on_static_graphs():
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    with pytest.raises(ValueError, match="GINConv: x holds bool features"):
        gnn.GINConv(Linear(2, 2))(torch.ones(3, 2, dtype=torch.bool), ei)
    torch.manual_seed(0)
    p, q = pnn.GINConv(Linear(2, 2)), gnn.GINConv(Linear(2, 2))
    q.load_state_dict(p.state_dict())
    x = torch.randint(0, 3, (4, 3, 2))  # [B, N, F]: a static graph
    assert torch.allclose(p(x.float(), ei), q(x, ei))
