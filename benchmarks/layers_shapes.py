"""gnnkit's layers against PyG's on graphs of unusual shape, CPU: does the speed and memory lead hold where
the degree distribution is extreme?

The main layer table (``layers_speed.py``) uses uniform random graphs.  Kernels that bucket rows by degree,
sort edges or build a transposed structure can fall off a cliff on other shapes, so this script times the
same training step on (``N`` nodes, ``E`` edges unless said):

* ``uniform``: endpoints uniform at random (the main table's shape);
* ``powerlaw``: in- and out-degrees power-law, exponent 2.1 (``gnnkit.profile.power_law_graph``);
* ``hub_in``: sources uniform, destinations Zipf-distributed (exponent 1.1): the largest in-degree is ~15 % of
  the edges and a few dozen nodes receive half of them;
* ``star_in`` / ``star_out``: one node receives / sends an edge from / to every other node (``N - 1`` edges);
* ``isolated``: ``10 N`` nodes, the ``E`` edges among the first ``N / 10`` of them (99 % of the nodes have
  no edge: the feature-sized work dominates);
* ``multi``: the ``E`` edges among 100 nodes (every pair many times over, self-loops among them).

Layers (PyG's weights loaded into gnnkit's): GCN F -> F, SAGE F -> F (mean), SAGE-max F -> F, GIN (one
``Linear(F, F)`` as its network), GAT (8 heads of F/8).  One training step per call: forward,
``out.sum().backward()`` into the features (which need a gradient, as a hidden layer's do) and every parameter,
the same ``edge_index`` tensor every call (full-batch training: gnnkit's structure is built on the first call
and kept on the tensor).  gnnkit's and PyG's steps alternate in ABBA rounds after one untimed round;
``speedup`` is the median of the per-round ratios PyG / gnnkit (> 1: gnnkit faster) with a 95 % bootstrap
interval and a verdict (``gnnkit.profile.paired_ratio``).

Peak memory (``gnnkit.profile.PeakMemory``: peak-RSS delta on CPU) of one step after warm-up for each, and
for gnnkit once more with a fresh copy of ``edge_index`` (``gnnkit_fresh``: its structure is built inside the
step, so what it keeps between steps is counted too).  Outputs and gradients are checked against PyG's.

Example::

    python benchmarks/layers_shapes.py                       # JSON + PNG in benchmarks/results/
    python benchmarks/layers_shapes.py --only GCN,GAT --shapes star_in,multi --budget-s 2
"""
import argparse
import gc
import os
import platform
import time
import warnings
from pathlib import Path

import torch
import torch_geometric.nn as pnn
from torch.nn import Linear

import gnnkit.nn as gnn
from gnnkit._atomic import write_json_atomic
from gnnkit.profile import PeakMemory, interleaved, paired_ratio, plot_ratios, power_law_graph

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = ("uniform", "powerlaw", "hub_in", "star_in", "star_out", "isolated", "multi")
LAYERS = ("GCN", "SAGE", "SAGE-max", "GIN", "GAT")


def make_graph(shape: str, n: int, e: int, seed: int = 0):
    """(edge_index, num_nodes) of one of SHAPES."""
    g = torch.Generator().manual_seed(seed)
    if shape == "uniform":
        return torch.randint(0, n, (2, e), generator=g), n
    if shape == "powerlaw":
        spec = power_law_graph(n, e, 2.1, seed=seed)
        return spec.edge_index, spec.num_nodes
    if shape == "hub_in":
        w = torch.arange(1, n + 1, dtype=torch.float64).pow(-1.1)
        dst = torch.randperm(n, generator=g)[torch.multinomial(w, e, replacement=True, generator=g)]
        return torch.stack([torch.randint(0, n, (e,), generator=g), dst]), n
    if shape in ("star_in", "star_out"):
        leaves, hub = torch.arange(1, n), torch.zeros(n - 1, dtype=torch.long)
        return (torch.stack([leaves, hub]) if shape == "star_in" else torch.stack([hub, leaves])), n
    if shape == "isolated":
        return torch.randint(0, max(n // 10, 1), (2, e), generator=g), 10 * n
    if shape == "multi":
        return torch.randint(0, 100, (2, e), generator=g), n
    raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")


def layer_pair(name: str, f: int):
    """(gnnkit layer, PyG layer) with the same weights."""
    if name == "GCN":
        ours, theirs = gnn.GCNConv(f, f), pnn.GCNConv(f, f)
    elif name == "SAGE":
        ours, theirs = gnn.SAGEConv(f, f), pnn.SAGEConv(f, f)
    elif name == "SAGE-max":
        ours, theirs = gnn.SAGEConv(f, f, aggr="max"), pnn.SAGEConv(f, f, aggr="max")
    elif name == "GIN":
        ours, theirs = gnn.GINConv(Linear(f, f)), pnn.GINConv(Linear(f, f))
    elif name == "GAT":
        ours, theirs = gnn.GATConv(f, f // 8, heads=8), pnn.GATConv(f, f // 8, heads=8)
    else:
        raise ValueError(f"unknown layer {name!r}; choose from {', '.join(LAYERS)}")
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20_000, help="N (default 20,000)")
    ap.add_argument("--edges", type=int, default=200_000, help="E (default 200,000)")
    ap.add_argument("--features", type=int, default=64, help="feature width F, a multiple of 8 (default 64)")
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds, at least (default 10)")
    ap.add_argument("--budget-s", type=float, default=6.0,
                    help="more rounds until about this many seconds of timing per layer and shape (default 6)")
    ap.add_argument("--only", default=None, help=f"comma-separated layers of {','.join(LAYERS)} (default: all)")
    ap.add_argument("--shapes", default=None, help=f"comma-separated shapes of {','.join(SHAPES)} (default: all)")
    ap.add_argument("--out", default=None, help="JSON path, a PNG next to it (default benchmarks/results/"
                                                "layers_shapes.json)")
    args = ap.parse_args()
    for name, low in (("nodes", 100), ("edges", 1), ("rounds", 1)):
        if getattr(args, name) < low:
            ap.error(f"--{name} must be >= {low}, got {getattr(args, name)}")
    if args.features < 8 or args.features % 8:
        ap.error(f"--features must be a multiple of 8 (GAT's 8 heads), got {args.features}")
    if not args.budget_s >= 0:  # nan too
        ap.error(f"--budget-s must be >= 0 seconds, got {args.budget_s}")
    layers = LAYERS if args.only is None else tuple(args.only.split(","))
    shapes = SHAPES if args.shapes is None else tuple(args.shapes.split(","))
    for flag, given, known in (("--only", layers, LAYERS), ("--shapes", shapes, SHAPES)):
        if not set(given) <= set(known):
            ap.error(f"{flag}: unknown {sorted(set(given) - set(known))}; choose from {', '.join(known)}")
    warnings.filterwarnings("ignore")
    cpu, probe = torch.device("cpu"), PeakMemory(torch.device("cpu"))
    results = {name: {"speedup": {}, "median_ms_per_step": {}, "peak_mib": {}, "max_abs_diff": {}} for name in layers}
    graphs = {}
    for shape in shapes:
        ei, n = make_graph(shape, args.nodes, args.edges)
        graphs[shape] = {"nodes": n, "edges": int(ei.size(1)),
                         "max_in_degree": int(torch.bincount(ei[1], minlength=n).max()),
                         "max_out_degree": int(torch.bincount(ei[0], minlength=n).max())}
        x = torch.randn(n, args.features, generator=torch.Generator().manual_seed(1), requires_grad=True)
        for name in layers:
            torch.manual_seed(0)
            ours, theirs = layer_pair(name, args.features)

            def step(m, edge_index=ei):
                m.zero_grad(set_to_none=True)
                x.grad = None
                out = m(x, edge_index)
                out.sum().backward()
                return out.detach(), [p.grad for p in m.parameters()] + [x.grad]

            (a, ga), (b, gb) = step(ours), step(theirs)
            rec = results[name]
            rec["max_abs_diff"][shape] = {"out": float((a - b).abs().max()),
                                          "grad": max(float((p - q).abs().max()) for p, q in zip(ga, gb))}
            del a, b, ga, gb
            t0 = time.perf_counter()
            step(ours)
            step(theirs)
            rounds = max(args.rounds, int(args.budget_s / max(time.perf_counter() - t0, 1e-9)))
            times = interleaved({"gnnkit": lambda: step(ours), "pyg": lambda: step(theirs)}, rounds, cpu,
                                alternate=True)
            rec["median_ms_per_step"][shape] = {k: round(1e3 * sorted(v)[len(v) // 2], 3) for k, v in times.items()}
            rec["speedup"][shape] = paired_ratio(times["pyg"], times["gnnkit"])
            peaks = {}
            for key, m, edge_index in (("gnnkit", ours, ei), ("pyg", theirs, ei), ("gnnkit_fresh", ours, ei.clone())):
                step(m, ei)  # warm
                gc.collect()
                got = {}
                with probe.measure(got):
                    step(m, edge_index)
                peaks[key] = round(got.get("peak_bytes", float("nan")) / 2**20, 1)
            rec["peak_mib"][shape] = peaks
            x.grad = None
            print(f"{shape:9s} {name:8s} {rec['median_ms_per_step'][shape]} speedup {rec['speedup'][shape]} "
                  f"peak MiB {peaks}", flush=True)
    report = {"graph": {"nodes": args.nodes, "edges": args.edges, "features": args.features}, "shapes": graphs,
              "device": f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)", "torch": torch.__version__,
              "memory_method": probe.method,
              "step": "forward, out.sum().backward() into x and every parameter; the same edge_index every call",
              "allocator_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")},
              "load_avg_at_end": list(os.getloadavg()), "results": results}
    out = Path(args.out) if args.out else RESULTS / "layers_shapes.json"
    write_json_atomic(report, out)
    plot(report, out.with_suffix(".png"))
    print(f"wrote {out}")


def plot(report: dict, path: Path) -> None:
    shapes = list(report["shapes"])
    plot_ratios(report["results"], {s: s for s in shapes},
                f"graph shapes (N={report['graph']['nodes']:,}, E={report['graph']['edges']:,}), training step, "
                f"{report['device']}", path, skip_missing=True)


if __name__ == "__main__":
    main()
