"""benchmarks/kernels.py's 3-layer GAT training stage (the GPU command's out-of-memory comparison)
runs end to end at toy scale on CPU: both models train, and the result rows are complete."""

import torch

from tests.conftest import load_benchmark


def test_gat3_training_stage_runs_for_gnnkit_and_pyg():
    bench = load_benchmark("kernels")
    from gnnkit import profile as prof
    pg = prof.power_law_graph(300, 2400, seed=1)
    g = prof.GraphSpec("toy", pg.edge_index, pg.num_nodes)
    rows = bench.gat3_train_bench(g, torch.device("cpu"), in_channels=12, heads=2, head_dim=8, num_classes=5,
                                  steps=4)
    assert [r["model"] for r in rows] == ["gnnkit 3-layer GAT", "pyg 3-layer GAT"]
    for r in rows:
        assert r["error"] is None, r["error"]
        assert len(r["losses"]) == 4 and all(torch.isfinite(torch.tensor(r["losses"])))
        assert r["losses"][-1] < r["losses"][0]  # it trains
        assert r["median_step_ms"] > 0 and len(r["times_ms"]) == 3
    # same initial weights and data: the first loss agrees between gnnkit and PyG
    assert abs(rows[0]["losses"][0] - rows[1]["losses"][0]) < 1e-4
    md = bench.markdown({"device": "cpu", "features": 1, "heads": 2, "head_dim": 8, "copy_gbps": 1.0,
                         "memory_method": "x", "graphs": {}, "layers": {}, "train": {"toy": rows},
                         "summary": {"ours": "gnnkit-torch", "spmm_fwd_bwd_speedup": {}, "gat_layer": {}}})
    assert "| toy | gnnkit 3-layer GAT |" in md
