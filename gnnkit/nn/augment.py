r"""Edge augmentation :math:`A \rightarrow A + A^2 (+ \ldots + A^k)`: connect nodes up to
``k`` hops apart so a few layers see a wider neighbourhood.

The powers are sparse products of the adjacency (``torch.sparse.mm``), so a new edge
``j -> i`` exists where a walk of length ``<= k`` goes from ``j`` to ``i``.  Edge weights:

* ``"sum"``: the entry of :math:`A + A^2 + \ldots + A^k` — walks weighted by the product of
  their edge weights (1 without weights), summed;
* ``"keep"``: an input edge keeps its weight; a new edge gets the weight of the shortest
  power that creates it (the entry of that power of :math:`A`);
* ``"ones"``: every edge weighs 1.

Self-loops created by the powers (walks ``i -> j -> i``) are dropped unless
``self_loops=True``; self-loops of the input are kept.
"""
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from gnnkit._checks import check_int
from gnnkit.ops import validate_edge_index

_WEIGHTS = ("sum", "keep", "ones")


def add_k_hop_edges(edge_index: Tensor, edge_weight: Optional[Tensor] = None, num_nodes: Optional[int] = None,
                    k: int = 2, weights: str = "sum", self_loops: bool = False) -> Tuple[Tensor, Tensor]:
    """Return ``(edge_index, edge_weight)`` of :math:`A + \\ldots + A^k`, sorted by (dst, src).

    Args:
        edge_index: ``[2, E]`` (source, destination).
        edge_weight: ``[E]`` or None (all ones). Duplicate edges are summed.
        num_nodes: node count (default: inferred).
        k: largest power (default 2; ``k=1`` only coalesces).
        weights: ``"sum"``, ``"keep"`` or ``"ones"`` (see the module docstring).
        self_loops: keep the self-loops that the powers create (default False).
    """
    check_int("k", k, 1, who="add_k_hop_edges", hint=" (the largest power of A)")
    if weights not in _WEIGHTS:
        raise ValueError(f"weights={weights!r} is not supported; use one of {_WEIGHTS}")
    n, _ = validate_edge_index(edge_index, num_nodes, num_nodes)
    E = edge_index.size(1)
    if edge_weight is None:
        w = torch.ones(E, dtype=torch.get_default_dtype(), device=edge_index.device)
    else:
        if not isinstance(edge_weight, Tensor):  # e.g. add_k_hop_edges(edge_index, 3): a node count given second
            raise ValueError(f"add_k_hop_edges: edge_weight (the second argument) must be a tensor [E] or None, got "
                             f"{type(edge_weight).__name__} {edge_weight!r}; fix: pass the node count and the power "
                             "by name (num_nodes=..., k=...)")
        if edge_weight.dim() != 1 or edge_weight.numel() != E:
            raise ValueError(f"edge_weight must have shape [E={E}], got {list(edge_weight.shape)}")
        if not edge_weight.is_floating_point():
            raise ValueError(f"edge_weight must be floating point, got {edge_weight.dtype}")
        w = edge_weight
    out_dtype = w.dtype  # torch's sparse matmul has no half-precision kernel on CPU: powers in float32
    w = w.float() if w.dtype in (torch.float16, torch.bfloat16) else w
    ei = edge_index.long()
    # adj_t[i, j] = weight of j -> i; (A^p)_t = adj_t^p
    A = torch.sparse_coo_tensor(torch.stack([ei[1], ei[0]]), w, (n, n), check_invariants=False).coalesce()
    total = A
    first = A  # "keep": weight from the lowest power where the entry appears
    P = A
    for _ in range(2, k + 1):
        P = torch.sparse.mm(P, A).coalesce()
        if not self_loops:
            idx = P.indices()
            off = idx[0] != idx[1]
            P_new = torch.sparse_coo_tensor(idx[:, off], P.values()[off], (n, n), check_invariants=False).coalesce()
        else:
            P_new = P
        total = (total + P_new).coalesce()
        # entries of P_new not yet present in `first`
        present = torch.sparse_coo_tensor(first.indices(), torch.ones_like(first.values()), (n, n),
                                          check_invariants=False)
        mask = (P_new + 0 * present).coalesce()
        is_new = (torch.sparse_coo_tensor(mask.indices(), torch.ones_like(mask.values()), (n, n),
                                           check_invariants=False)
                  - present).coalesce()
        new_idx = is_new.indices()[:, is_new.values() > 0]
        if new_idx.numel() > 0:
            vals = _lookup(P_new, new_idx, n)
            first = (first + torch.sparse_coo_tensor(new_idx, vals, (n, n), check_invariants=False)).coalesce()
    out = {"sum": total, "keep": first, "ones": total}[weights]
    idx = out.indices()
    vals = out.values() if weights != "ones" else torch.ones_like(out.values())
    return torch.stack([idx[1], idx[0]]).to(edge_index.dtype), vals.to(out_dtype)


def _lookup(S: Tensor, idx: Tensor, n: int) -> Tensor:
    """Values of coalesced sparse ``S`` at ``idx`` (all present)."""
    key_s = S.indices()[0] * n + S.indices()[1]
    key = idx[0] * n + idx[1]
    pos = torch.searchsorted(key_s, key)
    return S.values()[pos]


class AddKHopEdges:
    """Transform for ``torch_geometric.data.Data``: replaces ``edge_index`` (and ``edge_weight``
    when present) by :func:`add_k_hop_edges`.  ``edge_attr`` cannot be extended to new edges,
    so a ``Data`` that has one raises."""

    def __init__(self, k: int = 2, weights: str = "sum", self_loops: bool = False):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"AddKHopEdges: k must be an integer >= 1 (the largest power of A), got {k!r}")
        if weights not in _WEIGHTS:
            raise ValueError(f"weights={weights!r} is not supported; use one of {_WEIGHTS}")
        self.k, self.weights, self.self_loops = k, weights, self_loops

    def __call__(self, data: Any) -> Any:
        if getattr(data, "edge_attr", None) is not None:
            raise ValueError("AddKHopEdges cannot invent edge_attr for new edges; drop data.edge_attr or "
                             "use a scalar edge_weight")
        ei, w = add_k_hop_edges(data.edge_index, getattr(data, "edge_weight", None), data.num_nodes,
                                self.k, self.weights, self.self_loops)
        data = data.clone()
        data.edge_index, data.edge_weight = ei, w
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(k={self.k}, weights={self.weights})"
