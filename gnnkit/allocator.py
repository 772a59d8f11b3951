"""Opt-in: keep freed CPU memory for reuse instead of handing it back to the operating system (glibc).

glibc's ``malloc`` serves a block above its mmap threshold (dynamic, at most 32 MiB by default) with a fresh
mapping and unmaps it on ``free``, and hands the top of its heap back above a trim threshold.  A CPU training
step that allocates a new ``[E, F]`` tensor of tens of MiB (messages, their gradients) then page-faults every
page of it in again, on every step.  Measured on this project's 2-core VM, ``GINEConv`` training step,
N = 20k, E = 200k, F = 64, 10 steps after 3: 164 ms and ~63k minor page faults per step with glibc's
defaults, 61 ms and none after :func:`reuse_freed_memory` (peak resident set 708 -> 1075 MiB: freed blocks
stay in the process; ``benchmarks/edge_features.py --reuse-freed-memory`` compares layers under it).
PyG's layers gain as much; PyTorch's CPU performance guide gives the same advice (environment variables
before start-up, or jemalloc/tcmalloc through ``LD_PRELOAD``) — this does it from Python, at any time.

The setting is process-wide and lasts until the process exits (glibc has no way back to its dynamic
threshold).  Memory a step frees is kept for the next step instead of being returned, so the resident set
stays near the largest step's peak.
"""
from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# the largest value mallopt takes (a C int): every block comes from the heap, whose top is kept
REUSE_THRESHOLD = 2 ** 31 - 1
_STATE = {"reuse": False}


def _mallopt(param: int, value: int) -> bool:
    """glibc ``mallopt(param, value)``; False where the C library is not glibc."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(ctypes.c_int(param), ctypes.c_int(value)))
    except (OSError, AttributeError):
        return False


def reuse_freed_memory() -> bool:
    """Keep freed CPU memory in the process for reuse (module doc): glibc's mmap and trim thresholds raised to
    2 GiB - 1, so large tensors come from the heap and what a step frees serves the next step without page
    faults.  Process-wide, until exit.  Returns True once applied; False, changing nothing, where the C
    library is not glibc (macOS, musl: use jemalloc or tcmalloc through ``LD_PRELOAD`` there)."""
    ok = _mallopt(_M_MMAP_THRESHOLD, REUSE_THRESHOLD) and _mallopt(_M_TRIM_THRESHOLD, REUSE_THRESHOLD)
    _STATE["reuse"] = _STATE["reuse"] or ok
    return ok


def reusing_freed_memory() -> bool:
    """Whether :func:`reuse_freed_memory` has been applied in this process."""
    return _STATE["reuse"]
