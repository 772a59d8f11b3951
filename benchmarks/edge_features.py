"""Layers that map edge features through a linear layer (GINE, GATv2 with ``edge_dim``, MPNN), CPU training
steps: gnnkit against the same layer with the plain ``lin(edge_attr)`` it used before
``gnnkit.nn._utils.edge_linear``, and against PyG's layer with the same weights.

Why: autograd's weight gradient of ``F.linear(x, W)`` is ``grad^T @ x`` (``[out, E] @ [E, in]``), which MKL runs
4-13x slower than ``x^T @ grad`` for 2-8 input features and hundreds of thousands of rows (the JSON's
``matmul`` record times the two products alone); ``edge_linear`` gives autograd the second form, with the bias
as one more weight row.  It takes that form for 2-15 edge features, so ``--edge-dim`` is one of those.

Random graph (``--nodes``, ``--edges``, sources and destinations uniform), ``--features`` node features,
``--edge-dim`` edge features; one step = ``out = layer(x, edge_index, edge_attr)``, ``out.backward(g)`` with a
fixed ``g`` and ``x.requires_grad``.  Variants timed in turn (ABBA rounds, ``gnnkit.profile.interleaved``) in
one process; per layer the median step time of each and the paired ratios (median of per-round ratios, 95 %
bootstrap interval): ``speedup["plain_linear"]`` = plain-``lin`` time / gnnkit time, ``speedup["pyg"]`` = PyG
time / gnnkit time.  Writes ``benchmarks/results/edge_features.json`` and ``.png``.

Example::

    nice -n 10 python benchmarks/edge_features.py                 # GINE, GATv2, MPNN, E = 200k
    python benchmarks/edge_features.py --layers gine --edge-dim 8 --rounds 6
"""
import argparse
import contextlib
import statistics
from pathlib import Path

import torch
import torch_geometric.nn as pnn
from torch.nn import Linear, ReLU, Sequential

import gnnkit.nn as gnn
import gnnkit.nn.gatv2_conv as gatv2_mod
import gnnkit.nn.gine_conv as gine_mod
import gnnkit.nn.mpnn_conv as mpnn_mod
from gnnkit._atomic import write_json_atomic
from gnnkit.profile import interleaved, paired_ratio, plot_ratios, require_at_least_one

RESULTS = Path(__file__).resolve().parent / "results"
LAYERS = ("gine", "gatv2", "mpnn")
_MODULES = {"gine": gine_mod, "gatv2": gatv2_mod, "mpnn": mpnn_mod}


def build(layer: str, f: int, d: int):
    """(gnnkit layer, PyG layer with the same weights or None)."""
    if layer == "gine":
        mine = gnn.GINEConv(Sequential(Linear(f, f), ReLU(), Linear(f, f)), edge_dim=d)
        theirs = pnn.GINEConv(Sequential(Linear(f, f), ReLU(), Linear(f, f)), edge_dim=d)
    elif layer == "gatv2":
        mine = gnn.GATv2Conv(f, f // 4, heads=4, edge_dim=d)
        theirs = pnn.GATv2Conv(f, f // 4, heads=4, edge_dim=d)
    else:
        return gnn.MPNNConv(f, edge_dim=d, num_steps=1), None
    theirs.load_state_dict(mine.state_dict())
    return mine, theirs


@contextlib.contextmanager
def plain_linear(layer: str):
    """The layer's module calls ``lin(x)`` instead of ``edge_linear(lin, x)`` (its code before the change)."""
    mod = _MODULES[layer]
    kept = mod.edge_linear
    mod.edge_linear = lambda lin, x: lin(x)
    try:
        yield
    finally:
        mod.edge_linear = kept


def matmul_forms(e: int, f: int, d: int, rounds: int) -> dict:
    """The two products for a weight gradient alone: ``grad^T @ x`` against ``(x^T @ grad)^T``."""
    g, x = torch.randn(e, f), torch.randn(e, d)
    times = interleaved({"gradT_x": lambda: g.t() @ x, "xT_grad": lambda: (x.t() @ g).t()}, rounds, torch.device("cpu"),
                        alternate=True)
    return {"gradT_x_ms": round(statistics.median(times["gradT_x"]) * 1e3, 3),
            "xT_grad_ms": round(statistics.median(times["xT_grad"]) * 1e3, 3),
            "speedup": paired_ratio(times["gradT_x"], times["xT_grad"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20000, help="nodes (default 20000)")
    ap.add_argument("--edges", type=int, default=200000, help="edges (default 200000)")
    ap.add_argument("--features", type=int, default=64, help="node feature width (default 64; a multiple of 4)")
    ap.add_argument("--edge-dim", type=int, default=4, help="edge feature width (default 4)")
    ap.add_argument("--rounds", type=int, default=10, help="timed ABBA rounds per layer (default 10)")
    ap.add_argument("--layers", default=",".join(LAYERS), help=f"comma-separated, of {', '.join(LAYERS)}")
    ap.add_argument("--out", default=str(RESULTS / "edge_features.json"), help="JSON path (a .png beside it)")
    args = ap.parse_args()
    require_at_least_one(ap, args, "nodes", "edges", "features", "edge_dim", "rounds")
    if not 1 < args.edge_dim < 16:
        ap.error(f"--edge-dim must be 2-15 (edge_linear's fast form; otherwise both gnnkit variants run the same "
                 f"code), got {args.edge_dim}")
    if Path(args.out).suffix != ".json":
        ap.error(f"--out must name a .json file (the plot is written beside it as .png), got {args.out!r}")
    if args.features % 4:
        ap.error(f"--features must be a multiple of 4 (GATv2 runs 4 heads of features/4), got {args.features}")
    layers = list(dict.fromkeys(s.strip() for s in args.layers.split(",") if s.strip()))  # each once
    unknown = [s for s in layers if s not in LAYERS]
    if unknown or not layers:
        ap.error(f"--layers: unknown {unknown}; choose from {', '.join(LAYERS)}")

    torch.manual_seed(0)
    n, e, f, d = args.nodes, args.edges, args.features, args.edge_dim
    ei = torch.randint(0, n, (2, e))
    x = torch.randn(n, f, requires_grad=True)
    ea = torch.randn(e, d)
    cpu = torch.device("cpu")
    report = {"graph": {"nodes": n, "edges": e, "features": f, "edge_dim": d}, "device": "cpu",
              "threads": torch.get_num_threads(), "torch": torch.__version__, "rounds": args.rounds,
              "matmul": matmul_forms(e, f, d, args.rounds), "results": {}}
    print(f"weight-gradient product [{e} x {f}] with [{e} x {d}]: grad^T @ x {report['matmul']['gradT_x_ms']} ms, "
          f"(x^T @ grad)^T {report['matmul']['xT_grad_ms']} ms")
    for layer in layers:
        torch.manual_seed(1)
        mine, theirs = build(layer, f, d)
        g = torch.randn(mine(x, ei, ea).shape)

        def step(mod):
            x.grad = None
            mod.zero_grad(set_to_none=True)
            mod(x, ei, ea).backward(g)

        def plain(mod=mine, layer=layer):
            with plain_linear(layer):
                step(mod)

        fns = {"gnnkit": lambda mod=mine: step(mod), "plain_linear": plain}
        if theirs is not None:
            fns["pyg"] = lambda mod=theirs: step(mod)
        times = interleaved(fns, args.rounds, cpu, warmup=1, alternate=True)
        rec = {k + "_ms": round(statistics.median(v) * 1e3, 2) for k, v in times.items()}
        rec["speedup"] = {k: paired_ratio(times[k], times["gnnkit"]) for k in fns if k != "gnnkit"}
        report["results"][layer] = rec
        print(layer, {k: v for k, v in rec.items() if k != "speedup"},
              {k: f"{v['median']} [{v['ci95'][0]}, {v['ci95'][1]}]" for k, v in rec["speedup"].items()})
    out = Path(args.out)
    write_json_atomic(report, out)
    inputs = {"plain_linear": "gnnkit with lin(edge_attr) / gnnkit", "pyg": "PyG / gnnkit"}  # MPNN: no PyG bar
    plot_ratios(report["results"], inputs, f"edge features, CPU training step (N={n}, E={e}, F={f}, D={d})",
                out.with_suffix(".png"), ylabel="other time / gnnkit time", skip_missing=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
