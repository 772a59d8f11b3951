"""Block-size policy and row schedule shared by every gnnkit Triton kernel.

Policy (the only place block sizes are chosen): keyed on the feature width and
the dtype, never on the node or edge count, which change every batch.

Row schedule: a destination row with more than :func:`row_split` edges is cut
into chunks of at most that many edges; each chunk is one program, chunks of a
split row write partial results that a combine kernel folds in chunk order
(deterministic, no atomics).  A hub with 10,000 neighbours next to degree-1
nodes is thus spread over many programs instead of stalling one.  The schedule of a graph's CSR
is built once by ``gnnkit.ops`` and kept in its ``Graph`` (:meth:`Schedule.pack`); the launchers
take it as ``sched=`` (``sched_t=`` for the transposed CSR) and build one per call without it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import triton
import triton.language as tl

DEFAULT_ROW_SPLIT = 1024  # edges per program before a row is split


@triton.jit
def row_range(pid, rowptr_ptr, wrow_ptr, wstart_ptr, wend_ptr, SPLIT: tl.constexpr):
    """``(row, start, end)`` of program ``pid``: a whole CSR row, or (``SPLIT``) one chunk of
    the schedule (see :func:`schedule`)."""
    if SPLIT:
        row = tl.load(wrow_ptr + pid)
        start = tl.load(wstart_ptr + pid)
        end = tl.load(wend_ptr + pid)
    else:
        row = pid
        start = tl.load(rowptr_ptr + pid).to(tl.int64)
        end = tl.load(rowptr_ptr + pid + 1).to(tl.int64)
    return row, start, end


def row_split() -> int:
    """Longest chunk of a row one program handles (``GNNKIT_ROW_SPLIT`` overrides, >= 1)."""
    raw = os.environ.get("GNNKIT_ROW_SPLIT", "")
    if not raw:
        return DEFAULT_ROW_SPLIT
    try:
        v = int(raw)
    except ValueError:
        v = 0
    if v < 1:
        raise ValueError(f"GNNKIT_ROW_SPLIT={raw!r} must be a positive integer (edges per program); unset it "
                         f"for the default {DEFAULT_ROW_SPLIT}")
    return v


def acc_dtype(dtype: torch.dtype):
    """Accumulator type: fp64 for fp64 inputs, fp32 for everything else (fp32/fp16/bf16)."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def torch_acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def feature_blocks(F: int, dtype: torch.dtype) -> Tuple[int, int, int]:
    """``(BLOCK_E, BLOCK_F, num_warps)`` for kernels that gather ``[edges, features]`` tiles.

    BLOCK_F covers the feature width up to 128 (fp32/fp64) or 256 (16-bit) values
    (wider features use several programs); BLOCK_E fills a tile of about 4096 values.
    """
    cap = 256 if dtype in (torch.float16, torch.bfloat16) else 128
    block_f = min(max(triton.next_power_of_2(max(F, 1)), 16), cap)
    block_e = max(8, min(128, 4096 // block_f))
    warps = 4 if block_e * block_f >= 2048 else 2
    return block_e, block_f, warps


def head_blocks(H: int, dtype: torch.dtype) -> Tuple[int, int, int]:
    """``(BLOCK_E, BLOCK_H, num_warps)`` for edge-parallel kernels over ``[E, H]`` scores."""
    block_h = max(triton.next_power_of_2(max(H, 1)), 1)
    block_e = max(16, min(1024, 4096 // block_h))
    return block_e, block_h, 4


def code_blocks(D: int, dtype: torch.dtype) -> Tuple[int, int, int, int]:
    """``(BLOCK_N, BLOCK_K, BLOCK_D, num_warps)`` for the nearest-codeword search (:mod:`.vq`).

    Its ``[BLOCK_N rows, BLOCK_K codewords, BLOCK_D features]`` difference tile holds about
    8192 accumulator values (4096 for fp64): BLOCK_D = next_pow2(D) clamped to [4, 16],
    BLOCK_N = 32 rows, BLOCK_K fills the tile (16 to 64 codewords).  Keyed on D and the
    dtype only, never on N or K.
    """
    block_d = min(max(triton.next_power_of_2(max(D, 1)), 4), 16)
    tile = 4096 if dtype == torch.float64 else 8192
    block_n = 32
    block_k = max(16, min(64, tile // (block_n * block_d)))
    return block_n, block_k, block_d, 4


# ---------------------------------------------------------------------- row schedule
@dataclass
class Schedule:
    """Work list of one CSR ``rowptr`` for a given split length.

    ``split`` False: one program per row (no row is longer than the split length);
    the other fields are then None.  Otherwise chunk ``c`` covers slots
    ``[start[c], end[c])`` of row ``row[c]`` and writes to partial slot ``part[c]``
    (``-1``: the row has a single chunk and writes its output directly); the
    partials of long row ``long_rows[l]`` are ``long_ptr[l] .. long_ptr[l+1]``.
    """
    num_rows: int
    split: bool
    num_chunks: int
    row: Optional[torch.Tensor] = None
    start: Optional[torch.Tensor] = None
    end: Optional[torch.Tensor] = None
    part: Optional[torch.Tensor] = None
    num_parts: int = 0
    long_rows: Optional[torch.Tensor] = None
    long_ptr: Optional[torch.Tensor] = None

    def pack(self, split_len: int) -> Tuple[Optional[torch.Tensor], List[int]]:
        """``(plan, meta)``: the schedule as one int64 tensor (None when not split) and host ints
        ``[split_len, split, num_chunks, num_parts, num_long_rows, num_rows]`` — the form a caller that keeps
        the schedule (``gnnkit.ops.Graph``) hands through a custom op; :meth:`unpack` reverses it."""
        meta = [split_len, int(self.split), self.num_chunks, self.num_parts,
                0 if self.long_rows is None else self.long_rows.numel(), self.num_rows]
        if not self.split:
            return None, meta
        return torch.cat([self.row, self.start, self.end, self.part, self.long_rows, self.long_ptr]), meta

    @classmethod
    def unpack(cls, rowptr: torch.Tensor, plan: Optional[torch.Tensor], meta: List[int]) -> "Schedule":
        """The schedule :meth:`pack` gave; refused if it was built for a CSR with another number of rows
        than ``rowptr`` (e.g. the transposed CSR of a bipartite graph)."""
        _, split, C, P, L, N = meta
        if N != max(rowptr.numel() - 1, 0):
            raise ValueError(f"sched was built for a CSR of {N} rows, but rowptr has {rowptr.numel() - 1}: "
                             "pass the schedule of this rowptr (the CSR's or the transposed CSR's)")
        if not split:
            return cls(num_rows=N, split=False, num_chunks=C)
        if plan is None or plan.numel() != 4 * C + 2 * L + 1:
            raise ValueError(f"sched: a split schedule of {C} chunks and {L} long rows needs a plan of "
                             f"{4 * C + 2 * L + 1} entries, got {None if plan is None else plan.numel()}")
        row, start, end, part, long_rows, long_ptr = torch.split(plan, [C, C, C, C, L, L + 1])
        return cls(num_rows=N, split=True, num_chunks=C, row=row, start=start, end=end, part=part, num_parts=P,
                   long_rows=long_rows, long_ptr=long_ptr)


def _build_schedule(rowptr: torch.Tensor, split_len: int) -> Schedule:
    N = rowptr.numel() - 1
    rp = rowptr.long()
    deg = rp[1:] - rp[:-1]
    if N <= 0:
        return Schedule(num_rows=max(N, 0), split=False, num_chunks=0)
    nch = torch.div(deg + (split_len - 1), split_len, rounding_mode="floor").clamp_(min=1)
    C = int(nch.sum())  # one host sync per new rowptr (kept by the caller: see build_schedule)
    if C == N:
        return Schedule(num_rows=N, split=False, num_chunks=N)
    dev = rowptr.device
    rows = torch.arange(N, device=dev)
    first = torch.cumsum(nch, 0) - nch
    crow = torch.repeat_interleave(rows, nch, output_size=C)
    k = torch.arange(C, device=dev) - first[crow]
    start = rp[crow] + k * split_len
    end = torch.minimum(start + split_len, rp[crow + 1])
    multi = nch > 1
    is_part = multi[crow]
    part = torch.where(is_part, torch.cumsum(is_part.long(), 0) - 1, torch.full_like(crow, -1))
    long_rows = torch.nonzero(multi).flatten()
    long_ptr = torch.zeros(long_rows.numel() + 1, dtype=torch.long, device=dev)
    torch.cumsum(nch[long_rows], 0, out=long_ptr[1:])
    return Schedule(num_rows=N, split=True, num_chunks=C, row=crow, start=start, end=end, part=part,
                    num_parts=int(long_ptr[-1]), long_rows=long_rows, long_ptr=long_ptr)


def build_schedule(rowptr: torch.Tensor, split_len: Optional[int] = None) -> Schedule:
    """The row schedule of ``rowptr`` (default split length :func:`row_split`); one host sync.
    Not cached here: ``gnnkit.ops`` keeps it in the ``Graph`` it belongs to and passes it to the
    launchers (``sched=``); a direct caller without one gets it built per call."""
    return _build_schedule(rowptr, row_split() if split_len is None else split_len)


def schedule(rowptr: torch.Tensor, given: Optional[Schedule] = None) -> Schedule:
    """``given`` (the caller's schedule of ``rowptr``), else one built now."""
    if given is not None:
        if given.num_rows != max(rowptr.numel() - 1, 0):
            raise ValueError(f"sched was built for {given.num_rows} rows, but rowptr has {rowptr.numel() - 1}")
        return given
    return build_schedule(rowptr)


def slot_rows(rowptr: torch.Tensor, num_slots: int, row: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Destination row of every CSR slot ``[E]`` int64: ``row`` when the caller has it
    (``gnnkit.ops`` passes ``Graph.row``), else built from ``rowptr``."""
    if row is not None:
        check_index("row", row)
        if row.numel() != num_slots:
            raise ValueError(f"row must have one entry per CSR slot ({num_slots}), got {row.numel()}")
        return row
    N = rowptr.numel() - 1
    rp = rowptr.long()
    return torch.repeat_interleave(torch.arange(N, device=rowptr.device), rp[1:] - rp[:-1], output_size=num_slots)


def check_index(name: str, t: torch.Tensor) -> None:
    if t.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name} must be an int32 or int64 tensor, got {t.dtype}; convert it with {name}.long()")
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {list(t.shape)}")


def check_float(name: str, t: torch.Tensor) -> None:
    if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")
