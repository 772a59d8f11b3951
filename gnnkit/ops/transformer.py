"""Dense attention within each graph of a batch (graph transformers): the autograd Function around
``gnnkit::graph_attention``, and the per-graph shortest-path distances that bias it.

On CUDA (Triton) forward and backward are fused kernels (FlashAttention-2 style, see
``kernels/graph_attention.py``): the ``[B, H, N, N]`` scores are never stored, in training either; the forward
keeps each row's log-sum-exp for the backward.  Elsewhere the torch reference; its backward recomputes a
chunk of graphs at a time under autograd, so the scores of at most ``CHUNK_BYTES`` worth of graphs exist at once.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from gnnkit._checks import check_int

from ._autograd import apply_function, first_order_only
from ._backend import use_triton
from .primitives import graph_attention_fused_bwd_op, graph_attention_fused_op, graph_attention_op
from .reference import graph_attention_ref

CHUNK_BYTES = 64 * 2 ** 20  # scores materialised at once by the backward recomputation


class GraphAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, num_nodes: Tensor, dist: Optional[Tensor],
                bias: Optional[Tensor], adjacency: bool, scale: float) -> Tensor:
        ctx.adjacency, ctx.scale = adjacency, scale
        ctx.fused = use_triton("graph_attention", q)
        if ctx.fused:
            out, lse = graph_attention_fused_op(q, k, v, num_nodes, dist, bias, adjacency, scale)
            ctx.save_for_backward(q, k, v, num_nodes, dist, bias, out, lse)
            return out
        ctx.save_for_backward(q, k, v, num_nodes, dist, bias)
        return graph_attention_op(q, k, v, num_nodes, dist, bias, adjacency, scale)

    @staticmethod
    @first_order_only
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        if ctx.fused:
            q, k, v, num_nodes, dist, bias, out, lse = ctx.saved_tensors
            gq, gk, gv, gb = graph_attention_fused_bwd_op(q, k, v, num_nodes, dist, bias, ctx.adjacency, ctx.scale,
                                                          out, lse, grad.contiguous())
            return gq, gk, gv, None, None, (None if bias is None else gb.to(bias.dtype)), None, None
        q, k, v, num_nodes, dist, bias = ctx.saved_tensors
        B, H, N, _ = q.shape
        per_graph = max(H * N * N * 4 * 3, 1)  # scores, probabilities and their gradient, fp32
        chunk = max(1, CHUNK_BYTES // per_graph)
        gq, gk, gv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        gb = torch.zeros_like(bias) if bias is not None else None
        for s in range(0, B, chunk):
            e = min(B, s + chunk)
            with torch.enable_grad():
                qc, kc, vc = (t[s:e].detach().requires_grad_() for t in (q, k, v))
                bc = bias.detach().requires_grad_() if bias is not None else None
                out = graph_attention_ref(qc, kc, vc, num_nodes[s:e], None if dist is None else dist[s:e], bc,
                                          ctx.adjacency, ctx.scale)
                inputs = [qc, kc, vc] + ([bc] if bc is not None else [])
                grads = torch.autograd.grad(out, inputs, grad[s:e])
            gq[s:e], gk[s:e], gv[s:e] = grads[:3]
            if gb is not None:
                gb += grads[3]
        return gq, gk, gv, None, None, gb, None, None


def graph_attention(q: Tensor, k: Tensor, v: Tensor, num_nodes: Tensor, dist: Optional[Tensor] = None,
                    bias: Optional[Tensor] = None, adjacency: bool = False, scale: Optional[float] = None) -> Tensor:
    """Multi-head attention within each graph of a padded batch.

    Args:
        q, k, v: ``[B, H, N, D]`` (``N`` the largest graph; rows past ``num_nodes[b]`` are padding).
        num_nodes: ``[B]`` nodes per graph.
        dist: ``[B, N, N]`` integer bucket of each pair (e.g. :func:`batch_distances`), needed by ``bias`` and
            ``adjacency``.
        bias: ``[H, buckets]`` learned bias per head and bucket (Graphormer's spatial encoding), or None.
        adjacency: attend only to the node itself and its neighbours (``dist <= 1``): the GAT limit.
        scale: score scale (default ``1 / sqrt(D)``).

    Returns:
        ``[B, H, N, D]``; padding rows are 0.
    """
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"graph_attention: q, k, v must share one shape [B, H, N, D], got {list(q.shape)}, "
                         f"{list(k.shape)}, {list(v.shape)}")
    B, H, N, D = q.shape
    if num_nodes.shape != (B,):
        raise ValueError(f"graph_attention: num_nodes must be [B={B}], got {list(num_nodes.shape)}")
    if (bias is not None or adjacency) and (dist is None or dist.shape != (B, N, N)):
        raise ValueError(f"graph_attention: a bias or the adjacency mask needs dist [B, N, N] = {[B, N, N]}")
    if bias is not None and (bias.dim() != 2 or bias.size(0) != H):
        raise ValueError(f"graph_attention: bias must be [H={H}, buckets], got {list(bias.shape)}")
    # the value checks read the device once (one host sync per call)
    stats = {}
    if B:
        stats["lo"], stats["hi"] = num_nodes.min(), num_nodes.max()
    if dist is not None and bias is not None and dist.numel():
        stats["bucket"] = dist.max().to(num_nodes.device)
        stats["bucket_lo"] = dist.min().to(num_nodes.device)  # a negative bucket would wrap to the last one
    got = dict(zip(stats, torch.stack([t.long() for t in stats.values()]).tolist())) if stats else {}
    if B and (got["lo"] < 0 or got["hi"] > N):
        raise ValueError(f"graph_attention: num_nodes must lie in [0, N={N}] (N: the padded size of q, k, v), got "
                         f"values from {got['lo']} to {got['hi']}")
    if got.get("bucket", -1) >= (bias.size(1) if bias is not None else 0):
        raise ValueError(f"graph_attention: dist has bucket {got['bucket']} but bias has {bias.size(1)} buckets")
    if got.get("bucket_lo", 0) < 0:
        raise ValueError(f"graph_attention: dist has bucket {got['bucket_lo']}; buckets are indices into bias, "
                         f"in [0, {bias.size(1)})")
    scale = 1.0 / math.sqrt(max(D, 1)) if scale is None else float(scale)
    return apply_function(GraphAttentionFunction, q, k, v, num_nodes.to(q.device), dist, bias, bool(adjacency), scale)


def batch_distances(edge_index: Tensor, batch: Tensor, max_distance: int, num_graphs: Optional[int] = None
                    ) -> Tuple[Tensor, Tensor]:
    """Shortest-path hop counts within each graph of a PyG batch, padded: ``(dist [B, N, N] int64,
    num_nodes [B])`` with ``N`` the largest graph.  Distances above ``max_distance``, unreachable pairs and
    padding get ``max_distance + 1``; edges are taken as undirected.  Breadth-first by boolean matrix
    products (``max_distance`` of them, on the batch's device)."""
    if isinstance(max_distance, int) and not isinstance(max_distance, bool) and max_distance < 1:
        raise ValueError(f"batch_distances: max_distance must be >= 1, got {max_distance}")
    max_distance = check_int("max_distance", max_distance, 1, who="batch_distances")
    if batch.dim() != 1:
        raise ValueError(f"batch_distances: batch must be [N] graph ids, got {list(batch.shape)}")
    batch = batch.long()
    B = int(batch.max()) + 1 if num_graphs is None and batch.numel() else (num_graphs or 0)
    if batch.numel() and (int(batch.min()) < 0 or int(batch.max()) >= B):
        raise ValueError(f"batch_distances: batch holds graph ids from {int(batch.min())} to {int(batch.max())} but "
                         f"num_graphs={B}; fix: num_graphs > max(batch) (or leave it None)")
    counts = torch.bincount(batch, minlength=B)
    if not bool((batch[1:] >= batch[:-1]).all()):
        raise ValueError("batch_distances: batch must be sorted (nodes of each graph together), as PyG batches are")
    n_max = int(counts.max()) if B else 0
    ptr = torch.zeros(B + 1, dtype=torch.long, device=batch.device)
    ptr[1:] = torch.cumsum(counts, 0)
    local = torch.arange(batch.numel(), device=batch.device) - ptr[batch]
    ei = edge_index.long()
    if ei.dim() != 2 or ei.size(0) != 2:
        raise ValueError(f"batch_distances: edge_index must be [2, E], got {list(ei.shape)}")
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= batch.numel()):
        raise ValueError(f"batch_distances: edge_index refers to nodes outside [0, {batch.numel()}) (the length "
                         "of batch); check edge_index against batch")
    if ei.numel() and bool((batch[ei[0]] != batch[ei[1]]).any()):
        raise ValueError("batch_distances: an edge joins two graphs of the batch; check edge_index against batch")
    adj = torch.zeros(B, n_max, n_max, dtype=torch.float32, device=batch.device)
    adj[batch[ei[0]], local[ei[0]], local[ei[1]]] = 1.0
    adj = ((adj + adj.transpose(1, 2)) > 0).float()
    far = max_distance + 1
    dist = torch.full((B, n_max, n_max), far, dtype=torch.long, device=batch.device)
    eye = torch.eye(n_max, dtype=torch.bool, device=batch.device).expand(B, -1, -1)
    reach = eye.clone()
    dist[reach] = 0
    frontier = eye.float()
    for d in range(1, max_distance + 1):
        nxt = (torch.bmm(frontier, adj) > 0) & ~reach
        if not bool(nxt.any()):
            break
        dist[nxt] = d
        reach |= nxt
        frontier = nxt.float()
    valid = torch.arange(n_max, device=batch.device).view(1, -1) < counts.view(-1, 1)
    dist[~(valid.unsqueeze(2) & valid.unsqueeze(1))] = far  # padding: the far bucket, its diagonal too
    return dist, counts
