"""torch.compile(fullgraph=True) with the default inductor backend on gnnkit's layers:
checks that each layer compiles without graph breaks, that forward and input gradients match
eager mode, and times eager vs compiled forward+backward on a mid-sized random graph.

Example::

    nice -n 10 python benchmarks/layers_compile.py            # JSON in benchmarks/results/
"""
import argparse
import json
import os
import time
import warnings
from pathlib import Path

import torch
from torch.nn import Linear, ReLU, Sequential

import gnnkit.nn as gnn
from gnnkit._atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def layers(f: int):
    return {
        "GCNConv": lambda: gnn.GCNConv(f, f),
        "SAGEConv": lambda: gnn.SAGEConv(f, f),
        "SAGEConv-lstm": lambda: gnn.SAGEConv(f, f, aggr="lstm").eval(),  # eval: same neighbour order
        "GATConv": lambda: gnn.GATConv(f, f // 8, heads=8),
        "GATv2Conv": lambda: gnn.GATv2Conv(f, f // 4, heads=4),
        "GINConv": lambda: gnn.GINConv(Sequential(Linear(f, f), ReLU(), Linear(f, f))),
        "GINEConv": lambda: gnn.GINEConv(Sequential(Linear(f, f), ReLU(), Linear(f, f)), edge_dim=4),
        "MPNNConv": lambda: gnn.MPNNConv(f, edge_dim=4, num_steps=2),
    }


def _time(fn, reps):
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20000, help="nodes of the random graph (default 20000)")
    ap.add_argument("--edges", type=int, default=200000, help="edges (default 200000)")
    ap.add_argument("--features", type=int, default=64, help="feature width (default 64)")
    ap.add_argument("--reps", type=int, default=5, help="timed calls (default 5)")
    ap.add_argument("--only", default=None, help="comma-separated layer names (default: all)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    g = torch.Generator().manual_seed(0)
    n, e, f = args.nodes, args.edges, args.features
    ei = torch.randint(0, n, (2, e), generator=g)
    ea = torch.randn(e, 4, generator=g)
    out = {}
    for name, make in layers(f).items():
        if args.only and name not in args.only.split(","):
            continue
        torch.manual_seed(0)
        torch._dynamo.reset()
        layer = make()
        extra = (ea,) if name in ("GINEConv", "MPNNConv") else ()
        x = torch.randn(n, f, generator=g).requires_grad_(True)

        def run(m):
            y = m(x, ei, *extra)
            (gx,) = torch.autograd.grad(y.sum(), x)
            return y, gx

        rec = {}
        try:
            ref = run(layer)
            compiled = torch.compile(layer, fullgraph=True)
            t0 = time.perf_counter()
            got = run(compiled)
            rec["compile_s"] = round(time.perf_counter() - t0, 1)
            rec["max_abs_diff_out"] = float((got[0] - ref[0]).abs().max())
            rec["max_abs_diff_grad"] = float((got[1] - ref[1]).abs().max())
            rec["eager_s"] = _time(lambda: run(layer), args.reps)
            rec["compiled_s"] = _time(lambda: run(compiled), args.reps)
            rec["compiles_fullgraph"] = True
        except Exception as exc:  # report, do not hide: the JSON says what broke
            rec["compiles_fullgraph"] = False
            rec["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        out[name] = rec
        print(name, json.dumps(rec), flush=True)
    path = RESULTS / "layers_compile.json"
    write_json_atomic({"graph": {"nodes": n, "edges": e, "features": f}, "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "load_avg_at_end": list(os.getloadavg()),
                       "results": out}, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
