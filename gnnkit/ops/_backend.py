"""Which implementation an op runs: the Triton kernel or the pure-torch path.

Decided per call from the input's device and one environment variable:

``GNNKIT_BACKEND=auto`` (default)
    Triton on CUDA tensors when ``triton`` imports and the op has a kernel;
    the torch path otherwise.
``GNNKIT_BACKEND=torch``
    Always the torch path (the reference).
``GNNKIT_BACKEND=triton``
    Always the Triton kernel; on CPU tensors this needs ``TRITON_INTERPRET=1``
    (Triton's interpreter), which is how the tests run every kernel on CPU.
"""
from __future__ import annotations

import functools
import importlib
import os

import torch

_MODES = ("auto", "torch", "triton")


def backend_mode() -> str:
    mode = os.environ.get("GNNKIT_BACKEND", "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"GNNKIT_BACKEND={mode!r} is not one of {_MODES}; unset it or pick one of those")
    return mode


@functools.lru_cache(maxsize=None)
def _kernel_module(op: str):
    """``gnnkit.kernels.<op>`` if triton and that module import, else None."""
    try:
        import triton  # noqa: F401
    except Exception:  # triton missing or broken (e.g. CPU-only install)
        return None
    try:
        return importlib.import_module(f"gnnkit.kernels.{op}")
    except ModuleNotFoundError as e:
        if e.name in (f"gnnkit.kernels.{op}", "gnnkit.kernels"):
            return None
        raise


def use_triton(op: str, t: torch.Tensor) -> bool:
    """True when ``op`` should run its Triton kernel on tensor ``t``."""
    mode = backend_mode()
    if mode == "torch":
        return False
    if mode == "auto" and not t.is_cuda:
        return False  # no import of triton on the CPU fast path
    mod = _kernel_module(op)
    if mode == "triton":
        if mod is None:
            raise RuntimeError(
                f"GNNKIT_BACKEND=triton but no Triton kernel for op {op!r} could be imported "
                "(is triton installed?); unset GNNKIT_BACKEND to use the torch path")
        if not t.is_cuda and os.environ.get("TRITON_INTERPRET", "0") != "1":
            raise RuntimeError(
                "GNNKIT_BACKEND=triton on CPU tensors needs TRITON_INTERPRET=1 (Triton's interpreter)")
        return True
    return mod is not None and t.is_cuda


def kernel(op: str):
    """The launcher module ``gnnkit.kernels.<op>`` (only after :func:`use_triton` said yes)."""
    return _kernel_module(op)
