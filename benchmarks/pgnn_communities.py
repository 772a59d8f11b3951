"""Position matters: link prediction on graphs without node features, P-GNN's two synthetic settings:
"Communities" (a connected caveman graph, 20 communities of 20 nodes, 1% of the edges rewired) and "Grid"
(a 20 x 20 two-dimensional grid, 400 nodes).

Every node looks alike to a message-passing GNN (constant features, near-identical neighbourhoods), so a
GCN cannot tell whether two nodes share a community; P-GNN's distances to anchor sets can.

The authors' protocol (JiaxuanYou/P-GNN, ``utils.py`` / ``main.py``): the edges split 80/10/10 at random
(``gnnkit.linkpred.TransductiveLinkSplit`` with ``disjoint_train_ratio=0``: every training edge is both a
message edge and a positive, one negative per positive), the training edges are the one graph every split
is scored on (distances and messages; validation and test edges never enter it), L2-normalised embeddings
for every encoder, dot-product decoder, binary cross-entropy, test ROC AUC at the best validation epoch.
``--split disjoint`` is gnnkit's default split instead (30 % of the training edges held out of the message
graph as supervision, test scored with the validation edges as messages): on the 20 x 20 grid that leaves
training ~56 % of the edges, ~35 components, and P-GNN's distances then differ between training and test.

  python benchmarks/pgnn_communities.py --seeds 3 --epochs 200                 # communities
  python benchmarks/pgnn_communities.py --graph grid --seeds 3 --epochs 200

``--features identity`` gives every node a one-hot identity feature instead of the constant: the paper's
"-T" settings (Grid-T, Communities-T; the authors' code uses ``np.identity(n)`` unless ``--rm_feature``).

Writes benchmarks/results/pgnn_<graph>[_T][_q..][_c..][_e..][_drop..][_disjoint][_rawdist].json.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import networkx as nx
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch_geometric.data import Data

import gnnkit.nn as gnn
from gnnkit._atomic import write_json_atomic
from gnnkit.linkpred import TransductiveLinkSplit

RESULTS = Path(__file__).resolve().parent / "results"


def communities(seed: int) -> Data:
    g = nx.connected_caveman_graph(20, 20)
    rng = torch.Generator().manual_seed(seed)
    edges = list(g.edges())
    n = g.number_of_nodes()
    for i in torch.randperm(len(edges), generator=rng)[: len(edges) // 100].tolist():  # rewire 1%
        u, v = edges[i]
        w = int(torch.randint(0, n, (1,), generator=rng))
        if w != u and not g.has_edge(u, w):
            g.remove_edge(u, v)
            g.add_edge(u, w)
    ei = torch.tensor(list(g.edges()), dtype=torch.long).t()
    return Data(x=torch.ones(n, 1), edge_index=torch.cat([ei, ei.flip(0)], 1), num_nodes=n)


def grid(seed: int) -> Data:
    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(20, 20))
    ei = torch.tensor(list(g.edges()), dtype=torch.long).t()
    n = g.number_of_nodes()
    return Data(x=torch.ones(n, 1), edge_index=torch.cat([ei, ei.flip(0)], 1), num_nodes=n)


GRAPHS = {"communities": communities, "grid": grid}
TASKS = {"communities": "link prediction, connected caveman 20x20, 1% rewired, no features",
         "grid": "link prediction, 20 x 20 grid (400 nodes), no features"}


class Encoder(torch.nn.Module):
    def __init__(self, kind: str, q: int = 2, copies: float = 0.5, in_dim: int = 1, distance_map: bool = True):
        super().__init__()
        self.kind = kind
        self.net = gnn.GCN(in_dim, 32, 2, 32) if kind == "gcn" else \
            gnn.PGNN(in_dim, 32, num_layers=2, q=q, copies=copies, distance_map=distance_map)

    def forward(self, x, ei):
        z = self.net(x, ei)
        return z if self.kind == "pgnn" else F.normalize(z, dim=-1)  # PGNN normalises its own output


def split_edges(data: Data, seed: int, split: str = "authors"):
    """``(train, val, test)`` of ``data``'s edges, 80/10/10: ``"authors"`` = the P-GNN code's protocol (every
    training edge is a message edge and a positive; every split is scored on the training graph),
    ``"disjoint"`` = gnnkit's default split (see the module doc)."""
    if split not in ("authors", "disjoint"):
        raise ValueError(f"split must be 'authors' or 'disjoint', got {split!r}")
    if split == "disjoint":
        return TransductiveLinkSplit(num_val=0.1, num_test=0.1, is_undirected=True, seed=seed)(data)
    tr, va, te = TransductiveLinkSplit(num_val=0.1, num_test=0.1, is_undirected=True, disjoint_train_ratio=0.0,
                                       seed=seed)(data)
    va.edge_index = te.edge_index = tr.edge_index  # scored on the training graph, as the authors do
    return tr, va, te


def run(kind: str, seed: int, epochs: int, graph: str = "communities", q: int = 2, copies: float = 0.5,
        features: str = "constant", lr_drop: int = 0, split: str = "authors", distance_map: bool = True) -> float:
    data = GRAPHS[graph](seed)
    if features == "identity":
        data.x = torch.eye(data.num_nodes)
    torch.manual_seed(seed)
    tr, va, te = split_edges(data, seed, split)
    if kind == "degree":  # no learning: held-out edges are missing from the message graph, so their endpoints
        # have fewer message edges; "fewer message edges at both ends" alone ranks test pairs this well
        deg = torch.bincount(te.edge_index[1], minlength=data.num_nodes).float()
        u, v = te.edge_label_index
        return roc_auc_score(te.edge_label.numpy(), (-(deg[u] + deg[v])).numpy())
    model = Encoder(kind, q, copies, data.x.size(1), distance_map)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    # the authors' schedule (JiaxuanYou/P-GNN main.py): lr / 10 at epoch 200; 0 = constant lr
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [lr_drop] if lr_drop > 0 else [], 0.1)

    def scores(split):
        z = model(split.x, split.edge_index)
        return (z[split.edge_label_index[0]] * z[split.edge_label_index[1]]).sum(-1)

    best_val, test_at_best = -1.0, 0.0
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        pos = tr.edge_label_index[:, tr.edge_label == 1]
        neg = torch.randint(0, data.num_nodes, pos.shape)  # one fresh uniform negative per positive
        z = model(tr.x, tr.edge_index)
        s_pos, s_neg = (z[pos[0]] * z[pos[1]]).sum(-1), (z[neg[0]] * z[neg[1]]).sum(-1)
        loss = F.binary_cross_entropy_with_logits(s_pos, torch.ones_like(s_pos)) + \
            F.binary_cross_entropy_with_logits(s_neg, torch.zeros_like(s_neg))
        loss.backward()
        opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            val = roc_auc_score(va.edge_label.numpy(), scores(va).numpy())
            if val > best_val:
                best_val, test_at_best = val, roc_auc_score(te.edge_label.numpy(), scores(te).numpy())
    return test_at_best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", choices=sorted(GRAPHS), default="communities", help="P-GNN's synthetic graph")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--q", type=int, default=2,
                   help="P-GNN's distance cap in hops (2: the paper's fast P-GNN-F; the diameter: exact, P-GNN-E)")
    p.add_argument("--copies", type=float, default=0.5,
                   help="P-GNN anchor sets per size as a fraction of log2 n (the authors' code: 1.0, 64 sets here)")
    p.add_argument("--features", choices=["constant", "identity"], default="constant",
                   help="node features: constant (the paper's Grid / Communities) or one-hot identity (Grid-T / "
                        "Communities-T)")
    p.add_argument("--lr-drop", type=int, default=0,
                   help="divide the learning rate by 10 at this epoch (the authors': 200; default 0: constant)")
    p.add_argument("--split", choices=["authors", "disjoint"], default="authors",
                   help="authors: every training edge a message and a positive, all splits scored on the training "
                        "graph (the paper's protocol); disjoint: gnnkit's default leak-free split (see the doc)")
    p.add_argument("--distance-map", choices=["yes", "no"], default="yes",
                   help="P-GNN's learned map of the distance scores (the authors' default: yes; no: raw 1/(d+1))")
    p.add_argument("--models", default="degree,gcn,pgnn",
                   help="comma-separated: degree (an untrained control, see run()), gcn, pgnn")
    args = p.parse_args()
    if args.seeds < 1 or args.epochs < 1 or args.q < 1:
        p.error("--seeds, --epochs and --q must be >= 1")
    if args.lr_drop < 0:
        p.error(f"--lr-drop must be an epoch >= 1, or 0 for a constant learning rate; got {args.lr_drop}")
    models = [m for m in args.models.split(",") if m]
    if not models or set(models) - {"degree", "gcn", "pgnn"}:
        p.error(f"--models: choose from degree, gcn, pgnn, got {args.models!r}")
    res = {}
    for kind in models:
        aucs = [run(kind, s, args.epochs, args.graph, args.q, args.copies, args.features, args.lr_drop, args.split,
                    args.distance_map == "yes")
                for s in range(args.seeds)]
        res[kind] = {"test_auc": aucs, "mean": statistics.mean(aucs),
                     "std": statistics.stdev(aucs) if len(aucs) > 1 else 0.0}
        print(f"{kind:<5} test ROC AUC {res[kind]['mean']:.4f} ± {res[kind]['std']:.4f}", flush=True)
    tag = "".join(["_T" if args.features == "identity" else "", f"_q{args.q}" if args.q != 2 else "",
                   f"_c{args.copies:g}" if args.copies != 0.5 else "",
                   f"_e{args.epochs}" if args.epochs != 200 else "", f"_drop{args.lr_drop}" if args.lr_drop else "",
                   "_disjoint" if args.split == "disjoint" else "", "_rawdist" if args.distance_map == "no" else ""])
    path = RESULTS / f"pgnn_{args.graph}{tag}.json"
    task = TASKS[args.graph].replace("no features", "one-hot identity features") if args.features == "identity" \
        else TASKS[args.graph]
    write_json_atomic({"task": task, "graph": args.graph, "features": args.features, "q": args.q, "copies": args.copies,
                       "epochs": args.epochs, "lr_drop": args.lr_drop, "split": args.split, "seeds": args.seeds,
                       "pgnn_distance_map": args.distance_map == "yes", "negatives": "one uniform pair per positive, "
                       "fresh every epoch (training); the split's (validation, test)", "results": res}, path)
    print(f"written {path}")


if __name__ == "__main__":
    main()
