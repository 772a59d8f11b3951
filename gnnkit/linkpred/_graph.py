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
