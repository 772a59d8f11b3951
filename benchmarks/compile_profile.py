"""Where a training step of one layer spends its time, eager against ``torch.compile(fullgraph=True)``: the
torch profiler's table (top ops by self device time, or self CPU time on CPU), the number of kernels launched
per step, the wall time per step and the host time per step (call to return, the device idle at the start:
on a GPU, a step whose host time reaches its wall time is bound by launching, not by the device), for the
graph ``benchmarks/layers_compile.py`` times.  The companion of that benchmark: it says *whether* compiling
pays, this says where the difference goes.

    python benchmarks/compile_profile.py --device cuda --layer GCNConv --nodes 200000 --edges 2000000
    python benchmarks/compile_profile.py --layer SAGEConv --nodes 20000 --edges 200000   # CPU

On CUDA it also says whether a step synchronises with the device (``torch.cuda.set_sync_debug_mode("error")``
on one step: "none", or where the first synchronisation happened); ``--python-rows N`` adds cProfile's top N
functions by own time over each variant's steps (where the host time goes).  Prints the tables; ``--out FILE``
also writes them (and the per-step figures) as JSON.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
import traceback

import torch
from layers_compile import layers  # (benchmarks/, this script's folder, is on sys.path when run as a script)
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from gnnkit._atomic import write_json_atomic
from gnnkit.ops import Graph
from gnnkit.profile import require_at_least_one, sync as prof_sync


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layer", default="GCNConv", choices=sorted(layers(8)))
    ap.add_argument("--nodes", type=int, default=20_000)
    ap.add_argument("--edges", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="profiled steps per variant (after 5 warm-up steps)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rows", type=int, default=15, help="rows of each table")
    ap.add_argument("--python-rows", type=int, default=0,
                    help="also print (and keep) cProfile's top rows by own time for each variant's steps: which "
                         "Python functions the host time goes to (default 0: none)")
    ap.add_argument("--out", default=None, help="also write the tables and figures to this JSON file")
    args = ap.parse_args()
    if args.python_rows < 0:
        ap.error(f"--python-rows must be 0 or more, got {args.python_rows}")
    require_at_least_one(ap, args, "nodes", "edges", "features", "steps", "rows")
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    n, e, f = args.nodes, args.edges, args.features
    ei = torch.randint(0, n, (2, e), generator=g).to(device)
    torch.manual_seed(0)
    layer = layers(f)[args.layer]().to(device)
    x = torch.randn(n, f, generator=g).to(device).requires_grad_(True)
    # the layers with edge features get layers_compile.py's [E, 4] ones
    extra = (torch.randn(e, 4, generator=g).to(device),) if args.layer in ("GINEConv", "MPNNConv") else ()
    cuda = device.type == "cuda"
    def sync() -> None:
        prof_sync(device)
    variants = {"eager": (layer, Graph.build(ei, num_nodes=n)),
                "compiled": (torch.compile(layer, fullgraph=True), Graph.build(ei.clone(), num_nodes=n))}
    report = {"layer": args.layer, "graph": {"nodes": n, "edges": e, "features": f}, "device": str(device),
              "torch": torch.__version__, "steps": args.steps, "variants": {}}
    sort_by = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    for name, (m, adj) in variants.items():
        def step():
            x.grad = None
            for q in layer.parameters():
                q.grad = None
            m(x, adj, *extra).sum().backward()

        for _ in range(5):
            step()
        sync()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        wall_ms = (time.perf_counter() - t0) / args.steps * 1e3
        # host time: from the call to its return, the device idle at the start (synchronised before each
        # step); a step whose host time reaches its wall time is host-bound (the device waits for launches)
        host = []
        for _ in range(args.steps):
            sync()
            t0 = time.perf_counter()
            step()
            host.append(time.perf_counter() - t0)
        sync()
        host_ms = statistics.median(host) * 1e3
        syncs = None
        if cuda:  # does a step wait for the device?  torch raises at the first synchronising call
            torch.cuda.set_sync_debug_mode("error")
            try:
                step()
                syncs = "none"
            except RuntimeError as err:
                syncs = "".join(traceback.format_exception(err)[-6:])
            finally:
                torch.cuda.set_sync_debug_mode("default")
            sync()
        python_table = None
        if args.python_rows:
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(args.steps):
                step()
            sync()
            pr.disable()
            buf = io.StringIO()
            pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(args.python_rows)
            python_table = buf.getvalue()
        with profile(activities=activities) as prof:
            for _ in range(args.steps):
                step()
            sync()
        events = prof.key_averages()
        on_device = [ev for ev in events if getattr(ev, "device_type", None) == DeviceType.CUDA]  # the kernels
        kernels = sum(ev.count for ev in on_device)
        # kernel rows only: an operator row repeats its kernels' device time
        device_ms = sum(ev.self_device_time_total for ev in on_device) / 1e3 / args.steps if cuda else None
        table = events.table(sort_by=sort_by, row_limit=args.rows)
        print(f"== {args.layer} {name}: {wall_ms:.3f} ms per step (wall, unprofiled), host {host_ms:.3f} ms"
              + (f"; device time {device_ms:.3f} ms, {kernels / args.steps:.0f} kernels per step" if cuda else ""))
        if cuda:
            print(f"== {args.layer} {name}: device synchronisations in a step: {syncs}")
        print(table, flush=True)
        if python_table:
            print(python_table, flush=True)
        report["variants"][name] = {"wall_ms": wall_ms, "host_ms": host_ms, "device_ms": device_ms,
                                    "kernels_per_step": kernels / args.steps if cuda else None, "syncs": syncs,
                                    "table": table, "python_table": python_table}
    if args.out:
        write_json_atomic(report, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
