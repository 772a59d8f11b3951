"""gnnkit's layers against PyG's on small graphs in mini-batches (graph classification), CPU.

A seeded PyG ``DataLoader`` over a TU dataset (default MUTAG, batches of 32 graphs: ~570 nodes, ~1,250
edges) is collated once; every call takes the next batch and a fresh copy of its ``edge_index``, which is
what a loader hands over each step (a new tensor: gnnkit cannot find its CSR structure in its cache and
builds it, PyG's scatter needs none).  Node features are seeded random ``[nodes, F]`` (the datasets' own
are a few one-hot columns); one training step per call: forward, ``out.sum().backward()`` into every
parameter.  Two inputs:

* ``first``: the features need no gradient (a model's first layer: no backward through the aggregation);
* ``hidden``: they do (every later layer: the aggregation's backward runs too).

Layers (PyG's weights loaded into gnnkit's): GIN (MLP F -> F -> F), GCN F -> F, SAGE F -> F (mean), GAT
(8 heads of F/8).  Timings: blocks of ``--block`` consecutive steps, gnnkit's and PyG's block in each
round, in ABBA order (every other round reversed), after one untimed round; ``speedup`` per layer and
input is the median of the per-round ratios PyG / gnnkit (> 1: gnnkit faster) with a 95 % bootstrap
interval and a verdict (``gnnkit.profile.paired_ratio``).  Outputs and parameter gradients of the first
batch are checked against PyG.

Example::

    python benchmarks/minibatch_layers.py                        # JSON + PNG in benchmarks/results/
    python benchmarks/minibatch_layers.py --only GIN --budget-s 5
    GNNKIT_DATA=../shared/datasets python benchmarks/minibatch_layers.py --dataset PROTEINS
"""
import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import torch
import torch_geometric.nn as pnn
from torch.nn import Linear, ReLU, Sequential
from torch_geometric.loader import DataLoader

import gnnkit.nn as gnn
from gnnkit._atomic import write_json_atomic
from gnnkit.data import load_dataset
from gnnkit.profile import interleaved, paired_ratio, plot_ratios

RESULTS = Path(__file__).resolve().parent / "results"
INPUTS = ("first", "hidden")


def layer_pairs(f: int):
    """name -> (gnnkit layer, PyG layer) with the same weights."""
    def mlp():
        return Sequential(Linear(f, f), ReLU(), Linear(f, f))
    pairs = {
        "GIN": (gnn.GINConv(mlp()), pnn.GINConv(mlp())),
        "GCN": (gnn.GCNConv(f, f), pnn.GCNConv(f, f)),
        "SAGE": (gnn.SAGEConv(f, f), pnn.SAGEConv(f, f)),
        "GAT": (gnn.GATConv(f, f // 8, heads=8), pnn.GATConv(f, f // 8, heads=8)),
    }
    for ours, theirs in pairs.values():
        ours.load_state_dict(theirs.state_dict())
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="MUTAG", help="a TU graph-classification dataset (default MUTAG)")
    ap.add_argument("--batch-size", type=int, default=32, help="graphs per batch (default 32)")
    ap.add_argument("--features", type=int, default=64, help="feature width F, a multiple of 8 (default 64)")
    ap.add_argument("--block", type=int, default=20, help="consecutive steps timed as one block (default 20)")
    ap.add_argument("--rounds", type=int, default=20, help="timed rounds, at least (default 20)")
    ap.add_argument("--budget-s", type=float, default=20.0,
                    help="more rounds until about this many seconds of timing per layer and input (default 20)")
    ap.add_argument("--only", default=None, help="comma-separated layers of GIN,GCN,SAGE,GAT (default: all)")
    ap.add_argument("--out", default=None,
                    help="JSON path, a PNG next to it (default benchmarks/results/minibatch_layers_<dataset>.json)")
    args = ap.parse_args()
    for name in ("batch_size", "block", "rounds"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.features < 8 or args.features % 8:
        ap.error(f"--features must be a multiple of 8 (GAT's 8 heads), got {args.features}")
    if not args.budget_s >= 0:  # nan too
        ap.error(f"--budget-s must be >= 0 seconds, got {args.budget_s}")
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    ds = load_dataset(args.dataset)
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches, sizes = zip(*[(b.edge_index, int(b.num_nodes)) for b in loader])
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(n, args.features, generator=g) for n in sizes]
    pairs = layer_pairs(args.features)
    only = None if args.only is None else args.only.split(",")
    if only is not None and not set(only) <= set(pairs):
        ap.error(f"--only: unknown layers {sorted(set(only) - set(pairs))}; choose from {sorted(pairs)}")
    results = {}
    for name, (ours, theirs) in pairs.items():
        if only is not None and name not in only:
            continue
        calls = {"gnnkit": 0, "pyg": 0}  # each library walks the batches in the same turn

        def step(m, inp, lib):
            i = calls[lib] % len(batches)
            calls[lib] += 1
            m.zero_grad(set_to_none=True)
            x = feats[i].requires_grad_(inp == "hidden")
            x.grad = None
            out = m(x, batches[i].clone())  # a fresh tensor, as a loader gives
            out.sum().backward()
            return out.detach(), [p.grad for p in m.parameters()], x.grad

        a, ga, xa = step(ours, "hidden", "gnnkit")
        b, gb, xb = step(theirs, "hidden", "pyg")
        rec = {"max_abs_diff_out": float((a - b).abs().max()),
               "max_abs_diff_grad": max(float((p - q).abs().max()) for p, q in zip(ga + [xa], gb + [xb]))}

        def block(m, inp, lib):
            for _ in range(args.block):
                step(m, inp, lib)

        t0 = time.perf_counter()
        block(ours, "hidden", "gnnkit")
        block(theirs, "hidden", "pyg")
        per_round = time.perf_counter() - t0  # one input's round (two blocks)
        rounds = max(args.rounds, int(args.budget_s / max(per_round, 1e-9)))
        rec["rounds"], rec["block"] = rounds, args.block
        rec["median_ms_per_step"], rec["speedup"] = {}, {}
        for inp in INPUTS:
            times = interleaved({f"gnnkit_{inp}": lambda: block(ours, inp, "gnnkit"),
                                 f"pyg_{inp}": lambda: block(theirs, inp, "pyg")}, rounds, torch.device("cpu"),
                                alternate=True)
            for k, v in times.items():
                rec["median_ms_per_step"][k] = round(1e3 * sorted(v)[len(v) // 2] / args.block, 4)
            rec["speedup"][inp] = paired_ratio(times[f"pyg_{inp}"], times[f"gnnkit_{inp}"])
        results[name] = rec
        print(name, rec, flush=True)
    nodes, edges = sizes, [int(e.size(1)) for e in batches]
    report = {"dataset": args.dataset, "batch_size": args.batch_size, "batches": len(batches),
              "mean_nodes_per_batch": round(sum(nodes) / len(nodes), 1),
              "mean_edges_per_batch": round(sum(edges) / len(edges), 1), "features": args.features,
              "device": f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)", "torch": torch.__version__,
              "step": "forward, out.sum().backward(); a fresh edge_index copy per call; first: x needs no "
                      "gradient, hidden: it does",
              "allocator_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")},
              "load_avg_at_end": list(os.getloadavg()), "results": results}
    out = Path(args.out) if args.out else RESULTS / f"minibatch_layers_{args.dataset.lower()}.json"
    write_json_atomic(report, out)
    plot(report, out.with_suffix(".png"))
    print(f"wrote {out}")


def plot(report: dict, path: Path) -> None:
    plot_ratios(report["results"], {"first": "x needs no gradient (first layer)", "hidden": "x needs a gradient"},
                f"{report['dataset']} batches of {report['batch_size']}, training step, {report['device']}", path)


if __name__ == "__main__":
    main()
