"""The whole profile of one graph, its JSON report, plot and text table."""
from __future__ import annotations

import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional, Tuple

import torch

from gnnkit._atomic import write_figure_atomic, write_json_verified

from .backends import BACKENDS, MODES, Record, available_backends, make_problem, run_one
from .graphs import GraphSpec
from .measure import OPS, PeakMemory, copy_bandwidth


def plot(report: dict, path: Path) -> None:
    """Bar chart of median times (log scale), one panel per mode; written atomically."""

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in report["results"] if r["error"] is None]
    ops = [o for o in OPS if any(r["op"] == o for r in recs)]
    backends = [b for b in BACKENDS if any(r["backend"] == b for r in recs)]
    modes = [m for m in MODES if any(r["mode"] == m for r in recs)] or list(MODES[:1])  # one panel per mode run
    fig, axes = plt.subplots(1, len(modes), figsize=(max(9, 6 * len(modes)), 4.5), sharey=True, squeeze=False)
    axes = list(axes[0])
    width = 0.8 / max(len(backends), 1)
    colour = {bk: f"C{k}" for k, bk in enumerate(backends)}  # a backend keeps its colour in every panel
    for ax, mode in zip(axes, modes):
        for k, bk in enumerate(backends):
            xs, ys = [], []
            for j, o in enumerate(ops):
                hit = [r for r in recs if r["op"] == o and r["backend"] == bk and r["mode"] == mode]
                if hit:
                    xs.append(j + k * width)
                    ys.append(hit[0]["median_ms"])
            ax.bar(xs, ys, width, color=colour[bk])
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(ops))], ops)
        ax.set_yscale("log")
        ax.set_title(f"{mode}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("median time (ms, log)")
    from matplotlib.patches import Patch
    axes[-1].legend(handles=[Patch(color=colour[bk], label=bk) for bk in backends], fontsize=8)
    g = report["graph"]
    fig.suptitle(f"gnnkit profile — {g['name']} N={g['num_nodes']:,} E={g['num_edges']:,} F={report['features']} "
                 f"({report['device']}, {report['dtype']})", fontsize=10)
    fig.tight_layout()
    write_figure_atomic(fig, path, dpi=110)


def plot_ratios(results: dict, inputs: dict, title: str, path: Path, ylabel: str = "PyG time / gnnkit time",
                skip_missing: bool = False) -> None:
    """Grouped bars of paired ratios (:func:`gnnkit.profile.paired_ratio` records) with their 95 % intervals:
    ``results[name]["speedup"][input]`` for each name (a group) and each of ``inputs`` (``{input: legend}``, a
    bar per input), a line at 1; written atomically (the benchmarks' PyG-vs-gnnkit plots).  ``skip_missing``:
    a name without a record for some input gets no bar there (e.g. a layer PyG lacks) instead of an error."""
    if not isinstance(results, dict) or not results or not isinstance(inputs, dict) or not inputs:
        raise ValueError("plot_ratios: results and inputs must be non-empty dicts ({name: record}, {input: legend})")
    missing = [f"{n}/{i}" for n in results for i in inputs
               if not isinstance(results[n], dict) or i not in results[n].get("speedup", {})]
    if missing and not skip_missing:
        raise ValueError(f"plot_ratios: results has no speedup record for {missing[:3]}; each results[name] needs "
                         "'speedup': {input: paired_ratio(...)} for every key of inputs")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(results)
    width = 0.8 / len(inputs)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    nan = float("nan")
    for i, (inp, label) in enumerate(inputs.items()):
        recs = [results[n].get("speedup", {}).get(inp) if isinstance(results[n], dict) else None for n in names]
        med = [nan if r is None else r["median"] for r in recs]
        lo = [nan if r is None else m - r["ci95"][0] for m, r in zip(med, recs)]
        hi = [nan if r is None else r["ci95"][1] - m for m, r in zip(med, recs)]
        ax.bar([j + width * i for j in range(len(names))], med, width, yerr=[lo, hi], capsize=3, label=label)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([j + width * (len(inputs) - 1) / 2 for j in range(len(names))], names)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure_atomic(fig, path, dpi=120)


def profile(graph: GraphSpec, device: torch.device, features: int = 64, heads: int = 8,
            head_dim: Optional[int] = None, dtype: torch.dtype = torch.float32, ops: Tuple[str, ...] = OPS,
            backends: Optional[List[str]] = None, modes: Tuple[str, ...] = MODES, warmup: int = 2,
            repeats: int = 10, compile_: bool = True, seed: int = 0, progress: bool = True,
            copy_mb: int = 256, compile_ops: Optional[Tuple[str, ...]] = None) -> dict:
    """Run the whole grid and return the report (a JSON-able dict)."""
    from tqdm.auto import tqdm

    for o in ops:
        if o not in OPS:
            raise ValueError(f"unknown op {o!r}; choose from {OPS}")
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown mode {m!r}; choose from {MODES}")
    avail = available_backends(device, compile_)
    if backends is None:
        backends = avail
    else:
        for bk in backends:
            if bk not in BACKENDS:
                raise ValueError(f"unknown backend {bk!r}; choose from {BACKENDS}")
    C = head_dim or max(features // heads, 1)
    p = make_problem(graph, features, heads, C, dtype, device, seed)
    mem = PeakMemory(device)
    copy_gbps = copy_bandwidth(device, copy_mb * 2 ** 20)
    grid = [(o, bk, m) for o in ops for bk in backends for m in modes]
    results = []
    bar = tqdm(grid, desc="profile", disable=not progress, leave=False)
    for k, (o, bk, m) in enumerate(bar):
        bar.set_postfix_str(f"{o} {bk} {m}")
        if k and grid[k - 1][0] != o:
            p.release()  # drop the previous op's inputs before timing the next op
        if bk not in avail:
            rec = Record(o, bk, m, error="backend not available here")
        elif bk == "pyg-compiled" and compile_ops is not None and o not in compile_ops:
            rec = Record(o, bk, m, error=f"torch.compile limited to {', '.join(compile_ops)} in this run")
        else:
            rec = run_one(p, o, bk, m, device, warmup, repeats, mem, features, C, copy_gbps)
        results.append(asdict(rec))
    return {
        "tool": "gnnkit profile",
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "torch_geometric": _version("torch_geometric"),
        "triton": _version("triton"),
        "dtype": str(dtype).replace("torch.", ""),
        "graph": {"name": graph.name, "num_nodes": graph.num_nodes, "num_edges": int(graph.edge_index.size(1))},
        "features": features, "heads": heads, "head_dim": C, "compile_ops": list(compile_ops or OPS)
        if compile_ else [],
        "warmup": warmup, "repeats": repeats,
        "copy_gbps": copy_gbps,
        "memory_method": mem.method,
        "bandwidth_model": "compulsory bytes (gnnkit.profile.compulsory_bytes, docs/kernels.md) / median time",
        "results": results,
    }


def _version(mod: str) -> Optional[str]:
    try:
        return __import__(mod).__version__
    except Exception:
        return None


def write_report(report: dict, json_path: Path, png_path: Optional[Path]) -> None:
    write_json_verified(report, json_path)  # strict JSON: NaN (not measured) as null
    if png_path is not None:
        plot(report, png_path)


def format_table(report: dict) -> str:
    lines = [f"{'op':8} {'backend':14} {'mode':8} {'median ms':>10} {'GB/s':>8} {'% copy':>7} {'peak MiB':>9}"]
    for r in report["results"]:
        if r["error"] is not None:
            if r["error"] not in ("not offered by this backend", "backend not available here") and \
                    not r["error"].startswith("torch.compile limited"):
                lines.append(f"{r['op']:8} {r['backend']:14} {r['mode']:8} error: {r['error'][:60]}")
            continue
        lines.append(f"{r['op']:8} {r['backend']:14} {r['mode']:8} {r['median_ms']:10.3f} {r['gbps']:8.2f} "
                     f"{r['pct_copy']:7.1f} {r['peak_mb']:9.1f}")
    lines.append(f"copy bandwidth {report['copy_gbps']:.1f} GB/s on {report['device']}; "
                 f"memory: {report['memory_method']}")
    return "\n".join(lines)
