r"""Triton CSR segment reduction of per-slot values: ``out[i] = reduce_{e in row i} values[e]``.

Forward: the CSR reduction kernel of :mod:`.spmm` with an identity gather
(``values`` viewed as ``[E, 1, F]``), so it shares the row splitting, the fp32
accumulation and the deterministic chunk combine.  Backward (edge-parallel,
``_segment_reduce_bwd_kernel``): sum copies ``grad_out[i]`` to every slot of row
``i``, mean divides by the degree; max/min split it evenly among the slots attaining the
extremum (the forward re-run, a tie count by the same reduction, then elementwise ops).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ._config import Schedule, acc_dtype, check_float, check_index, feature_blocks, slot_rows, torch_acc_dtype
from .spmm import REDUCE_CODES, reduce_rows, split_among_extrema


@triton.jit
def _segment_reduce_bwd_kernel(rowptr_ptr, slot_row_ptr, g_ptr, out_ptr, E, F,
                               REDUCE: tl.constexpr, ACC: tl.constexpr,
                               BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    """sum (``REDUCE`` 0) and mean (1): copy ``grad_out[i]`` (divided by the degree) to every slot of row ``i``."""
    eb = tl.program_id(0).to(tl.int64)
    fb = tl.program_id(1).to(tl.int64)
    offs_e = eb * BLOCK_E + tl.arange(0, BLOCK_E).to(tl.int64)
    offs_f = fb * BLOCK_F + tl.arange(0, BLOCK_F)
    emask = offs_e < E
    m2 = emask[:, None] & (offs_f < F)[None, :]
    dst = tl.load(slot_row_ptr + offs_e, mask=emask, other=0).to(tl.int64)
    src_off = dst[:, None] * F + offs_f[None, :]
    g = tl.load(g_ptr + src_off, mask=m2, other=0.0).to(ACC)
    if REDUCE == 1:
        deg = tl.load(rowptr_ptr + dst + 1, mask=emask, other=1).to(tl.int64) - \
            tl.load(rowptr_ptr + dst, mask=emask, other=0).to(tl.int64)
        g = g / tl.maximum(deg, 1).to(ACC)[:, None]
    tl.store(out_ptr + offs_e[:, None] * F + offs_f[None, :], g.to(out_ptr.dtype.element_ty), mask=m2)


def _check(rowptr, values, reduce):
    check_index("rowptr", rowptr)
    check_float("values", values)
    if reduce not in REDUCE_CODES:
        raise ValueError(f"reduce={reduce!r} is not supported; use one of {tuple(REDUCE_CODES)}")
    if values.dim() < 1:
        raise ValueError("values must have at least one dimension [E, ...]")


def segment_reduce_fwd(rowptr: torch.Tensor, values: torch.Tensor, reduce: str, *,
                       sched: Optional[Schedule] = None) -> torch.Tensor:
    """``[N, ...]`` in ``values.dtype``; empty rows give 0."""
    _check(rowptr, values, reduce)
    E = values.shape[0]
    trail = tuple(values.shape[1:])
    F = 1
    for d in trail:
        F *= d
    v3 = values.contiguous().view(E, 1, F)
    out = reduce_rows(rowptr, None, None, v3, reduce, sched=sched)
    return out.view((rowptr.numel() - 1,) + trail)


def segment_reduce_bwd(rowptr: torch.Tensor, values: torch.Tensor, grad_out: torch.Tensor,
                       reduce: str, *, row: Optional[torch.Tensor] = None,
                       sched: Optional[Schedule] = None) -> torch.Tensor:
    """Gradient w.r.t. ``values`` (only shape/dtype of ``values`` are read for sum/mean)."""
    _check(rowptr, values, reduce)
    E = values.shape[0]
    N = rowptr.numel() - 1
    trail = tuple(values.shape[1:])
    F = 1
    for d in trail:
        F *= d
    if tuple(grad_out.shape) != (N,) + trail:
        raise ValueError(f"grad_out must have shape {[N, *trail]}, got {list(grad_out.shape)}")
    out = torch.empty((E,) + trail, dtype=values.dtype, device=values.device)
    if E == 0 or F == 0:
        return out
    g = grad_out.contiguous()
    code = REDUCE_CODES[reduce]
    if code >= 2:  # split evenly among the tied extrema, as spmm_arg_bwd (and torch's scatter amax/amin)
        v3 = values.contiguous().view(E, 1, F).to(torch_acc_dtype(values.dtype))
        ext = reduce_rows(rowptr, None, None, v3, reduce, sched=sched)
        grad = split_among_extrema(rowptr, v3, ext, slot_rows(rowptr, E, row), g.view(N, 1, F), sched)
        return grad.view((E,) + trail).to(values.dtype)
    BLOCK_E, BLOCK_F, warps = feature_blocks(F, values.dtype)
    _segment_reduce_bwd_kernel[(triton.cdiv(E, BLOCK_E), triton.cdiv(F, BLOCK_F))](
        rowptr, slot_rows(rowptr, E, row), g, out, E, F, REDUCE=code, ACC=acc_dtype(values.dtype),
        BLOCK_E=BLOCK_E, BLOCK_F=BLOCK_F, num_warps=warps)
    return out
