"""gnnkit's layers against PyG's on Cora as people train it: the first layer of each README model
(GCN and SAGE 1433 -> 16, GIN with an MLP 1433 -> 16 -> 16, GAT 1433 -> 8 heads of 8), PyG's weights
loaded into gnnkit's, one training step each (forward, ``out.sum().backward()`` into every
parameter; the input features need no gradient), CPU.

Three ways of passing the graph:

* ``same``: the dataset's ``edge_index`` tensor on every call (full-batch training): gnnkit builds
  its CSR structure once and finds it again by the tensor;
* ``fresh``: a new copy of it on every call: gnnkit rebuilds the structure (sorts) on every call, PyG's
  scatter path needs none;
* ``shuffled``: a new copy on every call with the edges in another order (one of 8 seeded permutations,
  in turn), as a mini-batch loader hands them over: Cora's own list is already in CSR order, which
  some sorts finish faster.

Timings are interleaved in ABBA order (round ``k`` runs every variant once, every other round in
reverse) after one untimed round; ``speedup`` per layer and input is the median of the per-round
ratios PyG / gnnkit (> 1: gnnkit faster) with a 95 % bootstrap interval and a verdict
(``gnnkit.profile.paired_ratio``).  Outputs and parameter gradients are checked against PyG.

Example::

    python benchmarks/cora_layers.py                 # JSON + PNG in benchmarks/results/
    python benchmarks/cora_layers.py --only GAT --budget-s 10
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

import gnnkit.nn as gnn
from gnnkit._atomic import write_json_atomic
from gnnkit.data import load_dataset
from gnnkit.profile import interleaved, paired_ratio, plot_ratios

RESULTS = Path(__file__).resolve().parent / "results"
INPUTS = ("same", "fresh", "shuffled")


def layer_pairs(f_in: int):
    """name -> (gnnkit layer, PyG layer) with the same weights."""
    def mlp():
        return Sequential(Linear(f_in, 16), ReLU(), Linear(16, 16))
    pairs = {
        "GCN": (gnn.GCNConv(f_in, 16), pnn.GCNConv(f_in, 16)),
        "SAGE": (gnn.SAGEConv(f_in, 16), pnn.SAGEConv(f_in, 16)),
        "GIN": (gnn.GINConv(mlp()), pnn.GINConv(mlp())),
        "GAT": (gnn.GATConv(f_in, 8, heads=8), pnn.GATConv(f_in, 8, heads=8)),
    }
    for ours, theirs in pairs.values():
        ours.load_state_dict(theirs.state_dict())
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40, help="timed rounds, at least (default 40)")
    ap.add_argument("--budget-s", type=float, default=20.0,
                    help="more rounds until about this many seconds of timing per layer (default 20)")
    ap.add_argument("--only", default=None, help="comma-separated layers of GCN,SAGE,GIN,GAT (default: all)")
    ap.add_argument("--out", default=str(RESULTS / "cora_layers_cpu.json"), help="JSON path (a PNG next to it)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1 (timed rounds), got {args.rounds}")
    if not args.budget_s >= 0:  # nan too
        ap.error(f"--budget-s must be >= 0 seconds, got {args.budget_s}")
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    data = load_dataset("Cora")[0]
    x, ei = data.x, data.edge_index
    g = torch.Generator().manual_seed(0)
    shuffled = [ei[:, torch.randperm(ei.size(1), generator=g)] for _ in range(8)]
    pairs = layer_pairs(x.size(1))
    only = None if args.only is None else args.only.split(",")
    if only is not None and not set(only) <= set(pairs):
        ap.error(f"--only: unknown layers {sorted(set(only) - set(pairs))}; choose from {sorted(pairs)}")
    cpu = torch.device("cpu")
    results = {}
    for name, (ours, theirs) in pairs.items():
        if only is not None and name not in only:
            continue

        calls = {"gnnkit": 0, "pyg": 0}  # each library walks the shuffled copies in the same turn

        def step(m, inp, lib="gnnkit"):
            m.zero_grad(set_to_none=True)
            if inp == "shuffled":
                adj = shuffled[calls[lib] % len(shuffled)].clone()
                calls[lib] += 1
            else:
                adj = ei.clone() if inp == "fresh" else ei
            out = m(x, adj)
            out.sum().backward()
            return out.detach(), [p.grad for p in m.parameters()]

        a, ga = step(ours, "same")
        b, gb = step(theirs, "same")
        rec = {"max_abs_diff_out": float((a - b).abs().max()),
               "max_abs_diff_grad": max(float((p - q).abs().max()) for p, q in zip(ga, gb))}
        with torch.no_grad():  # another edge order: the same sums up to rounding
            rec["max_abs_diff_out_shuffled"] = float((ours(x, shuffled[0].clone()) - b).abs().max())
        t0 = time.perf_counter()
        for _ in range(2):
            step(ours, "fresh")
            step(theirs, "fresh", "pyg")
        per_round = 1.5 * (time.perf_counter() - t0)  # two (gnnkit, PyG) pairs, ~2/3 of a round of six calls
        rounds = max(args.rounds, int(args.budget_s / max(per_round, 1e-9)))
        fns = {f"{lib}_{inp}": (lambda m=m, inp=inp, lib=lib: step(m, inp, lib))
               for inp in INPUTS for lib, m in (("gnnkit", ours), ("pyg", theirs))}
        times = interleaved(fns, rounds, cpu, alternate=True)
        rec["median_ms"] = {k: round(1e3 * sorted(v)[len(v) // 2], 3) for k, v in times.items()}
        rec["speedup"] = {inp: paired_ratio(times[f"pyg_{inp}"], times[f"gnnkit_{inp}"]) for inp in INPUTS}
        results[name] = rec
        print(name, rec, flush=True)
    report = {"dataset": "Cora", "nodes": int(x.size(0)), "edges": int(ei.size(1)), "features": int(x.size(1)),
              "device": f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)", "torch": torch.__version__,
              "step": "forward, out.sum().backward(); x needs no gradient",
              "allocator_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")},
              "load_avg_at_end": list(os.getloadavg()), "results": results}
    out = Path(args.out)
    write_json_atomic(report, out)
    plot(report, out.with_suffix(".png"))
    print(f"wrote {out}")


def plot(report: dict, path: Path) -> None:
    plot_ratios(report["results"], {"same": "same edge_index tensor", "fresh": "fresh copy per call",
                                    "shuffled": "fresh copy, shuffled edges"},
                f"Cora training step, {report['device']}", path)


if __name__ == "__main__":
    main()
