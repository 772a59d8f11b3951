r"""Fused GAT attention in Triton: scores, LeakyReLU, edge softmax and the weighted
sum of source features in one pass, backward by recomputation.

.. math::
    s_{e,h} = \mathrm{LeakyReLU}(a^{src}_{j,h} + a^{dst}_{i,h} + t_{e,h}), \quad
    y_{i,h} = \frac{\sum_{e=(j\to i)} \exp(s_{e,h} - m_{i,h})\, x_{j,h}}{z_{i,h}}

Forward (``_gat_fwd_kernel``): one program per (row chunk, head, feature block)
runs an online softmax over its slots — running max ``m``, rescaled sum ``z`` and
rescaled accumulator — so neither the ``[E, H]`` scores nor an ``E x H x F``
message tensor is ever written.  Only ``m`` and ``z`` (``[N, H]`` fp32) are kept
for backward.  Split rows combine their chunks in order
(``_gat_combine_kernel``: ``m = max m_c``, ``z = sum z_c e^{m_c - m}``, same
rescaling for the accumulators).

Backward, with ``g = dL/dy`` and ``alpha_e = exp(s_e - m_i) / z_i`` recomputed:

* ``D_i = <g_i, y_i>`` (node-parallel, the SDDMM kernel on the diagonal);
* ``_gat_bwd_kernel`` (edge-parallel): ``ds_e = alpha_e (<g_i, x_j> - D_i)``,
  ``dpre_e = ds_e * (1 if pre_e > 0 else slope)``; writes ``dpre`` and ``alpha``
  (``[E, H]`` fp32 each: the only E-sized memory);
* ``dt = dpre``; ``da_dst`` = CSR row sums of ``dpre``; ``da_src`` = transposed-CSR
  row sums of ``dpre``; ``dx_j = sum_{e=(j->i)} alpha_e g_i`` through the transposed
  CSR — all with the shared deterministic reduction of :mod:`.spmm`, no atomics.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from ._config import (
    Schedule,
    acc_dtype,
    check_float,
    check_index,
    feature_blocks,
    row_range,
    schedule,
    slot_rows,
    torch_acc_dtype,
)
from .sddmm import sddmm_pairs
from .spmm import reduce_rows


@triton.jit
def _gat_fwd_kernel(rowptr_ptr, col_ptr, x_ptr, as_ptr, ad_ptr, t_ptr, out_ptr, m_ptr, z_ptr,
                    wrow_ptr, wstart_ptr, wend_ptr, wpart_ptr, pm_ptr, pz_ptr, pacc_ptr,
                    H, F, slope, HAS_T: tl.constexpr, SPLIT: tl.constexpr, ACC: tl.constexpr,
                    BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    fb = tl.program_id(2).to(tl.int64)
    row, start, end = row_range(pid, rowptr_ptr, wrow_ptr, wstart_ptr, wend_ptr, SPLIT)
    offs_f = fb * BLOCK_F + tl.arange(0, BLOCK_F)
    fmask = offs_f < F
    a_d = tl.load(ad_ptr + row * H + h).to(tl.float32)
    m = tl.full([1], float("-inf"), tl.float32)
    z = tl.zeros([1], tl.float32)
    acc = tl.zeros([BLOCK_F], ACC)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E).to(tl.int64)
        emask = offs_e < end
        src = tl.load(col_ptr + offs_e, mask=emask, other=0).to(tl.int64)
        pre = tl.load(as_ptr + src * H + h, mask=emask, other=0.0).to(tl.float32) + a_d
        if HAS_T:
            pre += tl.load(t_ptr + offs_e * H + h, mask=emask, other=0.0).to(tl.float32)
        s = tl.where(pre > 0, pre, pre * slope)
        s = tl.where(emask, s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=0))
        scale = tl.exp(m - m_new)
        p = tl.exp(s - m_new)  # masked slots: exp(-inf) = 0
        z = z * scale + tl.sum(p, axis=0)
        xv = tl.load(x_ptr + (src[:, None] * H + h) * F + offs_f[None, :],
                     mask=emask[:, None] & fmask[None, :], other=0.0).to(ACC)
        acc = acc * scale.to(ACC) + tl.sum(p.to(ACC)[:, None] * xv, axis=0)
        m = m_new
    one = tl.arange(0, 1)
    first_fb = (one * 0 + fb) == 0  # block masks only (scalar & block breaks the interpreter)
    if SPLIT:
        part = tl.load(wpart_ptr + pid)
        part_f = offs_f * 0 + part
        part_1 = one * 0 + part
        tl.store(pacc_ptr + (part * H + h) * F + offs_f, acc, mask=fmask & (part_f >= 0))
        tl.store(pm_ptr + part * H + h + one, m, mask=first_fb & (part_1 >= 0))
        tl.store(pz_ptr + part * H + h + one, z, mask=first_fb & (part_1 >= 0))
        direct_f = fmask & (part_f < 0)
        direct_1 = first_fb & (part_1 < 0)
    else:
        direct_f = fmask
        direct_1 = first_fb
    # z = 0 with edges (every score -inf) or z NaN (a NaN score): NaN, as the softmax reference gives; no edges: 0
    deg_f = offs_f * 0 + (end - start)
    res = tl.where(z > 0, acc / tl.maximum(z, 1e-38).to(ACC), tl.where(deg_f > 0, float("nan"), 0.0))
    tl.store(out_ptr + (row * H + h) * F + offs_f, res.to(out_ptr.dtype.element_ty), mask=direct_f)
    tl.store(m_ptr + row * H + h + one, m, mask=direct_1)
    tl.store(z_ptr + row * H + h + one, z, mask=direct_1)


@triton.jit
def _gat_combine_kernel(out_ptr, m_ptr, z_ptr, pm_ptr, pz_ptr, pacc_ptr, long_rows_ptr, long_ptr_ptr, H, F,
                        ACC: tl.constexpr, BLOCK_F: tl.constexpr):
    lid = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    fb = tl.program_id(2).to(tl.int64)
    row = tl.load(long_rows_ptr + lid)
    p0 = tl.load(long_ptr_ptr + lid)
    p1 = tl.load(long_ptr_ptr + lid + 1)
    offs_f = fb * BLOCK_F + tl.arange(0, BLOCK_F)
    fmask = offs_f < F
    one = tl.arange(0, 1)
    m = tl.full([1], float("-inf"), tl.float32)
    for p in range(p0, p1):
        m = tl.maximum(m, tl.load(pm_ptr + p * H + h + one))
    z = tl.zeros([1], tl.float32)
    acc = tl.zeros([BLOCK_F], ACC)
    for p in range(p0, p1):
        scale = tl.exp(tl.load(pm_ptr + p * H + h + one) - m)
        z += tl.load(pz_ptr + p * H + h + one) * scale
        acc += tl.load(pacc_ptr + (p * H + h) * F + offs_f, mask=fmask, other=0.0) * scale.to(ACC)
    res = tl.where(z > 0, acc / tl.maximum(z, 1e-38).to(ACC), float("nan"))  # long rows have edges (see above)
    tl.store(out_ptr + (row * H + h) * F + offs_f, res.to(out_ptr.dtype.element_ty), mask=fmask)
    first_fb = (one * 0 + fb) == 0
    tl.store(m_ptr + row * H + h + one, m, mask=first_fb)
    tl.store(z_ptr + row * H + h + one, z, mask=first_fb)


@triton.jit
def _gat_bwd_kernel(slot_row_ptr, col_ptr, x_ptr, as_ptr, ad_ptr, t_ptr, m_ptr, z_ptr, g_ptr, d_ptr,
                    dpre_ptr, alpha_ptr, E, H, F, slope, HAS_T: tl.constexpr, ACC: tl.constexpr,
                    BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    eb = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    offs_e = eb * BLOCK_E + tl.arange(0, BLOCK_E).to(tl.int64)
    emask = offs_e < E
    dst = tl.load(slot_row_ptr + offs_e, mask=emask, other=0).to(tl.int64)
    src = tl.load(col_ptr + offs_e, mask=emask, other=0).to(tl.int64)
    pre = tl.load(as_ptr + src * H + h, mask=emask, other=0.0).to(tl.float32) + \
        tl.load(ad_ptr + dst * H + h, mask=emask, other=0.0).to(tl.float32)
    if HAS_T:
        pre += tl.load(t_ptr + offs_e * H + h, mask=emask, other=0.0).to(tl.float32)
    s = tl.where(pre > 0, pre, pre * slope)
    m = tl.load(m_ptr + dst * H + h, mask=emask, other=0.0)
    z = tl.load(z_ptr + dst * H + h, mask=emask, other=1.0)
    alpha = tl.where(emask, tl.exp(s - m) / z, 0.0)
    dalpha = tl.zeros([BLOCK_E], ACC)
    for f0 in range(0, F, BLOCK_F):
        offs_f = f0 + tl.arange(0, BLOCK_F)
        m2 = emask[:, None] & (offs_f < F)[None, :]
        gv = tl.load(g_ptr + (dst[:, None] * H + h) * F + offs_f[None, :], mask=m2, other=0.0).to(ACC)
        xv = tl.load(x_ptr + (src[:, None] * H + h) * F + offs_f[None, :], mask=m2, other=0.0).to(ACC)
        dalpha += tl.sum(gv * xv, axis=1)
    d = tl.load(d_ptr + dst * H + h, mask=emask, other=0.0)
    ds = alpha * (dalpha.to(tl.float32) - d)
    dpre = tl.where(pre > 0, ds, ds * slope)
    tl.store(dpre_ptr + offs_e * H + h, dpre, mask=emask)
    tl.store(alpha_ptr + offs_e * H + h, alpha, mask=emask)


def _check(rowptr, col, x, a_src, a_dst, edge_term):
    check_index("rowptr", rowptr)
    check_index("col", col)
    check_float("x", x)
    if x.dim() != 3 or not x.is_contiguous():
        raise ValueError(f"x must be a contiguous [S, H, F] tensor, got {list(x.shape)}; pass x.contiguous()")
    S, H, _ = x.shape
    N = rowptr.numel() - 1
    if a_src.shape != (S, H) or a_dst.shape != (N, H):
        raise ValueError(f"a_src must be [S={S}, H={H}] and a_dst [N={N}, H={H}], got {list(a_src.shape)} "
                         f"and {list(a_dst.shape)}")
    if edge_term is not None and edge_term.shape != (col.numel(), H):
        raise ValueError(f"edge_term must be [E={col.numel()}, H={H}] in CSR slot order, got "
                         f"{list(edge_term.shape)}")


def gat_fwd(rowptr: torch.Tensor, col: torch.Tensor, x: torch.Tensor, a_src: torch.Tensor, a_dst: torch.Tensor,
            edge_term: Optional[torch.Tensor], negative_slope: float, *, sched: Optional[Schedule] = None
            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(out [N, H, F] in x.dtype, m [N, H] fp32, z [N, H] fp32)``; ``sched``: the row schedule of ``rowptr``."""
    _check(rowptr, col, x, a_src, a_dst, edge_term)
    N = rowptr.numel() - 1
    _, H, F = x.shape
    dev = x.device
    out = torch.empty((N, H, F), dtype=x.dtype, device=dev)
    m = torch.empty((N, H), dtype=torch.float32, device=dev)
    z = torch.empty((N, H), dtype=torch.float32, device=dev)
    if N == 0 or H == 0:
        return out, m, z
    a_src = a_src.contiguous()
    a_dst = a_dst.contiguous()
    t = edge_term.contiguous() if edge_term is not None else None
    ACC = acc_dtype(x.dtype)
    BLOCK_E, BLOCK_F, warps = feature_blocks(F, x.dtype)
    nfb = max(triton.cdiv(F, BLOCK_F), 1)
    sch = schedule(rowptr, sched)
    dummy = rowptr
    if sch.split:
        pm = torch.empty((sch.num_parts, H), dtype=torch.float32, device=dev)
        pz = torch.empty_like(pm)
        pacc = torch.empty((sch.num_parts, H, F), dtype=torch_acc_dtype(x.dtype), device=dev)
        w = (sch.row, sch.start, sch.end, sch.part, pm, pz, pacc)
    else:
        w = (dummy,) * 7
    _gat_fwd_kernel[(sch.num_chunks, H, nfb)](
        rowptr, col, x, a_src, a_dst, t if t is not None else dummy, out, m, z, *w, H, F,
        float(negative_slope), HAS_T=t is not None, SPLIT=sch.split, ACC=ACC, BLOCK_E=BLOCK_E,
        BLOCK_F=BLOCK_F, num_warps=warps)
    if sch.split and sch.long_rows.numel() > 0:
        _gat_combine_kernel[(sch.long_rows.numel(), H, nfb)](
            out, m, z, w[4], w[5], w[6], sch.long_rows, sch.long_ptr, H, F, ACC=ACC, BLOCK_F=BLOCK_F,
            num_warps=warps)
    return out, m, z


def gat_bwd(rowptr: torch.Tensor, col: torch.Tensor, rowptr_t: torch.Tensor, col_t: torch.Tensor,
            perm_t: torch.Tensor, x: torch.Tensor, a_src: torch.Tensor, a_dst: torch.Tensor,
            edge_term: Optional[torch.Tensor], out: torch.Tensor, m: torch.Tensor, z: torch.Tensor,
            grad_out: torch.Tensor, negative_slope: float, *, row: Optional[torch.Tensor] = None,
            sched: Optional[Schedule] = None, sched_t: Optional[Schedule] = None
            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """``(grad_x, grad_a_src, grad_a_dst, grad_edge_term or None)`` by recomputation from ``m, z``."""
    _check(rowptr, col, x, a_src, a_dst, edge_term)
    for name, t_ in (("rowptr_t", rowptr_t), ("col_t", col_t), ("perm_t", perm_t)):
        check_index(name, t_)
    N = rowptr.numel() - 1
    S, H, F = x.shape
    E = col.numel()
    dev = x.device
    if E == 0 or H == 0:
        gt = None if edge_term is None else torch.zeros_like(edge_term)
        return torch.zeros_like(x), torch.zeros_like(a_src), torch.zeros_like(a_dst), gt
    g = grad_out.contiguous()
    a_src = a_src.contiguous()
    a_dst = a_dst.contiguous()
    t = edge_term.contiguous() if edge_term is not None else None
    ar = torch.arange(N, device=dev)
    D = sddmm_pairs(ar, ar, g, out.contiguous().to(g.dtype), out_dtype=torch.float32)  # [N, H]
    dpre = torch.empty((E, H), dtype=torch.float32, device=dev)
    alpha = torch.empty((E, H), dtype=torch.float32, device=dev)
    BLOCK_E, BLOCK_F, warps = feature_blocks(F, x.dtype)
    _gat_bwd_kernel[(triton.cdiv(E, BLOCK_E), H)](
        slot_rows(rowptr, E, row), col, x, a_src, a_dst, t if t is not None else rowptr, m, z, g, D, dpre, alpha,
        E, H, F, float(negative_slope), HAS_T=t is not None, ACC=acc_dtype(x.dtype), BLOCK_E=BLOCK_E,
        BLOCK_F=BLOCK_F, num_warps=warps)
    grad_x = reduce_rows(rowptr_t, col_t, alpha.index_select(0, perm_t), g, "sum", out_dtype=x.dtype,
                            sched=sched_t)
    dpre3 = dpre.view(E, 1, H)
    g_dst = reduce_rows(rowptr, None, None, dpre3, "sum", out_dtype=a_dst.dtype, sched=sched)
    g_src = reduce_rows(rowptr_t, perm_t, None, dpre3, "sum", out_dtype=a_src.dtype, sched=sched_t)
    gt = None if t is None else dpre.to(t.dtype)
    return grad_x, g_src.view(S, H), g_dst.view(N, H), gt
