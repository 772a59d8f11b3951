"""Dense multi-head attention within each graph of a batch, with a per-head bias looked up from a
shortest-path-distance table (Graphormer's spatial encoding) and an optional adjacency mask, in one pass
(online softmax, as FlashAttention): the ``[B, H, N, N]`` scores are never stored.

Inputs (padded per graph, ``N`` = the largest graph): ``q, k, v`` ``[B, H, N, D]``; ``num_nodes`` ``[B]``
int32 (keys ``j >= num_nodes[b]`` are padding); ``dist`` ``[B, N, N]`` int32 or int64 (bucket of each pair, indexes
``bias`` ``[H, NB]``); ``ADJ``: attend only where ``dist <= 1`` (the node itself and its neighbours).
A query row with no allowed key (padding) gets zeros.  Output ``[B, H, N, D]`` (contiguous) in ``q.dtype``,
fp32 accumulation.  The tile products (``tl.dot``) follow torch's matmul setting: fp32 inputs multiply in full
fp32 (``input_precision="ieee"``) unless TF32 is allowed (:func:`dot_precision` reads torch's setting), then
in TF32 on sm_80+ (about 1e-3 relative); fp16 / bf16
inputs always use TF32 tensor cores (their values are exact in TF32; the softmax weights round to TF32).

The backward (:func:`graph_attention_bwd`) is FlashAttention-2's: the forward also stores each row's
log-sum-exp ``[B, H, N]``; one kernel walks the query blocks for each block of keys (dK, dV, and the bias
gradient as per-program sums per distance bucket), one walks the key blocks for each block of queries (dQ),
both recomputing P tile by tile, so training stores no ``[B, H, N, N]`` tensor either.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl


@triton.jit
def _program(n_ptr, H, N, D, BLOCK: tl.constexpr, BLOCK_D: tl.constexpr):
    """This program's place: ``(bh, b, h, n_b, offs, offs_d, d_ok, base)`` = the (graph, head) slab index, the
    graph, the head, the graph's node count, the rows of this program's block (along axis 1 of the grid), the
    feature offsets and their mask, and the slab's offset in the ``[B, H, N, D]`` tensors."""
    bh = tl.program_id(0)
    b = bh // H
    n_b = tl.load(n_ptr + b)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    offs_d = tl.arange(0, BLOCK_D)
    return bh, b, bh % H, n_b, offs, offs_d, offs_d < D, bh.to(tl.int64) * N * D


@triton.jit
def _graph_attention_fwd_kernel(q_ptr, k_ptr, v_ptr, n_ptr, dist_ptr, bias_ptr, out_ptr, lse_ptr, H, N, D, NB,
                                scale, HAS_BIAS: tl.constexpr, ADJ: tl.constexpr, STORE_LSE: tl.constexpr,
                                PREC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                BLOCK_D: tl.constexpr):
    bh, b, h, n_b, offs_m, offs_d, d_ok, base = _program(n_ptr, H, N, D, BLOCK_M, BLOCK_D)
    m_ok = offs_m < N
    q_ok = offs_m < n_b  # query rows of the graph (padding rows stay 0)
    q = _rows(q_ptr, base, offs_m, q_ok, offs_d, d_ok, D)
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for start in range(0, N, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_b
        k = _rows(k_ptr, base, offs_n, n_ok, offs_d, d_ok, D)
        s, allowed, _ = _tile(q, tl.trans(k), b, h, offs_m, offs_n, q_ok, n_ok, dist_ptr, bias_ptr, N, NB, scale,
                              HAS_BIAS, ADJ, PREC)
        s = tl.where(allowed, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(s - m_safe[:, None])
        alpha = tl.exp(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = _rows(v_ptr, base, offs_n, n_ok, offs_d, d_ok, D)
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision=PREC)
        m_i = m_new
    out = tl.where(l_i[:, None] > 0, acc / tl.where(l_i > 0, l_i, 1.0)[:, None], 0.0)
    tl.store(out_ptr + base + offs_m[:, None] * D + offs_d[None, :], out.to(out_ptr.dtype.element_ty),
             mask=m_ok[:, None] & d_ok[None, :])
    if STORE_LSE:  # log-sum-exp of each row's allowed scores (+inf: no allowed key), for the backward
        lse = tl.where(l_i > 0, m_i + tl.log(tl.where(l_i > 0, l_i, 1.0)), float("inf"))
        tl.store(lse_ptr + bh.to(tl.int64) * N + offs_m, lse, mask=m_ok)


def _check(q, k, v, num_nodes, dist, bias, adjacency, name):
    B, H, N, D = q.shape if q.dim() == 4 else (0, 0, 0, 0)
    ok = (q.dim() == 4 and q.shape == k.shape == v.shape and num_nodes.shape == (B,)
          and (dist is None or dist.shape == (B, N, N)) and (bias is None or (bias.dim() == 2 and bias.size(0) == H))
          and (dist is not None or (bias is None and not adjacency)))
    if not ok:
        raise ValueError(f"{name}: expected q, k, v [B, H, N, D], num_nodes [B], dist [B, N, N] (needed "
                         f"by a bias or the mask), bias [H, buckets]; got q {list(q.shape)}, k {list(k.shape)}, v "
                         f"{list(v.shape)}, num_nodes {list(num_nodes.shape)}, "
                         f"dist {None if dist is None else list(dist.shape)}, "
                         f"bias {None if bias is None else list(bias.shape)}")


def _common(q, num_nodes, dist, bias):
    # a count above N is N (as the reference reads it): the kernels bound rows and keys by it alone
    n32 = num_nodes.to(device=q.device).clamp(0, q.size(2)).to(torch.int32).contiguous()
    d32 = dist if dist is not None else torch.zeros(1, dtype=torch.int32, device=q.device)
    # int32 / int64 read as they are: an int32 copy of an int64 [B, N, N] table would be the largest scratch
    # of the call (10 MB at B = 64, N = 200; the first H200 run counted it)
    d32 = (d32 if d32.dtype in (torch.int32, torch.int64) else d32.to(torch.int32)).contiguous()
    bt = (bias if bias is not None else torch.zeros(1, dtype=q.dtype, device=q.device)).contiguous()
    BLOCK_D = max(16, triton.next_power_of_2(q.size(-1)))
    block = 32 if BLOCK_D <= 64 else 16
    return n32, d32, bt, BLOCK_D, block


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot``'s ``input_precision`` for inputs of ``dtype``: ``"ieee"`` (full fp32 products) for fp32 / fp64
    unless torch allows TF32 matmuls (``torch.backends.cuda.matmul.fp32_precision = "tf32"``, the global
    ``torch.backends.fp32_precision``, or the older ``allow_tf32`` / ``set_float32_matmul_precision("high")``),
    else ``"tf32"`` (fp16 / bf16 values are exact in TF32)."""
    if dtype in (torch.float16, torch.bfloat16):
        return "tf32"
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9: reading allow_tf32 raises once the new API was used
        p = matmul.fp32_precision
        if p == "none":  # not set for matmuls: the global setting decides
            p = torch.backends.fp32_precision
        return "tf32" if p == "tf32" else "ieee"
    return "tf32" if matmul.allow_tf32 else "ieee"


@triton.jit
def _row_dot_kernel(a_ptr, b_ptr, out_ptr, N, D, BLOCK: tl.constexpr, BLOCK_D: tl.constexpr):
    """``out[bh, i] = sum_d a[bh, i, d] * b[bh, i, d]`` in fp32 (the backward's rowsum(dO * O)), without the fp32
    copies of ``a`` and ``b`` that ``(a.float() * b.float()).sum(-1)`` allocates."""
    bh = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    offs_d = tl.arange(0, BLOCK_D)
    ok, d_ok = offs < N, offs_d < D
    prod = _rows(a_ptr, bh * N * D, offs, ok, offs_d, d_ok, D) * _rows(b_ptr, bh * N * D, offs, ok, offs_d, d_ok, D)
    tl.store(out_ptr + bh * N + offs, tl.sum(prod, 1), mask=ok)


def graph_attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_nodes: torch.Tensor,
                        dist: Optional[torch.Tensor], bias: Optional[torch.Tensor], adjacency: bool,
                        scale: float, return_lse: bool = False):
    """See the module doc.  ``return_lse``: also return each row's log-sum-exp ``[B, H, N]`` fp32 (``+inf``
    for rows without an allowed key), what :func:`graph_attention_bwd` needs."""
    _check(q, k, v, num_nodes, dist, bias, adjacency, "graph_attention_fwd")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()  # before allocating: outputs are written contiguous
    out = torch.empty_like(q)
    lse = torch.full(q.shape[:3], float("inf"), dtype=torch.float32, device=q.device)
    if out.numel() == 0:
        return (out, lse) if return_lse else out
    B, H, N, D = q.shape
    n32, d32, bt, BLOCK_D, block = _common(q, num_nodes, dist, bias)
    grid = (B * H, triton.cdiv(N, block))
    _graph_attention_fwd_kernel[grid](q, k, v, n32, d32, bt, out, lse, H, N, D,
                                      bt.size(-1) if bias is not None else 1, float(scale),
                                      HAS_BIAS=bias is not None, ADJ=bool(adjacency), STORE_LSE=bool(return_lse),
                                      PREC=dot_precision(q.dtype), BLOCK_M=block, BLOCK_N=block, BLOCK_D=BLOCK_D,
                                      num_warps=4)
    return (out, lse) if return_lse else out


@triton.jit
def _rows(ptr, base, offs, ok, offs_d, d_ok, D):
    """Rows ``offs`` of one (graph, head) ``[N, D]`` slice as fp32 (masked rows and columns 0)."""
    return tl.load(ptr + base + offs[:, None] * D + offs_d[None, :], mask=ok[:, None] & d_ok[None, :],
                   other=0.0).to(tl.float32)


@triton.jit
def _row_stats(lse_ptr, delta_ptr, bh, N, offs_m, m_ok):
    """Each query row's log-sum-exp (+inf past the graph) and rowsum(dO * O)."""
    lse = tl.load(lse_ptr + bh.to(tl.int64) * N + offs_m, mask=m_ok, other=float("inf"))
    delta = tl.load(delta_ptr + bh.to(tl.int64) * N + offs_m, mask=m_ok, other=0.0)
    return lse, delta


@triton.jit
def _tile(q, kt, b, h, offs_m, offs_n, m_ok, n_ok, dist_ptr, bias_ptr, N, NB, scale,
          HAS_BIAS: tl.constexpr, ADJ: tl.constexpr, PREC: tl.constexpr):
    """Scores, the allowed mask and the distance buckets of one [BLOCK_M, BLOCK_N] tile (``kt``: the keys
    transposed), the one definition the forward and both backward kernels share."""
    s = tl.dot(q, kt, input_precision=PREC) * scale
    allowed = m_ok[:, None] & n_ok[None, :]
    dist = tl.zeros(s.shape, tl.int32)
    if HAS_BIAS or ADJ:
        dist = tl.load(dist_ptr + b.to(tl.int64) * N * N + offs_m[:, None] * N + offs_n[None, :], mask=allowed,
                       other=0).to(tl.int32)
        if HAS_BIAS:
            s += tl.load(bias_ptr + h * NB + dist, mask=allowed, other=0.0).to(tl.float32)
        if ADJ:
            allowed = allowed & (dist <= 1)
    return s, allowed, dist


@triton.jit
def _graph_attention_bwd_kv_kernel(q_ptr, k_ptr, v_ptr, n_ptr, dist_ptr, bias_ptr, do_ptr, lse_ptr, delta_ptr,
                                   dk_ptr, dv_ptr, dbias_ptr, H, N, D, NB, scale, HAS_BIAS: tl.constexpr,
                                   ADJ: tl.constexpr, PREC: tl.constexpr, BLOCK_M: tl.constexpr,
                                   BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_NB: tl.constexpr):
    """One block of keys: dK, dV over every query block (recomputing P from the saved log-sum-exp), and
    this program's partial sums of dS per distance bucket (summed over programs by the launcher)."""
    bh, b, h, n_b, offs_n, offs_d, d_ok, base = _program(n_ptr, H, N, D, BLOCK_N, BLOCK_D)
    n_ok = offs_n < n_b
    kv_mask = n_ok[:, None] & d_ok[None, :]
    k = _rows(k_ptr, base, offs_n, n_ok, offs_d, d_ok, D)
    v = _rows(v_ptr, base, offs_n, n_ok, offs_d, d_ok, D)
    dk = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    buckets = tl.arange(0, BLOCK_NB)
    db = tl.zeros((BLOCK_NB,), tl.float32)
    for start in range(0, N, BLOCK_M):
        offs_m = start + tl.arange(0, BLOCK_M)
        m_ok = offs_m < n_b
        q = _rows(q_ptr, base, offs_m, m_ok, offs_d, d_ok, D)
        do = _rows(do_ptr, base, offs_m, m_ok, offs_d, d_ok, D)
        lse, delta = _row_stats(lse_ptr, delta_ptr, bh, N, offs_m, m_ok)
        s, allowed, dist = _tile(q, tl.trans(k), b, h, offs_m, offs_n, m_ok, n_ok, dist_ptr, bias_ptr, N, NB,
                                 scale, HAS_BIAS, ADJ, PREC)
        p = tl.where(allowed, tl.exp(s - lse[:, None]), 0.0)
        dv += tl.dot(tl.trans(p), do, input_precision=PREC)
        dp = tl.dot(do, tl.trans(v), input_precision=PREC)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds), q, input_precision=PREC) * scale
        if HAS_BIAS:
            hit = dist[:, :, None] == buckets[None, None, :]
            db += tl.sum(tl.sum(tl.where(hit, ds[:, :, None], 0.0), 1), 0)
    tl.store(dk_ptr + base + offs_n[:, None] * D + offs_d[None, :], dk.to(dk_ptr.dtype.element_ty), mask=kv_mask)
    tl.store(dv_ptr + base + offs_n[:, None] * D + offs_d[None, :], dv.to(dv_ptr.dtype.element_ty), mask=kv_mask)
    if HAS_BIAS:
        prog = bh.to(tl.int64) * tl.num_programs(1) + tl.program_id(1)
        tl.store(dbias_ptr + prog * BLOCK_NB + buckets, db)


@triton.jit
def _graph_attention_bwd_q_kernel(q_ptr, k_ptr, v_ptr, n_ptr, dist_ptr, bias_ptr, do_ptr, lse_ptr, delta_ptr,
                                  dq_ptr, H, N, D, NB, scale, HAS_BIAS: tl.constexpr, ADJ: tl.constexpr,
                                  PREC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                  BLOCK_D: tl.constexpr):
    """One block of queries: dQ over every key block."""
    bh, b, h, n_b, offs_m, offs_d, d_ok, base = _program(n_ptr, H, N, D, BLOCK_M, BLOCK_D)
    m_ok = offs_m < n_b
    q = _rows(q_ptr, base, offs_m, m_ok, offs_d, d_ok, D)
    do = _rows(do_ptr, base, offs_m, m_ok, offs_d, d_ok, D)
    lse, delta = _row_stats(lse_ptr, delta_ptr, bh, N, offs_m, m_ok)
    dq = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for start in range(0, N, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_b
        k = _rows(k_ptr, base, offs_n, n_ok, offs_d, d_ok, D)
        v = _rows(v_ptr, base, offs_n, n_ok, offs_d, d_ok, D)
        s, allowed, dist = _tile(q, tl.trans(k), b, h, offs_m, offs_n, m_ok, n_ok, dist_ptr, bias_ptr, N, NB,
                                 scale, HAS_BIAS, ADJ, PREC)
        p = tl.where(allowed, tl.exp(s - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PREC)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds, k, input_precision=PREC) * scale
    tl.store(dq_ptr + base + offs_m[:, None] * D + offs_d[None, :], dq.to(dq_ptr.dtype.element_ty),
             mask=m_ok[:, None] & d_ok[None, :])


def graph_attention_bwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_nodes: torch.Tensor,
                        dist: Optional[torch.Tensor], bias: Optional[torch.Tensor], adjacency: bool, scale: float,
                        out: torch.Tensor, lse: torch.Tensor, grad_out: torch.Tensor):
    """``(dq, dk, dv, dbias)`` of :func:`graph_attention_fwd` from its output and log-sum-exp (FlashAttention-2's
    backward: P recomputed per tile, never stored; ``dbias`` ``[H, buckets]`` fp32 from per-program partial sums,
    summed in a fixed order — no atomics — or None without a bias)."""
    _check(q, k, v, num_nodes, dist, bias, adjacency, "graph_attention_bwd")
    if out.shape != q.shape or grad_out.shape != q.shape or lse.shape != q.shape[:3]:
        raise ValueError(f"graph_attention_bwd: out and grad_out must be {list(q.shape)} and lse "
                         f"{list(q.shape[:3])}, got {list(out.shape)}, {list(grad_out.shape)}, {list(lse.shape)}")
    B, H, N, D = q.shape
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()  # before allocating: outputs are written contiguous
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    dbias = None if bias is None else torch.zeros(bias.shape, dtype=torch.float32, device=q.device)
    if q.numel() == 0:
        return dq, dk, dv, dbias
    do = grad_out.contiguous()
    n32, d32, bt, BLOCK_D, block = _common(q, num_nodes, dist, bias)
    nblocks = triton.cdiv(N, block)
    delta = torch.empty(q.shape[:3], dtype=torch.float32, device=q.device)  # [B, H, N]: rowsum(dO * O)
    _row_dot_kernel[(B * H, nblocks)](do, out.contiguous(), delta, N, D, BLOCK=block, BLOCK_D=BLOCK_D, num_warps=4)
    lse = lse.float().contiguous()
    NB = bt.size(-1) if bias is not None else 1
    BLOCK_NB = max(2, triton.next_power_of_2(NB))
    part = torch.zeros(B * H * nblocks, BLOCK_NB, dtype=torch.float32, device=q.device)
    meta = dict(HAS_BIAS=bias is not None, ADJ=bool(adjacency), PREC=dot_precision(q.dtype), BLOCK_M=block,
                BLOCK_N=block, BLOCK_D=BLOCK_D)
    _graph_attention_bwd_kv_kernel[(B * H, nblocks)](q, k, v, n32, d32, bt, do, lse, delta, dk, dv, part, H, N, D,
                                                     NB, float(scale), BLOCK_NB=BLOCK_NB, num_warps=4, **meta)
    _graph_attention_bwd_q_kernel[(B * H, nblocks)](q, k, v, n32, d32, bt, do, lse, delta, dq, H, N, D, NB,
                                                    float(scale), num_warps=4, **meta)
    if dbias is not None:
        dbias = part.view(B, H, nblocks, BLOCK_NB).sum((0, 2))[:, :NB].contiguous()
    return dq, dk, dv, dbias
