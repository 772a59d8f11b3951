"""Canonical node order for code sequences: breadth-first from a root, as GraphRNN orders nodes.

The autoencoder gives node ``i`` of a graph the position embedding of its rank in this order, and the
prior models the node codes in the same order, so a sampled sequence decodes position by position.
"""
from __future__ import annotations

from collections import deque
from typing import List, Optional

import torch
from torch import Tensor
from torch_geometric.data import Data

from ._common import check_undirected


def bfs_order(edge_index: Tensor, num_nodes: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """A BFS order of ``num_nodes`` nodes; returns ``perm`` with ``perm[rank] = node``.

    Without ``generator`` it is deterministic (the canonical order): the root is the node of highest
    degree (lowest id on ties), neighbours are visited by decreasing degree (then id), and a
    disconnected graph continues from the highest-degree unvisited node. With a ``generator`` it is
    GraphRNN's random BFS: a uniformly random root (and next root for each further component) and
    neighbours in random order — the augmentation GraphRNN trains on, so that a model sees many
    orders of each graph."""
    if num_nodes == 0:
        return torch.zeros(0, dtype=torch.long)
    ei = edge_index.detach().cpu().long()
    if ei.dim() != 2 or ei.size(0) != 2:
        raise ValueError(f"bfs_order: edge_index must be [2, E], got {list(ei.shape)}")
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
        raise ValueError(f"bfs_order: edge_index holds node ids in [{int(ei.min())}, {int(ei.max())}] but num_nodes="
                         f"{num_nodes}; fix: ids in [0, num_nodes) (or the graph's true node count)")
    adj: List[set] = [set() for _ in range(num_nodes)]
    for u, v in ei.t().tolist():
        if u != v:
            adj[u].add(v)
            adj[v].add(u)
    if generator is None:
        deg = [len(a) for a in adj]
        key = lambda n: (-deg[n], n)  # noqa: E731
        roots = sorted(range(num_nodes), key=key)
        visit = lambda nbrs: sorted(nbrs, key=key)  # noqa: E731
    else:
        rank = torch.randperm(num_nodes, generator=generator).tolist()  # a random priority per node
        roots = sorted(range(num_nodes), key=lambda n: rank[n])
        visit = lambda nbrs: sorted(nbrs, key=lambda n: rank[n])  # noqa: E731
    seen = [False] * num_nodes
    order: List[int] = []
    for root in roots:
        if seen[root]:
            continue
        seen[root] = True
        queue = deque([root])
        while queue:
            u = queue.popleft()
            order.append(u)
            for v in visit(adj[u]):
                if not seen[v]:
                    seen[v] = True
                    queue.append(v)
    return torch.tensor(order, dtype=torch.long)


def canonical(data: Data, generator: Optional[torch.Generator] = None) -> Data:
    """A copy of ``data`` with its nodes renumbered in :func:`bfs_order` (node ``i`` = BFS rank ``i``;
    the canonical order, or a random BFS order with ``generator``); node-level tensors (``x``,
    ``node_label``) are permuted alike, ``edge_index`` is relabelled and sorted, and ``perm`` records
    the original id of each new node."""
    if not isinstance(data, Data) or getattr(data, "edge_index", None) is None:
        raise ValueError(f"data must be a torch_geometric Data with edge_index, got {type(data).__name__}; "
                         f"convert networkx graphs with gnnkit.latent.datasets.to_pyg")
    n = int(data.num_nodes)
    check_undirected(data.edge_index, n, "canonical", "the generator models undirected graphs")
    perm = bfs_order(data.edge_index, n, generator)
    rank = torch.empty(n, dtype=torch.long)
    rank[perm] = torch.arange(n)
    out = Data(num_nodes=n)
    ei = rank[data.edge_index.long()]
    order = torch.argsort(ei[0] * max(n, 1) + ei[1])
    out.edge_index = ei[:, order]
    for key in ("x", "node_label"):
        value = getattr(data, key, None)
        if value is not None:
            out[key] = value.index_select(0, perm)
    out.perm = perm
    return out
