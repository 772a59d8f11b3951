"""What ``torch.compile`` gives a training step of one layer, for gnnkit and for its peers, in one run: the
same question ``benchmarks/layers_compile.py`` asks of gnnkit's layers, asked of

* ``Linear``: a plain ``torch.nn.Linear(F, F)`` on the ``[N, F]`` features — the dense part of a GCN layer
  alone, with nothing of gnnkit or PyG in it (the compiled-step floor: what compile gives a step whose work is
  all library kernels);
* ``GCNConv``, ``SAGEConv``, ``GINConv`` (MLP ``F -> F -> F``), ``GATConv`` (8 heads of ``F / 8``): PyG's layer
  on its ``edge_index`` and gnnkit's on a prebuilt ``gnnkit.ops.Graph``, PyG's weights loaded into gnnkit's.

One training step: forward, ``out.sum().backward()`` into the input and every parameter.  Each compiled module
is ``torch.compile(module, fullgraph=True)`` (inductor) and is warmed up (compiled) before timing; gnnkit's
compiled layer gets its own ``Graph``.  All variants of a layer are timed round-robin (ABBA order):
``speedup[impl]`` is the median of the per-round ratios eager / compiled (> 1: compile made that library's step
faster) with a 95 % bootstrap interval and a verdict (``gnnkit.profile.paired_ratio``); ``gnnkit_vs_pyg``
gives PyG's time over gnnkit's, eager against eager and compiled against compiled.

Example::

    nice -n 10 python benchmarks/compile_peers.py                        # CPU; JSON + PNG in benchmarks/results/
    nice -n 10 python benchmarks/compile_peers.py --only Linear,GCNConv --budget-s 20
    python benchmarks/compile_peers.py --device cuda --nodes 200000 --edges 2000000
"""
import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import torch
import torch_geometric.nn as pnn
from torch.nn import Linear, ReLU, Sequential

import gnnkit.nn as gnn
from gnnkit._atomic import write_json_atomic
from gnnkit.ops import Graph
from gnnkit.profile import interleaved, paired_ratio, plot_ratios, require_at_least_one

RESULTS = Path(__file__).resolve().parent / "results"
CASES = ("Linear", "GCNConv", "SAGEConv", "GINConv", "GATConv")


def modules(name: str, f: int) -> dict:
    """``{"torch"|"pyg": peer, "gnnkit": ours}`` for one case (``Linear`` has no gnnkit module), the same
    weights in both."""
    if name == "Linear":
        return {"torch": Linear(f, f)}

    def mlp():
        return Sequential(Linear(f, f), ReLU(), Linear(f, f))
    ours, theirs = {
        "GCNConv": lambda: (gnn.GCNConv(f, f), pnn.GCNConv(f, f)),
        "SAGEConv": lambda: (gnn.SAGEConv(f, f), pnn.SAGEConv(f, f)),
        "GINConv": lambda: (gnn.GINConv(mlp()), pnn.GINConv(mlp())),
        "GATConv": lambda: (gnn.GATConv(f, f // 8, heads=8), pnn.GATConv(f, f // 8, heads=8)),
    }[name]()
    ours.load_state_dict(theirs.state_dict())
    return {"pyg": theirs, "gnnkit": ours}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20000, help="nodes of the random graph (default 20000)")
    ap.add_argument("--edges", type=int, default=200000, help="edges (default 200000)")
    ap.add_argument("--features", type=int, default=64, help="feature width, a multiple of 8 (default 64)")
    ap.add_argument("--reps", type=int, default=30, help="timed rounds, at least (default 30)")
    ap.add_argument("--budget-s", type=float, default=40.0,
                    help="more rounds until about this many seconds of timing per case (default 40)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--only", default=None, help=f"comma-separated cases of {','.join(CASES)} (default: all)")
    ap.add_argument("--out", default=None,
                    help="JSON path, a PNG next to it (default benchmarks/results/compile_peers[_cuda].json)")
    args = ap.parse_args()
    require_at_least_one(ap, args, "nodes", "edges", "reps")
    if args.features < 8 or args.features % 8:
        ap.error(f"--features must be a positive multiple of 8 (GAT's 8 heads), got {args.features}")
    if not args.budget_s >= 0:  # nan too
        ap.error(f"--budget-s must be >= 0 seconds, got {args.budget_s}")
    only = CASES if args.only is None else tuple(args.only.split(","))
    if not set(only) <= set(CASES):
        ap.error(f"--only: unknown cases {sorted(set(only) - set(CASES))}; choose from {','.join(CASES)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available here; use --device cpu")
    out_path = Path(args.out) if args.out else RESULTS / f"compile_peers{'' if device.type == 'cpu' else '_cuda'}.json"
    warnings.filterwarnings("ignore")
    g = torch.Generator().manual_seed(0)
    n, e, f = args.nodes, args.edges, args.features
    ei = torch.randint(0, n, (2, e), generator=g).to(device)
    x = torch.randn(n, f, generator=g).to(device).requires_grad_(True)
    results = {}
    for name in CASES:
        if name not in only:
            continue
        torch.manual_seed(0)
        torch._dynamo.reset()
        mods = {k: m.to(device) for k, m in modules(name, f).items()}
        adj = {"torch": (), "pyg": (ei,), "gnnkit": (Graph.build(ei, num_nodes=n),)}
        adj_c = {**adj, "gnnkit": (Graph.build(ei.clone(), num_nodes=n),)}  # compiled gnnkit: its own Graph

        def step(m, module, args_):
            x.grad = None
            module.zero_grad(set_to_none=True)
            y = m(x, *args_)
            y.sum().backward()
            return y.detach(), x.grad

        fns, rec = {}, {"max_abs_diff_compiled_vs_eager": {}}
        for impl, module in mods.items():
            compiled = torch.compile(module, fullgraph=True)
            t0 = time.perf_counter()
            got = [t.clone() for t in step(compiled, module, adj_c[impl])]
            step(compiled, module, adj_c[impl])  # gnnkit: the second call reads the state the first kept
            rec.setdefault("compile_s", {})[impl] = round(time.perf_counter() - t0, 1)
            ref = step(module, module, adj[impl])
            rec["max_abs_diff_compiled_vs_eager"][impl] = max(float((a - b).abs().max()) for a, b in zip(got, ref))
            fns[f"{impl}_eager"] = lambda m=module, a=adj[impl]: step(m, m, a)
            fns[f"{impl}_compiled"] = lambda c=compiled, m=module, a=adj_c[impl]: step(c, m, a)
        if "gnnkit" in mods:
            y_pyg, y_ours = mods["pyg"](x, ei), mods["gnnkit"](x, adj["gnnkit"][0])
            rec["max_abs_diff_gnnkit_vs_pyg"] = float((y_pyg - y_ours).abs().max())
        t0 = time.perf_counter()
        for fn in fns.values():
            fn()
        rounds = max(args.reps, int(args.budget_s / max(time.perf_counter() - t0, 1e-9)))
        times = interleaved(fns, rounds, device, alternate=True)
        rec["median_ms"] = {k: round(1e3 * statistics.median(v), 3) for k, v in times.items()}
        rec["speedup"] = {impl: paired_ratio(times[f"{impl}_eager"], times[f"{impl}_compiled"]) for impl in mods}
        if "gnnkit" in mods:
            rec["gnnkit_vs_pyg"] = {mode: paired_ratio(times[f"pyg_{mode}"], times[f"gnnkit_{mode}"])
                                    for mode in ("eager", "compiled")}
        results[name] = rec
        print(name, rec, flush=True)
    header = {"graph": {"nodes": n, "edges": e, "features": f}, "device": str(device), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "reps": args.reps, "budget_s": args.budget_s,
              "protocol": "one layer, loss = output sum, backward into x and every parameter; compiled: "
                          "torch.compile(fullgraph=True), inductor; PyG on edge_index, gnnkit on a prebuilt Graph",
              "allocator_env": {k: v for k, v in sorted(os.environ.items())
                                if k.startswith("MALLOC_") or k == "LD_PRELOAD"}}
    write_json_atomic({**header, "load_avg_at_end": list(os.getloadavg()), "results": results}, out_path)
    plot_ratios({k: {"speedup": {("peer" if i in ("torch", "pyg") else i): r for i, r in v["speedup"].items()}}
                 for k, v in results.items()},
                {"peer": "torch.nn.Linear / PyG", "gnnkit": "gnnkit"},
                f"one training step, eager / compiled (N={n:,}, E={e:,}, F={f}, {device.type})",
                out_path.with_suffix(".png"), ylabel="eager time / compiled time", skip_missing=True)
    print(f"wrote {out_path} and {out_path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
