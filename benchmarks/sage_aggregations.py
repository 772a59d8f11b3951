"""SAGEConv with PyG's aggregations: gnnkit's CSR paths against PyG's layer, same weights, one run.

For each aggregation a training step (forward, then backward into ``x`` and every parameter) of
``SAGEConv(F, F, aggr=...)`` on a random graph is timed for three variants, interleaved (rep k runs
every variant once), median reported, and the peak memory of one step measured:

* ``gnnkit``: the layer as shipped (sum/mean/max/min one SpMM; var/std two mean SpMMs; powermean a
  mean SpMM between elementwise powers of node features; softmax ``gnnkit.ops.softmax_aggregate_slots``,
  which keeps no per-edge tensor for its backward; median ``gnnkit.ops.quantile_aggregate_slots``, one
  sort of (row, value) keys);
* ``gnnkit-gathered``: the same layer forced onto its generic path (PyG's ``Aggregation`` module on
  ``[E, F]`` messages gathered in CSR order) — what softmax, powermean and median ran before their
  CSR paths existed;
* ``pyg``: ``torch_geometric.nn.SAGEConv`` with the same weights.

Outputs are checked equal (``max_abs_diff``) before timing.  JSON and a bar plot in
``benchmarks/results/sage_aggregations_<device>.{json,png}``.

Example::

    python benchmarks/sage_aggregations.py                       # CPU, N=20k E=200k F=64
    python benchmarks/sage_aggregations.py --device cuda --nodes 200000 --edges 2000000
"""
import argparse
import statistics
from pathlib import Path

import torch
import torch_geometric
import torch_geometric.nn as pnn

import gnnkit.nn as gnn
from gnnkit._atomic import write_figure_atomic, write_json_atomic
from gnnkit.profile import PeakMemory, interleaved

RESULTS = Path(__file__).resolve().parent / "results"
AGGRS = ["mean", "var", "std", "softmax", "powermean", "median"]
VARIANTS = ["gnnkit", "gnnkit-gathered", "pyg"]


def _models(aggr: str, f: int, device: torch.device) -> dict:
    kwargs = {"aggr_kwargs": {"p": 2.0}} if aggr == "powermean" else {}
    torch.manual_seed(0)
    ref = pnn.SAGEConv(f, f, aggr=aggr, **kwargs).to(device)
    out = {}
    for name in VARIANTS[:2]:
        m = gnn.SAGEConv(f, f, aggr=aggr, **kwargs).to(device)
        m.load_state_dict(ref.state_dict())
        if name == "gnnkit-gathered":
            m._kind = None  # the generic path: PyG's module on gathered messages
        out[name] = m
    out["pyg"] = ref
    return out


def _step(model, x, edge_index):
    def run():
        xg = x.detach().requires_grad_(True)
        model.zero_grad(set_to_none=True)
        model(xg, edge_index).square().mean().backward()
    return run


def measure(aggr: str, x: torch.Tensor, edge_index: torch.Tensor, reps: int, device: torch.device) -> dict:
    models = _models(aggr, x.size(1), device)
    with torch.no_grad():
        outs = {k: m(x, edge_index) for k, m in models.items()}
    diff = max((outs[k] - outs["pyg"]).abs().max().item() for k in VARIANTS[:2])
    steps = {k: _step(m, x, edge_index) for k, m in models.items()}
    for fn in steps.values():  # warm-up (also builds gnnkit's cached graph)
        fn()
    probe = PeakMemory(device)
    peaks = {}
    for k, fn in steps.items():
        rec: dict = {}
        with probe.measure(rec):
            fn()
        peaks[k] = rec["peak_bytes"]
    times = interleaved(steps, reps, device, warmup=0)  # warmed up above
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"aggr": aggr, "max_abs_diff": diff,
            "step_s": med, "peak_mib": {k: v / 2 ** 20 for k, v in peaks.items()},
            "speedup_vs_pyg": {k: med["pyg"] / med[k] for k in VARIANTS[:2]},
            "memory_vs_pyg": {k: peaks[k] / peaks["pyg"] if peaks["pyg"] > 0 else float("nan")
                              for k in VARIANTS[:2]}}


def plot(rows: list, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.27
    for ax, key, label in ((axes[0], "step_s", "training step (ms)"), (axes[1], "peak_mib", "peak memory (MiB)")):
        for i, v in enumerate(VARIANTS):
            vals = [r[key][v] * (1000 if key == "step_s" else 1) for r in rows]
            ax.bar([j + (i - 1) * width for j in range(len(rows))], vals, width, label=v)
        ax.set_xticks(range(len(rows)), [r["aggr"] for r in rows])
        ax.set_ylabel(label)
    axes[0].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    write_figure_atomic(fig, path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20000, help="nodes of the random graph (default 20000)")
    ap.add_argument("--edges", type=int, default=200000, help="edges (default 200000)")
    ap.add_argument("--features", type=int, default=64, help="feature width (default 64)")
    ap.add_argument("--reps", type=int, default=7, help="timed steps per variant (default 7)")
    ap.add_argument("--aggrs", default=",".join(AGGRS), help=f"comma-separated (default {','.join(AGGRS)})")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--out", default=None, help="JSON path (default results/sage_aggregations_<device>.json)")
    args = ap.parse_args()
    for flag in ("nodes", "edges", "features", "reps"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag} must be positive")
    device = torch.device(args.device)
    aggrs = [a for a in args.aggrs.split(",") if a]
    unknown = sorted(set(aggrs) - set(AGGRS))
    if unknown:
        ap.error(f"--aggrs: unknown {unknown}; choose from {AGGRS}")
    g = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, args.nodes, (2, args.edges), generator=g).to(device)
    x = (torch.rand(args.nodes, args.features, generator=g) + 0.1).to(device)  # positive: powermean's domain
    rows = []
    for aggr in aggrs:
        r = measure(aggr, x, edge_index, args.reps, device)
        rows.append(r)
        print(f"{aggr:10s} diff {r['max_abs_diff']:.1e}  " + "  ".join(
            f"{k} {r['step_s'][k] * 1000:8.1f} ms {r['peak_mib'][k]:7.1f} MiB" for k in VARIANTS), flush=True)
    meta = {"device": str(device), "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "threads": torch.get_num_threads(), "nodes": args.nodes, "edges": args.edges,
            "features": args.features, "reps": args.reps,
            "step": "forward + backward into x and every parameter (loss: mean of squared output)",
            "peak": PeakMemory(device).method}
    out = Path(args.out) if args.out else RESULTS / f"sage_aggregations_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic({"meta": meta, "results": rows}, out)
    plot(rows, out.with_suffix(".png"),
         f"SAGEConv aggregations, {device.type}, N={args.nodes} E={args.edges} F={args.features}, "
         f"{meta['threads']} threads, median of {args.reps}")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
