"""Graph facts the splitter, the leakage check and the trainer all need (a module they share,
so none of them imports another for a helper)."""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data


def is_bipartite(data: Data) -> bool:
    """A bipartite ``Data`` carries integer ``num_src`` and ``num_dst`` attributes."""
    has_s, has_d = "num_src" in data, "num_dst" in data
    if has_s != has_d:
        raise ValueError("a bipartite Data needs both num_src and num_dst; fix: set the missing one")
    return has_s


def infer_undirected(data: Data) -> bool:
    """True when ``data`` is homogeneous and its message edges are stored in both directions."""
    if is_bipartite(data):
        return False
    return is_symmetric(data.edge_index)


# above this share of one-way-stored edges having their reverse, "directed" is not inferred but asked for
NEAR_SYMMETRIC = 0.5


def reciprocity(edge_index: Tensor) -> float:
    """The share of distinct non-loop edges ``(u, v)`` whose reverse ``(v, u)`` is also present (1.0: symmetric;
    an edge_index without such edges gives 0.0)."""
    ei = edge_index.long()
    ei = ei[:, ei[0] != ei[1]]
    if ei.numel() == 0:
        return 0.0
    n = int(ei.max()) + 1
    fwd = torch.unique(ei[0] * n + ei[1])
    return float(torch.isin(fwd, torch.unique(ei[1] * n + ei[0])).double().mean())


def decide_undirected(data: Data, yes: str = "is_undirected=True", no: str = "is_undirected=False") -> bool:
    """``is_undirected=None`` resolved: True for an edge_index stored in both directions, False for a
    directed one, and a ``ValueError`` for an almost symmetric one (a few one-way edges in an undirected
    graph), where "directed" would put the reverse of most held-out edges into the training messages."""
    if infer_undirected(data):
        return True
    if is_bipartite(data):
        return False
    r = reciprocity(data.edge_index)
    if r >= NEAR_SYMMETRIC:
        raise ValueError(f"edge_index is almost symmetric: {100 * r:.2f} % of its edges also appear reversed, the "
                         "rest only one way. Inferred as directed, the reverse of most held-out edges would stay in "
                         f"the training messages. Fix: choose with {yes} (undirected: each unordered pair is one "
                         f"edge) or {no} (directed: (v, u) is another edge than (u, v))")
    return False


def is_symmetric(edge_index: Tensor) -> bool:
    """Every edge ``(u, v)`` of ``edge_index`` also appears as ``(v, u)`` (an empty one is not)."""
    if edge_index.numel() == 0:
        return False
    ei = edge_index.long()
    n = int(ei.max()) + 1
    fwd = torch.unique(ei[0] * n + ei[1])
    rev = torch.unique(ei[1] * n + ei[0])
    return fwd.numel() == rev.numel() and bool((fwd == rev).all())


def both_directions(e: Tensor) -> Tensor:
    return torch.cat([e, e.flip(0)], 1)
