"""Training speed and memory of the ``gnnkit ogb`` models, gnnkit's layers against PyG's, paired.

The accuracy columns of docs/benchmarks.md come from ``gnnkit ogb`` runs; their per-epoch times were
measured one library after the other, so machine load drifts between them.  This script measures the
time columns the careful way: both libraries' trainers (same model, same initial weights, built by
``gnnkit.ogb``) train on the same batches, alternating library every round (ABBA), and the speed-up
is the median over rounds of the per-round ratio.  Peak memory: one measured pass per library
(``gnnkit.profile.PeakMemory``: CUDA allocator peak, or peak-RSS delta on CPU).

  python benchmarks/ogb_steps.py --dataset ogbg-molhiv --models gin-virtual,gcn --steps 100 --rounds 4
  python benchmarks/ogb_steps.py --dataset ogbl-ddi --models sage --rounds 2     # one epoch per round
  python benchmarks/ogb_steps.py --device cuda ...                                # on a GPU

Writes JSON (and a PNG bar chart) to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from gnnkit._atomic import write_figure_atomic, write_json_atomic
from gnnkit.ogb import OGBConfig, make_task
from gnnkit.ogb.tasks import GraphTrainer
from gnnkit.profile import PeakMemory, interleaved

RESULTS = Path(__file__).resolve().parent / "results"


def measure(dataset: str, model: str, steps: int, rounds: int, device: str, seed: int = 0) -> dict:
    cfg = OGBConfig(dataset, model, runs=1, epochs=1, device=device, seed=seed)
    task = make_task(cfg)
    init = task.trainer("gnnkit", seed).initial_state()
    trainers = {lib: task.trainer(lib, seed, init) for lib in ("gnnkit", "pyg")}
    dev = torch.device(device)
    unit = "epoch"
    if isinstance(trainers["gnnkit"], GraphTrainer):
        # graph level: the same first ``steps`` training batches for both libraries
        batches = []
        for b in trainers["gnnkit"].train_loader:
            batches.append(b)
            if len(batches) == steps:
                break
        for t in trainers.values():
            t.train_loader = batches
        unit = f"{len(batches)} batches of {cfg.batch_size} graphs"
    # warm-up (allocator, caches), then the memory of one pass per library
    peaks = {}
    for lib, t in trainers.items():
        t.train_epoch()
        rec = {}
        with PeakMemory(dev).measure(rec):
            t.train_epoch()
        peaks[lib] = rec["peak_bytes"] / 2 ** 20
    # ABBA rounds: gnnkit first in even rounds, PyG first in odd ones
    times = interleaved({lib: trainers[lib].train_epoch for lib in ("gnnkit", "pyg")}, rounds, dev, warmup=0,
                        alternate=True)
    ratios = [p / g for g, p in zip(times["gnnkit"], times["pyg"])]
    return {"dataset": dataset, "model": model, "unit": unit, "rounds": rounds, "seconds": times,
            "median_s": {lib: statistics.median(v) for lib, v in times.items()},
            "speedup_pyg_over_gnnkit": statistics.median(ratios), "ratios": ratios, "peak_mb": peaks,
            "memory_ratio_gnnkit_over_pyg": peaks["gnnkit"] / peaks["pyg"] if peaks["pyg"] > 0 else None}


def plot(rows: list, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    names = [f"{r['dataset']}\n{r['model']}" for r in rows]
    ax[0].bar(names, [r["speedup_pyg_over_gnnkit"] for r in rows], color="tab:blue")
    ax[0].axhline(1.0, color="k", lw=0.8)
    ax[0].set_ylabel("gnnkit speed-up over PyG (x)")
    ax[1].bar(names, [r["memory_ratio_gnnkit_over_pyg"] or 0 for r in rows], color="tab:orange")
    ax[1].axhline(1.0, color="k", lw=0.8)
    ax[1].set_ylabel("peak memory gnnkit / PyG")
    for a in ax:
        a.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    write_figure_atomic(fig, path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ogbg-molhiv")
    p.add_argument("--models", default="gin-virtual,gcn")
    p.add_argument("--steps", type=int, default=100, help="graph level: training batches per round")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/ogb_steps_DATASET_DEVICE.json)")
    args = p.parse_args()
    rows = []
    for m in args.models.split(","):
        r = measure(args.dataset, m, args.steps, args.rounds, args.device)
        r.update(device=args.device, threads=torch.get_num_threads(), torch=torch.__version__)
        rows.append(r)
        print(f"{args.dataset} {m}: gnnkit {r['median_s']['gnnkit']:.3f} s, PyG {r['median_s']['pyg']:.3f} s per "
              f"{r['unit']}; speed-up {r['speedup_pyg_over_gnnkit']:.2f}x; peak MiB gnnkit "
              f"{r['peak_mb']['gnnkit']:.1f} / PyG {r['peak_mb']['pyg']:.1f}", flush=True)
    out = Path(args.out) if args.out else RESULTS / f"ogb_steps_{args.dataset}_{args.device}.json"
    write_json_atomic(rows, out)
    plot(rows, out.with_suffix(".png"))
    print(f"written {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
