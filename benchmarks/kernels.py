"""The standard kernel benchmark suite of gnnkit (one command per device).

    python benchmarks/kernels.py --device cpu      # Cora, ogbl-ddi, arxiv-like
    python benchmarks/kernels.py --device cuda     # + products-like (N=2.45M, E=124M)

Needs only this repository and a standard PyTorch + PyG install (CUDA build for
``--device cuda``; Triton ships with it).  Datasets are read through
``gnnkit.data.load_dataset`` (set ``GNNKIT_DATA``); a dataset that is missing is
skipped with a note.  For every graph it runs ``gnnkit profile``'s grid (every op,
every backend available, fwd and fwd+bwd), then a layer benchmark on the
arxiv-like (and products-like) graph: gnnkit's ``GATConv`` against PyG's
``GATConv`` (eager and ``torch.compile``), H=8 heads of 64, forward+backward; and
(on CUDA, products-like) a 3-layer GAT of the same width trained full-batch with Adam,
gnnkit vs PyG, where PyG is expected to run out of memory (``--train-graphs``); and a
nearest-codeword (VQ) search, ``torch.cdist`` + ``min`` vs gnnkit's ``nearest_code``
(N=65536, D=64, K=8192 on CUDA; 4096 x 64 against 1024 on CPU; ``--vq N D K``, ``--no-vq``).

Writes ``benchmarks/results/kernels_<device>.json`` (everything, plus the target
ratios) and ``kernels_<device>.png`` atomically, and prints the markdown table that
docs/kernels.md shows.  Target ratios (``summary``):

* ``spmm_fwd_bwd_speedup``: fastest of PyG eager / PyG compiled / torch.sparse
  divided by gnnkit (Triton on CUDA, the torch path on CPU), SpMM forward+backward;
* ``gat_layer_speedup_vs_pyg_eager`` / ``_vs_pyg_compiled`` and
  ``gat_layer_peak_memory_ratio`` (PyG eager peak / gnnkit peak).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from gnnkit import profile as prof  # noqa: E402
from gnnkit._atomic import atomic_write, write_figure_atomic, write_json_atomic  # noqa: E402

SUITE = {
    # name: (source, args, cuda_only)
    "Cora": ("dataset", ("Cora",), False),
    "ogbl-ddi": ("dataset", ("ogbl-ddi",), False),
    "arxiv-like": ("synthetic", (169_343, 1_166_243), False),
    "products-like": ("synthetic", (2_449_029, 123_718_280), True),
}
LAYER_GRAPHS = ("arxiv-like", "products-like")
PEERS = ("pyg", "pyg-compiled", "torch.sparse")


def load_graph(name: str, seed: int) -> prof.GraphSpec:
    kind, args, _ = SUITE[name]
    if kind == "dataset":
        g = prof.dataset_graph(*args)
        return prof.GraphSpec(name, g.edge_index, g.num_nodes)
    g = prof.power_law_graph(*args, seed=seed)
    return prof.GraphSpec(name, g.edge_index, g.num_nodes)


def gat_layer_bench(g: prof.GraphSpec, device: torch.device, in_channels: int, heads: int, head_dim: int,
                    warmup: int, repeats: int, compile_: bool) -> List[dict]:
    """gnnkit GATConv vs PyG GATConv (eager, compiled): forward+backward median and peak memory."""
    from torch_geometric.nn import GATConv as PygGAT

    from gnnkit.nn import GATConv as GnnkitGAT

    torch.manual_seed(0)
    x = torch.randn(g.num_nodes, in_channels, device=device)
    ei = g.edge_index.to(device)
    mem = prof.PeakMemory(device)
    rows = []
    candidates = [("gnnkit GATConv", lambda: GnnkitGAT(in_channels, head_dim, heads=heads))]
    candidates.append(("pyg GATConv", lambda: PygGAT(in_channels, head_dim, heads=heads)))
    if compile_:
        candidates.append(("pyg GATConv compiled",
                           lambda: torch.compile(PygGAT(in_channels, head_dim, heads=heads), dynamic=False)))
    for name, make in candidates:
        row = {"layer": name, "median_ms": float("nan"), "peak_mb": float("nan"), "error": None}
        try:
            layer = make().to(device)
            grad = None

            def step():
                nonlocal grad
                layer.zero_grad(set_to_none=True)
                out = layer(x, ei)
                if grad is None:
                    grad = torch.randn_like(out)
                out.backward(grad)

            _timed(row, step, device, warmup, repeats, mem)
        except Exception as e:  # OOM in PyG on big graphs is a result, not a crash
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)
    for r in rows:
        r["memory_method"] = mem.method
    return rows


def gat3_train_bench(g: prof.GraphSpec, device: torch.device, in_channels: int, heads: int, head_dim: int,
                     num_classes: int, steps: int) -> List[dict]:
    """A 3-layer GAT (heads x head_dim, ELU, heads averaged in the last layer) trained full-batch with
    Adam on the whole graph, gnnkit's GATConv vs PyG's: ``steps`` optimiser steps (the first one
    untimed), median step time and peak memory, or the error (PyG's out-of-memory is a result)."""
    import torch.nn.functional as F
    from torch_geometric.nn import GATConv as PygGAT

    from gnnkit.nn import GATConv as GnnkitGAT

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(g.num_nodes, in_channels, generator=gen).to(device)
    y = torch.randint(0, num_classes, (g.num_nodes,), generator=gen).to(device)
    train = (torch.rand(g.num_nodes, generator=gen) < 0.1).to(device)
    ei = g.edge_index.to(device)
    mem = prof.PeakMemory(device)
    rows = []
    for name, conv in (("gnnkit 3-layer GAT", GnnkitGAT), ("pyg 3-layer GAT", PygGAT)):
        row = {"model": name, "steps": steps, "median_step_ms": float("nan"), "peak_mb": float("nan"),
               "losses": [], "error": None}
        model = opt = None
        try:
            torch.manual_seed(0)
            model = torch.nn.ModuleList([conv(in_channels, head_dim, heads=heads),
                                         conv(heads * head_dim, head_dim, heads=heads),
                                         conv(heads * head_dim, num_classes, heads=heads, concat=False)]).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=0.005)

            def step():
                opt.zero_grad(set_to_none=True)
                h = x
                for i, layer in enumerate(model):
                    h = layer(h, ei)
                    if i < len(model) - 1:
                        h = F.elu(h)
                loss = F.cross_entropy(h[train], y[train])
                loss.backward()
                opt.step()
                return float(loss)

            stats: Dict[str, float] = {}
            with mem.measure(stats):
                row["losses"].append(step())
            times = prof.time_fn(lambda: row["losses"].append(step()), device, warmup=0, repeats=steps - 1) \
                if steps > 1 else []
            row.update(peak_mb=stats["peak_bytes"] / 2 ** 20, times_ms=[t * 1e3 for t in times],
                       median_step_ms=statistics.median(times) * 1e3 if times else float("nan"))
        except Exception as e:  # PyG running out of memory is the expected result on products-like
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        finally:
            model = opt = None  # free before the next model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        row["memory_method"] = mem.method
        rows.append(row)
    return rows


def _timed(row: dict, step, device: torch.device, warmup: int, repeats: int, mem) -> None:
    """Median time of ``step`` over ``repeats`` calls and the peak memory of one more, into ``row``."""
    times = prof.time_fn(step, device, warmup, repeats)
    stats: Dict[str, float] = {}
    with mem.measure(stats):
        step()
    row.update(median_ms=statistics.median(times) * 1e3, times_ms=[t * 1e3 for t in times],
               peak_mb=stats["peak_bytes"] / 2 ** 20)


def vq_bench(device: torch.device, N: int, D: int, K: int, warmup: int, repeats: int) -> List[dict]:
    """Nearest-codeword search (VQ), ``z`` ``[N, D]`` against a ``[K, D]`` codebook, fp32: PyTorch's
    ``torch.cdist`` + ``min`` (the whole ``N x K`` matrix) vs gnnkit's ``nearest_code`` (the fused
    Triton kernel on CUDA, the chunked torch path on CPU); median time and peak memory."""
    from gnnkit.ops.vq import nearest_code

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(N, D, generator=gen).to(device)
    e = torch.randn(K, D, generator=gen).to(device)
    mem = prof.PeakMemory(device)
    ours = "gnnkit nearest_code (triton)" if device.type == "cuda" else "gnnkit nearest_code (torch)"
    rows = []
    for name, fn in (("torch cdist+min", lambda: torch.cdist(z, e).min(dim=1)), (ours, lambda: nearest_code(z, e))):
        row = {"op": name, "N": N, "D": D, "K": K, "median_ms": float("nan"), "peak_mb": float("nan"),
               "error": None}
        try:
            _timed(row, fn, device, warmup, repeats, mem)
        except Exception as e:  # cdist's N x K matrix may not fit: a result, not a crash
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        row["memory_method"] = mem.method
        rows.append(row)
    return rows


def _median(report: dict, op: str, backend: str, mode: str) -> Optional[float]:
    for r in report["results"]:
        if r["op"] == op and r["backend"] == backend and r["mode"] == mode and r["error"] is None:
            return r["median_ms"]
    return None


def summarize(graphs: Dict[str, dict], layers: Dict[str, List[dict]], device: torch.device) -> dict:
    ours = "gnnkit-triton" if device.type == "cuda" else "gnnkit-torch"
    out = {"ours": ours, "spmm_fwd_bwd_speedup": {}, "gat_layer": {}}
    for name, rep in graphs.items():
        mine = _median(rep, "spmm", ours, "fwd+bwd")
        peers = {p: _median(rep, "spmm", p, "fwd+bwd") for p in PEERS}
        peers = {p: v for p, v in peers.items() if v is not None}
        if mine and peers:
            best = min(peers, key=peers.get)
            out["spmm_fwd_bwd_speedup"][name] = {"gnnkit_ms": mine, "fastest_peer": best,
                                                 "peer_ms": peers[best], "speedup": peers[best] / mine}
    for name, rows in layers.items():
        by = {r["layer"]: r for r in rows}
        g = by.get("gnnkit GATConv")
        entry = {}
        if g and g["error"] is None:
            for key, label in (("pyg GATConv", "vs_pyg_eager"), ("pyg GATConv compiled", "vs_pyg_compiled")):
                p = by.get(key)
                if p is None:
                    continue
                if p["error"] is None:
                    entry[f"speedup_{label}"] = p["median_ms"] / g["median_ms"]
                else:
                    entry[f"speedup_{label}"] = f"peer failed: {p['error'][:80]}"
            p = by.get("pyg GATConv")
            if p and p["error"] is None and g["peak_mb"] > 0:
                entry["peak_memory_ratio_pyg_over_gnnkit"] = p["peak_mb"] / g["peak_mb"]
        out["gat_layer"][name] = entry
    return out


def _rows_table(groups: Dict[str, List[dict]], what: str, name_key: str, ms_key: str, ms_label: str) -> List[str]:
    """Markdown rows ``graph | name | ms | peak MB`` (or the error) for per-graph benchmark rows."""
    if not groups:
        return []
    lines = ["", f"| graph | {what} | {ms_label} | peak MB |", "|---|---|---:|---:|"]
    for gname, rows in groups.items():
        for r in rows:
            if r["error"] is None:
                lines.append(f"| {gname} | {r[name_key]} | {r[ms_key]:.1f} | {r['peak_mb']:.0f} |")
            else:
                lines.append(f"| {gname} | {r[name_key]} | {r['error'][:60]} | – |")
    return lines


def markdown(report: dict) -> str:
    lines = [f"Device: {report['device']}; dtype float32; F={report['features']}; gat: H={report['heads']} × "
             f"{report['head_dim']} per head (per-graph overrides in the JSON); "
             f"copy bandwidth {report['copy_gbps']:.1f} GB/s; memory: {report['memory_method']}.", "",
             "| graph | op | backend | fwd ms | fwd+bwd ms | fwd+bwd GB/s | % copy | peak MB (fwd+bwd) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for gname, rep in report["graphs"].items():
        for op in prof.OPS:
            for bk in prof.BACKENDS:
                f = [r for r in rep["results"] if r["op"] == op and r["backend"] == bk and r["error"] is None]
                if not f:
                    continue
                fw = next((r for r in f if r["mode"] == "fwd"), None)
                fb = next((r for r in f if r["mode"] == "fwd+bwd"), None)
                cell = (lambda r, k, fmt: format(r[k], fmt) if r else "–")
                lines.append(f"| {gname} | {op} | {bk} | {cell(fw, 'median_ms', '.2f')} | "
                             f"{cell(fb, 'median_ms', '.2f')} | {cell(fb, 'gbps', '.2f')} | "
                             f"{cell(fb, 'pct_copy', '.1f')} | {cell(fb, 'peak_mb', '.0f')} |")
    lines += _rows_table(report["layers"], "layer (H=8 × 64, fwd+bwd)", "layer", "median_ms", "median ms")
    lines += _rows_table(report.get("train", {}), "3-layer GAT, full-batch training", "model", "median_step_ms",
                         "median step ms")
    vq = report.get("vq", [])
    lines += _rows_table({f"VQ N={vq[0]['N']} D={vq[0]['D']} K={vq[0]['K']}": vq} if vq else {},
                         "nearest codeword, fp32", "op", "median_ms", "median ms")
    s = report["summary"]
    lines += ["", f"SpMM forward+backward, {s['ours']} vs the fastest of PyG eager / compiled / torch.sparse:"]
    for gname, v in s["spmm_fwd_bwd_speedup"].items():
        lines.append(f"- {gname}: {v['speedup']:.2f}x ({v['gnnkit_ms']:.2f} ms vs {v['fastest_peer']} "
                     f"{v['peer_ms']:.2f} ms)")
    for gname, v in s["gat_layer"].items():
        lines.append(f"- GAT layer on {gname}: " + ", ".join(
            f"{k} = {val:.2f}" if isinstance(val, float) else f"{k}: {val}" for k, val in v.items()))
    return "\n".join(lines)


def plot_summary(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graphs = list(report["graphs"])
    fig, axes = plt.subplots(1, max(len(graphs), 1), figsize=(4.5 * max(len(graphs), 1), 4), squeeze=False)
    for ax, gname in zip(axes[0], graphs):
        rep = report["graphs"][gname]
        bks = [b for b in prof.BACKENDS if any(r["backend"] == b and r["error"] is None for r in rep["results"])]
        width = 0.8 / max(len(bks), 1)
        for k, bk in enumerate(bks):
            xs, ys = [], []
            for j, op in enumerate(prof.OPS):
                v = _median(rep, op, bk, "fwd+bwd")
                if v is not None:
                    xs.append(j + k * width)
                    ys.append(v)
            ax.bar(xs, ys, width, label=bk)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(prof.OPS))], prof.OPS, fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"{gname} (fwd+bwd)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("median ms (log)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"gnnkit kernels benchmark — {report['device']}", fontsize=10)
    fig.tight_layout()
    write_figure_atomic(fig, path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    ap.add_argument("--graphs", nargs="+", choices=list(SUITE), default=None,
                    help="graphs to run (default: all for the device; products-like only on CUDA)")
    ap.add_argument("--features", type=int, default=128, help="feature width F of spmm/sddmm/segment")
    ap.add_argument("--heads", type=int, default=8, help="heads of softmax/gat and of the GAT layer")
    ap.add_argument("--head-dim", type=int, default=64, help="width per head of gat and the GAT layer")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs (default 20 on CUDA, 2 on CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs (default 3 on CUDA, 1 on CPU)")
    ap.add_argument("--no-compile", action="store_true", help="skip PyG under torch.compile")
    ap.add_argument("--compile-ops", nargs="+", choices=prof.OPS, default=None,
                    help="ops timed under torch.compile (default: all on CUDA; spmm on CPU, where each "
                         "compilation takes minutes on a small machine)")
    ap.add_argument("--cpu-gat-head-dim", type=int, default=16,
                    help="on CPU, gat op width per head on ogbl-ddi (PyG's E x H x C messages there "
                         "would need ~10 GB at 64 per head)")
    ap.add_argument("--no-layer", action="store_true", help="skip the GAT layer benchmark")
    ap.add_argument("--train-graphs", nargs="*", choices=list(SUITE), default=None,
                    help="graphs for the 3-layer full-batch GAT training run, gnnkit vs PyG (default: "
                         "products-like on CUDA, none on CPU)")
    ap.add_argument("--train-steps", type=int, default=5, help="optimiser steps of the training run")
    ap.add_argument("--train-in", type=int, default=100, help="input width of the training run (products: 100)")
    ap.add_argument("--train-classes", type=int, default=47, help="classes of the training run (products: 47)")
    ap.add_argument("--vq", nargs=3, type=int, metavar=("N", "D", "K"), default=None,
                    help="nearest-codeword benchmark shape (default: 65536 64 8192 on CUDA, 4096 64 1024 on CPU)")
    ap.add_argument("--no-vq", action="store_true", help="skip the nearest-codeword (VQ) benchmark")
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"), help="where results go")
    ap.add_argument("--tag", default=None, help="file name tag (default: the device type)")
    args = ap.parse_args(argv)

    if args.train_steps < 2:
        raise ValueError(f"--train-steps must be >= 2 (the first step is untimed), got {args.train_steps}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but CUDA is not available here; use --device cpu")
    os.environ.setdefault("GNNKIT_DATA", str(ROOT.parent / "shared" / "datasets"))
    cuda = device.type == "cuda"
    repeats = args.repeats or (20 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    names = args.graphs or [n for n, (_, _, cuda_only) in SUITE.items() if cuda or not cuda_only]
    report = {"tool": "benchmarks/kernels.py", "command": " ".join(["python", "benchmarks/kernels.py"] +
                                                                   (argv if argv is not None else sys.argv[1:])),
              "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "features": args.features, "heads": args.heads, "head_dim": args.head_dim,
              "repeats": repeats, "warmup": warmup, "graphs": {}, "layers": {}, "skipped": {}}
    for name in names:
        print(f"== {name}", flush=True)
        try:
            g = load_graph(name, seed=0)
        except Exception as e:  # a dataset missing here: note it, run the rest
            report["skipped"][name] = f"{type(e).__name__}: {e}"
            print(f"   skipped: {e}", flush=True)
            continue
        head_dim = args.cpu_gat_head_dim if (not cuda and name == "ogbl-ddi") else args.head_dim
        compile_ops = tuple(args.compile_ops) if args.compile_ops else (prof.OPS if cuda else ("spmm",))
        rep = prof.profile(g, device, features=args.features, heads=args.heads, head_dim=head_dim,
                           warmup=warmup, repeats=repeats, compile_=not args.no_compile, compile_ops=compile_ops)
        report["graphs"][name] = rep
        for key in ("device", "torch", "torch_geometric", "triton", "copy_gbps", "memory_method"):
            report.setdefault(key, rep[key])
        print(prof.format_table(rep), flush=True)
        if not args.no_layer and name in LAYER_GRAPHS:
            rows = gat_layer_bench(g, device, args.features, args.heads, args.head_dim, warmup, repeats,
                                   compile_=not args.no_compile)
            report["layers"][name] = rows
            for r in rows:
                print(f"   {r['layer']:24} {r['median_ms']:10.2f} ms  peak {r['peak_mb']:9.1f} MB"
                      + (f"  ({r['error']})" if r["error"] else ""), flush=True)
        del g
    train_names = args.train_graphs if args.train_graphs is not None else (["products-like"] if cuda else [])
    report["train"] = {}
    for name in train_names:
        print(f"== {name}: 3-layer GAT full-batch training, {args.heads} x {args.head_dim}", flush=True)
        try:
            g = load_graph(name, seed=0)
        except Exception as e:
            report["skipped"][f"train {name}"] = f"{type(e).__name__}: {e}"
            continue
        rows = gat3_train_bench(g, device, args.train_in, args.heads, args.head_dim, args.train_classes,
                                args.train_steps)
        report["train"][name] = rows
        for r in rows:
            print(f"   {r['model']:20} step {r['median_step_ms']:10.1f} ms  peak {r['peak_mb']:9.1f} MB"
                  + (f"  ({r['error']})" if r["error"] else ""), flush=True)
        del g
    report["vq"] = []
    if not args.no_vq:
        n, d, k = args.vq or ((65536, 64, 8192) if cuda else (4096, 64, 1024))
        print(f"== nearest codeword (VQ): N={n} D={d} K={k}", flush=True)
        report["vq"] = vq_bench(device, n, d, k, warmup, repeats)
        for r in report["vq"]:
            print(f"   {r['op']:30} {r['median_ms']:10.2f} ms  peak {r['peak_mb']:9.1f} MB"
                  + (f"  ({r['error']})" if r["error"] else ""), flush=True)
    report["summary"] = summarize(report["graphs"], report["layers"], device)
    report["summary"]["gat3_training"] = {
        name: {r["model"]: ("ok" if r["error"] is None else r["error"][:120]) for r in rows}
        for name, rows in report["train"].items()}
    tag = args.tag or device.type
    out_dir = Path(args.out_dir)
    write_json_atomic(report, out_dir / f"kernels_{tag}.json")  # NaN as null
    if report["graphs"]:
        plot_summary(report, out_dir / f"kernels_{tag}.png")
        md = markdown(report)
        atomic_write(out_dir / f"kernels_{tag}.md", (md + "\n").encode())
        print(md)
    print(f"wrote {out_dir / f'kernels_{tag}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
