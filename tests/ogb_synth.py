"""Small synthetic datasets written in OGB's raw format (the files OGB's own loaders read), under the names
``gnnkit ogb`` knows: ``ROOT/ogb/<name with _>/{raw,split,RELEASE_v1.txt}``.  Seeded; each has a signal a
model can learn, so a score above chance says the whole path (loader, split, model, Evaluator) works."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Sequence

import numpy as np
import torch


def _csv(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(rows)
    if rows.ndim == 1:
        rows = rows[:, None]
    fmt = "%d" if np.issubdtype(rows.dtype, np.integer) else "%.6f"
    with gzip.open(path, "wt") as f:
        np.savetxt(f, rows, fmt=fmt, delimiter=",")


def _base(root: Path, name: str) -> Path:
    base = Path(root) / "ogb" / name.replace("-", "_")
    base.mkdir(parents=True, exist_ok=True)
    (base / "RELEASE_v1.txt").write_text("synthetic, written by tests/ogb_synth.py\n")
    return base


def _split(base: Path, kind: str, n: int, fractions: Sequence[float], rng: np.random.Generator) -> None:
    perm = rng.permutation(n)
    a, b = int(fractions[0] * n), int((fractions[0] + fractions[1]) * n)
    for part, idx in (("train", perm[:a]), ("valid", perm[a:b]), ("test", perm[b:])):
        _csv(base / "split" / kind / f"{part}.csv.gz", np.sort(idx).astype(np.int64))


def write_molhiv(root: Path, num_graphs: int = 160, seed: int = 0) -> Path:
    """Molecule-like graphs (rings with branches) with OGB's 9 atom / 3 bond integer features; label 1 iff
    the graph has an atom of type 5 (a signal the atom encoder sees)."""
    rng = np.random.default_rng(seed)
    base = _base(root, "ogbg-molhiv")
    edges, nn, ne, xs, es, ys = [], [], [], [], [], []
    for _ in range(num_graphs):
        n = int(rng.integers(4, 12))
        ring = [(i, (i + 1) % n) for i in range(n)]
        extra = [(int(rng.integers(0, n)), int(rng.integers(0, n))) for _ in range(int(rng.integers(0, 3)))]
        e = [(u, v) for u, v in ring + extra if u != v]
        x = np.stack([rng.integers(0, 4, n)] + [rng.integers(0, 2, n) for _ in range(8)], 1)
        y = int(rng.random() < 0.4)
        if y:
            x[int(rng.integers(0, n)), 0] = 5
        edges += e
        nn.append(n)
        ne.append(len(e))
        xs.append(x)
        es.append(np.stack([rng.integers(0, 3, len(e)), rng.integers(0, 2, len(e)), rng.integers(0, 2, len(e))], 1))
        ys.append(y)
    raw = base / "raw"
    _csv(raw / "edge.csv.gz", np.array(edges, dtype=np.int64))
    _csv(raw / "num-node-list.csv.gz", np.array(nn, dtype=np.int64))
    _csv(raw / "num-edge-list.csv.gz", np.array(ne, dtype=np.int64))
    _csv(raw / "node-feat.csv.gz", np.concatenate(xs).astype(np.int64))
    _csv(raw / "edge-feat.csv.gz", np.concatenate(es).astype(np.int64))
    _csv(raw / "graph-label.csv.gz", np.array(ys, dtype=np.int64))
    _split(base, "scaffold", num_graphs, (0.6, 0.2), rng)
    return base


def _node_graph(n: int, classes: int, feat: int, rng: np.random.Generator):
    y = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, feat))
    x = (centers[y] + 3.0 * rng.normal(size=(n, feat))).astype(np.float32)
    src = rng.integers(0, n, 6 * n)
    same = np.array([rng.choice(np.flatnonzero(y == y[s])) for s in src])  # homophilous edges
    dst = np.where(rng.random(src.size) < 0.6, same, rng.integers(0, n, src.size))
    keep = src != dst
    return x, y, np.stack([src[keep], dst[keep]], 1).astype(np.int64)


def write_node(root: Path, name: str = "ogbn-arxiv", n: int = 300, classes: int = 4, feat: int = 16,
               seed: int = 0) -> Path:
    """A homophilous node-classification graph under ``ogbn-arxiv``'s or ``ogbn-products``' file layout."""
    rng = np.random.default_rng(seed)
    base = _base(root, name)
    x, y, e = _node_graph(n, classes, feat, rng)
    raw = base / "raw"
    _csv(raw / "edge.csv.gz", e)
    _csv(raw / "num-node-list.csv.gz", np.array([n], dtype=np.int64))
    _csv(raw / "num-edge-list.csv.gz", np.array([len(e)], dtype=np.int64))
    _csv(raw / "node-feat.csv.gz", x)
    _csv(raw / "node-label.csv.gz", y.astype(np.int64))
    if name == "ogbn-arxiv":
        _csv(raw / "node_year.csv.gz", rng.integers(2000, 2020, n).astype(np.int64))
    _split(base, "time" if name == "ogbn-arxiv" else "sales_ranking", n, (0.5, 0.25), rng)
    return base


def write_ddi(root: Path, n: int = 120, seed: int = 0) -> Path:
    """A featureless undirected graph of a few dense communities under ``ogbl-ddi``'s layout; valid/test
    negatives cross communities (as in OGB, fixed in the split files)."""
    rng = np.random.default_rng(seed)
    base = _base(root, "ogbl-ddi")
    comm = rng.integers(0, 4, n)
    pairs = set()
    while len(pairs) < 8 * n:
        u, v = (int(a) for a in rng.integers(0, n, 2))
        if u != v and (comm[u] == comm[v] or rng.random() < 0.05):
            pairs.add((min(u, v), max(u, v)))
    e = np.array(sorted(pairs), dtype=np.int64)
    e = e[rng.permutation(len(e))]
    a, b = int(0.8 * len(e)), int(0.9 * len(e))
    raw = base / "raw"
    _csv(raw / "edge.csv.gz", e[:a])
    _csv(raw / "num-node-list.csv.gz", np.array([n], dtype=np.int64))
    _csv(raw / "num-edge-list.csv.gz", np.array([a], dtype=np.int64))

    def negatives(k: int) -> np.ndarray:
        out = []
        while len(out) < k:
            u, v = (int(t) for t in rng.integers(0, n, 2))
            if comm[u] != comm[v] and (min(u, v), max(u, v)) not in pairs:
                out.append((u, v))
        return np.array(out, dtype=np.int64)
    split = base / "split" / "target"
    split.mkdir(parents=True, exist_ok=True)
    torch.save({"edge": e[:a]}, split / "train.pt")
    torch.save({"edge": e[a:b], "edge_neg": negatives(200)}, split / "valid.pt")
    torch.save({"edge": e[b:], "edge_neg": negatives(200)}, split / "test.pt")
    return base
