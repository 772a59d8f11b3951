"""Measurement: peak memory of a region (CUDA allocator or peak-RSS delta), timing, the copy
bandwidth of the device and the compulsory-bytes model of each op (docs/kernels.md)."""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import statistics
import time
from typing import Callable, Dict, Iterator, List, Optional

import torch

OPS = ("spmm", "sddmm", "softmax", "segment", "gat")

# ---------------------------------------------------------------------- memory and time
_M_MMAP_THRESHOLD = -3
_MEASURE_THRESHOLD = 64 * 1024  # while measuring: blocks >= 64 KiB are mmapped and unmapped on free
_RUN_THRESHOLD = 32 * 2 ** 20  # afterwards: glibc's own upper limit for its dynamic threshold


def _set_mmap_threshold(nbytes: int) -> bool:
    """glibc ``mallopt(M_MMAP_THRESHOLD)``; False where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, nbytes))
    except (OSError, AttributeError):
        return False


def _malloc_trim() -> bool:
    """glibc ``malloc_trim(0)``: hand free heap memory back to the OS, so the resident set before a
    measured run is live memory, not free chunks the run would reuse unseen."""
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def _status_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a code region above what was in use before it (bytes), see module doc."""

    def __init__(self, device: torch.device):
        self.device = device
        self.method = "unavailable"
        self._glibc = False
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated"
        elif _status_kb("VmHWM") is not None and _reset_hwm():
            self._glibc = _set_mmap_threshold(_RUN_THRESHOLD)
            self.method = "peak RSS delta (VmHWM via /proc/self/clear_refs, glibc mmap threshold 64 KiB)" \
                if self._glibc else "peak RSS delta (VmHWM via /proc/self/clear_refs)"

    @contextlib.contextmanager
    def measure(self, out: Dict[str, float]) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield
            torch.cuda.synchronize(self.device)
            out["peak_bytes"] = float(torch.cuda.max_memory_allocated(self.device) - base)
        elif self.method != "unavailable":
            if self._glibc:  # large blocks leave the RSS when freed, only while measuring
                _set_mmap_threshold(_MEASURE_THRESHOLD)
            try:
                if self._glibc:
                    _malloc_trim()
                base = _status_kb("VmRSS")
                _reset_hwm()
                yield
                out["peak_bytes"] = float(max(_status_kb("VmHWM") - base, 0) * 1024)
            finally:
                if self._glibc:
                    _set_mmap_threshold(_RUN_THRESHOLD)
        else:
            yield
            out["peak_bytes"] = float("nan")


def require_at_least_one(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """The benchmarks' count arguments: ``parser.error`` (exit 2, one line naming the flag) for the first of
    ``names`` (attribute names, ``_`` for ``-``) whose value is below 1."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)



def interleaved(fns: Dict[str, Callable[[], object]], rounds: int, device: torch.device, warmup: int = 1,
                alternate: bool = False) -> Dict[str, List[float]]:
    """Wall times (seconds) of each callable, timed round-robin: round ``k`` calls every callable once, so a
    slow phase of the machine hits all of them alike and ratios within a round are meaningful.
    ``alternate``: every other round runs them in reverse order (ABBA), so no callable always runs first.
    ``warmup`` untimed calls of each first."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"interleaved: rounds must be an int >= 1 (timed calls of each callable), got {rounds!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"interleaved: warmup must be an int >= 0, got {warmup!r}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for k in (names[::-1] if alternate and r % 2 else names):
            sync(device)
            t0 = time.perf_counter()
            fns[k]()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return times


def paired_ratio(num: list, den: list, resamples: int = 2000, seed: int = 0) -> dict:
    """Median of the per-round ratios ``num[k] / den[k]`` (e.g. two callables' times from one round of
    :func:`interleaved`) and a 95 % bootstrap interval of that median (``resamples``, seeded); ``verdict``:
    ``faster``/``slower`` when the whole interval lies above/below 1, else ``parity``."""
    if len(num) != len(den) or not num:
        raise ValueError(f"paired_ratio: needs two equally long, non-empty lists, got {len(num)} and {len(den)}")
    ratios = torch.tensor([a / b for a, b in zip(num, den)], dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(ratios), (resamples, len(ratios)), generator=g)
    meds = ratios[idx].median(dim=1).values.sort().values
    lo, hi = float(meds[int(0.025 * resamples)]), float(meds[int(0.975 * resamples) - 1])
    verdict = "faster" if lo > 1 else "slower" if hi < 1 else "parity"
    return {"median": round(float(ratios.median()), 3), "ci95": [round(lo, 3), round(hi, 3)], "verdict": verdict,
            "rounds": len(ratios)}


def time_fn(fn: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> List[float]:
    """Wall times (seconds) of ``repeats`` calls after ``warmup`` calls."""
    return interleaved({"fn": fn}, repeats, device, warmup=warmup)["fn"]


def copy_bandwidth(device: torch.device, nbytes: int = 256 * 2 ** 20, repeats: int = 5) -> float:
    """Device copy bandwidth in GB/s (bytes read + bytes written per second), median of ``repeats``."""
    n = nbytes // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    times = time_fn(lambda: dst.copy_(src), device, warmup=2, repeats=repeats)
    return 2 * n * 4 / statistics.median(times) / 1e9


# ---------------------------------------------------------------------- bandwidth model
def compulsory_bytes(op: str, mode: str, N: int, E: int, F: int, H: int, b: int, i: int = 8) -> int:
    """Bytes an ideal kernel must move (docs/kernels.md, field.md's model): CSR structure
    ``(N+1)·i + E·i``, each dense input read once, each output written once.  ``F`` is the
    width per head (total width ``H·F``); backward adds the transposed structure and the
    gradients' reads and writes."""
    if mode not in ("fwd", "fwd+bwd"):
        raise ValueError(f"mode {mode!r} has no bandwidth model; use 'fwd' or 'fwd+bwd'")
    struct = (N + 1) * i + E * i
    W = H * F
    if op == "spmm":  # Y = A X (sum), X read once (perfect reuse), Y written once
        fwd = struct + N * W * b + N * W * b
        bwd = struct + N * W * b + N * W * b  # dX = A^T dY
    elif op == "sddmm":  # s_e = <a_i, b_j>
        fwd = struct + 2 * N * W * b + E * H * b
        bwd = 2 * struct + E * H * b + 2 * N * W * b + 2 * N * W * b  # two SpMMs with dS as values
    elif op == "softmax":
        fwd = struct + 2 * E * H * b
        bwd = struct + 3 * E * H * b
    elif op == "segment":  # values [E, W] in, [N, W] out
        fwd = (N + 1) * i + E * W * b + N * W * b
        bwd = (N + 1) * i + N * W * b + E * W * b
    elif op == "gat":  # x, a_src, a_dst in; out and the [N, H] fp32 statistics out
        fwd = struct + N * W * b + 2 * N * H * b + N * W * b + 2 * N * H * 4
        bwd = 2 * struct + 3 * N * W * b + 2 * N * H * b + N * W * b + 2 * N * H * b
    else:
        raise ValueError(f"op {op!r} has no bandwidth model; use one of {OPS}")
    return fwd if mode == "fwd" else fwd + bwd
