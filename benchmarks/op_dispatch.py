"""What one call of a registered gnnkit op costs on top of its implementation: the op as gnnkit registers
it (``torch.library.Library``, ``gnnkit/ops/_custom_op.py``) against the same implementation registered
with ``torch.library.custom_op`` (what gnnkit used before) and against the implementation called directly
(gnnkit's eager path).  A compiled graph calls every op through the dispatcher, so this is a fixed cost per
op per step of every compiled layer.

The op is ``gnnkit::spmm`` (sum, no values) on a small random graph, so the work is small next to the
overhead; calls run without gradients (as in a compiled graph's forward), in blocks of ``--calls`` calls
interleaved in rounds (``gnnkit.profile.interleaved``: round k runs every variant's block once, every other round
in reverse, after one untimed block each); the medians of the per-call times are reported,
and the overheads as differences to the direct call.

    python benchmarks/op_dispatch.py                       # CPU; JSON in benchmarks/results/op_dispatch.json
    python benchmarks/op_dispatch.py --device cuda
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from gnnkit._atomic import write_json_atomic
from gnnkit.ops import Graph
from gnnkit.ops.primitives import spmm_op
from gnnkit.profile.measure import interleaved, require_at_least_one

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--edges", type=int, default=400)
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--calls", type=int, default=500, help="calls per variant per round (default 500)")
    ap.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/op_dispatch[_cuda].json)")
    args = ap.parse_args()
    require_at_least_one(ap, args, "nodes", "edges", "features", "calls", "rounds")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available here; use --device cpu")
    g = torch.Generator().manual_seed(0)
    graph = Graph.build(torch.randint(0, args.nodes, (2, args.edges), generator=g).to(device), num_nodes=args.nodes)
    x = torch.randn(args.nodes, 1, args.features, generator=g).to(device)
    rowptr, col = graph.rowptr, graph.col
    # the same implementation behind torch.library.custom_op, in a namespace of its own
    if not hasattr(torch.ops.gnnkit_bench, "spmm"):  # (registered once per process)
        as_custom_op = torch.library.custom_op("gnnkit_bench::spmm", mutates_args=())(spmm_op._fn)
        as_custom_op.register_fake(lambda rowptr, col, value, x, reduce, plan=None, plan_meta=None:
                                   x.new_empty((rowptr.shape[0] - 1, x.shape[1], x.shape[2])))
    variants = {
        "direct": lambda: spmm_op._fn(rowptr, col, None, x, "sum"),
        "gnnkit op (torch.library.Library)": lambda: torch.ops.gnnkit.spmm.default(rowptr, col, None, x, "sum"),
        "torch.library.custom_op": lambda: torch.ops.gnnkit_bench.spmm.default(rowptr, col, None, x, "sum"),
    }
    outs = [fn() for fn in variants.values()]
    assert all(torch.equal(outs[0], o) for o in outs[1:]), "the variants disagree"

    def block(fn):  # --calls calls, timed as one
        for _ in range(args.calls):
            fn()
    with torch.no_grad():
        times = interleaved({k: (lambda fn=fn: block(fn)) for k, fn in variants.items()}, args.rounds, device,
                            alternate=True)
    med = {k: statistics.median(v) / args.calls * 1e6 for k, v in times.items()}
    report = {"op": "gnnkit::spmm (sum)", "graph": {"nodes": args.nodes, "edges": args.edges,
                                                    "features": args.features},
              "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "rounds": args.rounds, "calls": args.calls,
              "median_us_per_call": {k: round(v, 2) for k, v in med.items()},
              "overhead_us_over_direct": {k: round(v - med["direct"], 2) for k, v in med.items() if k != "direct"}}
    for k, v in med.items():
        extra = "" if k == "direct" else f"   (+{v - med['direct']:.1f} µs over direct)"
        print(f"{k:36s} {v:8.1f} µs per call{extra}")
    out = Path(args.out) if args.out else RESULTS / f"op_dispatch{'_cuda' if device.type == 'cuda' else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
