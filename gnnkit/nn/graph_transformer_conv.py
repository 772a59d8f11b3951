"""GraphTransformerConv: a transformer layer over all node pairs of each graph, with the graph as a mask or
as a bias (Graphormer, Ying et al. 2021)."""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Embedding, LayerNorm, Linear, Parameter

from gnnkit._checks import check_int
from gnnkit.ops import batch_distances, cached_for, graph_attention, validate_edge_index

from ._utils import refuse_torch_func, require_edge_list

MAX_NODES = 1024  # the largest graph the dense per-graph attention takes by default


def _size_buckets(edge_index: Tensor, batch: Tensor, sizes: Tuple[int, ...], max_distance: int
                  ) -> List[Tuple[Optional[Tensor], Tensor, Tensor, Tensor]]:
    """The batch's graphs grouped by size, each group padded only to its own largest graph (one graph of 600
    nodes among 127 of 40 would otherwise pad every graph to 600: 128 x 600^2 attention pairs instead of
    ~600^2 + 127 x 40^2).  Graphs sorted by size start a new group when larger than twice, and 8 more than,
    the group's smallest.  Each group: ``(nodes or None for all, batch ids within the group, distances
    [B_g, N_g, N_g], node counts [B_g])``."""
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    groups: List[List[int]] = []
    for g in order:
        if sizes[g] == 0:
            continue
        if groups and sizes[g] <= max(2 * sizes[groups[-1][0]], sizes[groups[-1][0]] + 8):
            groups[-1].append(g)
        else:
            groups.append([g])
    if len(groups) <= 1:  # one group (or no node at all): the whole batch, as is
        dist, counts = batch_distances(edge_index, batch, max_distance, num_graphs=len(sizes))
        return [(None, batch, dist, counts)]
    batch = batch.long()
    ei = edge_index.long()
    edge_graph = batch[ei[0]] if ei.numel() else batch.new_zeros(0)
    if ei.numel() and bool((edge_graph != batch[ei[1]]).any()):
        raise ValueError("batch_distances: an edge joins two graphs of the batch; check edge_index against batch")
    out = []
    for members in groups:
        graphs = torch.tensor(sorted(members), dtype=torch.long, device=batch.device)
        rank = torch.full((len(sizes),), -1, dtype=torch.long, device=batch.device)
        rank[graphs] = torch.arange(graphs.numel(), device=batch.device)
        nodes = (rank[batch] >= 0).nonzero().view(-1)  # ascending: the group's graphs in batch order
        remap = torch.full((batch.numel(),), -1, dtype=torch.long, device=batch.device)
        remap[nodes] = torch.arange(nodes.numel(), device=batch.device)
        sub = remap[ei[:, rank[edge_graph] >= 0]] if ei.numel() else ei
        local = rank[batch[nodes]]
        dist, counts = batch_distances(sub, local, max_distance, num_graphs=graphs.numel())
        out.append((nodes, local, dist, counts))
    return out


class GraphTransformerConv(torch.nn.Module):
    r"""One pre-norm transformer layer per graph of a PyG batch — "transformers can be viewed as GNNs on
    fully connected graphs" (the lectures):

    .. math::
        \mathbf{H}' = \mathbf{H} + \mathrm{MHA}(\mathrm{LN}(\mathbf{H})), \qquad
        \mathbf{H}'' = \mathbf{H}' + \mathrm{FFN}(\mathrm{LN}(\mathbf{H}'))

    with, per head, :math:`\mathrm{softmax}\big(\mathbf{q}_i^\top\mathbf{k}_j/\sqrt{d} + b_{\phi(i,j)}\big)`
    over the nodes ``j`` of ``i``'s graph:

    - ``attention="full"``: every pair; ``"adjacency"``: only ``i`` itself and its neighbours (the adjacency
      matrix as a mask, renormalised: the GAT limit); edges count both ways (the graph is read as undirected, as
      for the distances), so on a directed ``edge_index`` the mask is :math:`A + A^\top + I`;
    - ``spatial_bias``: :math:`b_{\phi(i,j)}` learned per head and per shortest-path distance
      :math:`\phi(i,j) \in \{0..\text{max\_distance}\}` (one more bucket for farther / unreachable);
    - ``degree_encoding``: a learned embedding of each node's degree (capped at ``max_degree``) added to
      the input (Graphormer's centrality encoding).

    On CUDA the attention runs as one fused Triton kernel per (graph, head, query block) that never stores
    the ``[B, H, N, N]`` scores; elsewhere the torch reference (see :func:`gnnkit.ops.graph_attention`).

    Args:
        channels: node width (input = output).
        heads: attention heads (``channels`` must be divisible by it).
        attention: ``"full"`` or ``"adjacency"``.
        spatial_bias, max_distance: see above (``max_distance >= 1``).
        degree_encoding, max_degree: see above.
        dropout: on the attention output and in the FFN.
        ffn_ratio: FFN width over ``channels`` (0: no FFN block).
        max_nodes: the largest graph accepted (dense per-graph attention: N² pairs per head).

    ``forward(x, edge_index, batch)``: ``batch`` is PyG's graph id per node (required; for one graph pass
    ``torch.zeros(N, dtype=torch.long)``).
    """

    def __init__(self, channels: int, heads: int = 4, attention: str = "full", spatial_bias: bool = True,
                 max_distance: int = 8, degree_encoding: bool = True, max_degree: int = 32, dropout: float = 0.0,
                 ffn_ratio: int = 2, max_nodes: int = MAX_NODES):
        super().__init__()
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
            raise ValueError(f"GraphTransformerConv: heads must be an integer >= 1, got {heads!r}")
        if isinstance(max_degree, bool) or not isinstance(max_degree, int) or max_degree < 0:
            raise ValueError(f"GraphTransformerConv: max_degree must be an integer >= 0 (degrees are capped at it), "
                             f"got {max_degree!r}")
        if channels % heads:
            raise ValueError(f"GraphTransformerConv: channels={channels} must be divisible by heads={heads}")
        if attention not in ("full", "adjacency"):
            raise ValueError(f"GraphTransformerConv: attention must be 'full' or 'adjacency', got {attention!r}")
        if isinstance(max_distance, int) and not isinstance(max_distance, bool) and max_distance < 1:
            raise ValueError(f"GraphTransformerConv: max_distance must be >= 1 (hops of the spatial bias), got "
                             f"{max_distance}")
        max_distance = check_int("max_distance", max_distance, 1, who="GraphTransformerConv",
                                 hint=" (hops of the spatial bias)")
        if max_nodes != math.inf:  # (math.inf: no bound)
            max_nodes = check_int("max_nodes", max_nodes, 1, who="GraphTransformerConv")
        ffn_ratio = check_int("ffn_ratio", ffn_ratio, 0, who="GraphTransformerConv")
        self.channels, self.heads, self.attention = channels, heads, attention
        self.max_distance, self.max_degree, self.max_nodes, self.dropout = max_distance, max_degree, max_nodes, dropout
        self.norm1 = LayerNorm(channels)
        self.qkv = Linear(channels, 3 * channels)
        self.out = Linear(channels, channels)
        self.spatial = Parameter(torch.zeros(heads, max_distance + 2)) if spatial_bias else None
        self.degree = Embedding(max_degree + 1, channels) if degree_encoding else None
        if ffn_ratio > 0:
            self.norm2 = LayerNorm(channels)
            self.ffn1, self.ffn2 = Linear(channels, ffn_ratio * channels), Linear(ffn_ratio * channels, channels)
        else:
            self.norm2 = self.ffn1 = self.ffn2 = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.norm1, self.qkv, self.out, self.norm2, self.ffn1, self.ffn2):
            if m is not None:
                m.reset_parameters()
        if self.spatial is not None:
            torch.nn.init.zeros_(self.spatial)
        if self.degree is not None:
            torch.nn.init.normal_(self.degree.weight, std=0.02)

    # Per-batch graph sizes choose the dense buckets and their shapes (data-dependent), so inside a compiled
    # model the layer runs eagerly: one graph break instead of a dozen traced host syncs (fullgraph=True refuses it)
    @torch.compiler.disable
    def forward(self, x: Tensor, edge_index: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        refuse_torch_func("GraphTransformerConv")
        require_edge_list(edge_index, "GraphTransformerConv")
        if batch is None:
            raise ValueError("GraphTransformerConv needs batch (the graph id of every node, PyG's Batch.batch); "
                             "for a single graph pass torch.zeros(N, dtype=torch.long)")
        if x.dim() != 2 or x.size(-1) != self.channels:
            raise ValueError(f"GraphTransformerConv: x must be [N, channels={self.channels}], got {list(x.shape)}")
        if batch.shape != (x.size(0),):
            raise ValueError(f"GraphTransformerConv: batch must be [N={x.size(0)}], got {list(batch.shape)}")
        n = x.size(0)
        if n == 0:
            validate_edge_index(edge_index, 0, 0)
            return x
        if batch.is_floating_point() or batch.dtype == torch.bool or int(batch.min()) < 0:
            raise ValueError(f"GraphTransformerConv: batch must hold non-negative integer graph ids (PyG's "
                             f"Batch.batch), got dtype {batch.dtype} with minimum {batch.min().item()}")
        from torch_geometric.utils import degree, to_dense_batch
        # the same batch goes through every layer of a model: its size buckets and distances are computed once,
        # cached on the edge_index under the batch's graph sizes (batch must be sorted, so the sizes determine it)
        if not bool((batch[1:] >= batch[:-1]).all()):
            raise ValueError("GraphTransformerConv: batch must be sorted (the nodes of each graph together), as "
                             "PyG's Batch makes it; sort the nodes by graph id")
        sizes = tuple(torch.bincount(batch.long()).tolist())
        tag = ("graph_buckets", self.max_distance, batch.numel(), sizes)
        if max(sizes) > self.max_nodes:
            raise ValueError(f"GraphTransformerConv: a graph of {max(sizes)} nodes exceeds max_nodes="
                             f"{self.max_nodes} (dense attention over N^2 pairs per graph); fix: raise max_nodes if "
                             "memory allows, or use a sparse layer (GATConv) for large graphs")

        def build():  # validated once per edge_index and batch, with the distances (not on every layer call)
            validate_edge_index(edge_index, n, n)
            return _size_buckets(edge_index, batch, sizes, self.max_distance)
        buckets = cached_for(edge_index, tag, build)
        h = x
        if self.degree is not None:
            deg = degree(edge_index[1], x.size(0), dtype=torch.long).clamp(max=self.max_degree)
            h = h + self.degree(deg)
        qkv = self.qkv(self.norm1(h))  # on the real nodes; padded per bucket below
        C, H = self.channels, self.heads
        att = None
        for nodes, local_batch, dist, counts in buckets:
            part = qkv if nodes is None else qkv.index_select(0, nodes)
            dense, mask = to_dense_batch(part, local_batch, max_num_nodes=dist.size(-1), batch_size=counts.numel())
            B, N = dense.shape[:2]
            q, k, v = dense.view(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
            out = graph_attention(q.contiguous(), k.contiguous(), v.contiguous(), counts, dist, self.spatial,
                                  self.attention == "adjacency")
            out = out.permute(0, 2, 1, 3).reshape(B, N, C)[mask]
            if nodes is None:
                att = out
            else:
                att = (qkv.new_zeros(n, C) if att is None else att).index_copy(0, nodes, out)
        h = h + F.dropout(self.out(att), self.dropout, self.training)
        if self.ffn1 is not None:
            f = self.ffn2(F.dropout(F.gelu(self.ffn1(self.norm2(h))), self.dropout, self.training))
            h = h + F.dropout(f, self.dropout, self.training)
        return h

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, heads={self.heads}, attention={self.attention!r}, "
                f"spatial_bias={self.spatial is not None})")
