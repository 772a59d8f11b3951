r"""Triton CSR SpMM: ``out[i, h] = reduce_{e=(j->i)} w[e, h] * x[j, h]``.

Schedule: one program per (row chunk, head, feature block).  A program walks its
slots in tiles of ``BLOCK_E x BLOCK_F``, gathers ``x`` rows through ``col`` and
accumulates in fp32 (fp64 for fp64 inputs).  Rows longer than the split length
(:mod:`._config`) are cut into chunks whose partials ``_spmm_combine_kernel``
folds in chunk order, so the result is deterministic and a hub row does not
serialise the launch.  The max/min backward (:func:`spmm_arg_bwd`) splits the gradient
evenly among tied slots, as PyG, from the extrema and a tie count (no slot ids are kept).

The same reduction kernel serves :mod:`.segment` (identity gather,
``HAS_COL=False``) and the reductions inside :mod:`.gat`'s backward.
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

REDUCE_CODES = {"sum": 0, "mean": 1, "max": 2, "min": 3}


# ---------------------------------------------------------------------- kernels
@triton.jit
def _spmm_fwd_kernel(rowptr_ptr, col_ptr, val_ptr, x_ptr, out_ptr,
                     wrow_ptr, wstart_ptr, wend_ptr, wpart_ptr, part_ptr,
                     H, F,
                     HAS_COL: tl.constexpr, HAS_VALUE: tl.constexpr, REDUCE: tl.constexpr,
                     SPLIT: tl.constexpr, ACC: tl.constexpr,
                     BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    fb = tl.program_id(2).to(tl.int64)
    row, start, end = row_range(pid, rowptr_ptr, wrow_ptr, wstart_ptr, wend_ptr, SPLIT)
    offs_f = fb * BLOCK_F + tl.arange(0, BLOCK_F)
    fmask = offs_f < F
    if REDUCE == 2:
        acc = tl.full([BLOCK_F], float("-inf"), ACC)
    elif REDUCE == 3:
        acc = tl.full([BLOCK_F], float("inf"), ACC)
    else:
        acc = tl.zeros([BLOCK_F], ACC)
    nan = tl.zeros([BLOCK_F], tl.int32)  # max/min: a NaN among the row's values (torch's amax/amin return it)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E).to(tl.int64)
        emask = offs_e < end
        if HAS_COL:
            src = tl.load(col_ptr + offs_e, mask=emask, other=0).to(tl.int64)
        else:
            src = offs_e
        m2 = emask[:, None] & fmask[None, :]
        xv = tl.load(x_ptr + (src[:, None] * H + h) * F + offs_f[None, :], mask=m2, other=0.0).to(ACC)
        if HAS_VALUE:
            w = tl.load(val_ptr + offs_e * H + h, mask=emask, other=0.0).to(ACC)
            xv = xv * w[:, None]
        if REDUCE <= 1:
            acc += tl.sum(xv, axis=0)
        else:
            # acc starts at -inf/+inf, so the running extremum needs no "first tile" flag; a NaN tile is
            # whatever tl.max/min make of it, and the NaN flag decides the result below
            if REDUCE == 2:
                xv = tl.where(m2, xv, float("-inf"))
                acc = tl.maximum(acc, tl.max(xv, axis=0))
            else:
                xv = tl.where(m2, xv, float("inf"))
                acc = tl.minimum(acc, tl.min(xv, axis=0))
            nan = tl.maximum(nan, tl.max((xv != xv).to(tl.int32), axis=0))
    if REDUCE >= 2:
        acc = tl.where(nan > 0, float("nan"), acc)  # tl.max/min skip NaN; chunk partials carry it to the combine
    if SPLIT:
        part = tl.load(wpart_ptr + pid)
        part_f = offs_f * 0 + part  # scalar broadcast first (the interpreter needs block masks)
        tl.store(part_ptr + (part * H + h) * F + offs_f, acc, mask=fmask & (part_f >= 0))
        direct = fmask & (part_f < 0)
    else:
        direct = fmask
    deg = end - start
    res = acc
    if REDUCE == 1:
        res = acc / tl.maximum(deg, 1).to(ACC)
    if REDUCE >= 2:
        res = tl.where(deg > 0, acc, 0.0)
    tl.store(out_ptr + (row * H + h) * F + offs_f, res.to(out_ptr.dtype.element_ty), mask=direct)


@triton.jit
def _spmm_combine_kernel(rowptr_ptr, out_ptr, part_ptr, long_rows_ptr, long_ptr_ptr,
                         H, F, REDUCE: tl.constexpr, ACC: tl.constexpr, BLOCK_F: tl.constexpr):
    """Fold the chunk partials of one long row, in chunk order (deterministic)."""
    lid = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    fb = tl.program_id(2).to(tl.int64)
    row = tl.load(long_rows_ptr + lid)
    p0 = tl.load(long_ptr_ptr + lid)
    p1 = tl.load(long_ptr_ptr + lid + 1)
    offs_f = fb * BLOCK_F + tl.arange(0, BLOCK_F)
    fmask = offs_f < F
    if REDUCE == 2:
        acc = tl.full([BLOCK_F], float("-inf"), ACC)
    elif REDUCE == 3:
        acc = tl.full([BLOCK_F], float("inf"), ACC)
    else:
        acc = tl.zeros([BLOCK_F], ACC)
    nan = tl.zeros([BLOCK_F], tl.int32)
    for p in range(p0, p1):
        v = tl.load(part_ptr + (p * H + h) * F + offs_f, mask=fmask, other=0.0).to(ACC)
        if REDUCE <= 1:
            acc += v
        else:
            acc = tl.maximum(acc, v) if REDUCE == 2 else tl.minimum(acc, v)
            nan = tl.maximum(nan, (v != v).to(tl.int32))
    if REDUCE >= 2:
        acc = tl.where(nan > 0, float("nan"), acc)
    if REDUCE == 1:
        deg = tl.load(rowptr_ptr + row + 1).to(tl.int64) - tl.load(rowptr_ptr + row).to(tl.int64)
        acc = acc / tl.maximum(deg, 1).to(ACC)
    tl.store(out_ptr + (row * H + h) * F + offs_f, acc.to(out_ptr.dtype.element_ty), mask=fmask)


# ---------------------------------------------------------------------- shared launch
def reduce_rows(rowptr: torch.Tensor, col: Optional[torch.Tensor], value: Optional[torch.Tensor],
                x: torch.Tensor, reduce: str, out_dtype: Optional[torch.dtype] = None,
                sched: Optional[Schedule] = None) -> torch.Tensor:
    """Reduce ``x`` ``[S, H, F]`` (gathered through ``col``, or slot ``e`` itself when
    ``col`` is None) over the CSR rows of ``rowptr``; returns ``out [N, H, F]``."""
    N = rowptr.numel() - 1
    _, H, F = x.shape
    dev = x.device
    out = torch.empty((N, H, F), dtype=out_dtype or x.dtype, device=dev)
    if N == 0 or H == 0 or F == 0:
        return out
    code = REDUCE_CODES[reduce]
    ACC = acc_dtype(x.dtype)
    BLOCK_E, BLOCK_F, warps = feature_blocks(F, x.dtype)
    nfb = triton.cdiv(F, BLOCK_F)
    sch = schedule(rowptr, sched)
    dummy = rowptr
    if sch.split:
        part = torch.empty((sch.num_parts, H, F), dtype=torch_acc_dtype(x.dtype), device=dev)
        w = (sch.row, sch.start, sch.end, sch.part, part)
    else:
        w = (dummy,) * 5
    _spmm_fwd_kernel[(sch.num_chunks, H, nfb)](
        rowptr, col if col is not None else dummy, value if value is not None else dummy, x, out, *w, H, F,
        HAS_COL=col is not None, HAS_VALUE=value is not None, REDUCE=code,
        SPLIT=sch.split, ACC=ACC, BLOCK_E=BLOCK_E, BLOCK_F=BLOCK_F, num_warps=warps)
    if sch.split and sch.long_rows.numel() > 0:
        _spmm_combine_kernel[(sch.long_rows.numel(), H, nfb)](
            rowptr, out, w[4], sch.long_rows, sch.long_ptr, H, F,
            REDUCE=code, ACC=ACC, BLOCK_F=BLOCK_F, num_warps=warps)
    return out


def _check(rowptr, col, value, x, reduce):
    check_index("rowptr", rowptr)
    check_index("col", col)
    check_float("x", x)
    if reduce not in REDUCE_CODES:
        raise ValueError(f"reduce={reduce!r} is not supported; use one of {tuple(REDUCE_CODES)}")
    if x.dim() != 3 or not x.is_contiguous():
        raise ValueError(f"x must be a contiguous [S, H, F] tensor, got shape {list(x.shape)} "
                         f"(contiguous={x.is_contiguous()}); pass x.contiguous()")
    if value is not None and (value.shape != (col.numel(), x.shape[1]) or not value.is_contiguous()):
        raise ValueError(f"value must be a contiguous [E={col.numel()}, H={x.shape[1]}] tensor in CSR slot "
                         f"order, got {list(value.shape)}")


def split_among_extrema(rowptr: torch.Tensor, msg: torch.Tensor, ext: torch.Tensor, srow: torch.Tensor,
                        grad_out: torch.Tensor, sched: Optional[Schedule] = None) -> torch.Tensor:
    """Per-slot gradient of a max/min over the CSR rows of ``rowptr``: ``grad_out[i]`` split evenly among the
    slots of row ``i`` (``srow``: each slot's row) whose value in ``msg`` ``[E, H, F]`` equals the extremum
    ``ext[i]`` (the gradient of torch's scatter ``amax``/``amin``).  The ties are counted by
    :func:`reduce_rows` (sums in slot order: deterministic); everything in ``msg``'s dtype.  As in PyG (its zero
    start, which torch's backward counts as a tie), an extremum of exactly 0 in a non-empty row counts one more."""
    hit = (msg == ext.index_select(0, srow)).to(msg.dtype)
    count = reduce_rows(rowptr, None, None, hit, "sum", sched=sched)  # ties per (row, head, feature)
    count = count + ((ext == 0) & (count > 0)).to(count.dtype)
    return hit * (grad_out.to(msg.dtype) / count.clamp(min=1)).index_select(0, srow)


# ---------------------------------------------------------------------- launchers
def spmm_fwd(rowptr: torch.Tensor, col: torch.Tensor, value: Optional[torch.Tensor], x: torch.Tensor,
             reduce: str, *, sched: Optional[Schedule] = None) -> torch.Tensor:
    """``out [N, H, F]`` in ``x.dtype``; empty rows give 0.  ``sched``: the row schedule of ``rowptr``."""
    _check(rowptr, col, value, x, reduce)
    out = reduce_rows(rowptr, col, value, x, reduce, sched=sched)
    return out


def spmm_arg_bwd(rowptr: torch.Tensor, col: torch.Tensor, value: Optional[torch.Tensor], x: torch.Tensor,
                 grad_out: torch.Tensor, reduce: str, rowptr_t: torch.Tensor, col_t: torch.Tensor,
                 perm_t: torch.Tensor, *, row: Optional[torch.Tensor] = None, sched: Optional[Schedule] = None,
                 sched_t: Optional[Schedule] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """max/min backward: ``(grad_x [S, H, F], grad_value [E, H] or None)``; each ``(row, head, feature)``
    splits its gradient evenly among the CSR slots attaining the extremum (the gradient of torch's scatter
    ``amax``/``amin``, which PyG uses).  Composed of this module's CSR reductions (sums in slot order:
    deterministic) and elementwise torch ops, in the accumulation type: the extrema are recomputed from the
    same products the messages are compared with.  Holds ``[E, H, F]`` messages, as PyG's max does."""
    _check(rowptr, col, value, x, reduce)
    if reduce not in ("max", "min"):
        raise ValueError(f"spmm_arg_bwd is for reduce='max'/'min', got {reduce!r}; sum/mean use spmm_fwd "
                         "on the transposed CSR")
    for name, t in (("rowptr_t", rowptr_t), ("col_t", col_t), ("perm_t", perm_t)):
        check_index(name, t)
    E = col.numel()
    acc = torch_acc_dtype(x.dtype)
    xa = x.to(acc)
    va = None if value is None else value.to(acc)
    out = reduce_rows(rowptr, col, va, xa, reduce, sched=sched)
    srow = slot_rows(rowptr, E, row)
    msg = xa.index_select(0, col)
    if va is not None:
        msg = msg * va.unsqueeze(-1)
    grad_msg = split_among_extrema(rowptr, msg, out, srow, grad_out, sched)
    del msg
    gv = None if value is None else (grad_msg * xa.index_select(0, col)).sum(-1).to(value.dtype)
    if va is not None:
        grad_msg = grad_msg * va.unsqueeze(-1)
    # each source's slots in the transposed CSR, gathered from the per-slot gradients by perm_t
    grad_x = reduce_rows(rowptr_t, perm_t, None, grad_msg.contiguous(), "sum", sched=sched_t)
    return grad_x.to(x.dtype), gv

