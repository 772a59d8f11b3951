"""Over-smoothing on Cora: how the last conv's embeddings become alike with depth, for a plain GCN and the
lectures' remedies (residual connections, jumping knowledge, A + A² edges).

For each variant and depth L: a ``gnnkit.nn.GCN`` (hidden 64, ReLU, dropout 0.5) is measured at
initialisation and after training (Adam 0.01, weight decay 5e-4, ``--epochs`` epochs, full batch; test
accuracy at the best validation epoch), with ``gnnkit.nn.diagnostics``: the scale-free Dirichlet energy
(energy / mean squared norm) and MAD of the last conv layer's output.

  python benchmarks/oversmoothing.py --depths 2,4,8,16,32 --epochs 200

Writes benchmarks/results/oversmoothing_cora.json and .png.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import gnnkit.nn as gnn
from gnnkit._atomic import write_figure_atomic, write_json_atomic
from gnnkit.data import load_dataset
from gnnkit.nn.diagnostics import smoothing_profile

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {
    "plain": dict(),
    "residual": dict(residual=True),
    "jk-cat": dict(jk="cat"),
    "A+A^2": dict(),  # the same GCN on the edges of A + A^2
}


def last_conv(profile):
    conv = [p for p in profile if p["layer"].startswith("convs.")]
    return conv[-1]


def run_one(variant, depth, data, edges, epochs, seed):
    torch.manual_seed(seed)
    model = gnn.GCN(data.num_features, 64, depth, int(data.y.max()) + 1, dropout=0.5, **VARIANTS[variant])
    ei = edges[variant]
    init = last_conv(smoothing_profile(model, data.x, ei))
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    best_val, test_at_best = -1.0, 0.0
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(data.x, ei)[data.train_mask], data.y[data.train_mask]).backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(data.x, ei).argmax(-1)
        val = float((pred[data.val_mask] == data.y[data.val_mask]).float().mean())
        if val > best_val:
            best_val = val
            test_at_best = float((pred[data.test_mask] == data.y[data.test_mask]).float().mean())
    trained = last_conv(smoothing_profile(model, data.x, ei))
    return {"variant": variant, "depth": depth, "test_acc": test_at_best, "val_acc": best_val,
            "seconds": time.perf_counter() - t0, "init": init, "trained": trained}


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    for v in VARIANTS:
        rs = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["depth"])
        d = [r["depth"] for r in rs]
        ax[0].plot(d, [r["init"]["rel_energy"] for r in rs], marker="o", label=v)
        ax[1].plot(d, [r["trained"]["rel_energy"] for r in rs], marker="o", label=v)
        ax[2].plot(d, [100 * r["test_acc"] for r in rs], marker="o", label=v)
    for a, t in zip(ax, ("energy / norm, last layer, at init", "energy / norm, last layer, trained",
                         "test accuracy (%)")):
        a.set_xscale("log", base=2)
        a.set_xlabel("layers")
        a.set_title(t, fontsize=9)
    ax[0].set_yscale("log")
    ax[1].set_yscale("log")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    write_figure_atomic(fig, path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", default="2,4,8,16,32")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "oversmoothing_cora.json"))
    args = p.parse_args()
    data = load_dataset("Cora")[0]
    data.x = data.x / data.x.sum(1, keepdim=True).clamp_min(1)
    a2, _ = gnn.add_k_hop_edges(data.edge_index, num_nodes=data.num_nodes, k=2, weights="ones")
    edges = {v: data.edge_index for v in VARIANTS}
    edges["A+A^2"] = a2
    rows = []
    for depth in [int(d) for d in args.depths.split(",")]:
        for v in VARIANTS:
            r = run_one(v, depth, data, edges, args.epochs, args.seed)
            rows.append(r)
            print(f"L={depth:<3} {v:<9} test {100 * r['test_acc']:5.1f}%  energy/norm init "
                  f"{r['init']['rel_energy']:.3g} trained {r['trained']['rel_energy']:.3g}  MAD init "
                  f"{r['init']['mad']:.3f} trained {r['trained']['mad']:.3f}  ({r['seconds']:.0f} s)", flush=True)
    out = Path(args.out)
    write_json_atomic({"dataset": "Cora", "epochs": args.epochs, "seed": args.seed, "threads":
                       torch.get_num_threads(), "rows": rows}, out)
    plot(rows, out.with_suffix(".png"))
    print(f"written {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
