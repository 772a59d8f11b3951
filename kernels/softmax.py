r"""Triton edge softmax over each destination's incoming CSR slots, all heads at once.

Forward, three steps:

1. ``_segment_softmax_fwd_kernel``: one program per row chunk holds a
   ``BLOCK_E x BLOCK_H`` tile of scores and keeps an online max ``m`` and
   rescaled sum ``z = sum exp(s - m)`` per head;
2. ``_segment_softmax_combine_kernel`` folds the chunks of split rows in order:
   ``m = max_c m_c``, ``z = sum_c z_c exp(m_c - m)``;
3. ``_segment_softmax_norm_kernel`` (edge-parallel): ``p = exp(s - m[i]) / z[i]``.

Backward: ``dot[i] = sum_e p_e g_e`` with the shared CSR reduction of
:mod:`.spmm` (identity gather), then edge-parallel ``g_s = p (g - dot[i])``.
Extra memory: ``[N, H]`` fp32 statistics (plus chunk partials).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ._config import Schedule, check_float, check_index, head_blocks, row_range, schedule, slot_rows
from .spmm import reduce_rows


@triton.jit
def _segment_softmax_fwd_kernel(rowptr_ptr, s_ptr, m_ptr, z_ptr, wrow_ptr, wstart_ptr, wend_ptr, wpart_ptr,
                                pm_ptr, pz_ptr, H, SPLIT: tl.constexpr, BLOCK_E: tl.constexpr,
                                BLOCK_H: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    row, start, end = row_range(pid, rowptr_ptr, wrow_ptr, wstart_ptr, wend_ptr, SPLIT)
    offs_h = tl.arange(0, BLOCK_H)
    hmask = offs_h < H
    m = tl.full([BLOCK_H], float("-inf"), tl.float32)
    z = tl.zeros([BLOCK_H], tl.float32)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E).to(tl.int64)
        m2 = (offs_e < end)[:, None] & hmask[None, :]
        s = tl.load(s_ptr + offs_e[:, None] * H + offs_h[None, :], mask=m2, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(s, axis=0))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        z = z * tl.exp(m - m_safe) + tl.sum(tl.exp(s - m_safe[None, :]), axis=0)
        m = m_new
    if SPLIT:
        part = tl.load(wpart_ptr + pid)
        part_h = offs_h * 0 + part  # scalar broadcast first (the interpreter needs block masks)
        tl.store(pm_ptr + part * H + offs_h, m, mask=hmask & (part_h >= 0))
        tl.store(pz_ptr + part * H + offs_h, z, mask=hmask & (part_h >= 0))
        direct = hmask & (part_h < 0)
    else:
        direct = hmask
    tl.store(m_ptr + row * H + offs_h, m, mask=direct)
    tl.store(z_ptr + row * H + offs_h, z, mask=direct)


@triton.jit
def _segment_softmax_combine_kernel(m_ptr, z_ptr, pm_ptr, pz_ptr, long_rows_ptr, long_ptr_ptr, H,
                                    BLOCK_H: tl.constexpr):
    lid = tl.program_id(0).to(tl.int64)
    row = tl.load(long_rows_ptr + lid)
    p0 = tl.load(long_ptr_ptr + lid)
    p1 = tl.load(long_ptr_ptr + lid + 1)
    offs_h = tl.arange(0, BLOCK_H)
    hmask = offs_h < H
    m = tl.full([BLOCK_H], float("-inf"), tl.float32)
    for p in range(p0, p1):
        m = tl.maximum(m, tl.load(pm_ptr + p * H + offs_h, mask=hmask, other=float("-inf")))
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    z = tl.zeros([BLOCK_H], tl.float32)
    for p in range(p0, p1):
        pm = tl.load(pm_ptr + p * H + offs_h, mask=hmask, other=float("-inf"))
        z += tl.load(pz_ptr + p * H + offs_h, mask=hmask, other=0.0) * tl.exp(pm - m_safe)
    tl.store(m_ptr + row * H + offs_h, m, mask=hmask)
    tl.store(z_ptr + row * H + offs_h, z, mask=hmask)


@triton.jit
def _segment_softmax_norm_kernel(slot_row_ptr, s_ptr, m_ptr, z_ptr, p_ptr, E, H,
                                 BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr):
    eb = tl.program_id(0).to(tl.int64)
    offs_e = eb * BLOCK_E + tl.arange(0, BLOCK_E).to(tl.int64)
    offs_h = tl.arange(0, BLOCK_H)
    emask = offs_e < E
    m2 = emask[:, None] & (offs_h < H)[None, :]
    dst = tl.load(slot_row_ptr + offs_e, mask=emask, other=0).to(tl.int64)
    s = tl.load(s_ptr + offs_e[:, None] * H + offs_h[None, :], mask=m2, other=0.0).to(tl.float32)
    m = tl.load(m_ptr + dst[:, None] * H + offs_h[None, :], mask=m2, other=0.0)
    z = tl.load(z_ptr + dst[:, None] * H + offs_h[None, :], mask=m2, other=1.0)
    p = tl.exp(s - m) / z
    tl.store(p_ptr + offs_e[:, None] * H + offs_h[None, :], p.to(p_ptr.dtype.element_ty), mask=m2)


@triton.jit
def _segment_softmax_bwd_kernel(slot_row_ptr, p_ptr, g_ptr, dot_ptr, out_ptr, E, H,
                                BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr):
    eb = tl.program_id(0).to(tl.int64)
    offs_e = eb * BLOCK_E + tl.arange(0, BLOCK_E).to(tl.int64)
    offs_h = tl.arange(0, BLOCK_H)
    emask = offs_e < E
    m2 = emask[:, None] & (offs_h < H)[None, :]
    dst = tl.load(slot_row_ptr + offs_e, mask=emask, other=0).to(tl.int64)
    off = offs_e[:, None] * H + offs_h[None, :]
    p = tl.load(p_ptr + off, mask=m2, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + off, mask=m2, other=0.0).to(tl.float32)
    dot = tl.load(dot_ptr + dst[:, None] * H + offs_h[None, :], mask=m2, other=0.0)
    tl.store(out_ptr + off, (p * (g - dot)).to(out_ptr.dtype.element_ty), mask=m2)


def softmax_stats(rowptr: torch.Tensor, logits: torch.Tensor, sched: Optional[Schedule] = None):
    """Per-row max and sum of ``exp(s - max)``, each ``[N, H]`` fp32 (``-inf``/0 for empty rows)."""
    N = rowptr.numel() - 1
    E, H = logits.shape
    dev = logits.device
    m = torch.empty((N, H), dtype=torch.float32, device=dev)
    z = torch.empty((N, H), dtype=torch.float32, device=dev)
    if N == 0 or H == 0:
        return m, z
    BLOCK_E, BLOCK_H, warps = head_blocks(H, logits.dtype)
    BLOCK_E = min(BLOCK_E, 256)
    sch = schedule(rowptr, sched)
    dummy = rowptr
    if sch.split:
        pm = torch.empty((sch.num_parts, H), dtype=torch.float32, device=dev)
        pz = torch.empty_like(pm)
        w = (sch.row, sch.start, sch.end, sch.part, pm, pz)
    else:
        w = (dummy,) * 6
    _segment_softmax_fwd_kernel[(sch.num_chunks,)](rowptr, logits, m, z, *w, H, SPLIT=sch.split,
                                                   BLOCK_E=BLOCK_E, BLOCK_H=BLOCK_H, num_warps=warps)
    if sch.split and sch.long_rows.numel() > 0:
        _segment_softmax_combine_kernel[(sch.long_rows.numel(),)](m, z, w[4], w[5], sch.long_rows, sch.long_ptr,
                                                                  H, BLOCK_H=BLOCK_H, num_warps=1)
    return m, z


def _check(rowptr, logits, name="logits"):
    check_index("rowptr", rowptr)
    check_float(name, logits)
    if logits.dim() != 2 or not logits.is_contiguous():
        raise ValueError(f"{name} must be a contiguous [E, H] tensor in CSR slot order, got "
                         f"{list(logits.shape)}; pass {name}.contiguous()")


def segment_softmax_fwd(rowptr: torch.Tensor, logits: torch.Tensor, *, row: Optional[torch.Tensor] = None,
                        sched: Optional[Schedule] = None) -> torch.Tensor:
    """Edge softmax of ``logits`` ``[E, H]`` (CSR slot order), same dtype."""
    _check(rowptr, logits)
    E, H = logits.shape
    p = torch.empty_like(logits)
    if E == 0 or H == 0:
        return p
    m, z = softmax_stats(rowptr, logits, sched)
    BLOCK_E, BLOCK_H, warps = head_blocks(H, logits.dtype)
    _segment_softmax_norm_kernel[(triton.cdiv(E, BLOCK_E),)](slot_rows(rowptr, E, row), logits, m, z, p, E, H,
                                                             BLOCK_E=BLOCK_E, BLOCK_H=BLOCK_H, num_warps=warps)
    return p


def segment_softmax_bwd(rowptr: torch.Tensor, p: torch.Tensor, grad: torch.Tensor, *,
                        row: Optional[torch.Tensor] = None, sched: Optional[Schedule] = None) -> torch.Tensor:
    """Gradient of the edge softmax w.r.t. its logits: ``p * (grad - sum_row(p * grad))``."""
    _check(rowptr, p, "p")
    check_float("grad", grad)
    grad = grad.contiguous()
    if grad.shape != p.shape:
        raise ValueError(f"grad must have the shape of p {list(p.shape)}, got {list(grad.shape)}")
    E, H = p.shape
    out = torch.empty_like(p)
    if E == 0 or H == 0:
        return out
    # dot[i, h] = sum_e p[e, h] * grad[e, h]: identity-gather CSR reduction with p as weights
    dot = reduce_rows(rowptr, None, p, grad.view(E, H, 1), "sum", out_dtype=torch.float32, sched=sched)
    BLOCK_E, BLOCK_H, warps = head_blocks(H, p.dtype)
    _segment_softmax_bwd_kernel[(triton.cdiv(E, BLOCK_E),)](slot_rows(rowptr, E, row), p, grad, dot, out, E, H,
                                                            BLOCK_E=BLOCK_E, BLOCK_H=BLOCK_H, num_warps=warps)
    return out
