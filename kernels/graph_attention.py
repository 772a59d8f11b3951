"""Dense multi-head attention within each graph of a batch, with a per-head bias looked up from a
shortest-path-distance table (Graphormer's spatial encoding) and an optional adjacency mask, in one pass
(online softmax, as FlashAttention): the ``[B, H, N, N]`` scores are never stored.

Inputs (padded per graph, ``N`` = the largest graph): ``q, k, v`` ``[B, H, N, D]``; ``num_nodes`` ``[B]``
int32 (keys ``j >= num_nodes[b]`` are padding); ``dist`` ``[B, N, N]`` int32 (bucket of each pair, indexes
``bias`` ``[H, NB]``); ``ADJ``: attend only where ``dist <= 1`` (the node itself and its neighbours).
A query row with no allowed key (padding) gets zeros.  Output ``[B, H, N, D]`` in ``q.dtype``, fp32
accumulation.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl


@triton.jit
def _graph_attention_fwd_kernel(q_ptr, k_ptr, v_ptr, n_ptr, dist_ptr, bias_ptr, out_ptr, H, N, D, NB, scale,
                                HAS_BIAS: tl.constexpr, ADJ: tl.constexpr, BLOCK_M: tl.constexpr,
                                BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    bh = tl.program_id(0)
    mb = tl.program_id(1)
    b = bh // H
    h = bh % H
    n_b = tl.load(n_ptr + b)
    offs_m = mb * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    base = bh.to(tl.int64) * N * D
    m_ok = offs_m < N
    d_ok = offs_d < D
    q = tl.load(q_ptr + base + offs_m[:, None] * D + offs_d[None, :], mask=m_ok[:, None] & d_ok[None, :],
                other=0.0).to(tl.float32)
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for start in range(0, N, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_b
        kt = tl.load(k_ptr + base + offs_n[None, :] * D + offs_d[:, None], mask=n_ok[None, :] & d_ok[:, None],
                     other=0.0).to(tl.float32)
        s = tl.dot(q, kt) * scale
        allowed = (offs_m[:, None] < n_b) & n_ok[None, :]
        if HAS_BIAS or ADJ:
            dist = tl.load(dist_ptr + b.to(tl.int64) * N * N + offs_m[:, None] * N + offs_n[None, :],
                           mask=allowed, other=0)
            if HAS_BIAS:
                s += tl.load(bias_ptr + h * NB + dist, mask=allowed, other=0.0).to(tl.float32)
            if ADJ:
                allowed = allowed & (dist <= 1)
        s = tl.where(allowed, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(s - m_safe[:, None])
        alpha = tl.exp(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_ptr + base + offs_n[:, None] * D + offs_d[None, :], mask=n_ok[:, None] & d_ok[None, :],
                    other=0.0).to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(p, v)
        m_i = m_new
    out = tl.where(l_i[:, None] > 0, acc / tl.where(l_i > 0, l_i, 1.0)[:, None], 0.0)
    tl.store(out_ptr + base + offs_m[:, None] * D + offs_d[None, :], out.to(out_ptr.dtype.element_ty),
             mask=m_ok[:, None] & d_ok[None, :])


def graph_attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_nodes: torch.Tensor,
                        dist: Optional[torch.Tensor], bias: Optional[torch.Tensor], adjacency: bool,
                        scale: float) -> torch.Tensor:
    """See the module doc."""
    B, H, N, D = q.shape if q.dim() == 4 else (0, 0, 0, 0)
    ok = (q.dim() == 4 and q.shape == k.shape == v.shape and num_nodes.shape == (B,)
          and (dist is None or dist.shape == (B, N, N)) and (bias is None or (bias.dim() == 2 and bias.size(0) == H))
          and (dist is not None or (bias is None and not adjacency)))
    if not ok:
        raise ValueError("graph_attention_fwd: expected q, k, v [B, H, N, D], num_nodes [B], dist [B, N, N] (needed "
                         f"by a bias or the mask), bias [H, buckets]; got q {list(q.shape)}, k {list(k.shape)}, v "
                         f"{list(v.shape)}, num_nodes {list(num_nodes.shape)}, "
                         f"dist {None if dist is None else list(dist.shape)}, "
                         f"bias {None if bias is None else list(bias.shape)}")
    out = torch.empty_like(q)
    if out.numel() == 0:
        return out
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    n32 = num_nodes.to(device=q.device, dtype=torch.int32).contiguous()
    d32 = dist if dist is not None else torch.zeros(1, dtype=torch.int32, device=q.device)
    d32 = d32.to(torch.int32).contiguous()
    bt = (bias if bias is not None else torch.zeros(1, dtype=q.dtype, device=q.device)).contiguous()
    BLOCK_D = max(16, triton.next_power_of_2(D))
    BLOCK_M = BLOCK_N = 32 if BLOCK_D <= 64 else 16
    grid = (B * H, triton.cdiv(N, BLOCK_M))
    _graph_attention_fwd_kernel[grid](q, k, v, n32, d32, bt, out, H, N, D, bt.size(-1) if bias is not None else 1,
                                      float(scale), HAS_BIAS=bias is not None, ADJ=bool(adjacency),
                                      BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=BLOCK_D, num_warps=4)
    return out
