"""torch.compile(fullgraph=True) with the default inductor backend on gnnkit's layers: checks
that each layer compiles without graph breaks (forward and backward), that output and input
gradient match eager mode, and times eager against compiled training steps (forward, then
backward into the input and every parameter) on a mid-sized random graph.

The graph is a :class:`gnnkit.ops.Graph` built once outside the compiled region and passed to
the layers in place of ``edge_index`` (``Graph.build(edge_index, num_nodes=N)``).  The compiled
layer gets its own ``Graph`` that no eager call has touched (what a user who compiles first does):
its first call builds the graph's derived state (transpose, self-loop structure, normalisation)
and keeps it in the ``Graph``, the second is compiled once more to read it (``recompile_s``), and
later calls rebuild nothing.  Eager mode uses a second ``Graph`` of the same edges.

Timings are interleaved in ABBA order (round k runs every variant once, every other round in
reverse) after one untimed round:

* ``eager_edge_index_s``: median, eager with the plain ``edge_index`` tensor (gnnkit's per-tensor cache);
* ``eager_s``: median, eager with the prebuilt ``Graph``;
* ``compiled_s``: median, the compiled layer with its ``Graph``;
* ``speedup``: ``eager_s / compiled_s`` (>= 1: compiled is at least as fast as eager);
* ``paired``: the per-round ratios eager/compiled (the two ran back to back, so a slow phase of
  the machine hits both): their median and a 95 % bootstrap interval of that median (2000
  resamples, seeded).  ``verdict`` is ``faster`` when the interval lies above 1, ``slower``
  when below, else ``parity``: the difference is within this machine's noise.

``--model`` times a two-layer model of each type instead (conv, ReLU, conv; cross-entropy against fixed
random labels), compiled as a whole: what a user compiles, with the ReLU between the layers and the loss for
inductor to fuse and compile's fixed per-step cost paid once for both layers
(``layers_compile_model.json``).

Example::

    nice -n 10 python benchmarks/layers_compile.py                 # CPU, JSON in benchmarks/results/
    nice -n 10 python benchmarks/layers_compile.py --model         # two-layer models
    python benchmarks/layers_compile.py --device cuda --nodes 200000 --edges 2000000
"""
import argparse
import contextlib
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import torch
from torch._dynamo.utils import counters
from torch.nn import Linear, ReLU, Sequential

import gnnkit.nn as gnn
from gnnkit._atomic import write_json_atomic
from gnnkit.ops import Graph
from gnnkit.profile import interleaved, paired_ratio

RESULTS = Path(__file__).resolve().parent / "results"


def layers(f: int):
    return {
        "GCNConv": lambda: gnn.GCNConv(f, f),
        "SAGEConv": lambda: gnn.SAGEConv(f, f),
        # eval: same neighbour order; the random graph is not sorted by destination (gnnkit reads input order)
        "SAGEConv-lstm": lambda: gnn.SAGEConv(f, f, aggr="lstm", aggr_kwargs={"require_sorted": False}).eval(),
        "GATConv": lambda: gnn.GATConv(f, f // 8, heads=8),
        "GATv2Conv": lambda: gnn.GATv2Conv(f, f // 4, heads=4),
        "GINConv": lambda: gnn.GINConv(Sequential(Linear(f, f), ReLU(), Linear(f, f))),
        "GINEConv": lambda: gnn.GINEConv(Sequential(Linear(f, f), ReLU(), Linear(f, f)), edge_dim=4),
        "MPNNConv": lambda: gnn.MPNNConv(f, edge_dim=4, num_steps=2),
    }


class TwoLayer(torch.nn.Module):
    """``--model``: two layers of one type with a ReLU between them, compiled as a whole (what a user compiles);
    trained against fixed random labels with cross-entropy."""

    def __init__(self, make):
        super().__init__()
        self.conv1, self.conv2 = make(), make()

    def forward(self, x, adj, *extra):
        return self.conv2(torch.relu(self.conv1(x, adj, *extra)), adj, *extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20000, help="nodes of the random graph (default 20000)")
    ap.add_argument("--edges", type=int, default=200000, help="edges (default 200000)")
    ap.add_argument("--features", type=int, default=64, help="feature width (default 64)")
    ap.add_argument("--reps", type=int, default=30, help="timed rounds, at least (default 30)")
    ap.add_argument("--budget-s", type=float, default=40.0,
                    help="more rounds until about this many seconds of timing per layer (default 40; the "
                         "per-round ratio of a ~10 ms step needs ~100+ rounds to settle on a noisy VM)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--only", default=None, help="comma-separated layer names (default: all)")
    ap.add_argument("--mode", default=None, choices=["default", "reduce-overhead", "max-autotune",
                                                     "max-autotune-no-cudagraphs"],
                    help="torch.compile's mode (default: none given).  reduce-overhead records CUDA graphs on a "
                         "GPU, which removes the per-step launch cost that bounds these layers at N = 200k there "
                         "(docs/kernels.md); the JSON's name then ends in _<mode>")
    ap.add_argument("--model", action="store_true",
                    help="time a two-layer model per layer type (conv, ReLU, conv; cross-entropy against fixed "
                         "random labels), compiled as a whole, instead of one layer with a sum loss; the JSON's "
                         "name then ends in _model")
    args = ap.parse_args()
    if args.reps < 1:
        ap.error(f"--reps must be >= 1 (timed rounds), got {args.reps}")
    if args.budget_s < 0:
        ap.error(f"--budget-s must be >= 0 seconds, got {args.budget_s}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available here; use --device cpu")
    warnings.filterwarnings("ignore")
    g = torch.Generator().manual_seed(0)
    n, e, f = args.nodes, args.edges, args.features
    ei = torch.randint(0, n, (2, e), generator=g).to(device)
    ea = torch.randn(e, 4, generator=g).to(device)
    labels = torch.randint(0, f, (n,), generator=g).to(device)  # --model's targets
    graph = Graph.build(ei, num_nodes=n)  # eager's (its state is built by the eager calls)
    out = {}
    for name, make in layers(f).items():
        if args.only and name not in args.only.split(","):
            continue
        torch.manual_seed(0)
        torch._dynamo.reset()
        counters.clear()
        layer = (TwoLayer(make) if args.model else make()).to(device)
        extra = (ea,) if name in ("GINEConv", "MPNNConv") else ()
        x = torch.randn(n, f, generator=g).to(device).requires_grad_(True)
        graph_c = Graph.build(ei.clone(), num_nodes=n)  # the compiled layer's: no eager call touches it

        def run(m, adj):
            """One training step of the layer: forward, backward into x and every parameter (with
            reduce-overhead, copies of the output and x's gradient: CUDA graphs overwrite their outputs at the
            next replay; the copies are made for every variant alike)."""
            x.grad = None
            for q in layer.parameters():
                q.grad = None
            if m is not layer and args.mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()  # a new training step: earlier outputs may be reused
            y = m(x, adj, *extra)
            (torch.nn.functional.cross_entropy(y, labels) if args.model else y.sum()).backward()
            if args.mode == "reduce-overhead":
                return y.detach().clone(), x.grad.clone()
            return y.detach(), x.grad

        rec = {}
        stack = contextlib.ExitStack()
        # eval mode (above) and cuDNN's LSTM, whose backward refuses eval mode: the LSTM layer runs without cuDNN
        # on CUDA, eager and compiled alike
        no_cudnn = name == "SAGEConv-lstm" and device.type == "cuda"
        if no_cudnn:
            rec["cudnn"] = False
        try:
            if no_cudnn:
                stack.enter_context(torch.backends.cudnn.flags(enabled=False))
            if args.mode == "reduce-overhead":
                # CUDA graphs free a replay's outputs at the next step, and the derived state a compiled first call
                # keeps in the Graph is such an output: the state is built by one eager step instead
                run(layer, graph_c)
                rec["graph_state_built_eagerly"] = True
            compiled = torch.compile(layer, fullgraph=True, mode=args.mode)
            t0 = time.perf_counter()
            got = run(compiled, graph_c)
            rec["compile_s"] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()
            run(compiled, graph_c)  # compiled once more, now reading the state the first call kept
            rec["recompile_s"] = round(time.perf_counter() - t0, 1)
            ref = run(layer, graph)
            step_s = float("inf")
            for _ in range(3):  # the fastest of 3 eager steps, a rough third of a round (one slow step
                t0 = time.perf_counter()  # would cut the rounds the budget buys)
                run(layer, graph)
                step_s = min(step_s, time.perf_counter() - t0)
            rounds = max(args.reps, int(args.budget_s / (3 * step_s)))
            rec["max_abs_diff_out"] = float((got[0] - ref[0]).abs().max())
            rec["max_abs_diff_grad"] = float((got[1] - ref[1]).abs().max())
            times = interleaved({"eager_edge_index_s": lambda: run(layer, ei), "eager_s": lambda: run(layer, graph),
                                 "compiled_s": lambda: run(compiled, graph_c)}, rounds, device, alternate=True)
            rec["compiled_graphs"] = int(counters["stats"]["unique_graphs"])
            rec.update({k: statistics.median(v) for k, v in times.items()})
            rec["speedup"] = round(rec["eager_s"] / rec["compiled_s"], 3)
            rec["speedup_vs_edge_index"] = round(rec["eager_edge_index_s"] / rec["compiled_s"], 3)
            rec["paired"] = paired_ratio(times["eager_s"], times["compiled_s"])
            rec["compiles_fullgraph"] = True
        except Exception as exc:  # report, do not hide: the JSON says what broke
            rec["compiles_fullgraph"] = False
            rec["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        finally:
            stack.close()
        out[name] = rec
        print(name, json.dumps(rec), flush=True)
    path = RESULTS / (f"layers_compile{'' if device.type == 'cpu' else '_' + device.type}"
                      f"{'_' + args.mode if args.mode else ''}{'_model' if args.model else ''}.json")
    header = {"graph": {"nodes": n, "edges": e, "features": f}, "mode": args.mode,
              "protocol": ("two layers of the type (conv, ReLU, conv), cross-entropy, compiled as one model"
                           if args.model else "one layer, loss = output sum"),
              "input": "gnnkit.ops.Graph built once; the compiled layer's untouched by eager calls",
              "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "reps": args.reps, "budget_s": args.budget_s,
              # glibc's allocator settings change CPU step times by up to ~3x (docs/layers/benchmarks.md)
              "allocator_env": {k: v for k, v in sorted(os.environ.items())
                                if k.startswith("MALLOC_") or k == "LD_PRELOAD"}}
    if args.only and path.exists():  # a partial run updates its layers in the existing file (same setup only)
        old = json.loads(path.read_text())
        if all(old.get(k) == v for k, v in header.items()):
            out = {**old["results"], **out}
    write_json_atomic({**header, "load_avg_at_end": list(os.getloadavg()), "results": out}, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
