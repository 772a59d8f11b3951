"""``gnnkit.ops.segment_reduce`` on per-edge values in input order (sum, forward + backward): the in-place
read (an SpMM over the graph's permutation) against reordering the values into CSR order first (the path
before) and PyG's ``scatter``, timed alternately in one process, with peak memory and the results checked
against each other.

    python benchmarks/segment_input_order.py --nodes 50000 --edges 500000 --features 8 64 128

Writes ``benchmarks/results/segment_input_order_<device>.json``.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from torch_geometric.utils import scatter

from gnnkit._atomic import write_json_atomic
from gnnkit.ops import Graph, segment_reduce
from gnnkit.ops.segment import segment_reduce_slots
from gnnkit.profile.measure import PeakMemory, interleaved, require_at_least_one

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=50_000)
    ap.add_argument("--edges", type=int, default=500_000)
    ap.add_argument("--features", type=int, nargs="+", default=[8, 64, 128])
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds, each variant once per round")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    require_at_least_one(ap, args, "nodes", "edges", "rounds")
    if min(args.features) < 1:
        ap.error(f"--features must all be at least 1, got {args.features}")
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    n, e = args.nodes, args.edges
    ei = torch.randint(0, n, (2, e), generator=g).to(device)
    graph = Graph.build(ei, num_nodes=n)
    mem = PeakMemory(device)
    report = {"graph": {"nodes": n, "edges": e, "edge_order": "random (not sorted by destination)"},
              "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "rounds": args.rounds, "memory": mem.method, "by_features": {}}
    for f in args.features:
        v = torch.randn(e, f, generator=g).to(device).requires_grad_()
        go = torch.randn(n, f, generator=g).to(device)
        variants = {
            "in place (gnnkit)": lambda: segment_reduce(graph, v, "sum"),
            "reordered first (gnnkit before)": lambda: segment_reduce_slots(graph, graph.to_csr_order(v), "sum"),
            "pyg scatter": lambda: scatter(v, ei[1], dim=0, dim_size=n, reduce="sum"),
        }
        results = {}
        for name, fn in variants.items():
            v.grad = None
            y = fn()
            y.backward(go)
            results[name] = (y.detach(), v.grad.clone())
        ref_y, ref_g = results["reordered first (gnnkit before)"]
        rec = {}
        for name in variants:
            y, gr = results[name]
            rec[name] = {"max_abs_diff_out_vs_before": float((y - ref_y).abs().max()) if y.numel() else 0.0,
                         "max_abs_diff_grad_vs_before": float((gr - ref_g).abs().max()) if gr.numel() else 0.0}

        def step(fn):
            v.grad = None
            fn().backward(go)
        times = interleaved({name: (lambda fn=fn: step(fn)) for name, fn in variants.items()}, args.rounds, device,
                            warmup=0)
        for name, t in times.items():
            rec[name]["times_ms"] = [s * 1e3 for s in t]
        for name, fn in variants.items():
            v.grad = None
            stats = {}
            with mem.measure(stats):
                fn().backward(go)
            rec[name]["median_ms"] = statistics.median(rec[name]["times_ms"])
            rec[name]["peak_mb"] = stats.get("peak_bytes", float("nan")) / 2 ** 20
            r = rec[name]
            print(f"F={f:4d} {name:32s} fwd+bwd {r['median_ms']:8.1f} ms  peak {r['peak_mb']:7.1f} MB"
                  f"  |diff| {r['max_abs_diff_out_vs_before']:.2g} / {r['max_abs_diff_grad_vs_before']:.2g}",
                  flush=True)
        report["by_features"][str(f)] = rec
    path = RESULTS / f"segment_input_order_{device.type}.json"
    write_json_atomic(report, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
