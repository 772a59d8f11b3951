"""CPU speed and peak memory of gnnkit's layers against the same PyG layers, forward+backward.

Synthetic arxiv-like graph: N=169,343 nodes, E=1,166,243 directed edges, F=128 features;
sources uniform, destinations drawn with probability ~ (rank+1)^-0.6 (a power-law in-degree,
max in-degree in the thousands, like a citation graph), node ids shuffled.

Each (layer, implementation) runs in its own subprocess (so caches and the allocator do not
leak between measurements) with ``MALLOC_MMAP_THRESHOLD_=65536`` (large tensors are returned
to the OS on free, so the resident set follows live memory).  Per measurement: inputs and
the adjacency object are built first (PyG's ``SparseTensor`` / ``torch.sparse`` conversions
are not timed), one warm-up call, then ``--reps`` timed calls of ``out = layer(x, adj);
out.backward(g)`` with ``x.requires_grad``; the median is reported.  Peak memory is the
resident-set high-water mark during one more call, minus the resident set before it, measured
by ``gnnkit.profile.PeakMemory`` (the probe ``gnnkit profile`` uses: VmHWM reset through
``/proc/self/clear_refs``, glibc's mmap threshold pinned at 64 KiB during the call).

PyG's LSTM aggregation pads every node to the maximum in-degree (N x max_deg x F floats),
which does not fit in memory on this graph (max in-degree 3,829), nor on a degree-capped copy
(every node keeps its first 16 in-edges: PyG was OOM-killed at 21 GB RSS, gnnkit ran in
7.8 GB).  The LSTM speed comparison therefore runs on a smaller graph from the same generator
(``sage_lstm_small``: N=20,000, same average degree, in-degree capped at 16).

Example::

    nice -n 10 python benchmarks/layers_speed.py            # all layers, JSON + plot
    python benchmarks/layers_speed.py --rounds 3             # interleaved repeats, pooled medians
    python benchmarks/layers_speed.py --layers gcn --reps 3
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import torch

from gnnkit._atomic import write_figure_atomic, write_json_atomic
from gnnkit.profile import PeakMemory, interleaved, skewed_in_degree_graph

RESULTS = Path(__file__).resolve().parent / "results"
N, E, F = 169_343, 1_166_243, 128
LSTM_CAP = 16


SMALL_N = 20_000  # the LSTM comparison graph: same generator, same average degree, degree cap 16


def make_graph(seed: int = 0, cap: int = 0, n: int = N, e: int = E) -> torch.Tensor:
    """The arxiv-like graph (``gnnkit.profile.skewed_in_degree_graph``, destinations ~ rank^-0.6)."""
    return skewed_in_degree_graph(n, e, 0.6, seed=seed, cap=cap)


# ---------------------------------------------------------------------------- layers
def _build(layer: str, impl: str, ei: torch.Tensor):
    """(module, adjacency) for one measurement."""
    import torch_geometric.nn as pnn

    import gnnkit.nn as gnn
    torch.manual_seed(0)
    lib = gnn if impl.startswith("gnnkit") else pnn
    if layer == "gcn":
        mod = lib.GCNConv(F, F, cached=impl.endswith("cached"))
    elif layer == "sage":
        mod = lib.SAGEConv(F, F)
    elif layer == "gin":
        mod = lib.GINConv(torch.nn.Sequential(torch.nn.Linear(F, F), torch.nn.ReLU(), torch.nn.Linear(F, F)))
    elif layer == "gat":
        mod = lib.GATConv(F, F // 8, heads=8)
    elif layer.startswith("sage_lstm"):
        mod = lib.SAGEConv(F, F, aggr="lstm")
    else:
        raise ValueError(layer)
    if "sparsetensor" in impl:
        from torch_sparse import SparseTensor
        adj = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(N, N))
    elif "torchcsr" in impl:
        # adj_t in CSR, every edge one entry (duplicates kept, as edge_index has them: a coalesced matrix would merge
        # the random graph's 214 duplicate edges into weight-2 entries, and SAGE's mean would divide by fewer).
        # Repeated columns within a row break torch's "sorted, distinct" CSR invariant, which torch.sparse.mm does
        # not check (torch.sparse.check_sparse_tensor_invariants would refuse this tensor)
        n = int(ei.max()) + 1 if ei.numel() else 0
        n = max(n, N if layer != "sage_lstm_small" else SMALL_N)
        order = torch.sort(ei[1] * n + ei[0], stable=True).indices
        row, col = ei[1, order], ei[0, order]
        crow = torch.zeros(n + 1, dtype=torch.long)
        crow[1:] = torch.cumsum(torch.bincount(row, minlength=n), 0)
        adj = torch.sparse_csr_tensor(crow, col, torch.ones(col.numel()), (n, n))
    elif impl.endswith("int32"):
        adj = ei.to(torch.int32)
    else:
        adj = ei
    return mod, adj


def worker(layer: str, impl: str, reps: int) -> dict:
    """One implementation alone in this process (the default, separate-process mode)."""
    return paired_worker(layer, [impl], reps)[impl]


def paired_worker(layer: str, impls: list, reps: int) -> dict:
    """All implementations of one layer in one process, timed round-robin: rep k times every
    implementation once, so a slow phase of the machine hits all of them alike and the ratio
    within a rep is meaningful.  Peak memory is then measured for each, one step at a time."""
    warnings.filterwarnings("ignore")
    n = SMALL_N if layer == "sage_lstm_small" else N
    ei = make_graph(cap=LSTM_CAP if layer in ("sage_lstm_capped", "sage_lstm_small") else 0, n=n,
                    e=round(E * n / N))
    if layer.startswith("sage_lstm"):  # both libraries' LSTM aggregations need edges sorted by destination
        ei = ei[:, torch.sort(ei[1], stable=True).indices]
    x = torch.randn(n, F, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    steps, out, diffs, ref_out = {}, {}, {}, None
    for impl in impls:
        if layer.startswith("sage_lstm") and impl.startswith("pyg"):
            max_deg = int(torch.bincount(ei[1], minlength=n).max())
            need = 10 * n * max_deg * F * 4  # PyG pads N x max_deg x F; the LSTM keeps ~10 such tensors
            if need > 8e9:
                out[impl] = {"skipped": f"PyG's LSTM aggregation pads to N x max_deg x F = {n} x {max_deg} x {F} "
                                        f"floats; with the LSTM's saved activations ~{need / 1e9:.0f} GB, more "
                                        "than this machine can give (a capped run was OOM-killed at 21 GB RSS)"}
                continue
        mod, adj = _build(layer, impl, ei)
        mod.train()

        def step(mod=mod, adj=adj):
            y = mod(x, adj)
            y.backward(torch.ones_like(y))
            x.grad = None
            for q in mod.parameters():
                q.grad = None
        with torch.no_grad():  # the same function? (PyG's GCN adds a loop beside an input loop on sparse input)
            y = mod(x, adj)
        if ref_out is None:
            ref_out = y
        # (only meaningful with several implementations in this process: --paired; None for a shape mismatch)
        diffs[impl] = float((y - ref_out).abs().max()) if len(impls) > 1 and y.shape == ref_out.shape else None
        step()  # warm-up: caches, allocator
        steps[impl] = step
    times = interleaved(steps, reps, torch.device("cpu"), warmup=0)  # round-robin: one call of each per round
    mem = PeakMemory(torch.device("cpu"))  # gnnkit profile's probe: peak-RSS delta of one step
    for impl, step in steps.items():
        rec = {}
        with mem.measure(rec):
            step()
        peak = rec["peak_bytes"]
        out[impl] = {"median_s": statistics.median(times[impl]), "times_s": times[impl],
                     "peak_mb": None if peak != peak else round(peak / 2 ** 20, 1), "num_edges": int(ei.size(1)),
                     "memory_method": mem.method, "max_abs_diff_vs_first": diffs[impl]}
    return out


IMPLS = {
    # "-cached": GCNConv(cached=True), what a user with one fixed graph passes (PyG's examples/gcn.py does)
    "gcn": ["gnnkit", "gnnkit-int32", "pyg-edge_index", "pyg-torchcsr", "pyg-torchcsr-cached", "pyg-sparsetensor",
            "pyg-sparsetensor-cached"],
    "sage": ["gnnkit", "gnnkit-int32", "pyg-edge_index", "pyg-torchcsr", "pyg-sparsetensor"],
    "gin": ["gnnkit", "gnnkit-int32", "pyg-edge_index", "pyg-torchcsr", "pyg-sparsetensor"],
    "gat": ["gnnkit", "pyg-edge_index", "pyg-sparsetensor"],
    "sage_lstm_small": ["gnnkit", "pyg-edge_index"],
    "sage_lstm_capped": ["gnnkit", "pyg-edge_index"],
    "sage_lstm": ["gnnkit", "pyg-edge_index"],
}
# targets: (gnnkit impl, baseline impl, minimum speed-up, maximum memory ratio or None)
TARGETS = [
    ("gcn", "pyg-sparsetensor", 1.2, None), ("gcn", "pyg-edge_index", 2.5, None),
    ("sage", "pyg-sparsetensor", 1.2, None), ("sage", "pyg-edge_index", 2.5, None),
    ("gin", "pyg-sparsetensor", 1.2, None), ("gin", "pyg-edge_index", 2.5, None),
    # PyG's torch.sparse CSR path: what PyG's SparseTensor path calls on CPU after converting
    # (torch_geometric.utils.spmm -> torch.sparse.mm), shown as a proxy while torch-sparse is missing
    ("gcn", "pyg-torchcsr", 1.2, None), ("sage", "pyg-torchcsr", 1.2, None), ("gin", "pyg-torchcsr", 1.2, None),
    ("gcn", "pyg-torchcsr-cached", 1.2, None),
    ("gat", "pyg-edge_index", 2.0, 0.3), ("sage_lstm_small", "pyg-edge_index", 2.0, None),
    ("sage_lstm_capped", "pyg-edge_index", 2.0, None),
]


def _has_torch_sparse() -> bool:
    import importlib.util
    return importlib.util.find_spec("torch_sparse") is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="gcn,sage,gin,gat,sage_lstm_small",
                    help="comma-separated subset of " + ",".join(IMPLS) + " (default: all)")
    ap.add_argument("--reps", type=int, default=5, help="timed calls per measurement (default 5; LSTM uses 2)")
    ap.add_argument("--impls", default=None,
                    help="comma-separated implementations to (re)measure, e.g. pyg-sparsetensor (default: all); "
                         "other entries are kept from an existing JSON at --out")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every measurement this many times, interleaved (round 1: all implementations, "
                         "round 2: all again, ...); times are pooled and the median of the pool is reported, "
                         "which damps the machine's drift between measurements (default 1)")
    ap.add_argument("--out", default=str(RESULTS / "layers_speed.json"), help="JSON output path")
    ap.add_argument("--paired", action="store_true",
                    help="time all implementations of a layer in one process, round-robin (gnnkit, PyG, "
                         "gnnkit, PyG, ...), and report the median of the per-call ratios; steadier on a "
                         "noisy machine than separate processes")
    ap.add_argument("--paired-worker", nargs=2, metavar=("LAYER", "IMPLS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.paired_worker:
        print("RESULT " + json.dumps(paired_worker(args.paired_worker[0], args.paired_worker[1].split(","),
                                                   args.reps)))
        return
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    load_at_start = os.getloadavg()
    results = {}
    if args.impls and Path(args.out).exists():
        results = json.loads(Path(args.out).read_text())["results"]
    layers = args.layers.split(",")
    for layer in layers:
        if layer not in IMPLS:
            ap.error(f"--layers: unknown layer {layer!r}; choose from {','.join(IMPLS)}")
    runs: dict = {}
    for rnd in range(args.rounds):
        for layer in layers:
            results.setdefault(layer, {})
            wanted = [i for i in IMPLS[layer] if not (args.impls and i not in args.impls.split(","))]
            impls = [i for i in wanted if not ("sparsetensor" in i and not _has_torch_sparse())]
            for impl in set(wanted) - set(impls):
                results[layer][impl] = {"skipped": "torch-sparse is not installed"}
            # paired: one process times the whole layer round-robin; otherwise one process per implementation
            groups = [impls] if args.paired else [[i] for i in impls]
            reps = (3 if args.paired else 2) if layer.startswith("sage_lstm") else args.reps
            for group in groups:
                proc = subprocess.run([sys.executable, __file__, "--paired-worker", layer, ",".join(group),
                                       "--reps", str(reps)], capture_output=True, text=True, env=env)
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                got = json.loads(line[0][7:]) if proc.returncode == 0 and line else \
                    {i: {"failed": (proc.stderr or proc.stdout)[-600:]} for i in group}
                for impl, res in got.items():
                    runs.setdefault((layer, impl), []).append(res)
                    results[layer][impl] = _pool(runs[(layer, impl)])
                    print(f"round {rnd + 1}/{args.rounds} {layer:18s} {impl:26s} {json.dumps(res)[:140]}", flush=True)
    checks = []
    for layer, base, speedup, mem in TARGETS:
        r = results.get(layer, {})
        if not r:
            continue
        ours, ref = r.get("gnnkit", {}), r.get(base, {})
        if "median_s" not in ours or "median_s" not in ref:
            checks.append({"layer": layer, "baseline": base, "target_speedup": speedup, "status": "not measured",
                           "why": ref.get("skipped") or ref.get("failed") or ours.get("failed")})
            continue
        s = ref["median_s"] / ours["median_s"]
        c = {"layer": layer, "baseline": base, "target_speedup": speedup, "speedup": round(s, 2),
             "met": s >= speedup}
        if len(ours.get("round_medians_s", [])) > 1 and len(ref.get("round_medians_s", [])) == \
                len(ours["round_medians_s"]):  # the spread: the ratio within each round
            c["round_speedups"] = [round(b / a, 2) for a, b in zip(ours["round_medians_s"], ref["round_medians_s"])]
        if args.paired and len(ours["times_s"]) == len(ref["times_s"]):
            # call k of gnnkit and call k of the baseline ran back to back: the median of those ratios
            pairs = [b / a for a, b in zip(ours["times_s"], ref["times_s"])]
            c["paired_speedup"] = round(statistics.median(pairs), 2)
            c["paired_range"] = [round(min(pairs), 2), round(max(pairs), 2)]
            c["pooled_median_speedup"], c["speedup"] = c["speedup"], c["paired_speedup"]
            c["met"] = c["paired_speedup"] >= speedup
        if mem is not None and ours.get("peak_mb") and ref.get("peak_mb"):
            m = ours["peak_mb"] / ref["peak_mb"]
            c.update(target_mem_ratio=mem, mem_ratio=round(m, 3), met=c["met"] and m <= mem)
        checks.append(c)
        print(json.dumps(c))
    out = {"graph": {"num_nodes": N, "num_edges": E, "features": F, "generator": "make_graph(seed=0)"},
           "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor(),
           "cores": os.cpu_count(), "load_avg_at_start": load_at_start, "load_avg_at_end": os.getloadavg(),
           "rounds": args.rounds, "reps_per_round": args.reps, "paired": args.paired, "results": results,
           "targets": checks}
    write_json_atomic(out, args.out)
    print(f"wrote {args.out}")
    _plot(results, Path(args.out).with_suffix(".png"))


def _pool(rounds: list) -> dict:
    """One implementation's measurements over the rounds: the median of all timed calls pooled,
    each round's median, the median peak memory.  A failure or skip in any round is reported."""
    bad = [r for r in rounds if "median_s" not in r]
    if bad:
        return bad[-1]
    times = [t for r in rounds for t in r["times_s"]]
    out = {"median_s": statistics.median(times), "times_s": times,
           "round_medians_s": [r["median_s"] for r in rounds], "num_edges": rounds[-1]["num_edges"]}
    peaks = [r["peak_mb"] for r in rounds if r.get("peak_mb") is not None]
    out["peak_mb"] = round(statistics.median(peaks), 1) if peaks else None
    diffs = [r["max_abs_diff_vs_first"] for r in rounds if r.get("max_abs_diff_vs_first") is not None]
    out["max_abs_diff_vs_first"] = max(diffs) if diffs else None
    return out


def _plot(results: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    layers = [lay for lay in results if any("median_s" in v for v in results[lay].values())]
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 3.6), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        items = [(k, v["median_s"]) for k, v in results[layer].items() if "median_s" in v]
        ax.barh([k for k, _ in items], [t for _, t in items],
                color=["tab:green" if k.startswith("gnnkit") else "tab:gray" for k, _ in items])
        ax.set_title(layer)
        ax.set_xlabel("fwd+bwd seconds")
    fig.suptitle(f"arxiv-like graph N={N:,} E={E:,} F={F}, CPU ({os.cpu_count()} cores)")
    fig.tight_layout()
    write_figure_atomic(fig, path, dpi=110)


if __name__ == "__main__":
    main()
