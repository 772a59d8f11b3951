r"""Triton SDDMM: ``out[e, h] = <a[i, h], b[j, h]>`` for every CSR slot ``e = (j -> i)``.

Schedule: edge-parallel, one program per (block of ``BLOCK_E`` slots, head); each
walks the feature dimension in ``BLOCK_F`` tiles, gathering ``a`` through the
slot's destination and ``b`` through ``col``, with an fp32 accumulator.  Work per
program is the same for every slot, so degree skew does not matter.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ._config import acc_dtype, check_float, check_index, feature_blocks, slot_rows


@triton.jit
def _sddmm_fwd_kernel(row_ptr, col_ptr, a_ptr, b_ptr, out_ptr, E, H, F,
                      ACC: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    eb = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    offs_e = eb * BLOCK_E + tl.arange(0, BLOCK_E).to(tl.int64)
    emask = offs_e < E
    dst = tl.load(row_ptr + offs_e, mask=emask, other=0).to(tl.int64)
    src = tl.load(col_ptr + offs_e, mask=emask, other=0).to(tl.int64)
    acc = tl.zeros([BLOCK_E], ACC)
    for f0 in range(0, F, BLOCK_F):
        offs_f = f0 + tl.arange(0, BLOCK_F)
        m2 = emask[:, None] & (offs_f < F)[None, :]
        av = tl.load(a_ptr + (dst[:, None] * H + h) * F + offs_f[None, :], mask=m2, other=0.0).to(ACC)
        bv = tl.load(b_ptr + (src[:, None] * H + h) * F + offs_f[None, :], mask=m2, other=0.0).to(ACC)
        acc += tl.sum(av * bv, axis=1)
    tl.store(out_ptr + offs_e * H + h, acc.to(out_ptr.dtype.element_ty), mask=emask)


def sddmm_pairs(row: torch.Tensor, col: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``out[e, h] = <a[row[e], h], b[col[e], h]>`` for explicit index pairs (``[E, H]``)."""
    E = col.numel()
    _, H, F = a.shape
    out = torch.empty((E, H), dtype=out_dtype or a.dtype, device=a.device)
    if E == 0 or H == 0:
        return out
    if F == 0:
        return out.zero_()
    BLOCK_E, BLOCK_F, warps = feature_blocks(F, a.dtype)
    _sddmm_fwd_kernel[(triton.cdiv(E, BLOCK_E), H)](
        row, col, a, b, out, E, H, F, ACC=acc_dtype(a.dtype), BLOCK_E=BLOCK_E, BLOCK_F=BLOCK_F,
        num_warps=warps)
    return out


def sddmm_fwd(rowptr: torch.Tensor, col: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *,
              row: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[E, H]`` in CSR slot order, ``a.dtype``; ``a`` ``[N, H, F]``, ``b`` ``[S, H, F]``."""
    check_index("rowptr", rowptr)
    check_index("col", col)
    check_float("a", a)
    check_float("b", b)
    if a.dim() != 3 or b.dim() != 3 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"a must be [N, H, F] and b [S, H, F] with equal H, F; got {list(a.shape)} and "
                         f"{list(b.shape)}")
    if a.shape[0] != rowptr.numel() - 1:
        raise ValueError(f"a has {a.shape[0]} rows but rowptr describes {rowptr.numel() - 1} destinations")
    a = a.contiguous()
    b = b.to(a.dtype).contiguous()
    return sddmm_pairs(slot_rows(rowptr, col.numel(), row), col, a, b)
