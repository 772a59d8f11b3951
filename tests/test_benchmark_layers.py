"""benchmarks/layers_speed.py at toy scale: the paired (round-robin) worker times every
implementation, measures memory, and the pooled rounds and paired ratios come out consistent."""
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
