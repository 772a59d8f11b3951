"""benchmarks/layers_speed.py at toy scale: the paired (round-robin) worker times every
implementation, measures memory, and the pooled rounds and paired ratios come out consistent."""
import pytest
import torch

from tests.conftest import load_benchmark


def test_paired_worker_and_pooling_at_toy_scale(monkeypatch):
    ls = load_benchmark("layers_speed")
    monkeypatch.setattr(ls, "N", 400)
    monkeypatch.setattr(ls, "E", 2400)
    monkeypatch.setattr(ls, "F", 8)
    res = ls.paired_worker("gat", ["gnnkit", "pyg-edge_index"], reps=3)
    assert set(res) == {"gnnkit", "pyg-edge_index"}
    for r in res.values():
        assert len(r["times_s"]) == 3 and all(t > 0 for t in r["times_s"])
        assert r["median_s"] == sorted(r["times_s"])[1] and r["num_edges"] == 2400
    pooled = ls._pool([res["gnnkit"], res["gnnkit"]])
    assert len(pooled["times_s"]) == 6 and pooled["round_medians_s"] == [res["gnnkit"]["median_s"]] * 2
    assert ls._pool([res["gnnkit"], {"failed": "boom"}]) == {"failed": "boom"}  # a bad round is reported
    single = ls.worker("gin", "gnnkit", 2)
    assert len(single["times_s"]) == 2


def test_sage_aggregations_benchmark_at_toy_scale(tmp_path, monkeypatch):
    import json
    import sys
    sa = load_benchmark("sage_aggregations")
    out = tmp_path / "sa.json"
    monkeypatch.setattr(sys, "argv", ["sage_aggregations.py", "--nodes", "300", "--edges", "2000", "--features", "8",
                                      "--reps", "2", "--aggrs", "mean,softmax,powermean", "--out", str(out)])
    sa.main()
    rows = json.loads(out.read_text())["results"]
    # "mean" first: PyG generates SAGEConv's propagate from its first instance in the process, and one
    # built with a non-fusable aggregation (softmax) makes later sparse-adj_t calls of PyG's own layer raise
    assert [r["aggr"] for r in rows] == ["mean", "softmax", "powermean"]
    for r in rows:
        assert r["max_abs_diff"] < 1e-4 and set(r["step_s"]) == {"gnnkit", "gnnkit-gathered", "pyg"}
    assert out.with_suffix(".png").stat().st_size > 0


def test_idgnn_paper_task_data_and_a_short_run(tmp_path, monkeypatch):
    """benchmarks/expressive.py --task clustering-ba|ws: the ID-GNN paper's graphs (64 nodes; 124 edges for
    Barabasi-Albert m=2, 128 for Watts-Strogatz k=4), labels = the clustering coefficient's decile class, the
    same graph set for every seed (only the split moves); a 2-epoch run of the GraphGym body writes its JSON."""
    import json
    import sys

    import networkx as nx
    ex = load_benchmark("expressive")
    for fam, edges in (("ba", 124), ("ws", 128)):
        graphs, classes = ex.make_clustering_graphs(fam, 6, 0)
        assert 2 <= classes <= 10 and len(graphs) == 6
        for ei, y, n in graphs:
            assert n == 64 and ei.size(1) == 2 * edges and y.shape == (64,) and int(y.max()) < classes
        g = nx.Graph(graphs[0][0].t().tolist())
        coef = torch.tensor([nx.clustering(g)[v] for v in range(64)])
        order = coef.argsort()
        assert bool((graphs[0][1][order].diff() >= 0).all())  # classes are ordered like the coefficient
        again, _ = ex.make_clustering_graphs(fam, 6, 0)
        assert all(torch.equal(a[0], b[0]) for a, b in zip(graphs, again))
    out = tmp_path / "c.json"
    monkeypatch.setattr(sys, "argv", ["expressive.py", "--task", "clustering-ws", "--graphs", "10", "--epochs", "2",
                                      "--seeds", "2", "--hidden", "8", "--out", str(out)])
    ex.main()
    res = json.loads(out.read_text())
    assert res["arch"] == "gym" and set(res["results"]) == {"gcn", "idgnn-fast", "idgnn"}
    assert all(len(r["test_acc"]) == 2 and all(0 <= a <= 1 for a in r["test_acc"]) for r in res["results"].values())


def test_pgnn_benchmark_identity_features_and_lr_drop_at_toy_scale(tmp_path, monkeypatch):
    """benchmarks/pgnn_communities.py: the -T settings (one-hot identity features) and the authors' learning-rate
    drop run, and the JSON names both in its file name and content."""
    import json
    import sys
    pc = load_benchmark("pgnn_communities")
    monkeypatch.setattr(pc, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["pgnn_communities.py", "--graph", "grid", "--features", "identity", "--q", "3",
                                      "--epochs", "3", "--seeds", "1", "--lr-drop", "2", "--models", "gcn,pgnn"])
    pc.main()
    res = json.loads((tmp_path / "pgnn_grid_T_q3_e3_drop2.json").read_text())
    assert res["features"] == "identity" and res["lr_drop"] == 2 and "identity" in res["task"]
    assert all(0.0 <= r["mean"] <= 1.0 for r in res["results"].values())


def test_layers_report_tables_match_the_committed_results():
    """docs/layers/benchmarks.md's generated tables are what benchmarks/layers_report.py writes from the
    committed JSON files (the prose around them is kept), and a missing marker is a named error."""
    import pytest
    lr = load_benchmark("layers_report")
    text = lr.OUT.read_text()
    assert lr.render(text) == text, "run `python benchmarks/layers_report.py` after changing benchmarks/results"
    for name in lr.SECTIONS:
        _, end = lr._markers(name)
        with pytest.raises(ValueError, match=name):
            lr.render(text.replace(end, ""))


def test_pgnn_benchmark_splits_as_the_authors_do():
    """The paper's protocol: every training edge is both a message edge and a positive, and validation and test
    are scored on that same training graph (no held-out edge in it); gnnkit's default disjoint split keeps 30 %
    of the training edges out of the message graph (on the grid: ~56 % of the edges left for messages)."""
    import pytest
    pc = load_benchmark("pgnn_communities")
    data = pc.grid(0)
    undirected = data.edge_index.size(1) // 2  # 760 edges
    tr, va, te = pc.split_edges(data, 0, "authors")

    def pairs(ei):
        return {(min(a, b), max(a, b)) for a, b in ei.t().tolist()}

    assert va.edge_index is tr.edge_index and te.edge_index is tr.edge_index
    positives = pairs(tr.edge_label_index[:, tr.edge_label == 1])
    assert positives == pairs(tr.edge_index) and len(positives) == round(0.8 * undirected)
    for part in (va, te):
        held_out = pairs(part.edge_label_index[:, part.edge_label == 1])
        assert len(held_out) == round(0.1 * undirected) and not held_out & pairs(tr.edge_index)
    trd, _, _ = pc.split_edges(data, 0, "disjoint")
    assert len(pairs(trd.edge_index)) < 0.6 * undirected
    with pytest.raises(ValueError, match="split"):
        pc.split_edges(data, 0, "random")


def test_compile_benchmark_paired_ratio_hand_worked():
    lc = load_benchmark("layers_compile")
    r = lc.paired_ratio([2.0, 4.0, 3.0], [1.0, 2.0, 1.0])  # ratios 2, 2, 3
    assert r["median"] == 2.0 and r["ci95"][0] >= 2.0 and r["ci95"][1] <= 3.0 and r["verdict"] == "faster"
    assert lc.paired_ratio([1.0] * 5, [2.0] * 5) == {"median": 0.5, "ci95": [0.5, 0.5], "verdict": "slower",
                                                     "rounds": 5}
    both_sides = lc.paired_ratio([0.9, 1.1, 0.95, 1.05, 1.0, 0.98, 1.02], [1.0] * 7)
    assert both_sides["verdict"] == "parity" and both_sides["ci95"][0] < 1 < both_sides["ci95"][1]
    with pytest.raises(ValueError, match="equally long"):
        lc.paired_ratio([1.0], [1.0, 2.0])


def test_compile_benchmark_at_toy_scale(tmp_path, monkeypatch):
    """The whole script on a toy graph for two layers: the compiled layer runs on a Graph no eager call
    touched, is compiled at most twice, matches eager, and the record carries the paired statistics."""
    import json
    import sys
    lc = load_benchmark("layers_compile")
    monkeypatch.setattr(lc, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["layers_compile.py", "--nodes", "200", "--edges", "1500", "--features", "16",
                                      "--reps", "3", "--budget-s", "0", "--only", "GCNConv,GATConv"])
    lc.main()
    res = json.loads((tmp_path / "layers_compile.json").read_text())["results"]
    assert set(res) == {"GCNConv", "GATConv"}
    for v in res.values():
        assert v["compiles_fullgraph"], v
        assert v["compiled_graphs"] <= 2 and v["max_abs_diff_out"] < 1e-4 and v["max_abs_diff_grad"] < 1e-4
        assert v["paired"]["rounds"] == 3 and v["paired"]["verdict"] in ("faster", "slower", "parity")
        assert v["paired"]["ci95"][0] <= v["paired"]["median"] <= v["paired"]["ci95"][1]


def test_layers_compile_mode_option(tmp_path, monkeypatch):
    """--mode reaches torch.compile and names the JSON (reduce-overhead: CUDA graphs on a GPU; on CPU the same
    flow, its outputs copied before the next step)."""
    import json
    import sys
    lc = load_benchmark("layers_compile")
    monkeypatch.setattr(lc, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["layers_compile.py", "--nodes", "100", "--edges", "600", "--features", "8",
                                      "--reps", "2", "--budget-s", "0", "--only", "GINConv", "--mode",
                                      "reduce-overhead"])
    lc.main()
    rep = json.loads((tmp_path / "layers_compile_reduce-overhead.json").read_text())
    assert rep["mode"] == "reduce-overhead" and rep["results"]["GINConv"]["compiles_fullgraph"]
    assert rep["results"]["GINConv"]["graph_state_built_eagerly"]
    assert rep["results"]["GINConv"]["max_abs_diff_grad"] < 1e-4


def test_layers_compile_model_option(tmp_path, monkeypatch):
    """--model: two layers of a type (edge features passed to both), cross-entropy, compiled as one model; the
    compiled model matches eager and the JSON is named and labelled for the protocol."""
    import json
    import sys
    lc = load_benchmark("layers_compile")
    monkeypatch.setattr(lc, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["layers_compile.py", "--nodes", "120", "--edges", "900", "--features", "8",
                                      "--reps", "2", "--budget-s", "0", "--only", "GCNConv,GINEConv", "--model"])
    lc.main()
    rep = json.loads((tmp_path / "layers_compile_model.json").read_text())
    assert rep["protocol"].startswith("two layers") and set(rep["results"]) == {"GCNConv", "GINEConv"}
    for v in rep["results"].values():
        assert v["compiles_fullgraph"], v
        assert v["max_abs_diff_out"] < 1e-4 and v["max_abs_diff_grad"] < 1e-4 and v["paired"]["rounds"] == 2
    m = lc.TwoLayer(lc.layers(8)["GINEConv"])
    assert m.conv1 is not m.conv2 and sum(p.numel() for p in m.parameters()) == 2 * sum(
        p.numel() for p in m.conv1.parameters())


def test_cora_layers_benchmark_short_run(tmp_path, monkeypatch, capsys):
    """benchmarks/cora_layers.py for two layers, two rounds: gnnkit matches PyG with the same weights and
    the record carries the three inputs' paired statistics, JSON and plot written."""
    import json
    import sys
    cl = load_benchmark("cora_layers")
    out = tmp_path / "cora.json"
    monkeypatch.setattr(sys, "argv", ["cora_layers.py", "--only", "GCN,GAT", "--rounds", "2", "--budget-s", "0",
                                      "--out", str(out)])
    cl.main()
    res = json.loads(out.read_text())["results"]
    assert set(res) == {"GCN", "GAT"}
    for v in res.values():
        assert v["max_abs_diff_out"] < 1e-4 and v["max_abs_diff_grad"] < 1e-3
        assert v["max_abs_diff_out_shuffled"] < 1e-4
        inputs = ("same", "fresh", "shuffled")
        assert set(v["median_ms"]) == {f"{lib}_{inp}" for lib in ("gnnkit", "pyg") for inp in inputs}
        for inp in ("same", "fresh", "shuffled"):
            assert v["speedup"][inp]["rounds"] == 2 and v["speedup"][inp]["verdict"] in ("faster", "slower", "parity")
    assert out.with_suffix(".png").stat().st_size > 0
    for bad in (["--only", "GXN"], ["--rounds", "0"], ["--budget-s", "nan"]):
        monkeypatch.setattr(sys, "argv", ["cora_layers.py", *bad])
        with pytest.raises(SystemExit):
            cl.main()
        assert bad[0] in capsys.readouterr().err  # the error names the argument


def test_minibatch_layers_benchmark_short_run(tmp_path, monkeypatch, capsys):
    """benchmarks/minibatch_layers.py for two layers, two rounds of one-step blocks on MUTAG: gnnkit matches
    PyG with the same weights (outputs, parameter and input gradients), both inputs' paired statistics in the
    record, JSON and plot written; bad flags name themselves."""
    import json
    import sys
    mb = load_benchmark("minibatch_layers")
    out = tmp_path / "mb.json"
    monkeypatch.setattr(sys, "argv", ["minibatch_layers.py", "--only", "GIN,GAT", "--rounds", "2", "--block", "1",
                                      "--budget-s", "0", "--out", str(out)])
    mb.main()
    rep = json.loads(out.read_text())
    assert rep["dataset"] == "MUTAG" and rep["batches"] == 6 and rep["batch_size"] == 32  # 188 graphs
    res = rep["results"]
    assert set(res) == {"GIN", "GAT"}
    for v in res.values():
        assert v["max_abs_diff_out"] < 1e-4 and v["max_abs_diff_grad"] < 1e-3
        keys = {f"{lib}_{inp}" for lib in ("gnnkit", "pyg") for inp in ("first", "hidden")}
        assert set(v["median_ms_per_step"]) == keys
        for inp in ("first", "hidden"):
            assert v["speedup"][inp]["rounds"] == 2 and v["speedup"][inp]["verdict"] in ("faster", "slower", "parity")
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    for bad in (["--only", "GXN"], ["--block", "0"], ["--features", "12"], ["--budget-s", "nan"]):
        monkeypatch.setattr(sys, "argv", ["minibatch_layers.py", *bad, "--out", str(tmp_path / "x.json")])
        with pytest.raises(SystemExit):
            mb.main()
        assert bad[0] in capsys.readouterr().err  # the error names the argument


def test_plot_ratios_names_what_is_missing(tmp_path):
    from gnnkit.profile import paired_ratio, plot_ratios
    rec = {"GIN": {"speedup": {"a": paired_ratio([2.0, 2.2], [1.0, 1.0])}}}
    plot_ratios(rec, {"a": "input a"}, "t", tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match=r"no speedup record for \['GIN/b'\]"):
        plot_ratios(rec, {"a": "A", "b": "B"}, "t", tmp_path / "s.png")
    with pytest.raises(ValueError, match="non-empty dicts"):
        plot_ratios({}, {"a": "A"}, "t", tmp_path / "s.png")
    assert not (tmp_path / "s.png").exists()
    # skip_missing: a name without some input's record gets no bar there (a layer PyG lacks)
    rec["MPNN"] = {"speedup": {"b": paired_ratio([1.5], [1.0])}}
    plot_ratios(rec, {"a": "A", "b": "B"}, "t", tmp_path / "m.png", skip_missing=True)
    assert (tmp_path / "m.png").read_bytes().startswith(b"\x89PNG")


def _walk(fn):
    """Every autograd node reachable from ``fn``."""
    seen, todo = [], [fn]
    while todo:
        f = todo.pop()
        if f is not None and f not in seen:
            seen.append(f)
            todo.extend(g for g, _ in f.next_functions)
    return seen


def test_edge_features_benchmark_at_toy_scale(tmp_path, monkeypatch, capsys):
    """benchmarks/edge_features.py: every variant timed, the plain-lin variant restored afterwards, PyG's
    layer given the same weights (same output), bad arguments named."""
    import json
    import sys

    import gnnkit.nn.gine_conv as gine_mod
    from gnnkit.nn._utils import edge_linear
    ef = load_benchmark("edge_features")
    out = tmp_path / "ef.json"
    monkeypatch.setattr(sys, "argv", ["edge_features.py", "--nodes", "60", "--edges", "400", "--features", "8",
                                      "--rounds", "2", "--out", str(out)])
    ef.main()
    rep = json.loads(out.read_text())
    assert set(rep["results"]) == {"gine", "gatv2", "mpnn"}
    assert set(rep["results"]["gine"]["speedup"]) == {"plain_linear", "pyg"}
    assert set(rep["results"]["mpnn"]["speedup"]) == {"plain_linear"}
    assert rep["matmul"]["gradT_x_ms"] > 0 and rep["results"]["gatv2"]["speedup"]["pyg"]["rounds"] == 2
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert gine_mod.edge_linear is edge_linear
    torch.manual_seed(0)
    mine, theirs = ef.build("gatv2", 8, 3)
    x, ei, ea = torch.randn(10, 8), torch.randint(0, 10, (2, 30)), torch.randn(30, 3)
    torch.testing.assert_close(mine(x, ei, ea), theirs(x, ei, ea))
    # the "before" variant really runs the plain lin(edge_attr): no weight-copy/cat node in its graph
    torch.manual_seed(0)
    gine, _ = ef.build("gine", 8, 3)
    xr = torch.randn(10, 8, requires_grad=True)
    names = lambda t: {n.name() for n in _walk(t.grad_fn)}  # noqa: E731
    assert "CatBackward0" in names(gine(xr, ei, ea))
    with ef.plain_linear("gine"):
        assert "CatBackward0" not in names(gine(xr, ei, ea))
    with pytest.raises(KeyError), ef.plain_linear("gine"):
        raise KeyError("restored on errors too")
    assert gine_mod.edge_linear is edge_linear
    for bad in (["--features", "6"], ["--layers", "gin"], ["--rounds", "0"], ["--edge-dim", "16"],
                ["--out", str(tmp_path / "x.png")]):
        monkeypatch.setattr(sys, "argv", ["edge_features.py", *bad])
        with pytest.raises(SystemExit):
            ef.main()
        assert bad[0] in capsys.readouterr().err


def test_compile_profile_and_op_dispatch_at_toy_scale(tmp_path, monkeypatch):
    """benchmarks/compile_profile.py (wall, host and profiler tables, cProfile rows) and benchmarks/op_dispatch.py
    (the cost of one op call, three registrations of the same body, which must agree) write their JSON."""
    import json
    import sys
    from pathlib import Path
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    cp = load_benchmark("compile_profile")
    out = tmp_path / "cp.json"
    monkeypatch.setattr(sys, "argv", ["compile_profile.py", "--layer", "SAGEConv", "--nodes", "60", "--edges", "300",
                                      "--features", "8", "--steps", "2", "--rows", "3", "--python-rows", "5",
                                      "--out", str(out)])
    cp.main()
    rep = json.loads(out.read_text())
    assert set(rep["variants"]) == {"eager", "compiled"}
    for v in rep["variants"].values():
        assert v["wall_ms"] > 0 and v["host_ms"] > 0 and "Self CPU" in v["table"]
        assert "function calls" in v["python_table"] and v["syncs"] is None  # the sync check is CUDA's
    od = load_benchmark("op_dispatch")
    out = tmp_path / "od.json"
    monkeypatch.setattr(sys, "argv", ["op_dispatch.py", "--calls", "3", "--rounds", "2", "--out", str(out)])
    od.main()
    rep = json.loads(out.read_text())
    assert set(rep["median_us_per_call"]) == {"direct", "gnnkit op (torch.library.Library)", "torch.library.custom_op"}
    assert all(v > 0 for v in rep["median_us_per_call"].values()) and len(rep["overhead_us_over_direct"]) == 2


def test_compile_peers_benchmark_at_toy_scale(tmp_path):
    """benchmarks/compile_peers.py for the plain Linear and GCN: every implementation's compiled step matches its
    eager step, gnnkit matches PyG with the same weights, and the records carry the paired statistics (eager /
    compiled per implementation, PyG / gnnkit per mode), JSON and plot written."""
    import json
    import sys
    from unittest import mock
    cp = load_benchmark("compile_peers")
    out = tmp_path / "cp.json"
    argv = ["compile_peers.py", "--nodes", "150", "--edges", "900", "--features", "8", "--reps", "2",
            "--budget-s", "0", "--only", "Linear,GCNConv", "--out", str(out)]
    with mock.patch.object(sys, "argv", argv):
        cp.main()
    res = json.loads(out.read_text())["results"]
    assert set(res) == {"Linear", "GCNConv"}
    assert set(res["Linear"]["speedup"]) == {"torch"} and "gnnkit_vs_pyg" not in res["Linear"]
    gcn = res["GCNConv"]
    assert set(gcn["speedup"]) == {"pyg", "gnnkit"} and set(gcn["gnnkit_vs_pyg"]) == {"eager", "compiled"}
    assert gcn["max_abs_diff_gnnkit_vs_pyg"] < 1e-4
    for rec in res.values():
        assert all(d < 1e-4 for d in rec["max_abs_diff_compiled_vs_eager"].values())
        for r in rec["speedup"].values():
            assert r["rounds"] == 2 and r["ci95"][0] <= r["median"] <= r["ci95"][1]
    assert out.with_suffix(".png").stat().st_size > 0
    with mock.patch.object(sys, "argv", ["compile_peers.py", "--only", "GCN"]), pytest.raises(SystemExit):
        cp.main()  # an unknown case is refused by name before anything runs


def test_pygs_csr_baselines_compute_the_same_function():
    """The CSR input was the coalesced matrix: the random graph's duplicate edges became weight-2 entries, so PyG's
    SAGE mean on it divided by fewer neighbours than on edge_index (1.5 off at the arxiv-like size).  Each edge is
    one CSR entry now, and the worker records every variant's distance from the first one's output."""
    import json
    import subprocess
    import sys
    ls = load_benchmark("layers_speed")
    assert ls.make_graph(n=400, e=4000).t().unique(dim=0).size(0) < 4000  # the toy graph has duplicate edges too
    # a fresh process: PyG generates SAGEConv's propagate from its first instance in a process, and one built with a
    # non-fusable aggregation earlier (another test) makes PyG's own sparse-input calls raise
    code = ("import json, sys; sys.path.insert(0, '.'); from tests.conftest import load_benchmark; "
            "ls = load_benchmark('layers_speed'); ls.N, ls.E, ls.F = 400, 4000, 8; "
            "print(json.dumps({layer: ls.paired_worker(layer, impls, reps=1) for layer, impls in ("
            "('sage', ['gnnkit', 'pyg-edge_index', 'pyg-torchcsr']), ('gin', ['gnnkit', 'pyg-edge_index', "
            "'pyg-torchcsr']), ('gcn', ['gnnkit', 'pyg-torchcsr-cached']))}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(ls.RESULTS.parent.parent))
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    for layer in ("sage", "gin"):
        assert all(r["max_abs_diff_vs_first"] < 1e-4 for r in res[layer].values()), res[layer]
    assert "median_s" in res["gcn"]["pyg-torchcsr-cached"]


def test_layers_shapes_graphs_are_the_shapes_they_name():
    """benchmarks/layers_shapes.py's graphs: each shape has the degree extreme its name promises."""
    ls = load_benchmark("layers_shapes")
    n, e = 1000, 10_000
    got = {s: ls.make_graph(s, n, e) for s in ls.SHAPES}
    for s, (ei, nodes) in got.items():
        assert ei.dtype == torch.long and ei.min() >= 0 and ei.max() < nodes, s
    indeg = {s: torch.bincount(ei[1], minlength=nodes) for s, (ei, nodes) in got.items()}
    outdeg = {s: torch.bincount(ei[0], minlength=nodes) for s, (ei, nodes) in got.items()}
    assert got["star_in"][0].size(1) == n - 1 and int(indeg["star_in"].max()) == n - 1
    assert int(outdeg["star_out"].max()) == n - 1 and int(indeg["star_out"].max()) == 1
    assert got["isolated"][1] == 10 * n and int((indeg["isolated"] + outdeg["isolated"] > 0).sum()) <= n // 10
    assert int(got["multi"][0].max()) < 100 and int(indeg["multi"].max()) > 50  # every pair many times
    # skewed shapes: the largest in-degree far above the uniform graph's
    for s in ("powerlaw", "hub_in"):
        assert int(indeg[s].max()) > 10 * int(indeg["uniform"].max()), s
    with pytest.raises(ValueError, match="unknown shape"):
        ls.make_graph("ring", n, e)


def test_layers_shapes_benchmark_short_run(tmp_path, monkeypatch, capsys):
    """benchmarks/layers_shapes.py on small graphs, two rounds: gnnkit matches PyG on every shape (outputs and
    gradients), paired statistics and three peak-memory readings per shape, JSON and plot; bad flags name
    themselves."""
    import json
    import sys
    ls = load_benchmark("layers_shapes")
    out = tmp_path / "shapes.json"
    monkeypatch.setattr(sys, "argv", ["layers_shapes.py", "--nodes", "300", "--edges", "3000", "--only", "GCN,SAGE-max",
                                      "--shapes", "star_in,multi", "--rounds", "2", "--budget-s", "0",
                                      "--out", str(out)])
    ls.main()
    rep = json.loads(out.read_text())
    assert set(rep["shapes"]) == {"star_in", "multi"} and rep["shapes"]["star_in"]["max_in_degree"] == 299
    assert set(rep["results"]) == {"GCN", "SAGE-max"}
    for v in rep["results"].values():
        for s in ("star_in", "multi"):
            assert v["max_abs_diff"][s]["out"] < 1e-4 and v["max_abs_diff"][s]["grad"] < 1e-3
            assert v["speedup"][s]["rounds"] == 2 and v["speedup"][s]["verdict"] in ("faster", "slower", "parity")
            assert set(v["peak_mib"][s]) == {"gnnkit", "pyg", "gnnkit_fresh"}
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    for bad in (["--only", "GXN"], ["--shapes", "ring"], ["--features", "12"], ["--nodes", "5"],
                ["--budget-s", "nan"]):
        monkeypatch.setattr(sys, "argv", ["layers_shapes.py", *bad, "--out", str(tmp_path / "x.json")])
        with pytest.raises(SystemExit):
            ls.main()
        assert bad[0] in capsys.readouterr().err  # the error names the argument
