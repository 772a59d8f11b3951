"""The public ops' per-edge tensors in input order, forward + backward: their reordering to CSR slot order
and back with the inverse-gather backward (``gnnkit.ops.graph.PermuteRows``, gnnkit's path on CPU)
against ``index_select``'s scatter-add backward (its path on GPUs, where that measured faster), each
forced whatever the device, with PyG's equivalent where it has one; alternated in one process.  (The
variant names keep the first run's "now" / "before".)  Edge softmax ``[E, H]`` (two reorders), SDDMM
(its ``[E, H]`` output) and SpMM with learned ``[E]`` edge weights.

    python benchmarks/edge_order_backward.py --nodes 169000 --edges 1166000 --heads 8

Writes ``benchmarks/results/edge_order_backward_<device>.json``.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from torch_geometric.utils import scatter, softmax as pyg_softmax

import gnnkit.ops.graph as graph_mod
from gnnkit._atomic import write_json_atomic
from gnnkit.ops import Graph, sddmm, segment_softmax, spmm
from gnnkit.profile.measure import interleaved, require_at_least_one

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=169_000)
    ap.add_argument("--edges", type=int, default=1_166_000)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--features", type=int, default=32, help="node feature width (SDDMM per head, SpMM)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    require_at_least_one(ap, args, "nodes", "edges", "heads", "features", "rounds")
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    n, e, h, f = args.nodes, args.edges, args.heads, args.features
    ei = torch.randint(0, n, (2, e), generator=g).to(device)
    graph = Graph.build(ei, num_nodes=n)
    s = torch.randn(e, h, generator=g).to(device).requires_grad_()
    xh = torch.randn(n, h, f, generator=g).to(device).requires_grad_()
    x = torch.randn(n, f, generator=g).to(device).requires_grad_()
    w = torch.rand(e, generator=g).to(device).requires_grad_()
    ops = {
        "softmax": (lambda: segment_softmax(graph, s), lambda: pyg_softmax(s, ei[1], num_nodes=n), [s]),
        "sddmm": (lambda: sddmm(graph, xh, xh), lambda: (xh[ei[1]] * xh[ei[0]]).sum(-1), [xh]),
        "spmm_weighted": (lambda: spmm(graph, x, w),
                          lambda: scatter(x[ei[0]] * w.unsqueeze(-1), ei[1], dim=0, dim_size=n, reduce="sum"), [x, w]),
    }
    real = graph_mod._permute_with_gather
    report = {"graph": {"nodes": n, "edges": e, "heads": h, "features": f, "edge_order": "random"},
              "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "rounds": args.rounds, "ops": {}}
    for op, (ours, peer, leaves) in ops.items():
        def step(fn, gather=True):
            # each path forced, whatever the device (gnnkit uses the gather on CPU only)
            graph_mod._permute_with_gather = ((lambda t: t.requires_grad and torch.is_grad_enabled()) if gather
                                              else (lambda t: False))
            try:
                for t in leaves:
                    t.grad = None
                y = fn()
                y.backward(torch.ones_like(y))
                return [y.detach()] + [t.grad.clone() for t in leaves]
            finally:
                graph_mod._permute_with_gather = real

        variants = {"gather backward (now)": lambda: step(ours), "index_select backward (before)":
                    lambda: step(ours, gather=False), "pyg": lambda: step(peer)}
        res = {k: v() for k, v in variants.items()}
        same = all(torch.equal(a, b) for a, b in zip(res["gather backward (now)"],
                                                       res["index_select backward (before)"]))
        times = {k: [s * 1e3 for s in t] for k, t in interleaved(variants, args.rounds, device, warmup=0).items()}
        rec = {k: {"median_ms": statistics.median(t), "times_ms": t} for k, t in times.items()}
        rec["now_equals_before_bitwise"] = same
        report["ops"][op] = rec
        print(op, {k: round(v["median_ms"], 1) for k, v in rec.items() if isinstance(v, dict)},
              "bit-identical" if same else "DIFFERENT", flush=True)
    path = RESULTS / f"edge_order_backward_{device.type}.json"
    write_json_atomic(report, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
