r"""Multi-head graph attention aggregation (the GAT primitive).

.. math::
    s_{e,h} = \mathrm{LeakyReLU}\big(a^{src}_{j,h} + a^{dst}_{i,h} + t_{e,h}\big), \quad
    \alpha_{e,h} = \operatorname{softmax}_{e \to i}(s_{e,h}), \quad
    \mathbf{y}_{i,h} = \sum_{e = (j \to i)} \alpha_{e,h} \mathbf{x}_{j,h}

GAT's logits split into per-node terms (``a_src = <x_j, att_src>``,
``a_dst = <x_i, att_dst>``) plus an optional per-edge term ``t`` (edge
features), so the only E-sized tensors are the ``[E, H]`` scores.
The torch path composes :mod:`.softmax` and :mod:`.spmm` (whose hand-written
backwards never build an ``E x H x F`` tensor).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .graph import Graph
from .softmax import segment_softmax_slots
from .spmm import spmm_slots


def gat_attention(graph: Graph, x: Tensor, a_src: Tensor, a_dst: Tensor, edge_term: Optional[Tensor] = None,
                  negative_slope: float = 0.2, dropout: float = 0.0, training: bool = False,
                  return_attention: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """Attention-weighted aggregation over incoming edges, all heads at once.

    Args:
        graph: from :func:`gnnkit.ops.as_graph`.
        x: source features ``[num_src, H, F]``.
        a_src: source scores ``[num_src, H]``; a_dst: destination scores ``[num_dst, H]``.
        edge_term: optional per-edge scores ``[E, H]`` in the input edge order.
        negative_slope: LeakyReLU slope.
        dropout: dropout probability on the attention weights (only when ``training``).
        return_attention: also return the attention weights ``[E, H]`` (input edge order).

    Returns:
        ``(out [num_dst, H, F], alpha or None)``.
    """
    if x.dim() != 3 or x.size(0) != graph.num_src:
        raise ValueError(f"x must have shape [num_src={graph.num_src}, H, F], got {list(x.shape)}")
    H = x.size(1)
    if a_src.shape != (graph.num_src, H) or a_dst.shape != (graph.num_dst, H):
        raise ValueError(f"a_src must be [num_src={graph.num_src}, H={H}] and a_dst [num_dst={graph.num_dst}, "
                         f"H={H}], got {list(a_src.shape)} and {list(a_dst.shape)}")
    if edge_term is not None and edge_term.shape != (graph.num_edges, H):
        raise ValueError(f"edge_term must be [E={graph.num_edges}, H={H}], got {list(edge_term.shape)}")
    s = a_src.index_select(0, graph.col) + a_dst.index_select(0, graph.row)
    if edge_term is not None:
        s = s + graph.to_csr_order(edge_term)
    s = F.leaky_relu(s, negative_slope)
    alpha = segment_softmax_slots(graph, s)
    weights = F.dropout(alpha, p=dropout, training=training) if dropout > 0 else alpha
    out = spmm_slots(graph, x, weights.to(x.dtype), "sum")
    return out, (graph.from_csr_order(alpha) if return_attention else None)
